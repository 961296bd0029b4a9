"""CPU of a WHIP encoder that sends H.264 with B-frames (transcoded once by ORcast), against
the same picture without B-frames (relayed as it comes).

    python bench/bframes.py [--size 1280x720] [--seconds 15] [--bitrate 2500000]

The publisher (this process, aiortc) sends a pre-encoded clip in decode order, each frame at
its decode time with its own presentation timestamp, as a hardware encoder or OBS with
B-frames on would; the clip is encoded twice in this run, once with 2 B-frames (main profile)
and once without (baseline), from the same test pattern. `orcast serve` runs in its own process
with no viewer; its CPU is read from /proc over `--seconds` for each case, and the difference
is what the transcode costs. Results print as a table and go to bench/results/bframes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay import (  # noqa: E402
    BENCH_CONFIG,
    auth_headers,
    codec_preferences,
    cpu_seconds,
    free_port,
    start_orcast,
    wait_http,
    whip_publish,
)

PATH = "bench/or1/endoscope"


def feed_row(base: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/api/events/bench/streams", headers=auth_headers())
    with urllib.request.urlopen(request, timeout=5) as resp:
        streams: list[dict[str, Any]] = json.load(resp)["streams"]
    return next((s for s in streams if s["path"] == PATH), {})


async def measure(case: str, clip: list[Any], seconds: float) -> dict[str, Any]:
    from aiortc import RTCPeerConnection

    from tests.support.codedtrack import CodedTrack

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_orcast(BENCH_CONFIG, port, "orcast-bframes-")
    pc = RTCPeerConnection()
    try:
        await asyncio.to_thread(wait_http, base)
        transceiver = pc.addTransceiver(CodedTrack([clip]), direction="sendonly")
        transceiver.sender._send_keyframe = lambda: None  # the clip is fixed: a keyframe every second
        codec_preferences(transceiver, "H264")
        await whip_publish(pc, base, PATH)
        deadline = time.monotonic() + 30
        while not (row := await asyncio.to_thread(feed_row, base)).get("live") or not row.get("frames_in"):
            assert time.monotonic() < deadline, f"the feed never went live: {row}"
            await asyncio.sleep(0.5)
        await asyncio.sleep(3.0)  # settle: the B-frames seen, the transcoder started
        frames0 = (await asyncio.to_thread(feed_row, base))["frames_in"]
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        row = await asyncio.to_thread(feed_row, base)
        cores = (cpu1 - cpu0) / (t1 - t0)
        fps = (row["frames_in"] - frames0) / (t1 - t0)
        result = {"case": case, "server_cores": cores, "frames_in_per_s": fps, "transcoding": row.get("transcoding"),
                  "size": f"{row.get('width')}x{row.get('height')}"}
        print(f"[{case}] server {cores:.3f} cores, {fps:.1f} video frames/s into the feed, "
              f"transcoding: {row.get('transcoding') or 'no'}", flush=True)
        return result
    finally:
        await pc.close()
        server.terminate()
        server.wait(30)


async def run(args: argparse.Namespace) -> None:
    from tests.support.codedtrack import FPS, encode

    width, height = (int(x) for x in args.size.split("x"))
    frames = 4 * FPS  # a 4 s loop: four GOPs
    print(f"encoding the clips ({args.size}, {frames} frames each) …", flush=True)
    plain = encode(width, height, frames, bframes=0, bit_rate=args.bitrate)
    bframes = encode(width, height, frames, bframes=2, bit_rate=args.bitrate)
    assert any(c.pts != c.dts for c in bframes), "the B-frame clip has no reordered frame"
    rows = [await measure("no B-frames (relayed)", plain, args.seconds),
            await measure("2 B-frames (transcoded once)", bframes, args.seconds)]
    extra = rows[1]["server_cores"] - rows[0]["server_cores"]
    lines = [f"| WHIP publisher ({args.size} 30 fps, {args.bitrate / 1e6:.1f} Mbit/s) | server cores | "
             "frames/s into the feed | transcoding |", "|---|---|---|---|",
             *(f"| {r['case']} | {r['server_cores']:.3f} | {r['frames_in_per_s']:.1f} | {r['transcoding'] or '-'} |"
               for r in rows),
             f"| the transcode's own cost | {extra:.3f} | | |"]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "transcode_cores": extra, "table": table}, indent=2))
    print(f"results written to {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--bitrate", type=int, default=2_500_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bframes.json")
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
