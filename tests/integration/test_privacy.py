"""The privacy pause: from the technician's click, nothing of the feed's picture leaves the
server — checked by decoding what a viewer receives and what the recording holds — and the
picture comes back on the next keyframe when it is resumed. Who did it is in the event's log."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcast.participant import Role
from signaling.keys import CONFIG
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.mediacheck import decode
from tests.support.peers import bearer, publish, watch

PATH = "course/or1/endoscope"
PRIVACY = "/api/events/course/privacy/or1/endoscope"
FPS = 30


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, base, app = await start_server(make_config(min_free_gb=0.0))
    async with organizer_session(app) as http:
        yield RunningServer(base, app, http)
    await runner.cleanup()
    shutil.rmtree(app[CONFIG].data_dir, ignore_errors=True)


async def privacy(http: aiohttp.ClientSession, base: str, token: str, paused: bool, expect: int = 200) -> None:
    async with http.post(base + PRIVACY, json={"paused": paused}, headers=bearer(token)) as resp:
        assert resp.status == expect, await resp.text()


async def test_a_paused_feed_sends_no_picture_to_viewers_or_the_recording_and_comes_back(
        server: RunningServer) -> None:
    http, base = server.http, server.base
    technician = server.token(Role.TECHNICIAN, theatre="or1", name="OR 1 technician")
    publisher = await publish(http, base, PATH, token=technician)
    async with http.post(f"{base}/api/events/course/recording",
                         json={"action": "start", "theatre": "or1", "feed": "endoscope"}) as resp:
        assert resp.status == 200
    viewer_token = server.token(Role.VIEWER)
    viewer = await watch(http, base, PATH, token=viewer_token)
    try:
        await viewer.wait_frames(30)
        # a viewer link, or a technician of another theatre, may not pause (refused by the server)
        await privacy(http, base, viewer_token, True, expect=403)
        await privacy(http, base, server.token(Role.TECHNICIAN, theatre="or2"), True, expect=403)

        clicked = time.monotonic()
        paused_at = publisher.video.index  # the next frame the camera sends
        await privacy(http, base, technician, True)
        answered = time.monotonic() - clicked
        await asyncio.sleep(0.3)  # what was on the wire before the click
        seen = len(viewer.counters)
        last_before = max(viewer.counters)
        await asyncio.sleep(2.0)
        assert len(viewer.counters) == seen, "a viewer decoded pictures while the feed was paused"
        # what arrived after the click left the server before it (at most ~100 ms of frames)
        late = last_before - paused_at
        assert late <= 3, f"{late} frames sent after the click"
        print(f"\nprivacy pause: answered in {answered * 1000:.0f} ms; the last picture the viewer got was "
              f"{max(0, late)} frame(s) after the click")
        async with http.get(f"{base}/api/events/course/streams") as resp:
            info = next(s for s in (await resp.json())["streams"] if s["path"] == PATH)
        assert info["privacy_by"] and "OR 1 technician" in info["privacy_by"] and info["live"], info
        async with http.get(f"{base}/api/events/course/thumbnails/or1/endoscope") as resp:
            assert resp.status in (204, 404), "the still from before the pause is still served"

        resumed_at = publisher.video.index
        await privacy(http, base, technician, False)
        await viewer.wait_frames(seen + 15)
        after = viewer.counters[seen:]
        # (aiortc's receiver hands a frame on when the next one starts: the last one sent before the
        # click comes out only now)
        leaked = [c for c in after if paused_at + 3 < c < resumed_at]
        assert not leaked, f"pictures from the paused time reached the viewer: {leaked[:5]}"
        first = min(c for c in after if c >= resumed_at)
        print(f"resumed: pictures again from frame {first} (resume at {resumed_at}), "
              f"{(first - resumed_at) / FPS:.2f} s of camera time later")
    finally:
        await viewer.close(http)
    async with http.post(f"{base}/api/events/course/recording",
                         json={"action": "stop", "theatre": "or1", "feed": "endoscope"}) as resp:
        assert resp.status == 200
    await publisher.pc.close()

    # the recording has a gap where the feed was paused: none of its frames are in the file
    async with http.get(f"{base}/api/recordings") as resp:
        (rec,) = (await resp.json())["recordings"]
    root: Path = server.broadcaster.recordings.library.root
    counters = [c for seg in rec["segments"] for c in decode(root / rec["path"] / seg["file"]).counters]
    hidden = [c for c in counters if paused_at + 3 < c < resumed_at]
    assert not hidden, f"{len(hidden)} paused frames were recorded"
    assert any(c >= resumed_at for c in counters) and any(c < paused_at for c in counters)

    # and the event's log says who paused and resumed
    async with http.get(f"{base}/api/events/course/log") as resp:
        log = (await resp.json())["log"]
    assert [e["detail"] for e in log[:2]] == ["or1/endoscope privacy pause ended", "or1/endoscope paused for privacy"]
    assert all("OR 1 technician" in e["who"] for e in log[:2])
    async with http.get(f"{base}/api/events/course/log", headers=bearer(viewer_token)) as resp:
        assert resp.status == 403
