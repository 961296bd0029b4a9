"""`orcast cluster status`: the cluster as Redis holds it — nodes, their load, which node holds
each feed, and which node pulls which feed from another."""

from __future__ import annotations

import asyncio
import json
import time

from redis.exceptions import RedisError

from signaling.cluster.directory import NodeEntry
from signaling.cluster.rediscluster import read_directory


def render(nodes: list[NodeEntry], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"nodes ({len(nodes)}):"]
    for n in nodes:
        r = n.report
        lines.append(f"  {n.node_id:<16} {n.url:<36} seen {max(0.0, now - n.seen_at):4.1f} s ago  "
                     f"sessions {r.sessions:<5} CPU {r.cpu_cores:5.2f} cores  "
                     f"out {r.bitrate_out_bps / 1e6:6.1f} Mbit/s")
    feeds = sorted(((str(f.get("path")), n.node_id, f) for n in nodes for f in n.report.feeds),
                   key=lambda row: row[:2])
    lines.append(f"feeds ({len(feeds)}):")
    for path, node, info in feeds:
        state = "stalled" if info.get("stalled") else "live"
        lines.append(f"  {path:<40} on {node:<16} {state}, {info.get('viewers', 0)} viewer(s) there, "
                     f"{info.get('video_codec') or 'no video'}")
    pulls = sorted((p, n.node_id) for n in nodes for p in n.report.pulls)
    lines.append(f"pulls between nodes ({len(pulls)}):")
    lines.extend(f"  {node:<16} pulls {path}" for path, node in pulls)
    return "\n".join(lines)


def status_command(redis_url: str, shown_url: str, as_json: bool) -> int:
    try:
        nodes = asyncio.run(read_directory(redis_url))
    except (RedisError, OSError) as exc:
        print(f"orcast: cannot read the cluster from Redis at {shown_url}: {exc}; is redis-server running "
              "and [cluster] redis right?")
        return 1
    if as_json:
        print(json.dumps({"nodes": [n.to_json() for n in nodes]}, indent=2))
    else:
        print(render(nodes) if nodes else f"no node is registered in Redis at {shown_url} (none running, "
                                          "or they use another Redis database)")
    return 0
