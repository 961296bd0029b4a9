"""ORcast's H.264 packetizer: what aiortc's depacketizer (a viewer) reads back, and sizes one
UDP GSO send can take."""

from __future__ import annotations

import pytest
from aiortc.codecs.h264 import h264_depayload

from broadcast.relay.frame import h264_nal_units
from broadcast.sources.synthetic import encode_clip
from broadcast.webrtc.fastsender import gso_runs
from broadcast.webrtc.packetizer import PACKET_MAX, fu_a_fragments, h264_payloads


def annexb(units: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return encode_clip("H264", 1280, 720, 30, 2, 2_000_000)


def test_a_real_encoder_s_frames_come_back_whole(clip) -> None:  # type: ignore[no-untyped-def]
    for packet in clip.video:
        payloads = h264_payloads(packet.data)
        assert payloads and max(map(len, payloads)) <= PACKET_MAX
        assert b"".join(h264_depayload(p) for p in payloads) == annexb(h264_nal_units(packet.data))


@pytest.mark.parametrize("length", [1301, 1302, 2597, 2598, 2599, 10_000, 64_000])
def test_a_large_unit_is_one_gso_run(length: int) -> None:
    nal = bytes([0x65]) + bytes(range(256)) * (length // 256) + b"\x01" * (length % 256 - 1 if length % 256 else 255)
    fragments = fu_a_fragments(nal)
    sizes = [len(f) for f in fragments]
    assert all(s == sizes[0] for s in sizes[:-1]) and sizes[-1] <= sizes[0]
    assert max(sizes) <= PACKET_MAX and max(sizes) - min(sizes) <= len(sizes)  # still even
    assert len(gso_runs(fragments)) == 1
    assert fragments[0][1] & 0x80 and fragments[-1][1] & 0x40  # start and end bits
    assert not any(f[1] & 0xC0 for f in fragments[1:-1])
    assert all(f[0] == (0x60 | 28) and f[1] & 0x1F == 5 for f in fragments)
    assert b"".join(f[2:] for f in fragments) == nal[1:]


def test_small_units_are_aggregated_in_decoding_order() -> None:
    sps, pps, sei = bytes([0x67]) + b"s" * 20, bytes([0x68]) + b"p" * 4, bytes([0x06]) + b"e" * 600
    idr = bytes([0x65]) + b"i" * 5000
    payloads = h264_payloads(annexb([sps, pps, sei, idr]))
    assert payloads[0][0] & 0x1F == 24  # STAP-A of the three
    assert b"".join(h264_depayload(p) for p in payloads) == annexb([sps, pps, sei, idr])
    # a unit that fills a packet alone is sent alone, not aggregated
    big = bytes([0x41]) + b"x" * 1299
    assert h264_payloads(annexb([pps, big, pps])) == [pps, big, pps]
    assert h264_payloads(b"") == []
