"""Debian's chromium driven by Playwright (its own browser download does not work here)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@asynccontextmanager
async def chromium(namespace: str | None = None, flags: tuple[str, ...] = ()) -> AsyncIterator[BrowserContext]:
    """Headless Chromium; with `namespace`, run inside that network namespace (a viewer's host
    on a shaped link, tests/support/linkwire.py). Playwright talks to it over a pipe, so the
    browser's network is the namespace's alone. `flags`: more command-line switches."""
    with tempfile.TemporaryDirectory(prefix="orcast-chromium-") as tmp:
        executable = CHROMIUM
        if namespace is not None:
            wrapper = Path(tmp) / "chromium-in-namespace"
            wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
            wrapper.chmod(0o755)
            executable = str(wrapper)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=[*FLAGS, *flags])
            try:
                yield await hooked_context(browser, {"width": 1200, "height": 900})
            finally:
                await browser.close()


TEST_HOOKS = "sessionStorage.setItem('orcast.testHooks', '1')"


async def hooked_context(browser: Browser, viewport: dict[str, int]) -> BrowserContext:
    """A context whose pages expose window.orcast (they do only when asked: web/lib/dom.js)."""
    # The pages' CSP forbids eval; Playwright's predicates need it, the pages do not.
    context = await browser.new_context(bypass_csp=True, viewport=viewport)  # type: ignore[arg-type]
    await context.add_init_script(TEST_HOOKS)
    return context


def collect_console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


STATS_JS = """async (kind) => {
  const pc = window.orcast && window.orcast.peer;
  if (!pc) return null;
  const out = {};
  for (const s of (await pc.getStats()).values()) {
    if (s.type === kind && s.kind === 'video') Object.assign(out, s);
  }
  return out;
}"""


# max - min of the red channel over a 64×48 sample of a <video>: a black or blank picture is ~0
PICTURE_SPREAD_JS = """(id) => {
    const v = document.getElementById(id);
    const c = document.createElement('canvas'); c.width = 64; c.height = 48;
    const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 48);
    const d = g.getImageData(0, 0, 64, 48).data; let lo = 255, hi = 0;
    for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
    return hi - lo; }"""
