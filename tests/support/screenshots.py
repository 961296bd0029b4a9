"""The README's screenshots: a demo course in progress, every page in Chromium.

    .venv/bin/python -m tests.support.screenshots     # writes docs/screenshots/*.png
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiohttp
from playwright.async_api import Page

from tests.support.chromium import chromium, hooked_context
from tests.support.demoproc import ROOT, start_demo
from tests.support.qaclient import joined

OUT = ROOT / "docs" / "screenshots"
QUESTIONS = [
    ("or2", "Could you show the portal vein again before you divide it?"),
    ("or2", "What is your threshold for a Pringle manoeuvre in a cirrhotic liver?"),
    ("or1", "Which energy device do you prefer for the parenchymal transection?"),
    (None, "How do you select patients for the anterior approach?"),
    ("or1", "Is ICG fluorescence cholangiography routine in your unit?"),
]


async def shot(page: Page, name: str) -> None:
    await page.wait_for_timeout(1500)
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=name not in ("hall", "watch-phone"))
    print("wrote", OUT / f"{name}.png")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    demo = start_demo(Path(tempfile.mkdtemp(prefix="orcast-shots-")))
    link = {role: url.replace("localhost", "127.0.0.1") for role, url in demo.links.items()}
    try:
        async with aiohttp.ClientSession() as http, chromium() as browser:
            console = await browser.new_page()
            await console.goto(link["technician"])
            await console.wait_for_selector(".card .start")
            await console.click("#add")
            await console.wait_for_function("document.querySelectorAll('.card').length === 2")
            for button in await console.query_selector_all(".card .start"):
                await button.click()
            await console.wait_for_function("window.orcast.feeds.every((f) => f.state === 'live')", timeout=20000)

            viewers = [await joined(http, demo.base, "demo", demo.token("viewer")) for _ in range(3)]
            mod = await joined(http, demo.base, "demo", demo.token("moderator"))
            ids = []
            for n, (theatre, text) in enumerate(QUESTIONS):
                fields = {"text": text, **({"theatre": theatre} if theatre else {}), "anonymous": n == 3}
                ids.append((await viewers[n % 3].ok("ask", **fields))["question"])
            for qid in ids[:4]:
                await mod.ok("approve", question=qid)
            for voter in viewers[1:]:
                await voter.request("vote", question=ids[0])
            await viewers[0].request("vote", question=ids[2])
            await mod.ok("on_air", question=ids[0])
            await mod.ok("layout", mode="grid", feeds=["or1/endoscope", "or2/endoscope", "or1/room", "or2/room"])

            viewer = await browser.new_page()
            await viewer.goto(link["viewer"])
            await viewer.wait_for_function("window.orcast.peer && window.orcast.peer.connectionState === 'connected'")
            await viewer.fill("#ask-text", "What is the estimated blood loss so far?")
            await viewer.click("#ask-send")
            await viewer.wait_for_selector(".thumb-img[src^='blob:']", timeout=20000)
            await shot(viewer, "watch")
            await viewer.click("#view-multi")
            await viewer.wait_for_function("window.orcast.tiles.filter((t) => t.state === 'live').length >= 2")
            await shot(viewer, "watch-multiview")

            faculty = await browser.new_page()
            await faculty.goto(link["faculty"])
            await faculty.wait_for_selector("#talkback:not([hidden])")
            await faculty.select_option("#tb-theatre", "or2")  # the console shown below is OR 2's
            await faculty.click("#tb-start")
            await faculty.wait_for_selector("#tb-status >> text=Speaking")
            await shot(faculty, "watch-faculty")
            await console.wait_for_selector(".tb-tile >> text=Demo faculty", timeout=20000)
            await shot(console, "console")

            hall = await browser.new_page()
            await hall.goto(link["hall"])
            await hall.wait_for_function("window.orcast.tiles.filter((t) => t.state === 'live').length === 4",
                                         timeout=20000)
            await shot(hall, "hall")

            desk = await browser.new_page()
            await desk.goto(link["moderator"])
            await desk.wait_for_selector(".question")
            await desk.click("text=Approved")
            await desk.keyboard.press("j")
            await shot(desk, "moderate")

            admin = await browser.new_page()
            await admin.goto(link["organizer"])
            await admin.wait_for_selector("#sessions tr")
            await shot(admin, "admin")

            recordings = await browser.new_page()
            await recordings.goto(link["recordings"])
            await shot(recordings, "recordings")

            await viewer.close()  # the demo's viewer link holds 10 sessions at most
            assert browser.browser is not None
            phone = await hooked_context(browser.browser, {"width": 390, "height": 844})
            mobile = await phone.new_page()
            await mobile.goto(link["viewer"])
            await mobile.wait_for_function("window.orcast.peer && window.orcast.peer.connectionState === 'connected'")
            await shot(mobile, "watch-phone")
    finally:
        demo.stop()


if __name__ == "__main__":
    asyncio.run(main())
