"""Encoders that come back and viewers that never stay black (the keyframe request rules are
in tests/unit/test_relay_rules.py): a returning publisher that replaces its frozen session at
once, a stalled feed, and limits that never lock out the OR or a shared link."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import aiohttp
from aiortc import RTCRtpSender

from broadcast.participant import Role
from broadcast.relay.stream import STALLED_AFTER_S, Stream
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.peers import assert_consecutive, make_offer_sdp, post_offer, publish, wait_until, watch

PATH = "course/or2/endoscope"


def stream_of(server: RunningServer) -> Stream:
    (stream,) = server.broadcaster.streams.values()
    return stream


async def test_returning_encoder_replaces_its_frozen_session(server: RunningServer) -> None:
    tech = server.token(Role.TECHNICIAN, name="OR 2 cart")
    frozen = await publish(server.http, server.base, PATH, codec="VP8", token=tech)
    viewer = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
    await viewer.wait_frames(10)
    # the encoder freezes (no BYE, no DELETE) and comes back with the same link
    for sender in frozen.pc.getSenders():
        sender.replaceTrack(None)
    started = time.monotonic()
    back = await publish(server.http, server.base, PATH, codec="VP8", start=50_000, token=tech)
    answered = time.monotonic() - started
    assert answered < 2.0
    await wait_until(lambda: (stream_of(server).video.last_frame_at or 0.0) > started, 10.0,
                     lambda: "no frame from the new publisher")
    first_frame = time.monotonic()
    await viewer.wait_until(lambda: any(c >= 50_000 for c in viewer.counters), 10.0,
                            "the viewer never saw the new publisher")
    print(f"\nreplaced in {answered * 1000:.0f} ms (201); the viewer saw the new picture "
          f"{(time.monotonic() - first_frame) * 1000:.0f} ms after the new publisher's first frame")
    assert viewer.pc.connectionState == "connected"
    assert_consecutive([c for c in viewer.counters if c >= 50_000], "viewer after the replacement")
    async with server.http.delete(frozen.session_url, headers={"Authorization": f"Bearer {tech}"}) as r:
        assert r.status == 404, "the replaced session still exists"
    (stream,) = server.broadcaster.streams.values()
    assert stream.publisher is not None and stream.publisher.id in back.session_url
    await viewer.close(server.http)
    await frozen.pc.close()
    await back.pc.close()


async def test_another_link_waits_for_a_healthy_feed_but_takes_a_stalled_one(server: RunningServer) -> None:
    first = await publish(server.http, server.base, PATH, codec="VP8", token=server.token(Role.TECHNICIAN, name="A"))
    await wait_until(lambda: server.broadcaster.streams[next(iter(server.broadcaster.streams))].video.frames_in > 5,
                     10.0, lambda: "no media from the first publisher")
    other = server.token(Role.TECHNICIAN, name="B")
    offer = await make_offer_sdp("sendonly")
    status, text, headers = await post_offer(server.http, f"{server.base}/whip/{PATH}", offer, other)
    assert status == 409, text
    assert headers.get("Retry-After") == "2"
    assert "'A' (technician)" in text and "silent" in text, text

    async with server.http.get(f"{server.base}/api/events/course/streams") as r:
        (feed,) = (await r.json())["streams"]
    assert feed["live"] and not feed["stalled"]
    for sender in first.pc.getSenders():
        sender.replaceTrack(None)  # the first publisher goes silent
    await asyncio.sleep(STALLED_AFTER_S + 0.3)
    async with server.http.get(f"{server.base}/api/events/course/streams") as r:
        (feed,) = (await r.json())["streams"]
    assert feed["live"] and feed["stalled"], feed
    second = await publish(server.http, server.base, PATH, codec="VP8", token=other)
    await asyncio.sleep(0.5)
    async with server.http.get(f"{server.base}/api/events/course/streams") as r:
        (feed,) = (await r.json())["streams"]
    assert feed["live"] and not feed["stalled"], feed
    await first.pc.close()
    await second.pc.close()


async def test_a_returning_publisher_gets_in_at_the_session_limit() -> None:
    runner, base, app = await start_server(replace(make_config(), max_sessions=2))
    try:
        async with organizer_session(app) as http:
            from tests.conftest import mint
            tech = mint(app, Role.TECHNICIAN, "course")
            pub = await publish(http, base, PATH, codec="VP8", token=tech)
            viewers = [await watch(http, base, PATH) for _ in range(2)]
            refused = await watch(http, base, PATH, expect=503)
            await refused.pc.close()
            await pub.pc.close()  # it drops (no DELETE) …
            back = await publish(http, base, PATH, codec="VP8", token=tech)  # … and comes back at once
            talkback = await publish(http, base, "course/or2/talkback-1", codec="VP8", audio=False,
                                     token=mint(app, Role.FACULTY, "course"))
            for v in viewers:
                await v.close(http)
            await back.pc.close()
            await talkback.pc.close()
    finally:
        await runner.cleanup()


async def test_eight_viewers_on_one_link_join_at_once(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, codec="VP8")
    shared = server.token(Role.VIEWER, name="the hall's link")  # default limit: 10
    viewers = await asyncio.gather(*(watch(server.http, server.base, PATH, token=shared) for _ in range(8)))
    await asyncio.gather(*(v.wait_frames(5) for v in viewers))
    # a hall opens its tiles, Q&A and WebSocket at once: the last two still fit
    more = await asyncio.gather(*(watch(server.http, server.base, PATH, token=shared) for _ in range(2)))
    eleventh = await watch(server.http, server.base, PATH, token=shared, expect=429)
    await eleventh.pc.close()
    for v in [*viewers, *more]:
        await v.close(server.http)
    await pub.pc.close()


async def test_h264_publisher_restart_gives_the_viewer_a_picture_at_once(server: RunningServer) -> None:
    """The hall-tile-after-restart case: the viewer is there first, the publisher arrives."""
    caps = [c.mimeType for c in RTCRtpSender.getCapabilities("video").codecs]
    assert "video/H264" in caps
    tech = server.token(Role.TECHNICIAN)
    pub = await publish(server.http, server.base, PATH, codec="H264", token=tech)
    viewer = await watch(server.http, server.base, PATH)
    await viewer.wait_frames(5)
    async with aiohttp.ClientSession() as http:
        async with http.delete(pub.session_url, headers={"Authorization": f"Bearer {tech}"}):
            pass
    await pub.pc.close()
    count = len(viewer.counters)
    back = await publish(server.http, server.base, PATH, codec="H264", start=90_000, token=tech)
    started = time.monotonic()
    await viewer.wait_until(lambda: len(viewer.counters) > count + 3, 10.0, "no picture after the return")
    print(f"\npicture {time.monotonic() - started:.2f} s after the publisher's return")
    await viewer.close(server.http)
    await back.pc.close()
