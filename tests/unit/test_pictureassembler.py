"""Whole pictures from a pulled camera's packets: a keyframe the demuxer splits in two is
joined (as FFmpeg's RTSP demuxer does with a connection's first IDR), and a connection that
begins in the middle of a picture waits for the next whole keyframe."""

from __future__ import annotations

import av
import pytest

from broadcast.relay.frame import h264_nal_units
from broadcast.sources.mediaconvert import VCL_TYPES, PictureAssembler, starts_picture
from broadcast.sources.synthetic import EncodedClip, encode_clip


def annexb(units: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


@pytest.fixture(scope="module")
def clip() -> EncodedClip:
    return encode_clip("H264", 1280, 720, 30, 2, 2_000_000)


def decoded(pictures: list[bytes]) -> list[bytes]:
    """Each picture's luma plane, through FFmpeg's decoder."""
    decoder = av.CodecContext.create("h264", "r")
    planes = []
    for data in pictures:
        for frame in decoder.decode(av.Packet(data)):
            planes.append(bytes(frame.planes[0]))
    for frame in decoder.decode(None):
        planes.append(bytes(frame.planes[0]))
    return planes


def split(data: bytes) -> tuple[bytes, bytes]:
    """A two-slice picture as the demuxer gave it: the leading units and the top slice, then
    the parameter sets again and the other slice(s)."""
    units = h264_nal_units(data)
    slices = [i for i, u in enumerate(units) if u[0] & 0x1F in VCL_TYPES]
    assert len(slices) >= 2, "the clip's encoder should make two slices per picture"
    params = [u for u in units if u[0] & 0x1F in (7, 8)]
    return annexb(units[:slices[0] + 1]), annexb(params + units[slices[0] + 1:])


def test_a_keyframe_in_two_packets_is_one_whole_picture(clip: EncodedClip) -> None:
    frames = clip.video[:10]
    assert frames[0].keyframe and not any(p.keyframe for p in frames[1:])
    top, bottom = split(frames[0].data)
    assert not starts_picture(next(u for u in h264_nal_units(bottom) if u[0] & 0x1F in VCL_TYPES))
    for first_ts in (None, frames[0].pts):  # a connection's first IDR has no timestamp; later ones do
        assembler = PictureAssembler()
        assert assembler.push(top, first_ts, True) == []  # held: the next packet may continue it
        assert assembler.push(bottom, frames[0].pts, True) == []  # it does: joined, still held
        out = assembler.push(frames[1].data, frames[1].pts, False)  # the next picture: both go out
        assert [ts for _, ts in out] == [frames[0].pts, frames[1].pts] and out[1][0] == frames[1].data
        for p in frames[2:]:  # whole pictures pass at once, as they are
            got = assembler.push(p.data, p.pts, p.keyframe)
            assert got == [(p.data, p.pts)]
            out += got
        assert decoded([d for d, _ in out]) == decoded([p.data for p in frames])  # the same pictures, to the pixel
        assert assembler.dropped == 0


def test_a_connection_that_begins_mid_picture_waits_for_a_whole_keyframe(clip: EncodedClip) -> None:
    keys = [i for i, p in enumerate(clip.video) if p.keyframe]
    assert len(keys) >= 2
    first, second = keys[0], keys[1]
    assembler = PictureAssembler()
    _top, bottom = split(clip.video[first].data)
    assert assembler.push(bottom, clip.video[first].pts, True) == []  # half a keyframe: not sent
    for p in clip.video[first + 1:second]:  # pictures that refer to the half that never came
        assert assembler.push(p.data, p.pts, p.keyframe) == []
    assert assembler.push(clip.video[second].data, clip.video[second].pts, True) == []  # held …
    after = clip.video[second + 1]
    out = assembler.push(after.data, after.pts, after.keyframe)  # … until the next picture starts
    assert out == [(clip.video[second].data, clip.video[second].pts), (after.data, after.pts)]
    assert assembler.synced and assembler.dropped == second - first
