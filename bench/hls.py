"""What one LL-HLS feed costs ORcast, from one player to 200 behind a cache.

    python bench/hls.py [--seconds 10] [--players 200] [--direct 20]

`orcast demo` in its own process (its synthetic H.264 720p30 feed, 2 Mbit/s, a keyframe a
second) and Debian's nginx in front with the README's `proxy_cache` set-up. The server's CPU is
read from /proc over `--seconds` in each phase of one run:
1. no HLS (the demo's own feeds: the baseline);
2. one player straight to ORcast (the muxer starts: its cost is the feed's HLS cost);
3. `--direct` players straight to ORcast, no cache (what each player costs without one);
4. `--players` players through nginx's cache.
The players are light clients (tests/support/hlsclient.py: blocking reload for the next part,
then the part, as hls.js does on the wire; no decoding). Each phase prints ORcast's CPU above
the baseline, the parts it sent against the parts it muxed, and how late a part reached a
player after the end of its picture (p50/p95). Last, what an AAC audio track would cost instead
of Opus passed through: one Opus decode + AAC encode, timed here. Results go to
bench/results/hls.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.relay import cpu_seconds  # noqa: E402
from tests.support.demoproc import free_port, start_demo  # noqa: E402
from tests.support.hlsclient import HlsClient, percentile  # noqa: E402
from tests.support.nginxproxy import Nginx  # noqa: E402

FEED = "demo/or1/endoscope"


def hls_figures(metrics: str) -> dict[str, float]:
    out = {}
    for name, key in (("orcast_hls_parts_total", "parts_muxed"), ("orcast_hls_part_serves_max", "most_serves")):
        match = re.search(rf'^{name}{{path="{FEED}",variant="high"}} (\S+)$', metrics, re.M)
        out[key] = float(match.group(1)) if match else 0.0
    match = re.search(rf'^orcast_hls_responses_total{{kind="part",path="{FEED}",variant="high"}} (\S+)$', metrics,
                      re.M)
    out["parts_sent"] = float(match.group(1)) if match else 0.0
    return out


async def phase(name: str, pid: int, seconds: float, urls: list[str], metrics_url: str,
                token: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(metrics_url, headers={"Authorization": f"Bearer {token}"}) as resp:
            before = hls_figures(await resp.text())
        players = [HlsClient(u) for u in urls]
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=20)) as many:
            if players:
                await asyncio.gather(*(p.run(many, time.monotonic() + seconds) for p in players))
            else:
                await asyncio.sleep(seconds)
        cores = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        async with http.get(metrics_url, headers={"Authorization": f"Bearer {token}"}) as resp:
            after = hls_figures(await resp.text())
    late = [s for p in players for s in p.late_s]
    row = {"phase": name, "players": len(players), "server_cores": round(cores, 4),
           "parts_fetched": sum(p.parts for p in players),
           "parts_muxed": after["parts_muxed"] - before["parts_muxed"],
           "parts_sent": after["parts_sent"] - before["parts_sent"], "most_serves_of_a_part": after["most_serves"],
           "late_p50_s": round(percentile(late, 0.5), 3) if late else None,
           "late_p95_s": round(percentile(late, 0.95), 3) if late else None,
           "errors": sum(len(p.errors) for p in players)}
    print(f"  {name:<28} {row['server_cores']:.4f} cores, {row['parts_fetched']} parts to players, "
          f"{row['parts_sent']:.0f} sent by ORcast of {row['parts_muxed']:.0f} muxed, late p50 {row['late_p50_s']} s "
          f"p95 {row['late_p95_s']} s, {row['errors']} errors", flush=True)
    return row


def aac_cost(seconds: float = 20.0) -> float:
    """Cores for one Opus decode + AAC encode of a stereo 48 kHz track (what an AAC HLS audio
    track would cost per feed), from the demo's own tone."""
    import av

    from broadcast.sources.synthetic import encode_clip
    clip = encode_clip("H264", 160, 90, 15, int(seconds), 100_000)
    decoder = av.CodecContext.create("opus", "r")
    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "stereo", "fltp", 128_000
    started = time.process_time()
    for packet in clip.audio:
        for frame in decoder.decode(av.Packet(packet.data)):
            frame.pts = None
            for _ in encoder.encode(frame):
                pass
    return (time.process_time() - started) / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--direct", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orcast-bench-hls-"))
    print("starting orcast demo and nginx …", flush=True)
    demo = start_demo(tmp)
    proxy = Nginx(tmp, free_port(), [demo.port], hls_cache=True)
    try:
        from broadcast.participant import ALL_EVENTS, Role
        from signaling.auth.tokens import TokenIssuer
        organizer, _ = TokenIssuer(demo.secret.encode()).mint(ALL_EVENTS, Role.ORGANIZER, "bench", 3600)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{demo.base}/api/events/demo/hls/or1/endoscope",
                                headers={"Authorization": f"Bearer {demo.token('viewer')}"}) as resp:
                address = (await resp.json())["url"].replace("index.m3u8", "high/index.m3u8")  # the feed as sent
        pid, metrics = demo.process.pid, f"{demo.base}/metrics"
        await asyncio.sleep(3)  # the demo settles
        print(f"ORcast's CPU over {args.seconds:.0f} s per phase (feed {FEED}, 720p30 H.264 + Opus):")
        rows = [await phase("no HLS (baseline)", pid, args.seconds, [], metrics, organizer)]
        rows.append(await phase("1 player, no cache", pid, args.seconds, [demo.base + address], metrics, organizer))
        rows.append(await phase(f"{args.direct} players, no cache", pid, args.seconds,
                                [demo.base + address] * args.direct, metrics, organizer))
        rows.append(await phase(f"{args.players} players via nginx cache", pid, args.seconds,
                                [proxy.base + address] * args.players, metrics, organizer))
    finally:
        proxy.stop()
        demo.stop()
    base = rows[0]["server_cores"]
    one = rows[1]["server_cores"] - base
    direct = rows[2]["server_cores"] - base
    cached = rows[3]["server_cores"] - base
    aac = aac_cost()
    print(f"\nHLS cost above the baseline: 1 player {one:.4f} cores; {args.direct} players without a cache "
          f"{direct:.4f} ({(direct - one) / max(1, args.direct - 1):.4f} per extra player); {args.players} players "
          f"through the cache {cached:.4f} ({cached / one if one > 0 else float('nan'):.2f}× one player)")
    print(f"an AAC audio track instead of Opus passed through would add {aac:.4f} cores per feed (Opus decode + "
          "AAC encode, measured here)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "hls.json").write_text(json.dumps({"phases": rows, "hls_cost_one_player": one,
                                              "hls_cost_direct": direct, "hls_cost_cached": cached,
                                              "aac_transcode_cores": aac}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
