"""A viewer on a weak link: 1 Mbit/s to the viewer, 50 ms each way, 1 % loss each way, a
300 ms router queue (tests/support/linkwire.py: the viewer in a network namespace of its own,
the link emulated between two TUN devices, since this kernel has no netem). The feed is 720p30
H.264 at 2.5 Mbit/s, published once; the viewer is Chromium itself, run in the namespace, on
the watch page. The low rendition plays smoothly there; the feed as published cannot (which
shows the link really is that narrow)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import TimeoutError as PlaywrightTimeout

from broadcast.participant import Role
from broadcast.sources.synthetic import encode_clip
from signaling.keys import ACCESS
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.linkwire import SERVER_ADDR
from tests.support.peers import publish_clip

ROOT = Path(__file__).resolve().parents[2]
PATH = "course/or1/endoscope"
NAMESPACE = f"orcv{os.getpid() % 100000}"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ip"),
                                reason="a shaped link needs root, /dev/net/tun and iproute2")


@pytest.fixture
def wire() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.linkwire", NAMESPACE, "--down-kbps", "1000",
                             "--delay-ms", "50", "--loss", "0.01", "--queue-ms", "300"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "the shaped link did not start"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    print("\n" + (proc.stdout.read() or "").strip())
    proc.wait(15)


@pytest.fixture
async def served(wire: subprocess.Popen[str]) -> AsyncIterator[tuple[RunningServer, str]]:
    runner, base, app = await start_server(make_config())
    site = web.TCPSite(runner, SERVER_ADDR, 0)  # what the viewer's namespace reaches
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with organizer_session(app) as http:
        server = RunningServer(base, app, http)
        clip = encode_clip("H264", 1280, 720, 30, 4, 2_500_000)
        publisher = await publish_clip(http, base, PATH, clip, server.token(Role.TECHNICIAN, theatre="or1"))
        yield server, f"http://{SERVER_ADDR}:{port}"
        await publisher.close()
    await runner.cleanup()
    shutil.rmtree(app[ACCESS].config.data_dir, ignore_errors=True)


# every picture the <video> presents, by its presentation time (requestVideoFrameCallback)
WATCH_FRAMES_JS = """() => {
  const video = document.getElementById('video');
  window.presented = [];
  const note = (now, meta) => { window.presented.push(meta.presentationTime); video.requestVideoFrameCallback(note); };
  video.requestVideoFrameCallback(note);
}"""
LONG_GAPS_JS = """() => {
  const t = window.presented, gaps = [];
  for (let i = 1; i < t.length; i++) if (t[i] - t[i - 1] > 500) gaps.push(Math.round(t[i] - t[i - 1]) / 1000);
  return gaps;
}"""
CHROME_VIDEO_JS = """async () => {
  const pc = window.orcast && window.orcast.peer;
  if (!pc) return null;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      return {decoded: s.framesDecoded || 0, width: s.frameWidth || 0, freezes: s.freezeCount || 0,
              frozen_s: s.totalFreezesDuration || 0, lost: s.packetsLost || 0, nacks: s.nackCount || 0};
    }
  }
  return null;
}"""


async def chrome_watches(server: RunningServer, base: str, quality: str, seconds: float) -> dict[str, Any]:
    """Chromium in the viewer's namespace opens the watch page with ?quality=…; what its own
    inbound-rtp statistics say over `seconds` once the picture is there."""
    from signaling.auth.links import role_link
    from tests.support.chromium import chromium

    url = role_link(base, Role.VIEWER, "course", None, server.token(Role.VIEWER)).replace(
        "#", f"?feed=or1/endoscope&quality={quality}#")
    width = 640 if quality == "low" else 1280
    async with chromium(namespace=NAMESPACE) as browser:
        page = await browser.new_page()
        started = asyncio.get_running_loop().time()
        await page.goto(url)
        try:
            await page.wait_for_function(f"() => document.getElementById('video').videoWidth === {width}",
                                         timeout=15000)
            first_picture_s: float | None = round(asyncio.get_running_loop().time() - started, 1)
        except PlaywrightTimeout:
            first_picture_s = None  # not one whole picture in 15 s
        # none: the player is between connections (its watchdog reconnects a picture that stopped)
        nothing = {"decoded": 0, "width": 0, "freezes": 0, "frozen_s": 0.0, "lost": 0, "nacks": 0}
        before = await page.evaluate(CHROME_VIDEO_JS) or nothing
        await page.evaluate(WATCH_FRAMES_JS)
        await asyncio.sleep(seconds)
        after = await page.evaluate(CHROME_VIDEO_JS) or nothing
        gaps = await page.evaluate(LONG_GAPS_JS)
        note = await page.text_content("#rendition-note")
    result = {"first_picture_s": first_picture_s,
              "fps": round((after["decoded"] - before["decoded"]) / seconds, 1),
              "freezes": len(gaps), "longest_s": max(gaps, default=0.0),  # pictures > 0.5 s apart
              "chrome_freezes": after["freezes"] - before["freezes"],  # Chrome's own: > ~3 frame intervals
              "chrome_frozen_s": round(after["frozen_s"] - before["frozen_s"], 1),
              "lost": after["lost"], "nacks": after["nacks"], "width": after["width"], "note": note}
    print(f"\nChromium on the weak link, {quality}: {result}")
    return result


@pytest.mark.browser
async def test_a_browser_on_the_weak_link_plays_the_low_rendition_smoothly(served: tuple[RunningServer, str]) -> None:
    server, base = served
    low = await chrome_watches(server, base, "low", 30.0)
    assert low["note"].startswith("Low quality") and low["width"] == 640
    assert low["first_picture_s"] is not None and low["first_picture_s"] < 5.0, low  # page load over the link too
    assert low["fps"] >= 25 and low["freezes"] <= 1, low
    # the feed as published (2.5 Mbit/s) into the same 1 Mbit/s: it cannot keep up (the link is that narrow)
    high = await chrome_watches(server, base, "high", 15.0)
    assert high["first_picture_s"] is None or high["fps"] < 25 or high["freezes"] > low["freezes"] + 2, high
