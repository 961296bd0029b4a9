"""Relay CPU per viewer: ORcast's encoded relay against aiortc's MediaRelay (decode + re-encode).

    python bench/relay.py [--viewers 1,10,50] [--baseline-viewers 1,2] [--seconds 10]

One publisher sends a pre-encoded 720p30 ~2 Mbps H.264 clip over WHIP. Viewers run in
worker processes, tap encoded frames (no decoding, except each viewer's first keyframe
to time the join), and report fps, frame gaps and join time. The server runs in its own
process; its CPU is read from /proc (utime+stime, what getrusage reports for it).
Per-viewer CPU = (server CPU with N viewers - server CPU with the publisher alone) / N.
Results print as a table and go to bench/results/relay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PATH = "bench/or1/endoscope"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FRAME_TICKS = 3000  # 90 kHz / 30 fps


BENCH_CONFIG = """
[limits]
sessions_per_token = 100000
session_rate = 100000
session_burst = 100000

[[events]]
slug = "bench"
adhoc_theatres = true
"""


def auth_headers() -> dict[str, str]:
    """A server-wide organizer token, signed with the secret the bench hands the server."""
    from broadcast.participant import ALL_EVENTS, Role
    from signaling.auth.tokens import TokenIssuer

    token, _ = TokenIssuer(os.environ["ORCAST_SECRET"].encode()).mint(ALL_EVENTS, Role.ORGANIZER, "bench", 3600)
    return {"Authorization": f"Bearer {token}"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- publisher process
async def run_publisher(base: str, path: str = PATH) -> None:
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from broadcast.sources.synthetic import ClipTrack, encode_clip

    clip = encode_clip("H264", 1280, 720, 30, 4, 2_000_000)
    pc = RTCPeerConnection()
    track = ClipTrack(clip, "video")
    t = pc.addTransceiver(track, direction="sendonly")
    # answer PLIs as an encoder would (aiortc only passes them to its own encoders)
    t.sender._send_keyframe = track.request_keyframe
    t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                           if c.mimeType == "video/H264"])
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/whip/{path}", data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp", **auth_headers()}) as resp:
        assert resp.status == 201, await resp.text()
        answer = await resp.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await pc.close()


# ---------------------------------------------------------------- viewer worker process
class TapViewer:
    def __init__(self) -> None:
        self.timestamps: list[int] = []
        self.posted = 0.0
        self.first_decoded: float | None = None
        self.mark = 0
        self.decoder: Any = None

    def on_frame(self, codec: Any, frame: Any) -> None:
        if self.first_decoded is None:
            # decode (with aiortc's own decoder, as a decoding viewer would) until the first
            # picture comes out: that is the join time. Never decode again.
            from aiortc.codecs import get_decoder
            if self.decoder is None:
                self.decoder = get_decoder(codec)
            try:
                if self.decoder.decode(frame):
                    self.first_decoded = time.monotonic()
                    self.decoder = None
            except Exception:
                pass
            if self.first_decoded is None:
                return
        self.timestamps.append(frame.timestamp)


async def run_viewers(base: str, count: int) -> None:
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from broadcast.webrtc.aiortchooks import EncodedFrameTap, install_receiver_tap

    viewers: list[TapViewer] = []
    pcs = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            viewer = TapViewer()
            pc = RTCPeerConnection()
            t = pc.addTransceiver("video", direction="recvonly")
            t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                   if c.mimeType == "video/H264"])

            @pc.on("track")
            def on_track(track: Any, pc: Any = pc, viewer: TapViewer = viewer) -> None:
                receiver = next(x.receiver for x in pc.getTransceivers() if x.receiver.track is track)
                install_receiver_tap(receiver, EncodedFrameTap(viewer.on_frame, lambda: None), "video")

            await pc.setLocalDescription(await pc.createOffer())
            viewer.posted = time.monotonic()
            async with http.post(f"{base}/whep/{PATH}", data=pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp", **auth_headers()}) as resp:
                assert resp.status == 201, await resp.text()
                answer = await resp.text()
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            viewers.append(viewer)
            pcs.append(pc)
        deadline = time.monotonic() + 20
        while any(v.first_decoded is None for v in viewers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "start"
        started = time.monotonic()
        for v in viewers:
            v.mark = len(v.timestamps)
        await loop.run_in_executor(None, sys.stdin.readline)  # "report"
        elapsed = time.monotonic() - started
        report = []
        for v in viewers:
            window = v.timestamps[v.mark:]
            gaps = sum(1 for a, b in itertools.pairwise(window)
                       if b - a > FRAME_TICKS * 1.5)
            report.append({
                "fps": len(window) / elapsed,
                "gaps": gaps,
                "join_s": (v.first_decoded - v.posted) if v.first_decoded else None,
            })
        print(json.dumps(report), flush=True)
        for pc in pcs:
            await pc.close()


# ---------------------------------------------------------------- baseline server process
async def run_baseline_server(port: int) -> None:
    """aiortc's documented way to fan out: MediaRelay, which decodes once and encodes per viewer."""
    from aiohttp import web
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    relay = MediaRelay()
    state: dict[str, Any] = {"track": None, "pcs": set()}

    async def answer(pc: Any, offer: str) -> web.Response:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        state["pcs"].add(pc)
        return web.Response(status=201, text=pc.localDescription.sdp,
                            headers={"Location": f"/s/{id(pc)}", "Content-Type": "application/sdp"})

    async def whip(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", lambda track: state.__setitem__("track", track))
        return await answer(pc, await request.text())

    async def whep(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        offer = await request.text()
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        pc.addTrack(relay.subscribe(state["track"]))
        await pc.setLocalDescription(await pc.createAnswer())
        state["pcs"].add(pc)
        return web.Response(status=201, text=pc.localDescription.sdp,
                            headers={"Location": f"/s/{id(pc)}", "Content-Type": "application/sdp"})

    app = web.Application()
    app.add_routes([web.post("/whip/{p:.*}", whip), web.post("/whep/{p:.*}", whep)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# ---------------------------------------------------------------- orchestration
def start_orcast(config: str, port: int, prefix: str) -> subprocess.Popen[str]:
    """`orcast serve` in its own process with `config` and a fresh data dir."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    (data_dir / "bench.toml").write_text(config)
    return subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve", "--port", str(port),
                             "--log-level", "warning", "--config", str(data_dir / "bench.toml"),
                             "--data-dir", str(data_dir)], cwd=ROOT, text=True)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)


def wait_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError("a bench process did not answer in time")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"a bench process exited early (code {proc.wait()})")
    return line.strip()


def wait_http(base: str, timeout: float = 30) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error is an answer
                return
            time.sleep(0.2)
    raise TimeoutError(f"server at {base} did not start")


def server_frames_in(base: str) -> int | None:
    """Video frames the server has received on the bench path (ORcast only)."""
    import urllib.request
    try:
        request = urllib.request.Request(f"{base}/api/streams", headers=auth_headers())
        with urllib.request.urlopen(request, timeout=2) as resp:
            streams = json.load(resp)["streams"]
    except OSError:
        return None
    return next((int(s["frames_in"]) for s in streams if s["path"] == PATH), None)


def measure(server_pid: int, base: str, viewers: int, seconds: float, per_worker: int = 10) -> dict[str, Any]:
    workers = []
    remaining = viewers
    while remaining > 0:
        n = min(per_worker, remaining)
        workers.append(spawn(__file__, "viewers", base, str(n)))
        remaining -= n
    for w in workers:
        assert wait_line(w, 120) == "ready"
    time.sleep(2.0)  # settle
    for w in workers:
        w.stdin.write("start\n"); w.stdin.flush()  # type: ignore[union-attr]  # noqa: E702
    frames0 = server_frames_in(base)
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    clients0 = sum(cpu_seconds(w.pid) for w in workers)
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(server_pid), time.monotonic()
    clients1 = sum(cpu_seconds(w.pid) for w in workers)
    frames1 = server_frames_in(base)
    for w in workers:
        w.stdin.write("report\n"); w.stdin.flush()  # type: ignore[union-attr]  # noqa: E702
    rows: list[dict[str, Any]] = []
    for w in workers:
        rows.extend(json.loads(wait_line(w, 60)))
        w.stdin.close()  # type: ignore[union-attr]
        w.wait(30)
    joins = sorted(r["join_s"] for r in rows if r["join_s"] is not None)
    return {
        "viewers": viewers,
        "server_cores": (cpu1 - cpu0) / (t1 - t0),
        "viewer_processes_cores": (clients1 - clients0) / (t1 - t0),
        # what reached the server: below 30 means frames were lost before the fan-out
        "server_fps_in": (frames1 - frames0) / (t1 - t0) if frames0 is not None and frames1 is not None else None,
        "fps_mean": statistics.mean(r["fps"] for r in rows),
        "fps_min": min(r["fps"] for r in rows),
        "gaps_total": sum(r["gaps"] for r in rows),
        "join_p50_ms": 1000 * statistics.median(joins) if joins else None,
        "join_p95_ms": 1000 * joins[min(len(joins) - 1, int(0.95 * len(joins)))] if joins else None,
    }


def run_target(name: str, counts: list[int], seconds: float) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if name == "orcast":
        server = start_orcast(BENCH_CONFIG, port, "orcast-bench-")
    else:
        server = spawn(__file__, "baseline-server", str(port))
    try:
        wait_http(base)
        publisher = spawn(__file__, "publisher", base)
        assert wait_line(publisher, 120) == "ready"
        time.sleep(3.0)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds / 2)
        idle = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
        print(f"[{name}] publisher only: {idle:.3f} cores", flush=True)
        results = []
        for n in counts:
            row = measure(server.pid, base, n, seconds)
            row["per_viewer_cores"] = (row["server_cores"] - idle) / n
            print(f"[{name}] {n:>3} viewers: {row['server_cores']:.3f} cores, "
                  f"{row['per_viewer_cores']:.4f}/viewer, fps {row['fps_mean']:.1f}, "
                  f"viewer processes {row['viewer_processes_cores']:.2f} cores", flush=True)
            results.append(row)
        publisher.stdin.close()  # type: ignore[union-attr]
        publisher.wait(30)
        return {"publisher_only_cores": idle, "runs": results}
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="1,10,50")
    parser.add_argument("--baseline-viewers", default="1,2")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "relay.json")
    args = parser.parse_args()
    counts = [int(x) for x in args.viewers.split(",")]
    base_counts = [int(x) for x in args.baseline_viewers.split(",")]
    # the server and every client process share one signing secret (a fresh one per run)
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    print("encoded relay (ORcast) …", flush=True)
    orcast = run_target("orcast", counts, args.seconds)
    print("baseline: aiortc MediaRelay, decode once + encode per viewer …", flush=True)
    baseline = run_target("baseline", base_counts, args.seconds)
    base_per_viewer = statistics.mean(r["per_viewer_cores"] for r in baseline["runs"])
    lines = ["| server | viewers | server cores | cores/viewer | ratio vs baseline | fps mean (min) "
             "| frame gaps | join p50 / p95 ms | server fps in | viewer clients' cores |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, result in (("ORcast relay", orcast), ("aiortc MediaRelay", baseline)):
        for r in result["runs"]:
            ratio = base_per_viewer / r["per_viewer_cores"] if r["per_viewer_cores"] > 0 else float("inf")
            r["ratio_vs_baseline"] = ratio
            fps_in = "-" if r["server_fps_in"] is None else f"{r['server_fps_in']:.1f}"
            lines.append(
                f"| {name} | {r['viewers']} | {r['server_cores']:.3f} | {r['per_viewer_cores']:.4f} | "
                f"{ratio:.0f}x | {r['fps_mean']:.1f} ({r['fps_min']:.1f}) | {r['gaps_total']} | "
                f"{r['join_p50_ms']:.0f} / {r['join_p95_ms']:.0f} | {fps_in} | "
                f"{r['viewer_processes_cores']:.2f} |")
    table = "\n".join(lines)
    print(table)
    print(f"publisher only: ORcast {orcast['publisher_only_cores']:.3f} cores, "
          f"baseline {baseline['publisher_only_cores']:.3f} cores (baseline decodes even with no viewer)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"orcast": orcast, "baseline": baseline,
                                    "baseline_cores_per_viewer": base_per_viewer,
                                    "table": table}, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publisher":
        asyncio.run(run_publisher(*sys.argv[2:4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "viewers":
        asyncio.run(run_viewers(sys.argv[2], int(sys.argv[3])))
    elif len(sys.argv) > 1 and sys.argv[1] == "baseline-server":
        asyncio.run(run_baseline_server(int(sys.argv[2])))
    else:
        main()
