"""The viewer page over LL-HLS in Chromium (hls.js from /static/vendor/): when asked in the
quality menu, and by itself when WebRTC cannot connect (a browser whose UDP is blocked)."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from playwright.async_api import Page

from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import SyntheticFeed, encode_clip
from signaling.auth.links import role_link
from signaling.keys import ACCESS
from tests.conftest import RunningServer, organizer_session, start_server
from tests.support.chromium import PICTURE_SPREAD_JS, chromium, collect_console_errors, screenshot
from tests.support.linkwire import SERVER_ADDR, Wire, require_namespaces

pytestmark = pytest.mark.browser
PATH = "course/or1/endoscope"
NAMESPACE = f"orcu{os.getpid() % 100000}"


@asynccontextmanager
async def feed_of(server: RunningServer) -> AsyncIterator[None]:
    """An H.264 720p feed from an in-process source, a keyframe a second (as HLS encoders send)."""
    clip = await asyncio.to_thread(encode_clip, "H264", 1280, 720, 30, 2, 2_000_000)
    feed = SyntheticFeed(clip, "synthetic")
    stream = server.broadcaster.attach_source(StreamPath.parse(PATH), (feed, "H264"), feed,
                                              h264_profile=clip.h264_profile)
    feed.start(stream.video, stream.audio)
    try:
        yield
    finally:
        await feed.stop()


@pytest.fixture
async def live(server: RunningServer) -> AsyncIterator[None]:
    async with feed_of(server):
        yield


def viewer_link(server: RunningServer, query: str = "") -> str:
    link = role_link(server.base, Role.VIEWER, "course", None, server.token(Role.VIEWER, name="Dr HLS"))
    page, _, fragment = link.partition("#")
    return f"{page}?feed=or1/endoscope{query}#{fragment}"


async def plays_hls(page: Page) -> float:
    """When (time.monotonic()) the page played HLS; then checks the picture for 2 s."""
    try:
        await page.wait_for_function(
            "window.orcast && window.orcast.transport === 'hls' && window.orcast.state === 'live'", timeout=30_000)
    except Exception:
        seen = await page.evaluate("(o => o && [o.transport, o.state, o.fellBack, o.peer && o.peer.connectionState,"
                                   " document.getElementById('state').textContent])(window.orcast)")
        raise AssertionError(f"the page does not play HLS: {seen}") from None
    playing = time.monotonic()
    before = await page.evaluate("document.getElementById('video').currentTime")
    await asyncio.sleep(2)
    after = await page.evaluate("document.getElementById('video').currentTime")
    assert after - before > 1.0, (before, after)
    assert await page.evaluate(PICTURE_SPREAD_JS, "video") > 20, "the HLS picture is one flat colour"
    size = await page.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('video'))")
    assert size == [1280, 720], size
    return playing


async def test_the_viewer_page_plays_hls_when_asked(server: RunningServer, live: None) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        opened = time.monotonic()
        await page.goto(viewer_link(server, "&quality=hls"))
        playing = await plays_hls(page)
        print(f"\nHLS asked for: playing {playing - opened:.1f} s after the page was opened")
        assert await page.evaluate("window.orcast.peer") is None, "HLS asked for, yet a WebRTC connection"
        # glass to glass, less the camera and encoder: from the picture's arrival at the server
        # (PROGRAM-DATE-TIME) to its showing
        behind = []
        for _ in range(10):
            value = await page.evaluate("window.orcast.hlsBehind")
            if value is not None:
                behind.append(value)
            await asyncio.sleep(0.5)
        assert behind, "hls.js gave no playing date"
        print(f"\nHLS in Chromium: {statistics.median(behind):.2f} s behind the server's arrival (p50 of "
              f"{len(behind)} samples, {min(behind):.2f}-{max(behind):.2f} s)")
        await page.wait_for_selector("#quality >> text=HLS")
        await screenshot(page, "watch-hls")
        assert errors == [], errors


@pytest.fixture
def no_udp_wire() -> Iterator[subprocess.Popen[str]]:
    """The viewer's host behind a firewall that lets no UDP through (tests/support/linkwire.py)."""
    require_namespaces("a firewalled link")
    with Wire(NAMESPACE, "--down-kbps", "0", "--delay-ms", "5", "--loss", "0", "--block-udp") as link:
        yield link.process


@pytest.fixture
async def behind_firewall(no_udp_wire: subprocess.Popen[str]) -> AsyncIterator[tuple[RunningServer, str]]:
    """A server with the live feed, listening where the firewalled namespace reaches it too."""
    runner, base, app = await start_server()
    site = web.TCPSite(runner, SERVER_ADDR, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with organizer_session(app) as http:
        server = RunningServer(base, app, http)
        async with feed_of(server):
            yield server, f"http://{SERVER_ADDR}:{port}"
    await runner.cleanup()
    shutil.rmtree(app[ACCESS].config.data_dir, ignore_errors=True)


async def test_a_browser_whose_network_blocks_udp_falls_back_to_hls_and_says_so(
        behind_firewall: tuple[RunningServer, str]) -> None:
    server, front = behind_firewall
    async with chromium(NAMESPACE) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        opened = time.monotonic()
        await page.goto(viewer_link(server).replace(server.base, front))
        playing = await plays_hls(page)
        print(f"\nno UDP: the page played over HLS {playing - opened:.1f} s after it was opened")
        assert await page.evaluate("window.orcast.fellBack") is True
        await page.wait_for_selector("#rendition-note >> text=WebRTC could not connect")
        await screenshot(page, "watch-hls-fallback")
        # plain http on an address that is not localhost: Chromium ignores the COOP header (and says so)
        assert [e for e in errors if "Cross-Origin-Opener-Policy" not in e] == [], errors
