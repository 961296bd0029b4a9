"""The encoded relay end to end: aiortc publishers over WHIP, aiortc viewers over WHEP."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import RunningServer
from tests.support.peers import assert_consecutive, publish, watch

PATH = "course/or1/endoscope"


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_three_viewers_get_every_frame_and_audio(server: RunningServer, codec: str) -> None:
    pub = await publish(server.http, server.base, PATH, codec)
    viewers = [await watch(server.http, server.base, PATH) for _ in range(3)]
    for v in viewers:
        await v.wait_frames(90)
    await asyncio.sleep(0.5)
    sent = pub.video.sent
    for i, v in enumerate(viewers):
        assert_consecutive(v.counters, f"viewer {i}")
        # from its first frame to the last one sent, nothing is missing
        assert v.counters[-1] >= sent - 15, (v.counters[-1], sent)
        assert v.sizes == {(320, 240)}
        assert v.audio_frames > 50, "audio did not arrive"
        assert v.audio_energy > 0, "audio arrived silent"
    info = server.broadcaster.stream_infos()[0]
    assert info.video_codec == codec and info.viewers == 3 and info.width == 320
    # the server really relays: its receivers carry the tap, not aiortc's decoder queue
    stream = next(iter(server.broadcaster.streams.values()))
    assert stream.video.frames_in >= sent - 15
    for v in viewers:
        await v.close(server.http)
    await pub.pc.close()


async def test_late_viewer_gets_first_frame_promptly(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8")
    await asyncio.sleep(3)
    viewer = await watch(server.http, server.base, PATH)
    await viewer.wait_frames(1, timeout=5)
    assert viewer.first_frame_at is not None
    join = viewer.first_frame_at - viewer.started
    assert join < 3.0, f"first frame after {join:.2f} s"
    # the keyframe came from a PLI the relay forwarded, not from waiting for a periodic one
    stream = next(iter(server.broadcaster.streams.values()))
    assert stream.video.keyframe_requests_sent >= 1
    await viewer.close(server.http)
    await pub.pc.close()


async def test_viewers_resume_when_publisher_returns(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "H264")
    viewers = [await watch(server.http, server.base, PATH) for _ in range(2)]
    for v in viewers:
        await v.wait_frames(20)
    async with server.http.delete(pub.session_url) as resp:
        assert resp.status == 200
    await pub.pc.close()
    await asyncio.sleep(1.0)
    # the feed is offline but remembered; viewers' connections stay up
    assert all(v.pc.connectionState == "connected" for v in viewers)
    async with server.http.get(f"{server.base}/api/streams") as resp:
        assert (await resp.json())["streams"] == []
    pub2 = await publish(server.http, server.base, PATH, "H264", start=5000)
    for v in viewers:
        await v.wait_until(lambda v=v: sum(c >= 5000 for c in v.counters) >= 30, timeout=10)
        assert_consecutive([c for c in v.counters if c >= 5000], "resumed viewer")
    for v in viewers:
        await v.close(server.http)
    await pub2.pc.close()


async def test_viewer_pli_is_forwarded_upstream_coalesced(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(10)
    stream = next(iter(server.broadcaster.streams.values()))
    await asyncio.sleep(1.2)  # past the retry window of the join request
    before_requests = stream.video.keyframe_requests_sent
    before_keyframes = stream.video.keyframes_in
    receiver = viewer.pc.getTransceivers()[0].receiver
    ssrc = receiver.getSynchronizationSources()[0].source
    for _ in range(10):  # a burst of picture-loss reports from the viewer
        await receiver._send_rtcp_pli(ssrc)
    await asyncio.sleep(0.8)
    sent = stream.video.keyframe_requests_sent - before_requests
    assert 1 <= sent <= 2, f"{sent} PLIs forwarded for a burst of 10"
    assert stream.video.keyframes_in > before_keyframes, "the publisher was not asked for a keyframe"
    await viewer.close(server.http)
    await pub.pc.close()
