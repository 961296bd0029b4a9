"""Pages that never stay black and never lie, in headless Chromium against real servers: a
console-published feed back on the hall and a viewer after server restarts (ten in a row),
camera talk-back on the console in ten starts out of ten, a player that gets no picture says
so and recovers by itself, the 2 × 2 grid that goes away, fullscreen that fills the screen,
and a kicked page that says so and stays closed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page

from broadcast.participant import Role
from broadcast.webrtc.viewer import ViewerSession
from tests.browser.test_pages import link, open_page
from tests.conftest import RunningServer
from tests.support.chromium import chromium, collect_console_errors, screenshot
from tests.support.demoproc import free_port, start_demo
from tests.support.peers import bearer, publish
from tests.support.qaclient import joined

pytestmark = pytest.mark.browser

# frames decoded so far by a page's connection: the main player, a hall tile, or a talk-back
DECODED_JS = """async (which) => {
  const o = window.orcast;
  const pc = which === 'main' ? o.peer : which === 'tile' ? o.tiles[0]?.peer : o.talkback[0];
  if (!pc || pc.connectionState !== 'connected') return [null, -1];
  pc.__testId = pc.__testId || Math.random();  // which connection: the page replaces it when it reconnects
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') return [pc.__testId, s.framesDecoded || 0];
  }
  return [pc.__testId, 0];
}"""


async def picture_moves(page: Page, which: str, timeout: float) -> float:
    """Seconds until the page's connection `which` decodes new frames (AssertionError after `timeout`)."""
    started = time.monotonic()
    first: tuple[float, int] | None = None  # (connection, frames decoded) when first seen decoding
    while time.monotonic() - started < timeout:
        pc, count = await page.evaluate(DECODED_JS, which)
        if count > 0 and (first is None or first[0] != pc):
            first = (pc, count)  # a connection the page has since replaced counts no more
        elif first is not None and count >= first[1] + 3:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    state = await page.evaluate("""() => JSON.stringify({tiles: (window.orcast.tiles || []).map((t) => ({state: t.state,
        transport: t.transport, pc: t.peer && t.peer.connectionState})), state: window.orcast.state,
        transport: window.orcast.transport, text: document.body.innerText.slice(0, 300)})""")
    raise AssertionError(f"{which}: no moving picture within {timeout} s; the page: {state}")


async def feed_frames(http: aiohttp.ClientSession, base: str, token: str, path: str) -> int:
    try:
        async with http.get(f"{base}/api/events/demo/streams", headers=bearer(token),
                            timeout=aiohttp.ClientTimeout(total=2)) as r:
            if r.status != 200:
                return -1
            streams = (await r.json())["streams"]
    except (aiohttp.ClientError, TimeoutError):
        return -1
    return next((s["frames_in"] for s in streams if s["path"] == path and s["live"]), -1)


async def test_console_feed_is_back_on_the_hall_and_viewer_after_ten_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = start_demo(tmp_path, port=port, name="run0")
    feed = "demo/or2/endoscope"
    fixed = lambda url: url.replace("localhost", "127.0.0.1")  # noqa: E731
    times: list[tuple[float, float]] = []
    try:
        async with chromium() as browser, aiohttp.ClientSession() as http:
            console, console_errors = await open_page(browser, fixed(server.links["technician"]))
            await console.wait_for_selector(".card .start")
            await console.click(".card .start")
            await console.wait_for_function("window.orcast.feeds.every((f) => f.state === 'live')", timeout=20000)
            desk = await joined(http, server.base.replace("localhost", "127.0.0.1"), "demo", server.token("moderator"))
            await desk.ok("layout", mode="single", feeds=["or2/endoscope"])  # kept in SQLite
            await desk.close(http)
            hall, _ = await open_page(browser, fixed(server.links["hall"]))
            viewer, _ = await open_page(browser, fixed(server.links["viewer"]).replace("#", "?feed=or2/endoscope#"))
            await picture_moves(hall, "tile", 20)
            await picture_moves(viewer, "main", 20)
            organizer = server.token("organizer")
            starts: list[tuple[float, float]] = []
            for run in range(1, 11):
                server.kill()
                killed = time.monotonic()
                server = start_demo(tmp_path, secret=server.secret, name=f"run{run}", port=port)
                started = time.monotonic()
                base = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while await feed_frames(http, base, organizer, feed) <= 0:  # the console is back
                    assert time.monotonic() < deadline, f"run {run}: the console did not publish again"
                    await asyncio.sleep(0.05)
                back = time.monotonic()
                starts.append((started - killed, back - started))
                hall_s, viewer_s = await asyncio.gather(picture_moves(hall, "tile", 5.0),
                                                        picture_moves(viewer, "main", 5.0))
                times.append((time.monotonic() - back, max(hall_s, viewer_s)))
            print("\nafter the publisher's return (10 restarts), picture on hall and viewer within: " +
                  ", ".join(f"{t:.1f} s" for _, t in times) + "; server up / console publishing again after: " +
                  ", ".join(f"{a:.1f}/{b:.1f} s" for a, b in starts))
            await screenshot(hall, "recovery-hall")
            # a server that is gone fails requests (Chromium logs each one); nothing else may fail
            unexpected = [e for e in console_errors if "Failed to load resource" not in e and "ERR_" not in e]
            assert unexpected == [], unexpected
    finally:
        server.stop()


async def test_camera_talkback_shows_video_on_the_console_ten_times_out_of_ten(server: RunningServer) -> None:
    async with chromium() as browser:
        console, console_errors = await open_page(browser, link(server, Role.TECHNICIAN, "or1"))
        await console.wait_for_selector(".card .start")
        # what the camera really gives is said before going live (Chromium's fake camera: 20 fps)
        await console.select_option(".card .quality", "1920x1080x4000")
        await console.wait_for_selector(".card .capture >> text=This camera gives", timeout=10000)
        assert await console.text_content(".card .feed-status") == "Not live"
        faculty, faculty_errors = await open_page(browser, link(server, Role.FACULTY, "or1", name="Prof Berlin"))
        await faculty.wait_for_selector("#talkback:not([hidden])")
        await faculty.check("#tb-camera")
        seconds = []
        for start in range(10):
            await faculty.click("#tb-start")
            await faculty.wait_for_selector("#tb-status >> text=Speaking to OR 1", timeout=20000)
            await console.wait_for_function("window.orcast.talkback.length === 1", timeout=20000)
            seconds.append(await picture_moves(console, "talkback", 10.0))
            if start == 0:
                await console.wait_for_selector(".tb-tile >> text=Prof Berlin")
                await screenshot(console, "page-console-talkback")
            await faculty.click("#tb-stop")
            await console.wait_for_function("window.orcast.talkback.length === 0", timeout=15000)
        print("\ncamera talk-back picture on the console after: " + ", ".join(f"{s:.1f} s" for s in seconds))
        assert console_errors == [] and faculty_errors == []


async def test_a_player_without_picture_says_so_and_recovers(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, "course/or1/endoscope", codec="VP8")
    async with chromium() as browser:
        viewer, errors = await open_page(browser, link(server, Role.VIEWER))
        await picture_moves(viewer, "main", 20)
        # the relay stops forwarding to this viewer (a swallowed keyframe, a stuck sender …)
        (session,) = [s for s in server.broadcaster.sessions.values() if isinstance(s, ViewerSession)]
        for consumer in session.consumers:
            consumer.deliver = lambda frame: None  # type: ignore[method-assign]
        await viewer.wait_for_selector("#state:not([hidden]) >> text=/frozen|No picture/", timeout=8000)
        said = await viewer.text_content("#state")
        await picture_moves(viewer, "main", 15)  # a new connection, by itself
        assert session.closed, "the stuck session was not replaced"
        recoveries = await viewer.evaluate("window.orcast.recoveries")
        print(f"\nthe page said {said!r} and recovered ({recoveries} reconnect)")
        assert recoveries >= 1
        assert errors == []
    await pub.pc.close()


async def test_grid_goes_away_and_fullscreen_fills_the_screen(server: RunningServer) -> None:
    pubs = [await publish(server.http, server.base, p, codec="VP8")
            for p in ("course/or1/endoscope", "course/or2/room")]
    async with chromium() as browser:
        viewer, errors = await open_page(browser, link(server, Role.VIEWER))
        await picture_moves(viewer, "main", 20)
        await viewer.click("#view-multi")
        await viewer.wait_for_function("window.orcast.tiles.filter((t) => t.state === 'live').length === 2",
                                       timeout=20000)
        await viewer.wait_for_selector("#quality >> text=fps")  # the badge speaks for the heard tile
        await viewer.click("#view-single")
        assert await viewer.evaluate("getComputedStyle(document.getElementById('multi')).display") == "none"
        assert await viewer.evaluate("document.querySelectorAll('#multi select').length") == 0
        assert await viewer.evaluate("window.orcast.tiles.length") == 0
        await viewer.click("#fullscreen")
        await viewer.wait_for_function("document.fullscreenElement !== null")
        size = await viewer.evaluate("""() => { const r = document.getElementById('video').getBoundingClientRect();
            return [r.width, r.height, innerWidth, innerHeight]; }""")
        assert size[1] >= 0.97 * size[3] and size[0] >= 0.97 * size[2], size
        assert errors == []
    for pub in pubs:
        await pub.pc.close()


async def test_a_kicked_page_says_so_and_stays_closed(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, "course/or1/endoscope", codec="VP8")
    async with chromium() as browser:
        url = link(server, Role.VIEWER, name="Dr Kicked")
        viewer = await browser.new_page()
        errors = collect_console_errors(viewer)
        await viewer.goto(url)
        await picture_moves(viewer, "main", 20)
        (jti,) = {s.participant.token_id for s in server.broadcaster.sessions.values()
                  if s.participant is not None and s.participant.name == "Dr Kicked"}
        async with server.http.delete(f"{server.base}/api/events/course/links/{jti}/connections") as r:
            assert r.status == 200, await r.text()
            kicked = await r.json()
        assert kicked["pages"] == 1 and kicked["sessions"] >= 2, kicked  # the feed and the Q&A
        await viewer.wait_for_selector("text=You were removed from this page", timeout=5000)
        await asyncio.sleep(6)  # it used to come back through the same link after ~12 s
        assert not any(s.participant is not None and s.participant.token_id == jti
                       for s in server.broadcaster.sessions.values()), "the kicked page reconnected"
        assert not any(c.participant.token_id == jti for c in server.access.connections)
        await viewer.goto(url)  # on purpose, the person may come back
        await picture_moves(viewer, "main", 20)
        assert errors == [], errors
    await pub.pc.close()


async def test_viewer_page_whose_worker_is_killed_reconnects_by_itself(tmp_path: Path) -> None:
    """A worker process holding the page's viewer session dies (SIGKILL): the page comes back by
    itself, on another process or on the restarted worker, with no console error."""
    server = start_demo(tmp_path, config="[server]\nworkers = 2\n")
    organizer = bearer(server.token("organizer"))
    try:
        async with chromium() as browser, aiohttp.ClientSession(headers=organizer) as http:
            async def holders() -> list[tuple[str, int]]:
                async with http.get(f"{server.base}/api/events/demo/sessions") as r:
                    return [(s["id"], s["worker"]) for s in (await r.json())["sessions"] if s["kind"] == "viewer"]

            async def worker_pid() -> int:
                async with http.get(f"{server.base}/readyz") as r:
                    return int(next(w["pid"] for w in (await r.json())["workers"] if w["index"] == 1 and w["ready"]))

            deadline = time.monotonic() + 30
            while True:  # the worker starts in the background; until then the front takes viewers
                try:
                    pid = await worker_pid()
                    break
                except StopIteration:
                    assert time.monotonic() < deadline, "the worker did not start"
                    await asyncio.sleep(0.2)
            page, errors = await open_page(browser, server.links["viewer"].replace("localhost", "127.0.0.1"))
            await picture_moves(page, "main", 20)
            before = await holders()
            assert [w for _, w in before] == [1], before  # the front holds the feed: the worker takes the viewer
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await page.wait_for_function("window.orcast.peer && window.orcast.peer.connectionState !== 'connected'",
                                         timeout=20000)
            back = await picture_moves(page, "main", 30)
            after = await holders()
            print(f"picture back {time.monotonic() - killed_at:.1f} s after the worker was killed "
                  f"(moving {back:.1f} s after the page noticed); now on worker {after}")
            assert len(after) == 1 and after[0][0] != before[0][0]
            assert not errors, errors
    finally:
        log = server.stop()
    assert "worker 1 (pid" in log and "restarting it" in log
