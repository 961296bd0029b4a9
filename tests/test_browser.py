"""publish.html and watch.html in real headless Chromium with a fake camera."""

from __future__ import annotations

import asyncio

import pytest

from .browser import STATS_JS, chromium, collect_console_errors, screenshot
from .conftest import RunningServer

pytestmark = pytest.mark.browser
PATH = "course/or2/endoscope"


async def test_browser_publishes_and_another_browser_plays(server: RunningServer) -> None:
    async with chromium() as browser:
        publisher = await browser.new_page()
        pub_errors = collect_console_errors(publisher)
        await publisher.goto(f"{server.base}/publish?path={PATH}")
        await publisher.click("#start")
        await publisher.wait_for_function(
            "document.getElementById('status').textContent.startsWith('Live')", timeout=20000)
        info = server.broadcaster.stream_infos()
        assert [i.path for i in info] == [PATH] and info[0].video_codec in ("H264", "VP8")

        viewer = await browser.new_page()
        view_errors = collect_console_errors(viewer)
        await viewer.goto(f"{server.base}/watch?path={PATH}")
        await viewer.wait_for_function(
            "window.orcast && window.orcast.peer && window.orcast.peer.connectionState === 'connected'",
            timeout=20000)
        first = await viewer.evaluate(STATS_JS, "inbound-rtp")
        await asyncio.sleep(2)
        later = await viewer.evaluate(STATS_JS, "inbound-rtp")
        assert later["framesDecoded"] > (first.get("framesDecoded") or 0) + 20, (first, later)
        assert later["frameWidth"] > 0
        # a sample of the picture is not uniform (a black or frozen frame would be)
        spread = await viewer.evaluate("""() => {
            const v = document.getElementById('video');
            const c = document.createElement('canvas'); c.width = 64; c.height = 48;
            const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 48);
            const d = g.getImageData(0, 0, 64, 48).data; let lo = 255, hi = 0;
            for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
            return hi - lo; }""")
        assert spread > 40
        await screenshot(publisher, "publish")
        await screenshot(viewer, "watch")
        assert server.broadcaster.stream_infos()[0].viewers == 1

        index = await browser.new_page()
        index_errors = collect_console_errors(index)
        await index.goto(server.base + "/")
        await index.wait_for_selector(f"text={PATH}")
        await screenshot(index, "index")
        assert pub_errors == [] and view_errors == [] and index_errors == []
