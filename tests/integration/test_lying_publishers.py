"""Publishers that lie: a WHIP encoder sending H.264 with B-frames (transcoded once, viewers
see every picture in order), and one whose timestamps jump back while its resolution changes
(viewers follow, the recording cuts a new segment and stays decodable)."""

from __future__ import annotations

import itertools

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from broadcast.participant import Role
from broadcast.relay.frame import EncodedFrame
from tests.conftest import RunningServer
from tests.support.codedtrack import FPS, TICKS, CodedTrack, encode
from tests.support.mediacheck import decode
from tests.support.peers import post_offer, prefer_codec, wait_until, watch

PATH = "course/or1/endoscope"


class TimestampReader:
    """A reader of the feed's video that notes the timestamps the relay sends on."""

    waiting_for_keyframe = False

    def __init__(self) -> None:
        self.timestamps: list[int] = []

    def deliver(self, frame: EncodedFrame) -> None:
        self.timestamps.append(frame.timestamp)

    def producer_reset(self, codec_changed: bool) -> None:
        pass

    def stop(self) -> None:
        pass


async def publish_track(server: RunningServer, track: CodedTrack) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.sender._send_keyframe = lambda: None  # a real encoder would; these packets are fixed
    prefer_codec(pc, "H264")
    await pc.setLocalDescription(await pc.createOffer())
    status, body, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}", pc.localDescription.sdp,
                                       server.token(Role.TECHNICIAN, theatre="or1"))
    assert status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc


async def test_an_encoder_sending_b_frames_is_transcoded_and_seen_in_order(server: RunningServer) -> None:
    clip = encode(320, 240, 4 * FPS, bframes=2)
    assert any(c.pts != c.dts for c in clip), "the test clip has no B-frames"
    pc = await publish_track(server, CodedTrack([clip]))
    viewer = await watch(server.http, server.base, PATH, audio=False, token=server.token(Role.VIEWER))
    try:
        await viewer.wait_frames(60, timeout=30.0)
        # every picture once, in the order they are shown (the clip's counter, lap after lap)
        shown = viewer.counters[5:]
        wrong = [(a, b) for a, b in itertools.pairwise(shown) if b != a + 1 and b != 0]  # 0: the next lap
        assert not wrong, f"pictures out of order or missing: {wrong[:10]} in {shown[:40]}"
        (stream,) = server.broadcaster.streams.values()
        assert stream.info().transcoding == "video H.264 with B-frames → H.264"
        # what leaves the relay is in presentation order, one frame interval apart (a browser
        # plays frames in the order they come, at their timestamps)
        out = TimestampReader()
        stream.video.add_reader(out)
        await wait_until(lambda: len(out.timestamps) > 45, 10.0, lambda: "no frames from the relay")
        stream.video.remove_reader(out)
        steps = [b - a for a, b in itertools.pairwise(out.timestamps)]
        assert sum(1 for d in steps if d == TICKS) >= len(steps) - 2 and all(d > 0 for d in steps), steps
    finally:
        await viewer.close(server.http)
        await pc.close()


@pytest.mark.parametrize("jump", [-3 * FPS])
async def test_timestamps_that_go_back_and_a_new_resolution_keep_viewers_and_recordings_whole(
        server: RunningServer, jump: int) -> None:
    big, small = encode(640, 360, 2 * FPS, bframes=0), encode(320, 240, 2 * FPS, bframes=0, first=1000)
    async with server.http.post(f"{server.base}/api/events/course/recording",
                                json={"action": "start", "theatre": "or1", "feed": "endoscope"}) as resp:
        assert resp.status == 200
    pc = await publish_track(server, CodedTrack([big, small], jump=jump))
    viewer = await watch(server.http, server.base, PATH, audio=False, token=server.token(Role.VIEWER))
    try:
        await viewer.wait_until(lambda: {(640, 360), (320, 240)} <= viewer.sizes and len(viewer.counters) > 150,
                                30.0, f"the viewer did not follow the change of size: {viewer.sizes}")
        (stream,) = server.broadcaster.streams.values()
        outgoing = stream.video._last_out
        await wait_until(lambda: stream.video._last_out != outgoing, 5.0, lambda: "the feed stopped")
    finally:
        await viewer.close(server.http)
        await pc.close()
    async with server.http.post(f"{server.base}/api/events/course/recording",
                                json={"action": "stop", "theatre": "or1", "feed": "endoscope"}) as resp:
        assert resp.status == 200
    async with server.http.get(f"{server.base}/api/recordings", params={"event": "course"}) as resp:
        (rec,) = (await resp.json())["recordings"]
    root = server.broadcaster.recordings.library.root
    reasons = [seg["end_reason"] for seg in rec["segments"]]
    assert "resolution change" in reasons, reasons
    sizes = set()
    for seg in rec["segments"]:
        decoded = decode(root / rec["path"] / seg["file"])  # raises on a broken file
        sizes.add(decoded.size)
        assert len(decoded.counters) == seg["video_frames"]
    assert {(640, 360), (320, 240)} <= sizes
