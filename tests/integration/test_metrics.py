"""/metrics in the Prometheus text format: values move as publishers, viewers, recordings and
questions come and go; who may scrape."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.demoproc import free_port, start_demo
from tests.support.peers import bearer, publish, watch
from tests.support.qaclient import joined

TOKEN = "metrics-token-0123456789abcdef"
PATH = "course/or1/endoscope"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(base: str, headers: dict[str, str] | None = None) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics", headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_publishers_viewers_recordings_and_questions() -> None:
    runner, base, app = await start_server(make_config(metrics_token=TOKEN, min_free_gb=0.0))
    auth = bearer(TOKEN)
    try:
        async with organizer_session(app) as http:
            before = await scrape(base, auth)
            assert value(before, "orcast_feeds_live", event="course") == 0
            publisher = await publish(http, base, PATH, codec="VP8")
            first = await watch(http, base, PATH)
            second = await watch(http, base, PATH)
            await first.wait_frames(10)
            await second.wait_frames(10)
            await asyncio.sleep(2.2)  # two rounds of the once-a-second rate sampler
            during = await scrape(base, auth)
            assert value(during, "orcast_feeds_live", event="course") == 1
            assert value(during, "orcast_feed_viewers", path=PATH) == 2
            assert value(during, "orcast_feed_bitrate_in_bps", path=PATH) > 0
            assert value(during, "orcast_feed_sent_bytes_total", path=PATH, kind="video") > 0
            assert value(during, "orcast_feed_received_frames_total", path=PATH, kind="audio") > 0
            assert value(during, "orcast_viewer_join_seconds_count") == 2
            assert value(during, "orcast_peer_connections", kind="viewer", state="connected") == 2
            assert value(during, "orcast_peer_connections", kind="publisher", state="connected") == 1

            async with http.post(f"{base}/api/events/course/recording",
                                 json={"action": "start", "theatre": "or1", "feed": "endoscope"}) as r:
                assert r.status == 200, await r.text()
            qa = await joined(http, base, "course", None)
            await qa.ok("ask", text="Is the monitoring green?")
            await asyncio.sleep(2.5)
            later = await scrape(base, auth)
            assert value(later, "orcast_recording_state", path=PATH, state="recording") == 1
            assert value(later, "orcast_recording_bytes", path=PATH) > 0
            assert value(later, "orcast_qa_questions", event="course", state="pending") == 1
            assert value(later, "orcast_qa_clients", event="course") == 1
            assert (value(later, "orcast_feed_received_bytes_total", path=PATH, kind="video")
                    > value(during, "orcast_feed_received_bytes_total", path=PATH, kind="video"))

            await second.close(http)
            await qa.close(http)
            await asyncio.sleep(0.5)
            after = await scrape(base, auth)
            assert value(after, "orcast_feed_viewers", path=PATH) == 1
            await first.close(http)
            await publisher.pc.close()
            await asyncio.sleep(1.0)
            gone = await scrape(base, auth)
            assert value(gone, "orcast_feeds_live", event="course") == 0
            assert value(gone, "orcast_peer_connections", kind="viewer", state="connected") == 0

        async with aiohttp.ClientSession() as anonymous:
            for headers in ({}, bearer("wrong-token-0123456789"), bearer(RunningServer(base, app, anonymous).token())):
                async with anonymous.get(f"{base}/metrics", headers=headers) as r:
                    assert r.status == 401, headers
    finally:
        await runner.cleanup()


async def test_without_a_metrics_token_only_a_server_wide_organizer_may_scrape(server: RunningServer) -> None:
    await scrape(server.base, {"Authorization": server.http.headers["Authorization"]})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base}/metrics") as r:
            assert r.status == 401
        for role in ("viewer", "moderator", "organizer"):  # an organizer of one event is not enough
            async with http.get(f"{server.base}/metrics", headers=bearer(server.token(role))) as r:
                assert r.status == 403, role


async def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    port = free_port()
    demo = start_demo(tmp_path, f"[metrics]\nport = {port}\n")
    try:
        samples = await scrape(f"http://127.0.0.1:{port}")  # the monitoring listener needs no token
        assert value(samples, "orcast_feeds_live", event="demo") == 2
        async with aiohttp.ClientSession() as http, http.get(f"{demo.base}/metrics",
                                                             headers=bearer(demo.token("organizer"))) as r:
            assert r.status == 404 and str(port) in await r.text()
        assert f"metrics on http://127.0.0.1:{port}/metrics" in demo.startup_text
    finally:
        demo.stop()
