"""Renditions: a 720p H.264 feed published once (a WHIP encoder sending a pre-encoded clip)
watched as published, as the low rendition the server makes, and as audio only; a viewer that
switches on the same connection sees the picture size change without a gap."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import EncodedClip, encode_clip
from tests.conftest import RunningServer
from tests.support.peers import Viewer, bearer, publish_clip, wait_until, watch

PATH = "course/or1/endoscope"


@pytest.fixture(scope="module")
def clip() -> EncodedClip:
    return encode_clip("H264", 1280, 720, 30, 4, 2_500_000)


@pytest.fixture
async def published(server: RunningServer, clip: EncodedClip) -> AsyncIterator[RunningServer]:
    """The feed from a WHIP encoder that answers keyframe requests, as hardware encoders do."""
    pc = await publish_clip(server.http, server.base, PATH, clip, server.token(Role.TECHNICIAN, theatre="or1"))
    yield server
    await pc.close()


async def set_quality(server: RunningServer, viewer: Viewer, quality: str, expect: int = 200) -> dict[str, str]:
    async with server.http.post(f"{viewer.session_url}/quality", json={"quality": quality},
                                headers=bearer(viewer.token)) as resp:
        assert resp.status == expect, await resp.text()
        return await resp.json() if expect == 200 else {}


def longest_gap(viewer: Viewer, since: int = 0) -> float:
    times = viewer.frame_times[since:]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def test_low_is_made_once_for_its_viewers_while_a_plain_viewer_gets_720p(published: RunningServer) -> None:
    server = published
    token = server.token(Role.VIEWER)
    plain = await watch(server.http, server.base, PATH, token=token)
    low = await watch(server.http, server.base, PATH + "?quality=low", token=token)
    other_low = await watch(server.http, server.base, PATH + "?quality=low", token=token)
    await plain.wait_frames(30, timeout=20.0)
    await low.wait_frames(30, timeout=20.0)
    await other_low.wait_frames(30, timeout=20.0)
    assert plain.sizes == {(1280, 720)}
    assert low.sizes == other_low.sizes == {(640, 360)}
    renditions = server.broadcaster.streams[StreamPath.parse(PATH)].renditions
    assert renditions.maker is not None and renditions.maker.frames_in > 0  # one decode + encode for both
    assert len(renditions.low.readers) == 2
    async with server.http.get(f"{server.base}/metrics") as resp:
        metrics = await resp.text()
    assert f'orcast_feed_low_viewers{{path="{PATH}"}} 2.0' in metrics
    assert f'orcast_feed_low_encoding{{path="{PATH}"}} 1.0' in metrics
    async with server.http.post(f"{low.session_url}/quality", json={"quality": "medium"},
                                headers=bearer(token)) as resp:
        assert resp.status == 400 and "auto, high, low, audio" in await resp.text()
    await watch(server.http, server.base, PATH + "?quality=best", expect=400, token=token)

    # nobody watches the low rendition any more: the server stops making it
    await low.close(server.http)
    await other_low.close(server.http)
    await wait_until(lambda: renditions.maker is None, 15.0, lambda: "the low rendition is still made")
    await plain.close(server.http)


async def test_a_viewer_switches_down_and_up_on_the_same_connection(published: RunningServer) -> None:
    server = published
    viewer = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
    await viewer.wait_frames(30, timeout=20.0)
    assert viewer.sizes == {(1280, 720)}
    for quality, size in (("low", (640, 360)), ("high", (1280, 720)), ("low", (640, 360))):
        before = len(viewer.frame_times)
        answer = await set_quality(server, viewer, quality)
        assert answer["quality"] == quality
        await viewer.wait_until(lambda s=size: viewer.last_size == s, 10.0, f"no {size} picture")  # type: ignore[misc]
        await viewer.wait_frames(len(viewer.counters) + 20, timeout=10.0)
        assert longest_gap(viewer, before) < 1.0, f"a gap of {longest_gap(viewer, before):.2f} s at the switch"
    assert viewer.pc.connectionState == "connected"
    session = server.broadcaster.get_session(viewer.session_url.rsplit("/", 1)[1])
    assert getattr(session, "rendition", None) == "low"
    # what the viewer's RTCP says of its link (aiortc's receiver sends reports and REMB, as browsers do)
    async with server.http.get(f"{viewer.session_url}/quality", headers=bearer(viewer.token)) as resp:
        state = await resp.json()
    assert state["quality"] == "low" and state["rendition"] == "low"
    assert state["link"]["receiver_reports"] > 0 and state["link"]["lost"] == 0, state
    await viewer.close(server.http)


async def test_the_publisher_s_own_low_rendition_is_relayed_and_nothing_is_encoded(
        server: RunningServer, clip: EncodedClip) -> None:
    # what the console does: a second video track of the same camera, smaller (480×270 here, so
    # that the pictures say whose low rendition the viewers get)
    low_clip = encode_clip("H264", 480, 270, 30, 4, 400_000)
    publisher_token = server.token(Role.TECHNICIAN, theatre="or1")
    pc = await publish_clip(server.http, server.base, PATH, clip, publisher_token, low_clip=low_clip)
    token = server.token(Role.VIEWER)
    plain = await watch(server.http, server.base, PATH, token=token)
    low = await watch(server.http, server.base, PATH + "?quality=low", token=token)
    await plain.wait_frames(30, timeout=20.0)
    await low.wait_frames(30, timeout=20.0)
    assert plain.sizes == {(1280, 720)} and low.sizes == {(480, 270)}
    renditions = server.broadcaster.streams[StreamPath.parse(PATH)].renditions
    assert renditions.maker is None and renditions.made_by == "publisher"
    async with server.http.get(f"{server.base}/metrics") as resp:
        metrics = await resp.text()
    assert f'orcast_feed_low_encoding{{path="{PATH}"}} 0.0' in metrics
    async with server.http.get(f"{server.base}/api/events/course/streams", headers=bearer(token)) as resp:
        feeds = (await resp.json())["streams"]
    assert [f["low_rendition"] for f in feeds if f["path"] == PATH] == ["publisher"]
    # a switch lands on the publisher's low rendition too, and back
    before = len(plain.frame_times)
    await set_quality(server, plain, "low")
    await plain.wait_until(lambda: plain.last_size == (480, 270), 10.0, "no switch to the publisher's low rendition")
    await set_quality(server, plain, "high")
    await plain.wait_until(lambda: plain.last_size == (1280, 720), 10.0, "no switch back up")
    assert longest_gap(plain, before) < 1.0

    # the encoder comes back with one rendition: the low viewer stays, now on the server's own
    await pc.close()
    pc = await publish_clip(server.http, server.base, PATH, clip, publisher_token)
    await low.wait_until(lambda: low.last_size == (640, 360), 20.0, "the server did not take over the low rendition")
    assert renditions.made_by == "server"
    await low.close(server.http)
    await plain.close(server.http)
    await pc.close()


async def test_audio_only_sends_no_video_until_asked(published: RunningServer) -> None:
    server = published
    viewer = await watch(server.http, server.base, PATH + "?quality=audio", token=server.token(Role.VIEWER))
    await viewer.wait_until(lambda: viewer.audio_frames > 50, 15.0, "no audio")
    video = server.broadcaster.streams[StreamPath.parse(PATH)].video
    asked = video.keyframe_requests_sent
    await asyncio.sleep(3.0)
    assert viewer.counters == []  # not one video frame
    assert video.keyframe_requests_sent <= asked + 1  # and the encoder is not asked for keyframes meanwhile
    await set_quality(server, viewer, "high")
    await viewer.wait_frames(20, timeout=10.0)
    assert viewer.sizes == {(1280, 720)}
    await viewer.close(server.http)
