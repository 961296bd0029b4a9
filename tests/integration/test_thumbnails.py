"""Thumbnails of live feeds: decoded from a keyframe on the server, JPEG, for those who may watch."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import av

from tests.conftest import RunningServer
from tests.support.peers import bearer, publish


async def test_a_live_feed_has_a_thumbnail_for_those_who_may_watch_it(server: RunningServer) -> None:
    url = f"{server.base}/api/events/course/thumbnails/or2/endoscope"
    async with server.http.get(url) as r:
        assert r.status == 404 and "no picture" in (await r.json())["error"]
    publisher = await publish(server.http, server.base, "course/or2/endoscope", codec="VP8")
    try:
        deadline = time.monotonic() + 15
        status = 204  # live, no still yet
        while status == 204 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            async with server.http.get(url, headers=bearer(server.token("viewer"))) as r:
                status, body, headers = r.status, await r.read(), r.headers
        assert status == 200, status
        assert headers["Content-Type"] == "image/jpeg" and headers["Cache-Control"] == "no-store"
        assert abs(float(headers["X-Captured-At"]) - time.time()) < 30
        with av.open(io.BytesIO(body)) as container:
            picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (320, 240)  # the 320×240 test pattern, scaled to ≤ 320
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(url) as r:
                assert r.status == 401
            async with anonymous.get(url, headers=bearer(server.token("technician", theatre="or1"))) as r:
                assert r.status == 403
    finally:
        await publisher.pc.close()
    await asyncio.sleep(0.5)
    async with server.http.get(url) as r:  # the last picture stays after the feed left
        assert r.status == 200
