"""CPU of the low rendition the server makes from a feed published once (one decode and one
encode per feed, shared by all its low viewers), and that it costs nothing when nobody watches.

    python bench/renditions.py [--seconds 12] [--codecs H264,VP8] [--viewers 1]

Per codec, `orcast serve` runs in its own process with a WHIP publisher sending a pre-encoded
1280×720 30 fps clip (bench/relay.py's publisher, in a child process) and measures the
server's CPU (/proc, all its threads) over `--seconds` in three phases of one run:
`--viewers` viewers of the feed as published (`high`), the same number with `?quality=low`
(the server makes the low rendition), and `high` again once the low viewers have left and the
encode has stopped (its grace period past). Viewers are bench/relay.py's light viewers in
child processes (they decode their first picture only). low − high is the rendition's cost
(a slight under-estimate: a low viewer's packets are fewer to send). A last run has the
publisher send its own low rendition (a second 640×360 track, as the console does): its low
viewers then cost what high viewers cost, and nothing is encoded. Results print as a table
and go to bench/results/renditions.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay import (  # noqa: E402
    BENCH_CONFIG,
    PATH,
    cpu_seconds,
    free_port,
    server_frames_in,
    spawn,
    start_orcast,
    wait_http,
    wait_line,
)

RELAY = str(ROOT / "bench" / "relay.py")
GRACE_WAIT_S = 8.0  # the low encode stops 5 s after its last viewer


def phase(server_pid: int, base: str, codec: str, viewers: int, quality: str, seconds: float) -> dict[str, Any]:
    query = "" if quality == "high" else f"?quality={quality}"
    watchers = spawn(RELAY, "viewers", base, str(viewers), codec, query)
    try:
        assert wait_line(watchers, 120) == "ready"
        time.sleep(2.0)  # settle: the encoder's first frames
        watchers.stdin.write("start\n"); watchers.stdin.flush()  # type: ignore[union-attr]  # noqa: E702
        cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(server_pid), time.monotonic()
        watchers.stdin.write("report\n"); watchers.stdin.flush()  # type: ignore[union-attr]  # noqa: E702
        rows = json.loads(wait_line(watchers, 60))
    finally:
        if watchers.stdin is not None:
            watchers.stdin.close()
        watchers.wait(30)
    cores = (cpu1 - cpu0) / (t1 - t0)
    fps = min(r["fps"] for r in rows)
    print(f"[{codec}] {viewers} {quality} viewer(s): server {cores:.3f} cores, viewers' fps (min) {fps:.1f}",
          flush=True)
    return {"codec": codec, "quality": quality, "viewers": viewers, "server_cores": cores, "fps_min": fps,
            "join_ms": [round(1000 * r["join_s"]) if r["join_s"] else None for r in rows]}


def no_viewer(server_pid: int, seconds: float) -> float:
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)


def run_codec(codec: str, viewers: int, seconds: float, own_low: bool = False) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_orcast(BENCH_CONFIG, port, "orcast-renditions-")
    publisher = None
    try:
        wait_http(base)
        publisher = spawn(RELAY, "publisher", base, PATH, codec, *(["with-low"] if own_low else []))
        assert wait_line(publisher, 60) == "ready"
        deadline = time.monotonic() + 20
        while not server_frames_in(base):
            assert time.monotonic() < deadline, "the publisher's frames never reached the server"
            time.sleep(0.3)
        time.sleep(2.0)
        idle = no_viewer(server.pid, seconds / 2)
        high = phase(server.pid, base, codec, viewers, "high", seconds)
        low = phase(server.pid, base, codec, viewers, "low", seconds)
        time.sleep(GRACE_WAIT_S)  # the low viewers left: the encode stops after its grace period
        after = phase(server.pid, base, codec, viewers, "high", seconds)
        return {"codec": codec, "low_made_by": "publisher" if own_low else "server",
                "no_viewer_cores": idle, "high": high, "low": low, "high_after": after,
                "rendition_cores": low["server_cores"] - high["server_cores"],
                "left_over_cores": after["server_cores"] - high["server_cores"]}
    finally:
        if publisher is not None and publisher.stdin is not None:
            publisher.stdin.close()
            publisher.wait(30)
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--codecs", default="H264,VP8")
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--own-low", default="H264", help="codecs also run with the publisher's own low rendition")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "renditions.json")
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    rows = [run_codec(codec, args.viewers, args.seconds) for codec in args.codecs.split(",")]
    rows += [run_codec(codec, args.viewers, args.seconds, own_low=True) for codec in args.own_low.split(",") if codec]
    lines = [f"| feed (1280×720, 30 fps) | low made by | no viewer | {args.viewers} high | {args.viewers} low "
             "| the rendition's cost | high again, after | low viewers' fps (min) |",
             "|---|---|---|---|---|---|---|---|",
             *(f"| {r['codec']} | {r['low_made_by']} | {r['no_viewer_cores']:.3f} | {r['high']['server_cores']:.3f} | "
               f"{r['low']['server_cores']:.3f} | {r['rendition_cores']:.3f} | "
               f"{r['high_after']['server_cores']:.3f} | {r['low']['fps_min']:.1f} |" for r in rows)]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "table": table}, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
