"""The recordings page in real Chromium: the library lists a recording, the browser plays it
from its ticket URL and seeks in it (HTTP Range), with no console error."""

from __future__ import annotations

import asyncio

import pytest

from broadcast.participant import Role
from tests.conftest import RunningServer
from tests.integration.test_recording import PATH, control, rec_server, stop_publisher, wait_state
from tests.support.chromium import PICTURE_SPREAD_JS, chromium, collect_console_errors, screenshot
from tests.support.peers import publish

__all__ = ["rec_server"]
pytestmark = pytest.mark.browser


async def record_for(server: RunningServer, codec: str, seconds: float) -> str:
    """Record a published feed for `seconds`; returns a moderator token for the library."""
    pub = await publish(server.http, server.base, PATH, codec)
    await control(server, "start", theatre="or1")
    await wait_state(server, "recording")
    await asyncio.sleep(seconds)
    await control(server, "stop", theatre="or1")
    await stop_publisher(server, pub)
    return server.token(Role.MODERATOR, name="moderator in the browser")


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_recordings_page_plays_and_seeks(rec_server: RunningServer, codec: str) -> None:
    server = rec_server
    token = await record_for(server, codec, 6)
    async with chromium() as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await page.goto(f"{server.base}/recordings/course#token={token}")
        assert "#token=" not in page.url
        await page.wait_for_selector("#library tr[data-recording]")
        assert await page.locator("#control-panel").is_visible()
        assert await page.locator("#library tr[data-recording] button", has_text="Delete").count() == 0
        await page.click("#library tr[data-recording] button:has-text('Play')")
        await page.wait_for_function(
            "() => { const v = document.getElementById('player'); return v.readyState >= 2 && v.duration > 4; }",
            timeout=20000)
        duration = await page.evaluate("document.getElementById('player').duration")
        await page.evaluate("""() => new Promise((done) => {
            const v = document.getElementById('player');
            v.pause(); v.addEventListener('seeked', () => done(), { once: true }); v.currentTime = 4; })""")
        await page.wait_for_function("document.getElementById('player').readyState >= 2")
        position = await page.evaluate("document.getElementById('player').currentTime")
        assert abs(position - 4) < 0.2, position
        spread = await page.evaluate(PICTURE_SPREAD_JS, "player")
        assert spread > 40, "the seeked picture is blank"
        await page.evaluate("document.getElementById('player').play()")
        await page.wait_for_function("document.getElementById('player').currentTime > 4.5", timeout=10000)
        await screenshot(page, f"recordings-{codec.lower()}")
        print(f"\n{codec}: plays {duration:.1f} s, seeked to {position:.2f} s")
        assert not errors, errors


@pytest.mark.parametrize("rec_server", [{"segment_minutes": 0.05}], indirect=True)
async def test_a_recording_plays_on_across_its_segments(rec_server: RunningServer) -> None:
    server = rec_server
    token = await record_for(server, "VP8", 8)  # 3 s segments: three of them
    async with chromium() as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await page.goto(f"{server.base}/recordings/course#token={token}")
        row = page.locator("#library tr[data-recording]")
        await row.wait_for()
        cells = await row.locator("td").all_text_contents()
        assert cells[0] == "OR 1 · endoscope", cells  # the theatre's name, not the stream path
        assert "Z" not in cells[1] and "T" not in cells[1] and ".000" not in cells[1], cells[1]  # local time
        await page.click("#library tr[data-recording] button:has-text('Play')")
        await page.wait_for_function("document.getElementById('player').dataset.part === '0'")
        await page.evaluate("""() => { const v = document.getElementById('player');
            const nearEnd = () => { v.currentTime = Math.max(0, v.duration - 0.5); };
            v.addEventListener('loadedmetadata', nearEnd, { once: true });
            if (v.readyState >= 1) nearEnd(); }""")
        await page.wait_for_function("document.getElementById('player').dataset.part === '1'", timeout=15000)
        await page.wait_for_function("document.getElementById('player').currentTime > 0.5", timeout=10000)
        assert "part 2 of" in (await page.text_content("#player-title") or "")
        assert not errors, errors
