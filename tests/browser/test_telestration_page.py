"""Drawing on the live picture, and the privacy pause, in real Chromium: the OR 1 console
publishes its camera and records; faculty draws a stroke over the picture with the mouse; the
viewer (a phone-sized window), the hall (a big screen) and the console's own preview show it
over the same place of the picture (canvas pixels, each page measured on its own letterboxing);
a viewer link is refused by the server; the recordings page shows the stroke at its second;
the console's Privacy button blanks the viewer and the hall, and the recording has a gap."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.async_api import Page

from broadcast.participant import Role
from signaling.auth.links import role_link
from tests.conftest import RunningServer
from tests.integration.test_recording import control, rec_server, wait_state
from tests.support.chromium import TEST_HOOKS, chromium, collect_console_errors, hooked_context, screenshot

__all__ = ["rec_server"]
pytestmark = pytest.mark.browser

FEED = "or1/endoscope"
PATH = f"course/{FEED}"
YELLOW = (0xFF, 0xD4, 0x00)

# The colour the stroke canvas over `video` has at fraction (fx, fy) of the picture, found from
# the page's own layout: where the picture sits inside the <video> box (letterboxed: object-fit
# contain), and the canvas's pixel density. [r, g, b, a], or null when there is no canvas.
PIXEL_JS = """([selector, fx, fy]) => {
  const video = document.querySelector(selector);
  const canvas = video && video.parentElement.querySelector('canvas.strokes');
  if (!canvas || !video.videoWidth) return null;
  const bw = video.clientWidth, bh = video.clientHeight;
  const s = Math.min(bw / video.videoWidth, bh / video.videoHeight);
  const w = video.videoWidth * s, h = video.videoHeight * s;
  const x = (bw - w) / 2 + fx * w, y = (bh - h) / 2 + fy * h;
  const k = canvas.width / bw;
  const g = canvas.getContext('2d');
  let best = [0, 0, 0, 0];
  for (let dx = -2; dx <= 2; dx++) for (let dy = -2; dy <= 2; dy++) {  // the line's middle, ±2 px
    const d = g.getImageData(Math.round(x * k) + dx, Math.round(y * k) + dy, 1, 1).data;
    if (d[3] > best[3]) best = [d[0], d[1], d[2], d[3]];
  }
  return best;
}"""
# where the main video's picture is on the page (CSS pixels)
PICTURE_BOX_JS = """() => {
  const v = document.getElementById('video'); const r = v.getBoundingClientRect();
  const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
  const w = v.videoWidth * s, h = v.videoHeight * s;
  return { x: r.left + (r.width - w) / 2, y: r.top + (r.height - h) / 2, w, h }; }"""
# the page's main video is playing frames
PLAYING_JS = """(selector) => { const v = document.querySelector(selector);
  return Boolean(v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused); }"""


def link(server: RunningServer, role: Role, theatre: str | None = None, name: str | None = None,
         feed: str | None = None) -> str:
    token = server.token(role, theatre=theatre, name=name or f"{role} in the browser")
    url = role_link(server.base, role, "course", theatre, token)
    return url.replace("#", f"?feed={feed}#") if feed else url


async def pixel(page: Page, selector: str, fx: float, fy: float) -> list[int] | None:
    result: list[int] | None = await page.evaluate(PIXEL_JS, [selector, fx, fy])
    return result


def yellow(rgba: list[int] | None) -> bool:
    return rgba is not None and rgba[3] > 200 and all(abs(a - b) < 40 for a, b in zip(rgba[:3], YELLOW, strict=True))


async def drag_over_picture(page: Page, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    """A mouse stroke from `start` to `end` (fractions of the picture) on the page's main video."""
    box: dict[str, Any] = await page.evaluate(PICTURE_BOX_JS)
    at = lambda f: (box["x"] + f[0] * box["w"], box["y"] + f[1] * box["h"])  # noqa: E731
    await page.mouse.move(*at(start))
    await page.mouse.down()
    for i in range(1, steps + 1):
        t = i / steps
        await page.mouse.move(*at((start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)))
        await asyncio.sleep(0.02)
    await page.mouse.up()


async def touch_drag_over_picture(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """The same with a finger (a phone): touch events through the DevTools protocol. The picture's
    place is read before each touch: a tap's scrolling into view may still be moving the page."""
    async def at(f: tuple[float, float]) -> dict[str, float]:
        box: dict[str, Any] = await page.evaluate(PICTURE_BOX_JS)
        return {"x": box["x"] + f[0] * box["w"], "y": box["y"] + f[1] * box["h"]}

    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [await at(start)]})
    for i in range(1, 9):
        t = i / 8
        point = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [await at(point)]})
        await asyncio.sleep(0.03)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


async def decoded_frames(page: Page) -> int:
    return int(await page.evaluate("""async () => {
      for (const s of (await window.orcast.peer.getStats()).values())
        if (s.type === 'inbound-rtp' && s.kind === 'video') return s.framesDecoded;
      return 0; }"""))


def largest_gap_s(files: list[Path]) -> float:
    """The longest time between two pictures of the recording's video, over its segments."""
    gap = 0.0
    for file in files:
        with av.open(str(file)) as container:
            stream = container.streams.video[0]
            times = sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None)
        gap = max([gap, *(b - a for a, b in itertools.pairwise(times))])
    return gap


async def test_faculty_draws_over_the_or_picture_everyone_sees_it_and_privacy_blanks_it(
        rec_server: RunningServer) -> None:
    server = rec_server
    async with chromium() as desk:
        errors: dict[str, list[str]] = {}

        async def open_page(name: str, url: str, viewport: dict[str, int] | None = None) -> Page:
            context = desk if viewport is None else await hooked_context(desk.browser, viewport)  # type: ignore[arg-type]
            page = await context.new_page()
            errors[name] = collect_console_errors(page)
            await page.goto(url)
            return page

        # every screen a window of its own (a tab behind another gets no animation frames)
        console = await open_page("console", link(server, Role.TECHNICIAN, "or1", "OR 1 technician"),
                                  {"width": 1280, "height": 900})
        await console.wait_for_selector(".card .start")
        await console.click(".card .start")
        await console.wait_for_function("window.orcast.feeds.every((f) => f.state === 'live')", timeout=20000)
        await control(server, "start", theatre="or1")
        await wait_state(server, "recording", PATH)
        faculty = await open_page("faculty", link(server, Role.FACULTY, "or1", "Prof. Weber", FEED))
        viewer = await open_page("viewer", link(server, Role.VIEWER, feed=FEED), {"width": 420, "height": 860})
        hall = await open_page("hall", link(server, Role.HALL), {"width": 1920, "height": 1080})
        for page, video in ((faculty, "#video"), (viewer, "#video"), (hall, "#tiles video")):
            await page.wait_for_function(PLAYING_JS, arg=video, timeout=20000)

        # the drawing tool is there for faculty, not for a viewer
        await faculty.wait_for_selector("#draw-bar:not([hidden])", timeout=10000)
        assert await viewer.locator("#draw-bar").is_hidden()
        await faculty.click("#draw-bar > button:has-text('Draw')")
        await faculty.check("#draw-bar input[type=checkbox]")  # pinned: it stays for the checks below
        drawn_at = time.monotonic()
        await drag_over_picture(faculty, (0.3, 0.3), (0.6, 0.6))
        shows = "(s) => s.some((x) => x.points.length >= 2 && x.endedAt != null)"
        await viewer.wait_for_function(f"({shows})(window.orcast.strokes)", timeout=5000)
        seen_s = time.monotonic() - drawn_at
        await hall.wait_for_function(f"window.orcast.strokes.some((t) => ({shows})(t.strokes))", timeout=5000)
        await console.wait_for_function(f"window.orcast.strokes.some((c) => ({shows})(c.strokes))", timeout=5000)
        await asyncio.sleep(0.3)  # the last frame of the canvas drawn

        # the same place of the picture on every screen: yellow on the line, nothing off it
        places = {"faculty": (faculty, "#video"), "viewer": (viewer, "#video"), "hall": (hall, "#tiles video"),
                  "console": (console, ".card .preview")}
        for name, (page, video) in places.items():
            on_line, off_line = await pixel(page, video, 0.45, 0.45), await pixel(page, video, 0.45, 0.2)
            layout = await page.evaluate("""(sel) => { const v = document.querySelector(sel);
              const c = v.parentElement.querySelector('canvas.strokes');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
              for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
              return [v.clientWidth, v.clientHeight, v.videoWidth, v.videoHeight, c.width, c.height, c.style.cssText,
                      document.visibilityState, n, c.hidden, JSON.stringify(window.orcast.strokes)]; }""", video)
            assert yellow(on_line), f"{name}: no stroke at the middle of the line: {on_line} {layout}"
            assert off_line is not None and off_line[3] < 30, f"{name}: the stroke is elsewhere: {off_line}"
        # fullscreen (the picture fills the screen, letterboxed the other way): still on the line
        await viewer.evaluate("document.querySelector('.main-tile').requestFullscreen()")
        await viewer.wait_for_function("document.fullscreenElement && document.getElementById('video').clientHeight"
                                       " === window.innerHeight")
        await asyncio.sleep(0.3)
        assert yellow(await pixel(viewer, "#video", 0.45, 0.45)), "fullscreen: the stroke is not on the line"
        assert (await pixel(viewer, "#video", 0.45, 0.2) or [0, 0, 0, 255])[3] < 30
        await viewer.evaluate("document.exitFullscreen()")
        viewer_points = await viewer.evaluate("window.orcast.strokes[0].points")
        assert viewer_points[0] == pytest.approx([0.3, 0.3], abs=0.02)
        assert viewer_points[-1] == pytest.approx([0.6, 0.6], abs=0.02)
        print(f"\nstroke ended on the faculty page → shown on the viewer page within {seen_s:.2f} s "
              "(polled by Playwright; bench/telestration.py measures delivery)")
        await screenshot(hall, "telestration-hall")
        await screenshot(viewer, "telestration-viewer")

        # a viewer link is refused by the server, whatever the page sends
        await viewer.evaluate("""() => window.orcast.drawings.send({type: 'draw', feed: 'or1/endoscope',
            op: 'begin', id: 'v1', kind: 'free', color: '#ffd400', points: [[0.8, 0.8]], end: true})""")
        await viewer.wait_for_function("window.orcast.drawTool.note.textContent.includes('viewers cannot draw')")
        await asyncio.sleep(0.3)
        assert await hall.evaluate("window.orcast.strokes[0].strokes.length") == 1

        # a moderator on a phone draws an arrow with a finger
        phone_context = await desk.browser.new_context(  # type: ignore[union-attr]
            bypass_csp=True, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
        await phone_context.add_init_script(TEST_HOOKS)
        phone = await phone_context.new_page()
        errors["phone"] = collect_console_errors(phone)
        await phone.goto(link(server, Role.MODERATOR, name="Moderator Kim", feed=FEED).replace("/moderate/", "/watch/"))
        await phone.wait_for_function(PLAYING_JS, arg="#video", timeout=20000)
        await phone.tap("#draw-bar > button:has-text('Draw')")
        await phone.tap("#draw-bar button:has-text('Arrow')")
        await touch_drag_over_picture(phone, (0.7, 0.2), (0.85, 0.35))
        arrow = "(s) => s.some((x) => x.kind === 'arrow' && x.endedAt != null)"
        await hall.wait_for_function(f"window.orcast.strokes.some((t) => ({arrow})(t.strokes))", timeout=5000)
        await asyncio.sleep(0.3)
        assert yellow(await pixel(hall, "#tiles video", 0.775, 0.275)), (
            "the phone's arrow is not on the hall",
            await hall.evaluate("JSON.stringify(window.orcast.strokes[0].strokes.map((s) => [s.kind, s.points]))"))

        # privacy: one click on the console and the picture is gone for the viewer and the hall
        before = await decoded_frames(viewer)
        await console.click(".card .privacy")
        paused_at = time.monotonic()
        await viewer.wait_for_selector("#state.privacy-card >> text=Paused for privacy", timeout=3000)
        await hall.wait_for_selector(".tile-state.privacy-card >> text=Paused for privacy", timeout=3000)
        await asyncio.sleep(0.5)  # what was on its way before the click
        frozen = await decoded_frames(viewer)
        assert frozen - before < 40, (before, frozen)
        await asyncio.sleep(2.0)
        assert await decoded_frames(viewer) == frozen, "the viewer decoded pictures while the feed was paused"
        await screenshot(viewer, "privacy-viewer")
        await console.click(".card .privacy")  # Resume
        paused_s = time.monotonic() - paused_at
        await viewer.wait_for_function(f"""async () => {{
          for (const s of (await window.orcast.peer.getStats()).values())
            if (s.type === 'inbound-rtp' && s.kind === 'video') return s.framesDecoded > {frozen + 10};
          return false; }}""", timeout=15000)
        await asyncio.sleep(1.0)
        await control(server, "stop", theatre="or1")
        await wait_state(server, "stopped", PATH)

        # the recording: a gap where the feed was paused, and the stroke at its second
        async with server.http.get(f"{server.base}/api/recordings?event=course") as resp:
            (rec,) = (await resp.json())["recordings"]
        root: Path = server.broadcaster.recordings.library.root
        gap = largest_gap_s([root / rec["path"] / s["file"] for s in rec["segments"]])
        assert gap >= paused_s - 1.0, f"the recording's largest gap is {gap:.2f} s; the pause was {paused_s:.2f} s"
        library = await open_page("recordings", f"{server.base}/recordings/course#token="
                                  f"{server.token(Role.MODERATOR, name='moderator')}")
        await library.click("#library tr[data-recording] button:has-text('Play')")
        await library.wait_for_function("window.orcast.annotations.items.some((a) => a.type === 'stroke')",
                                        timeout=10000)
        at = await library.evaluate("window.orcast.annotations.items.find((a) => a.type === 'stroke').t")
        assert 0 < at < rec["duration_s"], at
        await library.evaluate("""(at) => new Promise((done) => { const v = document.getElementById('player');
            v.pause(); v.addEventListener('seeked', () => done(), { once: true }); v.currentTime = at + 0.5; })""", at)
        await library.wait_for_function("window.orcast.strokes.length === 1", timeout=5000)
        await asyncio.sleep(0.3)
        assert yellow(await pixel(library, "#player", 0.45, 0.45)), "the recordings page does not show the stroke"
        await library.evaluate("(at) => { document.getElementById('player').currentTime = Math.max(0, at - 1.5); }", at)
        await library.wait_for_function("window.orcast.strokes.length === 0", timeout=5000)  # not before its time
        await screenshot(library, "telestration-recording")
        await library.uncheck("#show-strokes")
        assert await library.locator("canvas.strokes").is_hidden()
        for name, found in errors.items():
            assert [e for e in found if "Failed to load resource" not in e] == [], (name, found)
