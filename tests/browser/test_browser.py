"""The role pages in real headless Chromium with a fake camera: links carry the token in the
fragment, pages keep it out of the address bar, refuse without it, publish and play."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import BrowserContext, Page

from broadcast.participant import ALL_EVENTS, Role
from signaling.auth.links import role_link
from tests.conftest import RunningServer
from tests.support.camera import PASSWORD, Camera, free_port
from tests.support.chromium import chromium, collect_console_errors, screenshot

pytestmark = pytest.mark.browser
PATH = "course/or2/endoscope"


def link(server: RunningServer, role: Role, theatre: str | None = None, event: str = "course") -> str:
    return role_link(server.base, role, event, theatre, server.token(role, event=event, theatre=theatre,
                                                                      name=f"{role} in the browser"))


async def test_pages_without_a_usable_link_say_so(server: RunningServer) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        for url in ("/watch/course", "/console/course/or1", "/admin", "/hall/course", "/moderate/course"):
            await page.goto(server.base + url)
            await page.wait_for_selector("text=This page needs your ORcast link")
            assert "Test course" not in await page.content()
        await screenshot(page, "no-link")
        await page.goto(link(server, Role.VIEWER, event="course").replace("/watch/course", "/console/course/or1"))
        await page.wait_for_selector("text=cannot send feeds")
        await page.goto(server.base + "/watch/course#token=eyJhbGciOiJIUzI1NiJ9.e30.bad")
        await page.wait_for_selector("text=not valid")
        await page.goto(server.base + "/")
        await page.wait_for_selector("text=Open the link you were given")
        # a 401 from fetch() is logged by Chromium as a console error; nothing else may be
        assert all("401" in e or "403" in e for e in errors), errors


async def test_admin_page_mints_a_link_and_revokes_it(server: RunningServer) -> None:
    async with chromium() as browser:
        admin = await browser.new_page()
        errors = collect_console_errors(admin)
        await admin.goto(role_link(server.base, Role.ORGANIZER, ALL_EVENTS, None,
                                   server.token(Role.ORGANIZER, event=ALL_EVENTS, name="Chief organizer")))
        await admin.wait_for_selector("#event option[value=course]", state="attached")
        await admin.fill("#mint [name=name]", "Dr Seoul")
        await admin.click("#mint button")
        await admin.wait_for_function("document.getElementById('link').value.includes('#token=')")
        minted = await admin.input_value("#link")
        assert minted.startswith(f"{server.base}/watch/course#token=")
        viewer = await browser.new_page()
        viewer_errors = collect_console_errors(viewer)
        await viewer.goto(minted)
        await viewer.wait_for_selector("#who >> text=Dr Seoul")
        await admin.wait_for_selector("#sessions >> text=Dr Seoul")
        await admin.wait_for_selector("#sessions >> text=live updates")  # one row per person, in words
        await screenshot(admin, "admin")
        await admin.click("#tokens tr:has-text('Dr Seoul') button:has-text('Revoke')")
        # the viewer's WebSocket is closed by the server and the page says why
        await viewer.wait_for_selector("text=no longer works", timeout=5000)
        assert await viewer.text_content("#conn") == "link no longer valid"
        requests: list[str] = []
        viewer.on("request", lambda r: requests.append(r.url))
        await asyncio.sleep(12)  # thumbnails refresh every 10 s, quality every second
        assert requests == [], f"the revoked page still asks the server: {requests[:5]}"
        assert errors == [] and viewer_errors == [], (errors, viewer_errors)


async def test_an_ordinary_page_has_no_test_hooks(server: RunningServer) -> None:
    async with chromium() as hooked:
        assert hooked.browser is not None
        plain = await hooked.browser.new_context()
        page = await plain.new_page()
        await page.goto(link(server, Role.VIEWER))
        await page.wait_for_selector("#who >> text=viewer in the browser")
        assert await page.evaluate("typeof window.orcast") == "undefined"
        tested = await hooked.new_page()
        await tested.goto(link(server, Role.VIEWER))
        await tested.wait_for_selector("#who >> text=viewer in the browser")
        assert await tested.evaluate("typeof window.orcast") == "object"


async def add_camera(browser: BrowserContext, server: RunningServer, url: str,
                     on_demand: bool = False) -> tuple[Page, list[str]]:
    """The organizer page, with `url` added as OR 2's ceiling camera (its form submitted)."""
    admin = await browser.new_page()
    errors = collect_console_errors(admin)
    await admin.goto(role_link(server.base, Role.ORGANIZER, "course", None,
                               server.token(Role.ORGANIZER, event="course", name="Course organizer")))
    await admin.wait_for_selector("#add-source [name=theatre] option[value=or2]", state="attached")
    await admin.select_option("#add-source [name=theatre]", "or2")
    await admin.fill("#add-source [name=feed]", "ceiling")
    await admin.fill("#add-source [name=url]", url)
    if on_demand:
        await admin.check("#add-source [name=on_demand]")
    await admin.click("#add-source button")
    return admin, errors


async def test_admin_page_pulls_an_ip_camera_and_stops(server: RunningServer) -> None:
    camera = Camera(free_port())
    camera.start()
    try:
        async with chromium() as browser:
            admin, errors = await add_camera(browser, server, camera.url())
            await admin.wait_for_selector("#status >> text=Pulling course/or2/ceiling")
            await admin.wait_for_selector("#sources tr:has-text('or2/ceiling') >> text=live", timeout=20000)
            row = await admin.text_content("#sources tr:has-text('or2/ceiling')") or ""
            assert "cam:***@" in row and PASSWORD not in row and "audio AAC → Opus" in row
            assert PASSWORD not in await admin.content()
            await screenshot(admin, "admin-sources")
            await admin.click("#sources tr:has-text('or2/ceiling') button:has-text('Stop pulling')")
            await admin.wait_for_selector("#sources >> text=No pulled feed.")
            assert not server.broadcaster.pulled
            assert errors == [], errors
    finally:
        camera.kill()


async def test_an_on_demand_camera_is_added_on_the_admin_page_and_played_on_the_watch_page(
        server: RunningServer) -> None:
    camera = Camera(free_port())
    camera.start()
    try:
        async with chromium() as browser:
            admin, errors = await add_camera(browser, server, camera.url(), on_demand=True)
            await admin.wait_for_selector("#status >> text=whenever someone watches")
            await admin.wait_for_selector("#sources tr:has-text('or2/ceiling') >> text=idle (on demand")
            assert camera.connections == 0

            viewer = await browser.new_page()
            viewer_errors = collect_console_errors(viewer)
            # the page opens on another feed, so that the camera's thumbnail can be seen waiting
            await viewer.goto(link(server, Role.VIEWER).replace("#", "?feed=or1/room#"))
            await viewer.wait_for_selector(".thumb:has-text('ceiling') >> text=on demand")
            assert camera.connections == 0
            await viewer.click(".thumb:has-text('ceiling')")  # playing it starts the pull
            await viewer.wait_for_function("() => document.getElementById('video').videoWidth === 640",
                                           timeout=20000)
            assert camera.clients == 1
            await viewer.wait_for_selector(".thumb:has-text('ceiling') >> text=live · 1")
            await admin.wait_for_selector("#sources tr:has-text('or2/ceiling') >> text=live (on demand)",
                                          timeout=15000)
            await screenshot(viewer, "watch-on-demand")
            await viewer.close()
            await admin.wait_for_selector("#sources tr:has-text('or2/ceiling') >> text=stops in", timeout=15000)
            assert errors == [] and viewer_errors == [], (errors, viewer_errors)
    finally:
        camera.kill()


async def test_the_quality_menu_switches_the_picture_on_the_same_connection(server: RunningServer) -> None:
    from broadcast.sources.synthetic import encode_clip
    from tests.support.peers import publish_clip

    clip = encode_clip("H264", 1280, 720, 30, 4, 2_500_000)
    publisher = await publish_clip(server.http, server.base, "course/or1/endoscope", clip,
                                   server.token(Role.TECHNICIAN, theatre="or1"))
    try:
        async with chromium() as browser:
            viewer = await browser.new_page()
            errors = collect_console_errors(viewer)
            await viewer.goto(link(server, Role.VIEWER).replace("#", "?feed=or1/endoscope#"))
            width = "() => document.getElementById('video').videoWidth"
            await viewer.wait_for_function(f"({width})() === 1280", timeout=20000)
            await viewer.evaluate("() => { window.firstPeer = window.orcast.peer; }")
            await viewer.select_option("#quality-choice", "low")
            await viewer.wait_for_function(f"({width})() === 640", timeout=10000)
            assert await viewer.text_content("#rendition-note") == (
                "Low quality, as you chose: less data for a slow connection")
            await screenshot(viewer, "watch-low-quality")
            await viewer.select_option("#quality-choice", "high")
            await viewer.wait_for_function(f"({width})() === 1280", timeout=10000)
            assert await viewer.evaluate("() => window.orcast.peer === window.firstPeer")  # no new connection
            assert await viewer.text_content("#rendition-note") == ""
            assert errors == [], errors
    finally:
        await publisher.close()



async def test_the_console_sends_its_own_low_rendition_and_the_server_encodes_none(server: RunningServer) -> None:
    from broadcast.relay.streampath import StreamPath
    from tests.support.peers import watch

    async with chromium() as browser:
        console = await browser.new_page()
        errors = collect_console_errors(console)
        await console.goto(link(server, Role.TECHNICIAN, "or2"))
        await console.wait_for_selector(".card .start")
        await console.select_option(".card .quality", "1280x720x2000")
        await console.click(".card .start")
        await console.wait_for_function("window.orcast.feeds[0]?.state === 'live'", timeout=20000)
        # two video sections: the camera as it is, and the low rendition of the same camera
        assert await console.evaluate("window.orcast.peer.getTransceivers().filter((t) => "
                                      "t.sender.track?.kind === 'video').length") == 2
        # nobody watches the low rendition yet: the console does not encode it
        assert await console.evaluate("window.orcast.feeds[0].lowActive") is False
        token = server.token(Role.VIEWER)
        plain = await watch(server.http, server.base, PATH, token=token)
        low = await watch(server.http, server.base, PATH + "?quality=low", token=token)
        try:
            await plain.wait_frames(20, timeout=20.0)
            await low.wait_frames(20, timeout=20.0)
            renditions = server.broadcaster.streams[StreamPath.parse(PATH)].renditions
            assert renditions.made_by == "publisher" and renditions.maker is None  # no server encode
            high_size, low_size = plain.last_size, low.last_size
            assert high_size is not None and low_size is not None
            assert low_size[0] <= 640 and low_size[1] <= 360 and high_size[1] > 360, (high_size, low_size)
            print(f"\nthe console sends {high_size[0]}×{high_size[1]} and its own low rendition "
                  f"{low_size[0]}×{low_size[1]}")
            await console.wait_for_selector(".feed-health >> text=low rendition for weak links", timeout=10000)
        finally:
            await plain.close(server.http)
            await low.close(server.http)
        # its last viewer gone, the console pauses that encode again
        await console.wait_for_function("window.orcast.feeds[0].lowActive === false", timeout=10000)
        assert errors == [], errors
