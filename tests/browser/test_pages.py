"""Every role's page in headless Debian Chromium with fake cameras and microphones, against a
real server: the console publishes two cameras, the viewer decodes and switches, the Q&A goes
from a viewer's page through the moderator desk to the hall and the OR screen, faculty talk-back
reaches the console, and viewer and hall come back by themselves after a server restart.
Screenshots of every page go to test-artifacts/."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Page

from broadcast.participant import ALL_EVENTS, Role
from signaling.auth.links import role_link
from tests.conftest import RunningServer
from tests.support.chromium import PICTURE_SPREAD_JS, chromium, collect_console_errors, hooked_context, screenshot
from tests.support.demoproc import free_port, start_demo

pytestmark = pytest.mark.browser

# the page's main player is connected and has decoded more than 10 frames
DECODING_JS = """async () => {
  const o = window.orcast;
  if (!o.peer || o.peer.connectionState !== 'connected') return false;
  for (const s of (await o.peer.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') return s.framesDecoded > 10;
  }
  return false;
}"""
INBOUND_JS = """async ([kind, which]) => {
  const o = window.orcast;
  const pc = which === 'talkback' ? o.talkback[0] : o.peer;
  if (!pc) return null;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === kind) return s;
  }
  return null;
}"""


def link(server: RunningServer, role: Role, theatre: str | None = None, name: str | None = None) -> str:
    event = ALL_EVENTS if role is Role.ORGANIZER else "course"
    token = server.token(role, event=event, theatre=theatre, name=name or f"{role} in the browser")
    return role_link(server.base, role, event, theatre, token)


async def open_page(browser: BrowserContext, url: str) -> tuple[Page, list[str]]:
    page = await browser.new_page()
    errors = collect_console_errors(page)
    await page.goto(url)
    assert "#token=" not in page.url, "the page keeps the token out of the address bar"
    return page, errors


async def decoded(page: Page) -> int:
    stats = await page.evaluate(INBOUND_JS, ["video", "main"])
    return int(stats["framesDecoded"]) if stats else 0


async def go_live_with_two_cameras(console: Page) -> None:
    await console.wait_for_selector(".card .start")
    await console.click("#add")
    await console.wait_for_function("document.querySelectorAll('.card').length === 2")
    for button in await console.query_selector_all(".card .start"):
        await button.click()
    await console.wait_for_function(
        "window.orcast.feeds.length === 2 && window.orcast.feeds.every((f) => f.state === 'live')", timeout=20000)


async def test_console_sends_two_cameras_and_the_viewer_switches_without_reload(server: RunningServer) -> None:
    async with chromium() as browser:
        console, console_errors = await open_page(browser, link(server, Role.TECHNICIAN, "or2"))
        await go_live_with_two_cameras(console)
        paths = sorted(i.path for i in server.broadcaster.stream_infos())
        assert paths == ["course/or2/endoscope", "course/or2/room"]

        viewer, viewer_errors = await open_page(browser, link(server, Role.VIEWER))
        await viewer.wait_for_function("window.orcast.peer && window.orcast.peer.connectionState === 'connected'",
                                       timeout=20000)
        first_path = await viewer.evaluate("window.orcast.path")
        before = await decoded(viewer)
        await asyncio.sleep(2)
        assert await decoded(viewer) > before + 20
        assert await viewer.evaluate(PICTURE_SPREAD_JS, "video") > 40, "the picture is blank"
        await viewer.evaluate("window.__sameDocument = true")
        other = "room" if first_path.endswith("endoscope") else "endoscope"
        await viewer.click(f".thumb:has-text('{other}')")
        await viewer.wait_for_function(
            f"window.orcast.path === 'course/or2/{other}' && window.orcast.peer && "
            "window.orcast.peer.connectionState === 'connected'", timeout=20000)
        await viewer.wait_for_function(DECODING_JS, timeout=20000)
        assert await viewer.evaluate("window.__sameDocument") is True, "switching reloaded the page"
        await viewer.wait_for_selector(".thumb-img[src^='blob:']", timeout=20000)  # server thumbnails
        await console.wait_for_selector(".feed-health >> text=watching")
        await console.click(".card:first-child .record")  # the technician records its endoscope
        await console.wait_for_selector(".card:first-child .feed-health >> text=● REC", timeout=20000)
        await console.wait_for_selector(".card:first-child .record >> text=Stop recording")
        await screenshot(console, "page-console")
        await console.click(".card:first-child .record")
        await console.wait_for_selector(".card:first-child .record >> text=Record", timeout=10000)
        await screenshot(viewer, "page-watch")
        await viewer.click("#view-multi")
        await viewer.wait_for_function(
            "window.orcast.tiles.filter((t) => t.state === 'live').length === 2", timeout=20000)
        await screenshot(viewer, "page-watch-multiview")
        assert console_errors == [] and viewer_errors == []


async def test_a_question_goes_from_a_viewer_to_the_hall_and_the_or(server: RunningServer) -> None:
    text = "<b>Why</b> ligate the right hepatic artery first?"
    async with chromium() as browser:
        console, console_errors = await open_page(browser, link(server, Role.TECHNICIAN, "or1"))
        hall, hall_errors = await open_page(browser, link(server, Role.HALL))
        viewer, viewer_errors = await open_page(browser, link(server, Role.VIEWER, name="Dr Ulaanbaatar"))
        desk, desk_errors = await open_page(browser, link(server, Role.MODERATOR, name="Moderator Kim"))
        await viewer.wait_for_function("window.orcast.qa && window.orcast.qa.state === 'connected'")
        await viewer.fill("#ask-text", text)
        await viewer.select_option("#ask-theatre", "or1")
        await viewer.click("#ask-send")
        await viewer.wait_for_selector("#mine >> text=waiting for a moderator")

        await desk.wait_for_selector(".question >> text=ligate the right hepatic artery")
        await desk.click(".question >> text=ligate the right hepatic artery")
        await desk.keyboard.press("a")
        await desk.wait_for_selector(".question[data-state='approved'] >> text=now approved")
        await desk.keyboard.press("o")  # on air for its theatre, OR 1
        await desk.wait_for_selector("#slots >> text=ligate the right hepatic artery")

        await hall.wait_for_selector("#onair:not([hidden]) >> text=ligate the right hepatic artery")
        await console.wait_for_selector("#onair:not([hidden]) >> text=ligate the right hepatic artery")
        await viewer.wait_for_selector("#mine >> text=ON AIR")
        # text is only ever text: the <b> arrived as characters, not as an element
        shown = ((hall, "#onair-text"), (console, "#onair-text"), (desk, "#sel-text"), (viewer, "#mine .qtext"))
        for page, box in shown:
            content = await page.evaluate("(box) => document.querySelector(box)?.textContent", box)
            assert (content or "").endswith(text), box
            assert await page.evaluate("(box) => document.querySelectorAll(box + ' b').length", box) == 0
        # the desk sets the hall to two tiles side by side; the hall follows by itself
        await desk.select_option("#layout-mode", "side")
        await desk.select_option("#layout-feeds label:nth-child(1) select", "or1/endoscope")
        await desk.select_option("#layout-feeds label:nth-child(2) select", "or2/endoscope")
        await desk.click("#layout-apply")
        await hall.wait_for_selector("#tiles[data-mode='side'] figure:nth-child(2) >> text=OR 2 · endoscope")
        await hall.wait_for_selector("#tiles >> text=Waiting for OR 1 · endoscope to go live")
        await screenshot(desk, "page-moderate")
        await screenshot(hall, "page-hall")
        await screenshot(viewer, "page-watch-qa")
        await screenshot(console, "page-console-onair")
        assert console_errors == [] and hall_errors == [] and viewer_errors == [] and desk_errors == []


async def heard(page: Page, what: str) -> float:
    """Audio energy received on the page's first talk-back connection, waiting up to 15 s for some."""
    energy = 0.0
    deadline = time.monotonic() + 15
    while energy <= 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        stats = await page.evaluate(INBOUND_JS, ["audio", "talkback"])
        energy = float((stats or {}).get("totalAudioEnergy") or 0)
    assert energy > 0, f"the faculty's microphone was not heard {what}"
    return energy


async def test_faculty_talkback_is_heard_on_the_console_and_by_viewers_of_that_theatre(server: RunningServer) -> None:
    async with chromium() as browser:
        console, console_errors = await open_page(browser, link(server, Role.TECHNICIAN, "or1"))
        await console.wait_for_selector(".card .start")
        await console.click(".card .start")
        await console.wait_for_function("window.orcast.feeds.every((f) => f.state === 'live')", timeout=20000)
        viewer, viewer_errors = await open_page(browser, link(server, Role.VIEWER))
        await viewer.wait_for_function("window.orcast.path === 'course/or1/endoscope'", timeout=20000)
        await viewer.click("#unmute")  # a viewer hears nothing until they turn the sound on
        faculty, faculty_errors = await open_page(browser, link(server, Role.FACULTY, "or1", name="Prof Berlin"))
        await faculty.wait_for_selector("#talkback:not([hidden])")
        await faculty.click("#tb-start")
        await faculty.wait_for_selector("#tb-status >> text=Speaking to OR 1", timeout=20000)
        for page, where in ((console, "on the OR 1 console"), (viewer, "by a viewer of OR 1")):
            await page.wait_for_function("window.orcast.talkback.length === 1 && "
                                         "window.orcast.talkback[0]?.connectionState === 'connected'", timeout=20000)
            await heard(page, where)
        await screenshot(faculty, "page-watch-faculty")
        await faculty.click("#tb-stop")
        await console.wait_for_function("window.orcast.talkback.length === 0", timeout=15000)
        assert console_errors == [] and faculty_errors == [] and viewer_errors == []


async def test_every_page_loads_without_errors(server: RunningServer) -> None:
    pages = {
        "admin": link(server, Role.ORGANIZER, name="Course organizer"),
        "recordings": role_link(server.base, Role.MODERATOR, "course", None, server.token(Role.MODERATOR))
        .replace("/moderate/course", "/recordings/course"),
        "hall-idle": link(server, Role.HALL),
        "moderate-empty": link(server, Role.MODERATOR),
        "watch-waiting": link(server, Role.VIEWER),
        "console-empty": link(server, Role.TECHNICIAN, "or1"),
    }
    ready = {"admin": "#event option[value=course]", "recordings": "h1", "hall-idle": ".hall-idle",
             "moderate-empty": "#qa-state >> text=Q&A live", "watch-waiting": "#feeds >> text=No operating room",
             "console-empty": ".card .start"}
    async with chromium() as browser:
        for name, url in pages.items():
            page, errors = await open_page(browser, url)
            await page.wait_for_selector(ready[name], state="attached", timeout=15000)
            await asyncio.sleep(0.5)
            await screenshot(page, f"page-{name}")
            assert errors == [], (name, errors)
            await page.close()
        assert browser.browser is not None
        phone = await hooked_context(browser.browser, {"width": 390, "height": 844})
        if phone is not None:
            page = await phone.new_page()
            errors = collect_console_errors(page)
            await page.goto(link(server, Role.VIEWER))
            await page.wait_for_selector("#ask-text")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 400, f"the viewer page scrolls sideways on a phone ({width} px)"
            await screenshot(page, "page-watch-phone")
            assert errors == []


async def test_viewer_and_hall_recover_by_themselves_after_a_server_restart(tmp_path: Path) -> None:
    port = free_port()
    demo = start_demo(tmp_path, port=port)
    again = None
    try:
        async with chromium() as browser, aiohttp.ClientSession():
            viewer, _ = await open_page(browser, demo.links["viewer"].replace("localhost", "127.0.0.1"))
            hall, _ = await open_page(browser, demo.links["hall"].replace("localhost", "127.0.0.1"))
            await viewer.wait_for_function("window.orcast.peer && window.orcast.peer.connectionState === 'connected'",
                                           timeout=20000)
            await hall.wait_for_function("window.orcast.tiles.some((t) => t.state === 'live')", timeout=20000)
            demo.kill()
            await viewer.wait_for_function("!window.orcast.peer || window.orcast.peer.connectionState !== 'connected'",
                                           timeout=40000)
            back = time.monotonic()  # from the moment the server is started again (it takes ~2 s to boot)
            again = start_demo(tmp_path, secret=demo.secret, name="again", port=port)
            await viewer.wait_for_function(DECODING_JS, timeout=max(1000, 10000 - 1000 * (time.monotonic() - back)))
            viewer_s = time.monotonic() - back
            await hall.wait_for_function("window.orcast.tiles.some((t) => t.state === 'live')",
                                         timeout=max(1000, 10000 - 1000 * (time.monotonic() - back)))
            hall_s = time.monotonic() - back
            print(f"\nafter the restart: viewer playing again in {viewer_s:.1f} s, hall in {hall_s:.1f} s")
            await viewer.wait_for_function("window.orcast.qa.state === 'connected'", timeout=10000)
            await hall.wait_for_function("window.orcast.qa.state === 'connected'", timeout=10000)
    finally:
        if again is not None:
            again.stop()
        demo.stop()
