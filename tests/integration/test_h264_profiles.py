"""H.264 of any profile negotiates and relays (OBS and hardware encoders send High/Main)."""

from __future__ import annotations

import asyncio
import re

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from broadcast.sources.synthetic import ClipTrack, encode_clip
from tests.conftest import RunningServer
from tests.support.peers import post_offer, watch

PATH = "course/or1/endoscope"


def only_profile(sdp: str, profile: str) -> str:
    return re.sub(r"profile-level-id=[0-9a-fA-F]{6}", f"profile-level-id={profile}", sdp)


async def test_high_profile_publisher_and_viewer(server: RunningServer) -> None:
    clip = await asyncio.to_thread(encode_clip, "H264", 320, 240, 30, 2, 500_000, "high")
    assert clip.h264_profile == "64001f"
    pc = RTCPeerConnection()
    track = ClipTrack(clip, "video")
    pc.addTransceiver(track, direction="sendonly")
    pc.getTransceivers()[0].sender._send_keyframe = track.request_keyframe
    pc.getTransceivers()[0].setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"])
    await pc.setLocalDescription(await pc.createOffer())
    # What a browser or encoder that only offers High profile sends.
    offer = only_profile(pc.localDescription.sdp, "64001f")
    status, answer, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}", offer)
    assert status == 201, answer
    assert "profile-level-id=64001f" in answer, "the answer must keep the publisher's profile"
    assert "profile-level-id=42" not in answer
    # aiortc as a client compares profiles too; give it back the one it knows.
    await pc.setRemoteDescription(RTCSessionDescription(only_profile(answer, "42e01f"), "answer"))
    assert server.broadcaster.stream_infos()[0].h264_profile == "64001f"

    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(45)
    # consecutive except where the clip answered the joining viewer's PLI by skipping ahead to
    # its next keyframe (at most once, in the first second: the clip's own keyframe may reach
    # the viewer first, and the PLI, which is sent until a keyframe arrives, lands just after)
    loop = len(clip.video)
    keyframes = {i for i, p in enumerate(clip.video) if p.keyframe}
    gaps = [(i, a, b) for i, (a, b) in enumerate(zip(viewer.counters, viewer.counters[1:], strict=False))
            if b != (a + 1) % loop]
    answered = [g for g in gaps if g[0] < 30 and g[2] % loop in keyframes and g[2] > g[1]]
    assert len(answered) <= 1 and len(gaps) == len(answered), f"frames missing or repeated: {gaps[:5]}"
    assert viewer.sizes == {(320, 240)}
    await viewer.close(server.http)
    await pc.close()


async def test_viewer_offering_high_profile_only_gets_its_profile_back(server: RunningServer) -> None:
    clip = await asyncio.to_thread(encode_clip, "H264", 320, 240, 30, 1, 300_000, "high")
    pub = RTCPeerConnection()
    pub.addTransceiver(ClipTrack(clip, "video"), direction="sendonly")
    await pub.setLocalDescription(await pub.createOffer())
    status, answer, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}",
                                         only_profile(pub.localDescription.sdp, "64001f"))
    assert status == 201
    await pub.setRemoteDescription(RTCSessionDescription(only_profile(answer, "42e01f"), "answer"))

    viewer = RTCPeerConnection()
    viewer.addTransceiver("video", direction="recvonly")
    await viewer.setLocalDescription(await viewer.createOffer())
    offer = viewer.localDescription.sdp
    # drop VP8 so only H.264 High remains, as a picky hardware decoder would offer
    offer = only_profile(offer, "640c1f")
    status, answer, _ = await post_offer(server.http, f"{server.base}/whep/{PATH}", offer)
    assert status == 201, answer
    assert "profile-level-id=640c1f" in answer
    assert "VP8" not in answer, "one video codec end to end"
    await viewer.close()
    await pub.close()
