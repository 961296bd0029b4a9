"""Recording cost: CPU per recorded 720p30 feed, and the relay's CPU with and without recordings.

    python bench/recording.py [--feeds 4] [--viewers 10] [--seconds 10]

One ORcast server process; `feeds` publisher processes each send a pre-encoded 720p30
~2 Mbps H.264 clip over WHIP (bench/relay.py's publisher). Server CPU comes from /proc, in
four windows of the same run:

  A  publishers only                      (the baseline)
  B  publishers + every feed recorded     → per recording = (B - A) / feeds
  C  B + `viewers` viewers of feed 1      → relay with recordings
  D  A + the same viewers                 → relay without recordings

Goal: ≤ 0.02 core per recorded feed, and C - B ≈ D - A (recording does not slow the relay).
Results print as a table and go to bench/results/recording.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from relay import (
    BENCH_CONFIG,
    ROOT,
    auth_headers,
    cpu_seconds,
    free_port,
    measure,
    spawn,
    start_orcast,
    wait_http,
    wait_line,
)

RECORDING_CONFIG = BENCH_CONFIG + "\n[recording]\nmin_free_gb = 0\n"


def api(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={**auth_headers(), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def window(pid: int, seconds: float) -> float:
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))  # shared with the server and clients
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_orcast(RECORDING_CONFIG, port, "orcast-bench-rec-")
    publishers: list[subprocess.Popen[str]] = []
    try:
        wait_http(base)
        print(f"starting {args.feeds} publishers (each encodes its clip once) …", flush=True)
        for i in range(args.feeds):
            publishers.append(spawn(str(Path(__file__).with_name("relay.py")), "publisher", base,
                                    "bench/or1/endoscope" if i == 0 else f"bench/or{i + 1}/endoscope"))
        for p in publishers:
            assert wait_line(p, 180) == "ready"
        time.sleep(3.0)
        idle = window(server.pid, args.seconds)
        print(f"A publishers only: {idle:.3f} cores", flush=True)
        api(base, "POST", "/api/events/bench/recording", {"action": "start"})
        time.sleep(3.0)
        recording = window(server.pid, args.seconds)
        per_recording = (recording - idle) / args.feeds
        print(f"B + {args.feeds} recordings: {recording:.3f} cores ({per_recording:.4f} per recording)", flush=True)
        with_rec = measure([server.pid], base, args.viewers, args.seconds)
        print(f"C + {args.viewers} viewers, recording: {with_rec['server_cores']:.3f} cores, "
              f"fps {with_rec['fps_mean']:.1f}, gaps {with_rec['gaps_total']}", flush=True)
        state = api(base, "GET", "/api/events/bench/recording")
        api(base, "POST", "/api/events/bench/recording", {"action": "stop"})
        time.sleep(2.0)
        without_rec = measure([server.pid], base, args.viewers, args.seconds)
        print(f"D + {args.viewers} viewers, not recording: {without_rec['server_cores']:.3f} cores, "
              f"fps {without_rec['fps_mean']:.1f}, gaps {without_rec['gaps_total']}", flush=True)
        recs = api(base, "GET", "/api/recordings?event=bench")["recordings"]
    finally:
        for p in publishers:
            if p.stdin:
                p.stdin.close()
            p.wait(30)
        server.terminate()
        server.wait(30)
    files_fps = [sum(s["video_frames"] for s in r["segments"]) / max(r["duration_s"], 1e-9) for r in recs]
    relay_rec = (with_rec["server_cores"] - recording) / args.viewers
    relay_plain = (without_rec["server_cores"] - idle) / args.viewers
    result = {
        "feeds": args.feeds, "viewers": args.viewers, "seconds": args.seconds,
        "publishers_only_cores": idle, "recording_cores": recording,
        "per_recording_cores": per_recording,
        "relay_per_viewer_cores_recording": relay_rec, "relay_per_viewer_cores_not_recording": relay_plain,
        "relay_ratio_recording_vs_not": relay_rec / relay_plain if relay_plain > 0 else None,
        "viewer_fps_recording": with_rec["fps_mean"], "viewer_fps_not_recording": without_rec["fps_mean"],
        "viewer_gaps_recording": with_rec["gaps_total"], "viewer_gaps_not_recording": without_rec["gaps_total"],
        "recorded_fps": files_fps, "recording_states": [f["state"] for f in state["feeds"]],
        "frames_dropped_by_recorders": sum(f["frames_dropped"] for f in state["feeds"]),
    }
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| server, {args.feeds} publishers only | {idle:.3f} cores |")
    print(f"| server, + {args.feeds} recordings | {recording:.3f} cores |")
    print(f"| **per recorded 720p30 feed** (goal ≤ 0.02) | **{per_recording:.4f} cores** |")
    print(f"| relay per viewer, {args.feeds} recordings running | {relay_rec:.4f} cores |")
    print(f"| relay per viewer, no recording | {relay_plain:.4f} cores |")
    ratio = result["relay_ratio_recording_vs_not"]
    print(f"| relay ratio, recording / not | {ratio:.2f} |" if ratio else "| relay ratio | n/a |")
    print(f"| viewers' fps (gaps), recording | {with_rec['fps_mean']:.1f} ({with_rec['gaps_total']}) |")
    print(f"| viewers' fps (gaps), not recording | {without_rec['fps_mean']:.1f} ({without_rec['gaps_total']}) |")
    print(f"| frames in the files per second | {', '.join(f'{f:.1f}' for f in files_fps)} |")
    print(f"| frames the recorders dropped | {result['frames_dropped_by_recorders']} |")
    out = ROOT / "bench" / "results" / "recording.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
