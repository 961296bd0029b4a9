"""200 LL-HLS players behind Debian's nginx with `proxy_cache` (the README's set-up), in front of
an `orcast demo` process: every player gets every part, and ORcast sends each part about once,
not 200 times."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from broadcast.participant import ALL_EVENTS, Role
from signaling.auth.tokens import TokenIssuer
from tests.support.demoproc import DemoProcess, free_port, start_demo
from tests.support.hlsclient import HlsClient, percentile
from tests.support.logcheck import LogCapture
from tests.support.nginxproxy import Nginx
from tests.support.peers import bearer

PLAYERS = 200
SECONDS = 5.0
FEED = "or1/endoscope"   # the demo's H.264 720p feed


@pytest.fixture
def cached_demo(tmp_path: Path) -> Iterator[tuple[DemoProcess, Nginx]]:
    demo = start_demo(tmp_path)
    proxy = None
    try:
        proxy = Nginx(tmp_path, free_port(), [demo.port], hls_cache=True)
        yield demo, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        demo.stop()


def metric(text: str, name: str, path: str, kind: str | None = None) -> float:
    labels = (f'kind="{kind}",' if kind else "") + f'path="{path}",variant="high"'  # prometheus sorts them
    match = re.search(rf"^{name}(?:_total)?{{{re.escape(labels)}}} (\S+)$", text, re.M)
    assert match, f"{name}{{{labels}}} not in the metrics: " + "\n".join(
        line for line in text.splitlines() if line.startswith("orcast_hls"))
    return float(match.group(1))


async def test_two_hundred_players_behind_nginx_get_every_part_and_orcast_sends_each_about_once(
        cached_demo: tuple[DemoProcess, Nginx]) -> None:
    demo, proxy = cached_demo
    organizer, _ = TokenIssuer(demo.secret.encode()).mint(ALL_EVENTS, Role.ORGANIZER, "tests", 600)
    LogCapture.secrets.add(organizer)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{demo.base}/api/events/demo/hls/{FEED}", headers=bearer(demo.token("viewer"))) as resp:
            assert resp.status == 200, await resp.text()
            address = (await resp.json())["url"]
        players = [HlsClient(proxy.base + address.replace("index.m3u8", "high/index.m3u8")) for _ in range(PLAYERS)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=15)) as many:
            until = time.monotonic() + SECONDS
            await asyncio.gather(*(p.run(many, until) for p in players))
        async with http.get(f"{demo.base}/metrics", headers=bearer(organizer)) as resp:
            metrics = await resp.text()
    path = f"demo/{FEED}"
    made = metric(metrics, "orcast_hls_parts", path)
    parts_sent = metric(metrics, "orcast_hls_responses", path, "part")
    reloads_sent = metric(metrics, "orcast_hls_responses", path, "blocking")
    most = metric(metrics, "orcast_hls_part_serves_max", path)
    fetched = sum(p.parts for p in players)
    late = [s for p in players for s in p.late_s]
    statuses: dict[str, int] = {}
    for p in players:
        for status, n in p.cache.items():
            statuses[status] = statuses.get(status, 0) + n
    print(f"\n{PLAYERS} players, {SECONDS:.0f} s: {fetched} parts fetched through nginx ({statuses}); ORcast muxed "
          f"{made:.0f} parts and sent {parts_sent:.0f} parts (at most {most:.0f} times one part) and "
          f"{reloads_sent:.0f} blocking reloads; a part reached a player {percentile(late, 0.5):.3f} s (p50) / "
          f"{percentile(late, 0.95):.3f} s (p95) after the end of its picture")
    errors = [e for p in players for e in p.errors]
    assert not errors, errors[:5]
    assert min(p.parts for p in players) >= 0.6 * SECONDS / 0.334, "a player fell behind"
    assert most <= 3, f"one part went through the cache {most:.0f} times"
    assert parts_sent <= 2 * made, (parts_sent, made)
    assert reloads_sent <= 3 * made, "blocking reloads are not collapsed by the cache"
