"""Keyframe and resolution detection from real encoder output, and SDP shaping."""

from __future__ import annotations

import pytest

from broadcast.errors import InvalidOffer, UnsupportedOffer
from broadcast.relay.frame import (
    H264ParameterSets,
    h264_nal_types,
    is_keyframe,
    vp8_resolution,
)
from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import encode_clip
from broadcast.webrtc.sdpoffer import restore_answer, shape_play_offer, shape_publish_offer


@pytest.fixture(scope="module")
def h264_clip():  # type: ignore[no-untyped-def]
    return encode_clip("H264", 352, 288, 30, 2, 300_000, "high")


def test_h264_keyframes_and_resolution(h264_clip) -> None:  # type: ignore[no-untyped-def]
    flags = [is_keyframe("H264", p.data) for p in h264_clip.video]
    assert flags == [p.keyframe for p in h264_clip.video]
    assert sum(flags) == 2
    params = H264ParameterSets()
    params.complete(h264_clip.video[0].data)
    assert params.resolution == (352, 288)


def test_idr_without_parameter_sets_gets_them_prepended(h264_clip) -> None:  # type: ignore[no-untyped-def]
    params = H264ParameterSets()
    first = h264_clip.video[0].data
    params.complete(first)
    bare = b"".join(b"\x00\x00\x00\x01" + u for u in _units(first) if u[0] & 0x1F == 5)
    assert h264_nal_types(bare) == {5}
    fixed = params.complete(bare)
    assert {7, 8, 5} <= h264_nal_types(fixed)


def _units(data: bytes) -> list[bytes]:
    from broadcast.relay.frame import h264_nal_units
    return h264_nal_units(data)


def test_vp8_keyframes_and_resolution() -> None:
    clip = encode_clip("VP8", 320, 180, 30, 1, 300_000)
    assert [is_keyframe("VP8", p.data) for p in clip.video] == [p.keyframe for p in clip.video]
    assert vp8_resolution(clip.video[0].data) == (320, 180)
    assert vp8_resolution(clip.video[1].data) is None


def test_stream_path_rules() -> None:
    assert str(StreamPath.parse("hpb-masterclass/or1/endoscope")) == "hpb-masterclass/or1/endoscope"
    for bad in ("a/b", "A/b/c", "a/b/c/d", "-a/b/c", "a/b/" + "x" * 64, "a/../c"):
        with pytest.raises(ValueError):
            StreamPath.parse(bad)


OFFER = """v=0\r
o=- 1 1 IN IP4 0.0.0.0\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 45\r
c=IN IP4 0.0.0.0\r
a=mid:0\r
a=sendonly\r
a=ice-ufrag:abcd\r
a=ice-pwd:0123456789abcdefghijkl\r
a=fingerprint:sha-256 AA:BB\r
a=setup:actpass\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:102 H264/90000\r
a=rtcp-fb:102 nack pli\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:45 AV1/90000\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r
c=IN IP4 0.0.0.0\r
a=mid:1\r
a=sendonly\r
a=ice-ufrag:abcd\r
a=ice-pwd:0123456789abcdefghijkl\r
a=fingerprint:sha-256 AA:BB\r
a=setup:actpass\r
a=rtpmap:111 opus/48000/2\r
a=rtpmap:0 PCMU/8000\r
"""


def test_publish_offer_keeps_one_video_codec_and_opus() -> None:
    shaped = shape_publish_offer(OFFER)
    assert shaped.video_codec == "H264" and shaped.h264_profile == "640c1f"
    assert "m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\n" in shaped.sdp
    assert "VP8" not in shaped.sdp and "AV1" not in shaped.sdp and "PCMU" not in shaped.sdp
    assert "profile-level-id=42e01f" in shaped.sdp  # what aiortc's codec table knows
    answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n" \
             "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n"
    assert "profile-level-id=640c1f" in restore_answer(answer, shaped)


def test_publisher_keeps_the_codec_its_viewers_use() -> None:
    assert shape_publish_offer(OFFER, keep_codec="VP8").video_codec == "VP8"
    assert shape_publish_offer(OFFER, preferred=("VP8", "H264")).video_codec == "VP8"


def test_play_offer_narrows_to_the_feed_codec() -> None:
    offer = OFFER.replace("a=sendonly", "a=recvonly")
    shaped = shape_play_offer(offer, "VP8", None)
    assert "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n" in shaped.sdp
    with pytest.raises(UnsupportedOffer, match="cannot receive"):
        shape_play_offer(offer.replace("VP8", "VP9"), "VP8", None)


def test_bad_offers() -> None:
    with pytest.raises(InvalidOffer):
        shape_publish_offer("not sdp")
    with pytest.raises(InvalidOffer, match="ICE"):
        shape_publish_offer(OFFER.replace("a=ice-pwd:0123456789abcdefghijkl\r\n", ""))
    with pytest.raises(UnsupportedOffer, match="Opus"):
        shape_publish_offer(OFFER.replace("opus/48000/2", "G722/8000"))
