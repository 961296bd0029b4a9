"""Relay-added latency per frame, and join time under concurrent joins.

    python bench/latency.py [--codec H264|VP8] [--seconds 15] [--joiners 20]

Latency: one pacer in this process sends the same pre-encoded 720p30 frames, at the same
moment, to two aiortc peers: a WHIP publisher into ORcast (its own process) and a direct
aiortc-to-aiortc connection inside this process. A WHEP viewer of the relay and the direct
receiver both take frames off their receivers without decoding (ORcast's frame tap, so both
reassemble the same way) and note when each arrives, on this process's one monotonic clock.
A frame is recognised by its last bytes (the relay forwards frames unchanged; an H.264
keyframe only gains its parameter sets in front). Relay-added latency of a frame = its arrival
through the relay − its arrival on the direct path.

Join: `--joiners` WHEP viewers in worker processes POST at the same moment; each decodes until
its first picture (aiortc's decoder, as a browser would). Join time = POST sent → first
decoded frame. Results print as tables and go to bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay import (  # noqa: E402
    BENCH_CONFIG,
    auth_headers,
    codec_preferences,
    cpu_seconds,
    free_port,
    server_pids,
    spawn,
    start_orcast,
    wait_http,
    wait_line,
)

PATH = "bench/or1/endoscope"
TAIL = 16


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class FanOut:
    """Paces a clip at its frame rate and hands every frame to each track at the same moment."""

    def __init__(self, clip: Any) -> None:
        from broadcast.sources.synthetic import VIDEO_CLOCK_RATE, _ClipCursor
        self.cursor = _ClipCursor(clip.video, VIDEO_CLOCK_RATE // clip.fps, VIDEO_CLOCK_RATE)
        self.tracks: list[QueueTrack] = []
        self.sent: dict[bytes, list[tuple[int, float]]] = {}  # tail → [(send id, time)]
        self.count = 0

    async def run(self) -> None:
        import av
        while True:
            packet, pts, due = self.cursor.next()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            self.sent.setdefault(bytes(packet.data[-TAIL:]), []).append((self.count, now))
            self.count += 1
            for track in self.tracks:
                out = av.Packet(packet.data)
                out.pts = pts
                out.time_base = fractions.Fraction(1, 90000)
                track.queue.put_nowait(out)

    def request_keyframe(self) -> None:
        self.cursor.jump_to_keyframe()

    def send_id(self, data: bytes, arrived: float) -> int | None:
        """The send this frame came from: the latest send of these bytes before it arrived."""
        best = None
        for send_id, at in self.sent.get(bytes(data[-TAIL:]), ()):
            if at <= arrived:
                best = send_id
        return best


class QueueTrack(MediaStreamTrack):
    """A video track that sends what the pacer puts in its queue."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        return await self.queue.get()


class Arrivals:
    def __init__(self, fan: FanOut) -> None:
        self.fan = fan
        self.at: dict[int, float] = {}

    def on_frame(self, codec: Any, frame: Any) -> None:
        now = time.monotonic()
        send_id = self.fan.send_id(frame.data, now)
        if send_id is not None and send_id not in self.at:
            self.at[send_id] = now


def tap(pc: Any, arrivals: Arrivals) -> None:
    from broadcast.webrtc.aiortchooks import EncodedFrameTap, install_receiver_tap

    @pc.on("track")
    def on_track(track: Any) -> None:
        receiver = next(x.receiver for x in pc.getTransceivers() if x.receiver.track is track)
        install_receiver_tap(receiver, EncodedFrameTap(arrivals.on_frame, lambda: None), "video")


async def measure_latency(base: str, codec: str, seconds: float) -> dict[str, Any]:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from broadcast.sources.synthetic import encode_clip

    clip = encode_clip(codec, 1280, 720, 30, 4, 2_000_000)
    fan = FanOut(clip)
    pcs: list[Any] = []

    async def sender(track: Any) -> Any:
        pc = RTCPeerConnection()
        pcs.append(pc)
        t = pc.addTransceiver(track, direction="sendonly")
        t.sender._send_keyframe = fan.request_keyframe  # answer PLIs as an encoder would
        codec_preferences(t, codec)
        return pc

    async with aiohttp.ClientSession() as http:
        # relay path: WHIP publisher → ORcast → WHEP viewer
        relay_track, direct_track = QueueTrack(), QueueTrack()
        fan.tracks += [relay_track, direct_track]
        publisher = await sender(relay_track)
        await publisher.setLocalDescription(await publisher.createOffer())
        async with http.post(f"{base}/whip/{PATH}", data=publisher.localDescription.sdp,
                             headers={"Content-Type": "application/sdp", **auth_headers()}) as resp:
            assert resp.status == 201, await resp.text()
            await publisher.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))
        pacer = asyncio.ensure_future(fan.run())
        await asyncio.sleep(1.0)
        relay_arrivals = Arrivals(fan)
        viewer = RTCPeerConnection()
        pcs.append(viewer)
        codec_preferences(viewer.addTransceiver("video", direction="recvonly"), codec)
        tap(viewer, relay_arrivals)
        await viewer.setLocalDescription(await viewer.createOffer())
        async with http.post(f"{base}/whep/{PATH}", data=viewer.localDescription.sdp,
                             headers={"Content-Type": "application/sdp", **auth_headers()}) as resp:
            assert resp.status == 201, await resp.text()
            await viewer.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))
        # direct path: the same frames, aiortc to aiortc in this process
        direct_arrivals = Arrivals(fan)
        direct_tx = await sender(direct_track)
        direct_rx = RTCPeerConnection()
        pcs.append(direct_rx)
        tap(direct_rx, direct_arrivals)
        await direct_tx.setLocalDescription(await direct_tx.createOffer())
        await direct_rx.setRemoteDescription(direct_tx.localDescription)
        await direct_rx.setLocalDescription(await direct_rx.createAnswer())
        await direct_tx.setRemoteDescription(direct_rx.localDescription)
        await asyncio.sleep(3.0)  # both on air, first keyframes through
        first = fan.count
        await asyncio.sleep(seconds)
        last = fan.count
        pacer.cancel()
        for pc in pcs:
            await pc.close()
    sends = range(first, last)
    both = [i for i in sends if i in relay_arrivals.at and i in direct_arrivals.at]
    added = [1000 * (relay_arrivals.at[i] - direct_arrivals.at[i]) for i in both]
    send_times = {sid: at for entries in fan.sent.values() for sid, at in entries}
    relay_ms = [1000 * (relay_arrivals.at[i] - send_times[i]) for i in both]
    direct_ms = [1000 * (direct_arrivals.at[i] - send_times[i]) for i in both]
    return {
        "codec": codec, "frames_sent": len(sends), "frames_compared": len(both),
        "relay_missing": sum(1 for i in sends if i not in relay_arrivals.at),
        "direct_missing": sum(1 for i in sends if i not in direct_arrivals.at),
        "added_p50_ms": statistics.median(added), "added_p95_ms": percentile(added, 0.95),
        "added_p99_ms": percentile(added, 0.99),
        "relay_p50_ms": statistics.median(relay_ms), "direct_p50_ms": statistics.median(direct_ms),
    }


# ---------------------------------------------------------------- joiner worker process
async def run_joiners(base: str, count: int, codec: str) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.codecs import get_decoder

    from broadcast.webrtc.aiortchooks import EncodedFrameTap, install_receiver_tap

    joined: list[float | None] = [None] * count
    posted: list[float] = [0.0] * count
    pcs = []
    for i in range(count):
        pc = RTCPeerConnection()
        codec_preferences(pc.addTransceiver("video", direction="recvonly"), codec)
        decoder: dict[str, Any] = {}

        def on_frame(rtp_codec: Any, frame: Any, i: int = i, decoder: dict[str, Any] = decoder) -> None:
            if joined[i] is not None:
                return
            try:
                dec = decoder.setdefault("d", get_decoder(rtp_codec))
                if dec.decode(frame):
                    joined[i] = time.monotonic()
            except Exception:
                pass

        @pc.on("track")
        def on_track(track: Any, pc: Any = pc, on_frame: Any = on_frame) -> None:
            receiver = next(x.receiver for x in pc.getTransceivers() if x.receiver.track is track)
            install_receiver_tap(receiver, EncodedFrameTap(on_frame, lambda: None), "video")

        await pc.setLocalDescription(await pc.createOffer())  # gathered before the race starts
        pcs.append(pc)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"

    async def join(i: int, http: aiohttp.ClientSession) -> None:
        pc = pcs[i]
        posted[i] = time.monotonic()
        async with http.post(f"{base}/whep/{PATH}", data=pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp", **auth_headers()}) as resp:
            assert resp.status == 201, await resp.text()
            await pc.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(join(i, http) for i in range(count)))
        deadline = time.monotonic() + 15
        while any(j is None for j in joined) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    print(json.dumps([(j - p) if j is not None else None for j, p in zip(joined, posted, strict=True)]), flush=True)
    for pc in pcs:
        await pc.close()


async def publish_for_joiners(base: str, codec: str) -> None:
    from bench.relay import run_publisher
    await run_publisher(base, PATH, codec)


def measure_joins(base: str, codec: str, joiners: int, pids: list[int], per_worker: int = 5) -> dict[str, Any]:
    """`joiners` viewers POST at once; also the CPU the burst took, in the joiners' processes
    and in the server's: on a machine where both share the cores, (their sum) / cores is a
    lower bound for the last join whatever the server does."""
    publisher = spawn(__file__, "publisher", base, codec)
    assert wait_line(publisher, 120) == "ready"
    time.sleep(3.0)
    workers = []
    left = joiners
    while left > 0:
        n = min(per_worker, left)
        workers.append(spawn(__file__, "joiners", base, str(n), codec))
        left -= n
    for w in workers:
        assert wait_line(w, 60) == "ready"
    buckets0 = join_buckets(base)
    clients0, server0 = sum(cpu_seconds(w.pid) for w in workers), sum(cpu_seconds(p) for p in pids)
    for w in workers:
        w.stdin.write("go\n"); w.stdin.flush()  # type: ignore[union-attr]  # noqa: E702
    times: list[float | None] = []
    clients1 = 0.0
    for w in workers:
        times.extend(json.loads(wait_line(w, 60)))
        clients1 += cpu_seconds(w.pid)  # when it has its last picture, before it closes
    server1 = sum(cpu_seconds(p) for p in pids)
    for w in workers:
        w.stdin.close()  # type: ignore[union-attr]
        w.wait(30)
    publisher.stdin.close()  # type: ignore[union-attr]
    publisher.wait(30)
    buckets1 = join_buckets(base)
    server_side = {le: buckets1[le] - buckets0.get(le, 0) for le in buckets1}
    ok = [1000 * t for t in times if t is not None]
    return {"joiners": joiners, "joined": len(ok),
            "join_p50_ms": statistics.median(ok) if ok else None,
            "join_p95_ms": percentile(ok, 0.95) if ok else None,
            "join_max_ms": max(ok) if ok else None,
            "server_join_p95_le_ms": bucket_quantile(server_side, 0.95),
            "joiners_cpu_ms_per_join": 1000 * (clients1 - clients0) / joiners,
            "server_cpu_ms_per_join": 1000 * (server1 - server0) / joiners,
            "cpu_bound_ms": 1000 * (clients1 - clients0 + server1 - server0) / len(os.sched_getaffinity(0))}


def join_buckets(base: str) -> dict[float, int]:
    """The server's own join-time histogram (its WHEP answer → first video frame it sent)."""
    import urllib.request
    request = urllib.request.Request(f"{base}/metrics", headers=auth_headers())
    with urllib.request.urlopen(request, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[float, int] = {}
    for line in text.splitlines():
        if line.startswith("orcast_viewer_join_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = int(float(line.rsplit(" ", 1)[1]))
    return out


def bucket_quantile(buckets: dict[float, int], q: float) -> float | None:
    """The smallest bucket bound (ms) holding fraction `q` of the observations."""
    total = buckets.get(float("inf"), 0)
    if not total:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return 1000 * le
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", default="H264,VP8")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--joiners", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1,
                        help="[server] workers: with more than 1, viewers are held by worker processes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latency.json")
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    results: dict[str, Any] = {"latency": [], "joins": []}
    for codec in args.codec.split(","):
        for kind in ("latency", "joins"):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server = start_orcast(BENCH_CONFIG, port, "orcast-latency-", args.workers)
            try:
                wait_http(base)
                deadline = time.monotonic() + 60
                while len(server_pids(server.pid, base)) < args.workers:  # viewers go to workers once up
                    assert time.monotonic() < deadline, "the server's workers did not start"
                    time.sleep(0.2)
                if kind == "latency":
                    print(f"[{codec}] relay-added latency over {args.seconds:.0f} s …", flush=True)
                    row = asyncio.run(measure_latency(base, codec, args.seconds))
                else:
                    print(f"[{codec}] {args.joiners} viewers joining at once …", flush=True)
                    row = measure_joins(base, codec, args.joiners, server_pids(server.pid, base))
                    row["codec"] = codec
                results[kind].append(row)
            finally:
                server.terminate()
                server.wait(30)
    print(f"server workers: {args.workers}")
    lines = ["| codec | frames compared | relay-added p50 / p95 / p99 ms | relay path p50 ms | direct path p50 ms "
             "| frames missing (relay / direct) |", "|---|---|---|---|---|---|"]
    for r in results["latency"]:
        lines.append(f"| {r['codec']} | {r['frames_compared']} | {r['added_p50_ms']:.1f} / {r['added_p95_ms']:.1f} / "
                     f"{r['added_p99_ms']:.1f} | {r['relay_p50_ms']:.1f} | {r['direct_p50_ms']:.1f} | "
                     f"{r['relay_missing']} / {r['direct_missing']} |")
    lines += ["", "| codec | viewers joining at once | joined | join p50 / p95 / max ms | server side p95 ≤ ms "
              "| CPU per join: joiners / server ms | all that CPU / cores ms |", "|---|---|---|---|---|---|---|"]
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    for r in results["joins"]:
        lines.append(f"| {r['codec']} | {r['joiners']} | {r['joined']} | {fmt(r['join_p50_ms'])} / "
                     f"{fmt(r['join_p95_ms'])} / {fmt(r['join_max_ms'])} | {fmt(r['server_join_p95_le_ms'])} | "
                     f"{r['joiners_cpu_ms_per_join']:.1f} / {r['server_cpu_ms_per_join']:.1f} | "
                     f"{fmt(r['cpu_bound_ms'])} |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results["workers"] = args.workers
    args.out.write_text(json.dumps({**results, "table": table}, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publisher":
        asyncio.run(publish_for_joiners(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "joiners":
        asyncio.run(run_joiners(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        main()
