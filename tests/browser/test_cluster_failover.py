"""A viewer page behind Debian's nginx, in front of two edge nodes of a cluster (the feed is
published on a third, the origin): kill -9 the edge node that holds the page's session, and the
page is back on the other one by itself."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from broadcast.participant import Role
from signaling.auth.links import role_link
from tests.support.chromium import chromium, collect_console_errors, screenshot
from tests.support.clusternodes import Cluster, start_redis
from tests.support.demoproc import free_port
from tests.support.nginxproxy import Nginx
from tests.support.peers import bearer, publish

pytestmark = pytest.mark.browser
PATH = "course/or1/endoscope"

# the page's main player: its session URL and how many frames its connection decoded
PLAYING_JS = """async () => {
  const o = window.orcast;
  const pc = o.peer;
  if (!pc || pc.connectionState !== 'connected') return [o.session || null, -1];
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') return [o.session || null, s.framesDecoded || 0];
  }
  return [o.session || null, 0];
}"""


@pytest.fixture
def edge_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    redis = start_redis()
    cluster = Cluster(tmp_path, redis)
    proxy = None
    try:
        cluster.start("node-a", "node-b", "node-c")
        proxy = Nginx(tmp_path, free_port(), [cluster.nodes["node-b"].port, cluster.nodes["node-c"].port])
        yield cluster, proxy.base
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.stop()
        redis.stop()


async def test_a_viewer_page_recovers_on_another_node_when_its_node_dies(
        edge_cluster: tuple[Cluster, str]) -> None:
    cluster, front = edge_cluster
    a, b, c = (cluster.nodes[n] for n in ("node-a", "node-b", "node-c"))
    async with aiohttp.ClientSession() as http:
        technician, _ = await cluster.mint(http, a, Role.TECHNICIAN, theatre="or1")
        publisher = await publish(http, a.base, PATH, token=technician)
        organizer = cluster.organizer()
        try:
            for edge in (b, c):  # both edges know where the feed is
                deadline = time.monotonic() + 10
                while True:
                    async with http.get(f"{edge.base}/api/events/course/streams", headers=bearer(organizer)) as r:
                        if any(s["path"] == PATH and s["live"] for s in (await r.json())["streams"]):
                            break
                    assert time.monotonic() < deadline, f"{edge.name} never saw the feed"
                    await asyncio.sleep(0.2)
            viewer, _ = await cluster.mint(http, b, Role.VIEWER, name="Dr Abroad")
            async with chromium() as browser:
                page = await browser.new_page()
                errors = collect_console_errors(page)
                url = role_link(front, Role.VIEWER, "course", None, viewer)
                await page.goto(url.replace("#", "?feed=or1/endoscope#"))
                deadline = time.monotonic() + 30
                while True:
                    session, frames = await page.evaluate(PLAYING_JS)
                    if session and frames > 10:
                        break
                    assert time.monotonic() < deadline, "the page never played through nginx"
                    await asyncio.sleep(0.2)
                holder = cluster.nodes[session.rsplit("~", 1)[1]]
                survivor = c if holder is b else b
                holder.kill()
                killed_at = time.monotonic()
                while True:
                    now_session, frames = await page.evaluate(PLAYING_JS)
                    if now_session and now_session != session and frames >= 5:
                        break
                    assert time.monotonic() - killed_at < 30, "the page did not come back on the other node"
                    if os.environ.get("DEBUG_FAILOVER"):
                        print(round(time.monotonic() - killed_at, 1), now_session, frames,
                              await page.evaluate("window.orcast.recoveries"))
                    await asyncio.sleep(0.1)
                recovered = time.monotonic() - killed_at
                assert now_session.endswith(f"~{survivor.name}"), now_session
                print(f"\nkill -9 of {holder.name}: the page plays again on {survivor.name} after {recovered:.1f} s")
                await screenshot(page, "watch-after-node-failover")
                # the node going away shows as failed requests in the console (nginx answers 502 until
                # it marks the node down); nothing else may
                unexpected = [e for e in errors if "Failed to load resource" not in e and "ERR_" not in e
                              and "502" not in e]
                assert unexpected == [], unexpected
        finally:
            await publisher.pc.close()
