"""Relay CPU per viewer: ORcast's send paths, the floor, and aiortc's MediaRelay (decode + re-encode).

    python bench/relay.py [--viewers 1,10,50] [--send-paths fast,aiortc] [--baseline-viewers 1,2]
                          [--seconds 10] [--codec H264] [--workers 1]

ORcast runs once per send path: `fast` (its own: RTP written, protected and sent per frame in
one loop, a frame's packets in one `sendmsg` per size with UDP GSO), `fast-sendto` (the same
with one `sendto` per packet) and `aiortc` (aiortc's RTCRtpSender, the path before). The floor is what no Python
relay can go below: for each packet a viewer receives, one SRTP protect (AEAD-AES-128-GCM, what
viewers negotiate) and one `sendto`, timed in a tight loop in this process; floor per viewer =
packets per second per viewer × that cost. The paced floor is the same protect + `sendto`
under a relay's conditions: the clip's frames at 30 fps, to 50 readers in a child process that
sleep in epoll between frames (caches go cold between bursts, each send wakes a reader): both
cost any relay, and the tight loop pays neither.

One publisher sends a pre-encoded 720p30 ~2 Mbps H.264 clip over WHIP. Viewers run in
worker processes, tap encoded frames (no decoding, except each viewer's first keyframe
to time the join), and report fps, frame gaps and join time. The server runs in its own
process; its CPU is read from /proc (utime+stime, what getrusage reports for it).
Per-viewer CPU = (server CPU with N viewers - server CPU with the publisher alone) / N.
With `--workers N` the server runs `[server] workers = N` (the front and N-1 worker processes
holding viewers): its CPU is the sum over them, and each process's share is printed (the
busiest one's share says how evenly the cores are used).
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


def codec_preferences(transceiver: Any, codec: str) -> None:
    from aiortc import RTCRtpSender
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType == f"video/{codec}"])


def auth_headers() -> dict[str, str]:
    """A server-wide organizer token, signed with the secret the bench hands the server."""
    from broadcast.participant import ALL_EVENTS, Role
    from signaling.auth.tokens import TokenIssuer

    token, _ = TokenIssuer(os.environ["ORCAST_SECRET"].encode()).mint(ALL_EVENTS, Role.ORGANIZER, "bench", 3600)
    return {"Authorization": f"Bearer {token}"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- publisher process
async def whip_publish(pc: Any, base: str, path: str) -> None:
    """Offer `pc`'s tracks to `base`'s WHIP endpoint for `path` and apply the answer."""
    from aiortc import RTCSessionDescription

    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/whip/{path}", data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp", **auth_headers()}) as resp:
        assert resp.status == 201, await resp.text()
        answer = await resp.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


async def run_publisher(base: str, path: str = PATH, codec: str = "H264", with_low: bool = False) -> None:
    """`with_low`: also send the feed's own low rendition (640×360, a second video track), as
    the console does."""
    from aiortc import RTCPeerConnection

    from broadcast.sources.synthetic import ClipTrack, encode_clip

    clips = [encode_clip(codec, 1280, 720, 30, 4, 2_000_000)]
    if with_low:
        clips.append(encode_clip(codec, 640, 360, 30, 4, 500_000))
    pc = RTCPeerConnection()
    for clip in clips:
        track = ClipTrack(clip, "video")
        t = pc.addTransceiver(track, direction="sendonly")
        # answer PLIs as an encoder would (aiortc only passes them to its own encoders)
        t.sender._send_keyframe = track.request_keyframe
        codec_preferences(t, codec)
    await whip_publish(pc, base, path)
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
        self.dtls: Any = None  # the viewer's DTLS transport, made light after its first picture

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
                    self.go_light()
            except Exception:
                pass
            if self.first_decoded is None:
                return
        self.timestamps.append(frame.timestamp)

    def go_light(self) -> None:
        """From now on, count frames from the RTP headers only (aiortc has unprotected them): the
        marker bit and timestamp, without aiortc's packet objects, jitter buffer and NACK/RTCP
        bookkeeping. The bench's viewers then cost about half as much, which is what lets 40
        of them share this machine with a server that uses both cores."""
        dtls = self.dtls
        if dtls is None:
            return
        timestamps = self.timestamps

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            if len(data) > 12 and data[1] & 0x80:  # the marker: a frame's last packet
                timestamps.append(int.from_bytes(data[4:8], "big"))

        dtls._handle_rtp_data = handle_rtp_data


async def run_viewers(base: str, count: int, codec: str = "H264", query: str = "") -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from broadcast.webrtc.aiortchooks import EncodedFrameTap, install_receiver_tap

    viewers: list[TapViewer] = []
    pcs = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            viewer = TapViewer()
            pc = RTCPeerConnection()
            t = pc.addTransceiver("video", direction="recvonly")
            codec_preferences(t, codec)

            @pc.on("track")
            def on_track(track: Any, pc: Any = pc, viewer: TapViewer = viewer) -> None:
                receiver = next(x.receiver for x in pc.getTransceivers() if x.receiver.track is track)
                viewer.dtls = receiver.transport
                install_receiver_tap(receiver, EncodedFrameTap(viewer.on_frame, lambda: None), "video")

            await pc.setLocalDescription(await pc.createOffer())
            viewer.posted = time.monotonic()
            async with http.post(f"{base}/whep/{PATH}{query}", data=pc.localDescription.sdp,
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
def start_orcast(config: str, port: int, prefix: str, workers: int = 1) -> subprocess.Popen[str]:
    """`orcast serve` in its own process with `config`, `[server] workers` and a fresh data dir."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    (data_dir / "bench.toml").write_text(config + f"\n[server]\nworkers = {workers}\n")
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


def server_pids(front: int, base: str) -> list[int]:
    """The front's pid and its ready workers' (from /readyz)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
            rows = json.load(resp).get("workers", [])
    except urllib.error.HTTPError as exc:
        rows = json.load(exc).get("workers", [])
    return [front] + [int(w["pid"]) for w in rows if w["index"] > 0 and w["ready"]]


def cpu_of(pids: list[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


def measure(pids: list[int], base: str, viewers: int, seconds: float, codec: str,
            per_worker: int = 10) -> dict[str, Any]:
    rss0 = sum(rss_bytes(pid) for pid in pids)
    workers = []
    remaining = viewers
    while remaining > 0:
        n = min(per_worker, remaining)
        workers.append(spawn(__file__, "viewers", base, str(n), codec))
        remaining -= n
    for w in workers:
        assert wait_line(w, 120) == "ready"
    time.sleep(2.0)  # settle
    rss1 = sum(rss_bytes(pid) for pid in pids)
    for w in workers:
        w.stdin.write("start\n"); w.stdin.flush()  # type: ignore[union-attr]  # noqa: E702
    frames0 = server_frames_in(base)
    cpu0, t0 = cpu_of(pids), time.monotonic()
    clients0 = sum(cpu_seconds(w.pid) for w in workers)
    time.sleep(seconds)
    cpu1, t1 = cpu_of(pids), time.monotonic()
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
    per_process = [(b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1, strict=True)]
    return {
        "process_cores": per_process,  # the front first, then each worker
        "viewers": viewers,
        "rss_growth_per_viewer_mib": (rss1 - rss0) / viewers / 2**20,
        "server_cores": sum(per_process),
        "viewer_processes_cores": (clients1 - clients0) / (t1 - t0),
        # what reached the server: below 30 means frames were lost before the fan-out
        "server_fps_in": (frames1 - frames0) / (t1 - t0) if frames0 is not None and frames1 is not None else None,
        "fps_mean": statistics.mean(r["fps"] for r in rows),
        "fps_min": min(r["fps"] for r in rows),
        "gaps_total": sum(r["gaps"] for r in rows),
        "join_p50_ms": 1000 * statistics.median(joins) if joins else None,
        "join_p95_ms": 1000 * joins[min(len(joins) - 1, int(0.95 * len(joins)))] if joins else None,
    }


def run_target(name: str, counts: list[int], seconds: float, codec: str = "H264", workers: int = 1) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if name.startswith("orcast-"):
        send_path, _, variant = name.removeprefix("orcast-").partition("-")
        gso = "false" if variant == "sendto" else "true"
        config = BENCH_CONFIG + f'\n[relay]\nsend_path = "{send_path}"\nudp_gso = {gso}\n'
        server = start_orcast(config, port, "orcast-bench-", workers)
    else:
        server = spawn(__file__, "baseline-server", str(port))
    try:
        wait_http(base)
        pids = [server.pid]
        if workers > 1:
            deadline = time.monotonic() + 60
            while len(pids := server_pids(server.pid, base)) < workers:
                assert time.monotonic() < deadline, "the server's workers did not start"
                time.sleep(0.2)
        publisher = spawn(__file__, "publisher", base, PATH, codec)
        assert wait_line(publisher, 120) == "ready"
        time.sleep(3.0)
        cpu0, t0 = sum(cpu_of(pids)), time.monotonic()
        time.sleep(seconds / 2)
        idle = (sum(cpu_of(pids)) - cpu0) / (time.monotonic() - t0)
        print(f"[{name}] publisher only: {idle:.3f} cores", flush=True)
        results = []
        for n in counts:
            row = measure(pids, base, n, seconds, codec)
            row["per_viewer_cores"] = (row["server_cores"] - idle) / n
            shares = " / ".join(f"{c:.3f}" for c in row["process_cores"])
            print(f"[{name}] {n:>3} viewers: {row['server_cores']:.3f} cores ({shares}), "
                  f"{row['per_viewer_cores']:.4f}/viewer, fps {row['fps_mean']:.1f}, "
                  f"viewer processes {row['viewer_processes_cores']:.2f} cores", flush=True)
            results.append(row)
        publisher.stdin.close()  # type: ignore[union-attr]
        publisher.wait(30)
        return {"publisher_only_cores": idle, "runs": results}
    finally:
        server.terminate()
        server.wait(30)


def packets_per_second(codec: str) -> float:
    """RTP packets per second a viewer of the bench clip receives (ORcast's own packetizer)."""
    from broadcast.relay.frame import EncodedFrame
    from broadcast.sources.synthetic import encode_clip
    from broadcast.webrtc.aiortchooks import packetize

    clip = encode_clip(codec, 1280, 720, 30, 4, 2_000_000)
    packets = sum(len(packetize(EncodedFrame(codec, p.data, 0, p.keyframe, 90000, i)))
                  for i, p in enumerate(clip.video))
    return packets / (len(clip.video) / clip.fps)


def floor_seconds_per_packet(payload: int = 1100, count: int = 20000) -> dict[str, float]:
    """The cost of one SRTP protect + one sendto, per profile, in a tight loop (best of 3)."""
    import socket

    import pylibsrtp

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    addr = sink.getsockname()
    results = {}
    for name, profile, key_len in (("AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
                                   ("AES128_CM_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30)):
        policy = pylibsrtp.Policy(key=os.urandom(key_len), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                  srtp_profile=profile)
        policy.allow_repeat_tx = True
        session = pylibsrtp.Session(policy)
        header = bytes([0x80, 96]) + b"\x00\x01" + b"\x00" * 8
        body = os.urandom(payload)
        best = float("inf")
        for attempt in range(3):
            t0 = time.perf_counter()
            for seq in range(attempt * count, (attempt + 1) * count):  # onwards: SRTP refuses going back
                packet = header[:2] + (seq & 0xFFFF).to_bytes(2, "big") + header[4:] + body
                try:
                    out.sendto(session.protect(packet), addr)
                except BlockingIOError:
                    pass
                if seq % 64 == 0:
                    try:
                        while True:
                            sink.recv(2048)
                    except BlockingIOError:
                        pass
            best = min(best, (time.perf_counter() - t0) / count)
        results[name] = best
        if name == "AEAD_AES_128_GCM":
            results["AEAD_AES_128_GCM+GSO"] = gso_seconds_per_packet(session, out, sink, addr, payload, count)
    sink.close()
    out.close()
    return results


def gso_seconds_per_packet(session: Any, out: Any, sink: Any, addr: Any, payload: int, count: int,
                           per_frame: int = 8) -> float:
    """Protect each packet, then one UDP GSO sendmsg per frame of `per_frame` equal packets."""
    import socket
    import struct

    from broadcast.webrtc.aiortchooks import UDP_SEGMENT

    header = bytes([0x80, 96]) + b"\x00\x01" + b"\x00" * 8
    body = os.urandom(payload)
    best = float("inf")
    seq = 10 * count  # past what the sendto loop protected
    for _ in range(3):
        t0 = time.perf_counter()
        for _frame in range(count // per_frame):
            packets = []
            for _ in range(per_frame):
                packets.append(session.protect(header[:2] + (seq & 0xFFFF).to_bytes(2, "big") + header[4:] + body))
                seq += 1
            try:
                out.sendmsg([b"".join(packets)], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(packets[0])))],
                           0, addr)
            except BlockingIOError:
                pass
            try:
                while True:
                    sink.recv(2048)
            except BlockingIOError:
                pass
        best = min(best, (time.perf_counter() - t0) / (count // per_frame * per_frame))
    return best


def paced_floor_seconds_per_packet(codec: str, viewers: int = 50, seconds: float = 8.0) -> float:
    """The floor under a relay's conditions: the same SRTP protect + `sendto` per packet, but
    for the bench clip's real frames paced at its frame rate, to `viewers` sockets whose
    reader (a child process, as the viewers are) waits in epoll and is woken by them.

    The tight loop above runs hot in the caches and wakes nobody; a relay sends a burst per
    frame 30 times a second (cold caches each time) to receivers that sleep between frames
    (each send wakes one). Both cost a relay as they would cost this loop."""
    import signal
    import socket

    import pylibsrtp

    from broadcast.relay.frame import EncodedFrame
    from broadcast.sources.synthetic import encode_clip
    from broadcast.webrtc.aiortchooks import packetize

    clip = encode_clip(codec, 1280, 720, 30, 4, 2_000_000)
    frames = [packetize(EncodedFrame(codec, p.data, 0, p.keyframe, 90000, i)) for i, p in enumerate(clip.video)]
    sinks, outs, sessions = [], [], []
    for _ in range(viewers):
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        sinks.append(sink)
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.setblocking(False)
        outs.append(out)
        policy = pylibsrtp.Policy(key=os.urandom(28), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                  srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
        sessions.append(pylibsrtp.Session(policy))
    reader = os.fork()
    if reader == 0:  # the viewers: sleep in epoll, read what arrives
        poll = select.epoll()
        by_fd = {s.fileno(): s for s in sinks}
        for fd in by_fd:
            poll.register(fd, select.EPOLLIN)
        while True:
            for fd, _ in poll.poll():
                try:
                    while True:
                        by_fd[fd].recv(2048)
                except BlockingIOError:
                    pass
    try:
        targets = [s.getsockname() for s in sinks]
        count = int(seconds * clip.fps)
        packets = 0
        before = os.times()
        start = time.monotonic()
        for n in range(count):
            payloads = frames[n % len(frames)]
            for session, out, addr in zip(sessions, outs, targets, strict=True):
                for i, payload in enumerate(payloads):
                    header = bytes((0x80, 96)) + ((packets // viewers + i) & 0xFFFF).to_bytes(2, "big") + bytes(8)
                    try:
                        out.sendto(session.protect(header + payload), addr)
                    except BlockingIOError:
                        pass
            packets += len(payloads) * viewers
            delay = start + (n + 1) / clip.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        after = os.times()
    finally:
        os.kill(reader, signal.SIGKILL)
        os.waitpid(reader, 0)
        for s in sinks + outs:
            s.close()
    return (after.user - before.user + after.system - before.system) / packets


def busiest(process_cores: list[float]) -> str:
    """The busiest server process's share of the server's CPU ("-" for one process)."""
    if len(process_cores) < 2 or sum(process_cores) <= 0:
        return "-"
    top = max(range(len(process_cores)), key=process_cores.__getitem__)
    return f"{100 * process_cores[top] / sum(process_cores):.0f} % ({'front' if top == 0 else f'worker {top}'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="1,10,50")
    parser.add_argument("--send-paths", default="fast,fast-sendto,aiortc",
                        help="fast (with UDP GSO), fast-sendto (one sendto per packet), aiortc")
    parser.add_argument("--baseline-viewers", default="1,2", help="aiortc MediaRelay; 0 to skip it")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--codec", default="H264", choices=("H264", "VP8"))
    parser.add_argument("--workers", type=int, default=1,
                        help="[server] workers for ORcast: processes holding viewers, the front included")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "relay.json")
    args = parser.parse_args()
    counts = [int(x) for x in args.viewers.split(",")]
    base_counts = [int(x) for x in args.baseline_viewers.split(",") if int(x) > 0]
    # the server and every client process share one signing secret (a fresh one per run)
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    pps = packets_per_second(args.codec)
    per_packet = floor_seconds_per_packet()
    floor = pps * per_packet["AEAD_AES_128_GCM"]
    print(f"floor: {pps:.0f} packets/s per viewer × {1e6 * per_packet['AEAD_AES_128_GCM']:.2f} µs "
          f"(protect AES-128-GCM + sendto; AES-CM/SHA1 {1e6 * per_packet['AES128_CM_SHA1_80']:.2f} µs; "
          f"AES-128-GCM + one GSO sendmsg per 8 packets {1e6 * per_packet['AEAD_AES_128_GCM+GSO']:.2f} µs) "
          f"= {floor:.4f} core per viewer", flush=True)
    paced_packet = paced_floor_seconds_per_packet(args.codec)
    paced = pps * paced_packet
    print(f"paced floor: the same for the clip's frames at 30 fps to 50 sleeping readers: "
          f"{1e6 * paced_packet:.2f} µs per packet = {paced:.4f} core per viewer", flush=True)
    targets: dict[str, dict[str, Any]] = {}
    for path in args.send_paths.split(","):
        print(f"ORcast, {path} send path …", flush=True)
        label = f"ORcast {path}" + (f", {args.workers} workers" if args.workers > 1 else "")
        targets[label] = run_target(f"orcast-{path}", counts, args.seconds, args.codec, args.workers)
    if base_counts:
        print("baseline: aiortc MediaRelay, decode once + encode per viewer …", flush=True)
        targets["aiortc MediaRelay"] = run_target("baseline", base_counts, args.seconds, args.codec)
    lines = [f"| server ({args.codec}) | viewers | server cores | cores/viewer | × floor | × paced floor "
             "| fps mean (min) | frame gaps | join p50 / p95 ms | server fps in | RSS MiB/viewer "
             "| viewer clients' cores | busiest process |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines.append(f"| floor (protect + sendto, tight loop) | - | - | {floor:.4f} | 1.0 | {floor / paced:.2f} "
                 "| - | - | - | - | - | - | - |")
    lines.append(f"| paced floor (30 fps, 50 sleeping readers) | - | - | {paced:.4f} | {paced / floor:.2f} | 1.0 "
                 "| - | - | - | - | - | - | - |")
    for name, result in targets.items():
        for r in result["runs"]:
            r["ratio_to_floor"] = r["per_viewer_cores"] / floor
            r["ratio_to_paced_floor"] = r["per_viewer_cores"] / paced
            fps_in = "-" if r["server_fps_in"] is None else f"{r['server_fps_in']:.1f}"
            lines.append(
                f"| {name} | {r['viewers']} | {r['server_cores']:.3f} | {r['per_viewer_cores']:.4f} | "
                f"{r['ratio_to_floor']:.1f} | {r['ratio_to_paced_floor']:.2f} | "
                f"{r['fps_mean']:.1f} ({r['fps_min']:.1f}) | {r['gaps_total']} | "
                f"{r['join_p50_ms']:.0f} / {r['join_p95_ms']:.0f} | {fps_in} | "
                f"{r['rss_growth_per_viewer_mib']:.2f} | {r['viewer_processes_cores']:.2f} | "
                f"{busiest(r['process_cores'])} |")
    table = "\n".join(lines)
    print(table)
    for name, result in targets.items():
        print(f"publisher only, {name}: {result['publisher_only_cores']:.3f} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {"codec": args.codec, "packets_per_second": pps, "floor_s_per_packet": per_packet,
               "floor_cores_per_viewer": floor, "paced_floor_s_per_packet": paced_packet,
               "paced_floor_cores_per_viewer": paced, "targets": targets, "table": table}
    args.out.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publisher":
        asyncio.run(run_publisher(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:6] == ["with-low"]))
    elif len(sys.argv) > 1 and sys.argv[1] == "viewers":
        asyncio.run(run_viewers(sys.argv[2], int(sys.argv[3]), sys.argv[4], *sys.argv[5:6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "baseline-server":
        asyncio.run(run_baseline_server(int(sys.argv[2])))
    else:
        main()
