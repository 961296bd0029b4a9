"""What an origin node pays for each edge node that pulls a feed from it, against a viewer of
its own.

    python bench/cluster.py [--seconds 10] [--viewers 3] [--edges 3]

Debian's redis-server and `orcast serve` processes on loopback, all with one `[cluster]`
(`workers = 1` each, so a node's CPU is one process's): the origin, where bench/relay.py's
publisher sends a pre-encoded 720p30 clip over WHIP, and `--edges` edge nodes. CPU is read from
/proc over `--seconds` in three phases of one run:
1. the publisher alone (the origin's baseline);
2. `--viewers` light viewers (bench/relay.py's) on the origin itself;
3. those gone, one light viewer on each edge node: each edge pulls the feed from the origin once
   (a WHEP pull, a viewer session to the origin) and relays it to its viewer.
Origin cost per edge = (phase 3 − phase 1) / edges; per local viewer = (phase 2 − phase 1) /
viewers; their ratio is what a pull costs the origin against a viewer. Each edge's own CPU
(receiving the pull, relaying to its one viewer) is printed too. Results print as a table and
go to bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
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
    wait_http,
    wait_line,
)

RELAY = str(ROOT / "bench" / "relay.py")


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is missing: apt install redis-server (./scripts/test.sh installs it)")
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process, port


def start_node(name: str, redis_port: int) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix=f"orcast-cluster-{name}-"))
    (data_dir / "node.toml").write_text(BENCH_CONFIG + f"""
[server]
workers = 1
[cluster]
redis = "redis://127.0.0.1:{redis_port}/0"
node_url = "http://127.0.0.1:{port}"
node_id = "{name}"
""")
    process = subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve", "--port", str(port), "--log-level",
                                "warning", "--config", str(data_dir / "node.toml"), "--data-dir", str(data_dir)],
                               cwd=ROOT, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_http(base)
    return process, base


def sample(pids: list[int], seconds: float) -> list[float]:
    before, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return [(cpu_seconds(p) - b) / elapsed for p, b in zip(pids, before, strict=True)]


def watchers(base: str, count: int) -> subprocess.Popen[str]:
    proc = spawn(RELAY, "viewers", base, str(count), "H264", "")
    assert wait_line(proc, 120) == "ready"
    time.sleep(2.0)  # joined, first pictures decoded, light from here on
    assert proc.stdin is not None
    proc.stdin.write("start\n")
    proc.stdin.flush()
    return proc


def report(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    assert proc.stdin is not None
    proc.stdin.write("report\n")
    proc.stdin.flush()
    rows: list[dict[str, Any]] = json.loads(wait_line(proc, 60))
    proc.stdin.close()
    proc.wait(30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    redis, redis_port = start_redis()
    nodes: list[subprocess.Popen[str]] = []
    publisher = None
    try:
        origin, origin_base = start_node("origin", redis_port)
        nodes.append(origin)
        edges = [start_node(f"edge-{i + 1}", redis_port) for i in range(args.edges)]
        nodes += [p for p, _ in edges]
        publisher = spawn(RELAY, "publisher", origin_base, PATH, "H264")
        assert wait_line(publisher, 120) == "ready"
        deadline = time.monotonic() + 20
        while not server_frames_in(origin_base):
            assert time.monotonic() < deadline, "the publisher's frames never reached the origin"
            time.sleep(0.3)
        time.sleep(3.0)  # every edge's directory has the feed
        baseline = sample([origin.pid], args.seconds)[0]
        print(f"origin, publisher only: {baseline:.3f} cores", flush=True)

        local = watchers(origin_base, args.viewers)
        with_local = sample([origin.pid], args.seconds)[0]
        local_rows = report(local)
        per_viewer = (with_local - baseline) / args.viewers
        print(f"origin + {args.viewers} local viewers: {with_local:.3f} cores ({per_viewer:.4f} per viewer), "
              f"fps (min) {min(r['fps'] for r in local_rows):.1f}", flush=True)
        time.sleep(2.0)

        remote = [watchers(base, 1) for _, base in edges]
        cores = sample([origin.pid, *(p.pid for p, _ in edges)], args.seconds)
        remote_rows = [row for proc in remote for row in report(proc)]
        per_edge = (cores[0] - baseline) / args.edges
        edge_cores = cores[1:]
        print(f"origin + {args.edges} edge nodes (1 viewer each): {cores[0]:.3f} cores ({per_edge:.4f} per edge); "
              f"each edge {', '.join(f'{c:.3f}' for c in edge_cores)}; edge viewers' fps (min) "
              f"{min(r['fps'] for r in remote_rows):.1f}", flush=True)
        ratio = per_edge / per_viewer if per_viewer > 0 else float("nan")
        table = "\n".join([
            "| origin (720p30 H.264 feed) | origin cores | origin cost each | × a local viewer | viewers' fps (min) |",
            "|---|---|---|---|---|",
            f"| publisher only | {baseline:.3f} | - | - | - |",
            f"| + {args.viewers} local viewers | {with_local:.3f} | {per_viewer:.4f} per viewer | 1.0 | "
            f"{min(r['fps'] for r in local_rows):.1f} |",
            f"| + {args.edges} edge nodes, 1 viewer each | {cores[0]:.3f} | {per_edge:.4f} per edge | {ratio:.2f} | "
            f"{min(r['fps'] for r in remote_rows):.1f} |",
            f"| each edge node (the pull in, 1 viewer out) | {sum(edge_cores) / len(edge_cores):.3f} | | | |",
        ])
        print(table)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"baseline_cores": baseline, "with_local_cores": with_local,
                                        "per_viewer_cores": per_viewer, "with_edges_cores": cores[0],
                                        "per_edge_cores": per_edge, "edge_cores": edge_cores, "ratio": ratio,
                                        "table": table}, indent=2))
        print(f"results written to {args.out}")
    finally:
        if publisher is not None and publisher.stdin is not None:
            publisher.stdin.close()
            publisher.wait(30)
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(30)
        redis.terminate()
        redis.wait(10)


if __name__ == "__main__":
    main()
