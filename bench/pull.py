"""CPU of a pulled IP camera: relayed as it comes, and transcoded once.

    python bench/pull.py [--size 1280x720] [--seconds 15] [--cases h264-noaudio,h264,h265,mjpeg]

Each case starts GStreamer's RTSP server (tests/support/rtspcamera.py: a live 30 fps picture,
AAC audio unless "-noaudio") and `orcast serve` with one `[[sources]]` for it, waits until
the feed is live, then reads the server's CPU from /proc over `--seconds` (utime+stime, all
its threads: the demuxer, the transcoders, the event loop). With no viewer on the feed the
figure is the pull itself; one WHEP viewer's share is in bench/relay.py. The server process
idle (no source) is measured first, in the same run, and subtracted. The camera's own CPU is
printed beside it (it encodes the picture, as a real camera's chip would). Results print as a
table and go to bench/results/pull.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay import BENCH_CONFIG, auth_headers, cpu_seconds, free_port, start_orcast, wait_http  # noqa: E402

PATH = "bench/or3/room"
CASES = {  # case → (camera video, camera has audio, what ORcast does)
    "h264-noaudio": ("h264", False, "relayed as is"),
    "h264": ("h264", True, "video relayed as is, AAC → Opus"),
    "h265": ("h265", True, "HEVC → H.264, AAC → Opus"),
    "mjpeg": ("mjpeg", True, "MJPEG → H.264, AAC → Opus"),
}


def source_status(base: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/api/events/bench/sources", headers=auth_headers())
    with urllib.request.urlopen(request, timeout=5) as resp:
        rows: list[dict[str, Any]] = json.load(resp)["sources"]
    return rows[0] if rows else {}


def video_frames_in(base: str) -> int:
    """Video frames the feed received (after any transcode), from the server's metrics."""
    request = urllib.request.Request(f"{base}/metrics", headers=auth_headers())
    with urllib.request.urlopen(request, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("orcast_feed_received_frames_total{") and 'kind="video"' in line and PATH in line:
                return int(float(line.rsplit(" ", 1)[1]))
    return 0


def measure(case: str, size: str, seconds: float, idle: float | None) -> dict[str, Any]:
    video, audio, what = CASES[case]
    cam_port = free_port()
    password = secrets.token_hex(8)
    camera = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests/support/rtspcamera.py"), str(cam_port),
                               "cam", password, size, video] + ([] if audio else ["noaudio"]),
                              stdout=subprocess.PIPE, text=True)
    assert camera.stdout is not None and camera.stdout.readline().strip() == "ready", "the camera did not start"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = BENCH_CONFIG + (f'\n[[sources]]\npath = "{PATH}"\n'
                             f'url = "rtsp://cam:{password}@127.0.0.1:{cam_port}/stream1"\n')
    server = start_orcast(config, port, "orcast-pull-")
    try:
        wait_http(base)
        deadline = time.monotonic() + 60
        while (status := source_status(base)).get("state") != "live":
            assert time.monotonic() < deadline, f"the camera never went live: {status}"
            time.sleep(0.5)
        time.sleep(3.0)  # settle: the first keyframes, the encoder's start
        frames0 = video_frames_in(base)
        cpu0, cam0, t0 = cpu_seconds(server.pid), cpu_seconds(camera.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, cam1, t1 = cpu_seconds(server.pid), cpu_seconds(camera.pid), time.monotonic()
        fps = (video_frames_in(base) - frames0) / (t1 - t0)
        status = source_status(base)
        cores = (cpu1 - cpu0) / (t1 - t0)
        row = {"case": case, "what": what, "size": size, "server_cores": cores,
               "pull_cores": cores - idle if idle is not None else cores,
               "camera_cores": (cam1 - cam0) / (t1 - t0), "transcoding": status.get("transcoding"),
               "state": status.get("state"), "fps": fps}
        print(f"[{case}] {what}: server {cores:.3f} cores, camera {row['camera_cores']:.3f}, {fps:.1f} fps",
              flush=True)
        return row
    finally:
        server.terminate()
        server.wait(30)
        camera.kill()
        camera.wait(10)


def idle_cores(seconds: float) -> float:
    port = free_port()
    server = start_orcast(BENCH_CONFIG, port, "orcast-pull-idle-")
    try:
        wait_http(f"http://127.0.0.1:{port}")
        time.sleep(2.0)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pull.json")
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    idle = idle_cores(args.seconds / 2)
    print(f"server idle: {idle:.3f} cores", flush=True)
    rows = [measure(case, args.size, args.seconds, idle) for case in args.cases.split(",")]
    lines = [f"| camera ({args.size} 30 fps) | ORcast does | server cores (pull only) | fps into the feed "
             "| camera's own cores |", "|---|---|---|---|---|",
             *(f"| {r['case']} | {r['what']} | {r['pull_cores']:.3f} | {r['fps']:.1f} | {r['camera_cores']:.3f} |"
               for r in rows)]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"idle_cores": idle, "rows": rows, "table": table}, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
