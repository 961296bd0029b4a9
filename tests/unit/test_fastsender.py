"""FastSender writes what aiortc would have: RTP headers a parser reads back with the viewer's
own ids, RTX per RFC 4588 for a NACKed packet, nothing for one that left the history."""

from __future__ import annotations

import random

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

from broadcast.webrtc.fastsender import GSO_MAX_SEGMENTS, HISTORY, FastSender, RtpParameters, gso_runs


class Wire:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.up = True

    def ready(self) -> bool:
        return self.up

    def send(self, packet: bytes) -> None:
        self.packets.append(packet)

    def send_many(self, packets: list[bytes]) -> None:
        self.packets.extend(packets)

    def backlog(self) -> int:
        return 0


PARAMS = RtpParameters(ssrc=0x1234_5678, payload_type=111, mid="0", mid_id=5, abs_send_time_id=9,
                       rtx_ssrc=0x0BAD_F00D, rtx_payload_type=112)


def extension_map() -> HeaderExtensionsMap:
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=5, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=9, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")]))
    return ids


def test_headers_carry_the_viewers_ids_and_one_timeline() -> None:
    wire = Wire()
    sender = FastSender(PARAMS, wire, random.Random(1))
    ntp = 0xE000_0000_8000_0000
    sender.send_frame([b"a" * 1000, b"b" * 500, b"c" * 10], 3000, ntp)
    sender.send_frame([b"d" * 700], 6000, ntp)
    ids = extension_map()
    packets = [RtpPacket.parse(p, ids) for p in wire.packets]
    assert [p.payload_type for p in packets] == [111] * 4
    assert [p.ssrc for p in packets] == [PARAMS.ssrc] * 4
    assert [p.marker for p in packets] == [0, 0, 1, 1]
    first = packets[0].sequence_number
    assert [p.sequence_number for p in packets] == [(first + i) % 65536 for i in range(4)]
    assert packets[3].timestamp - packets[0].timestamp == 3000
    assert all(p.extensions.mid == "0" for p in packets)
    assert packets[0].extensions.abs_send_time == (ntp >> 14) & 0xFFFFFF
    assert packets[2].payload == b"c" * 10
    assert (sender.packets_sent, sender.octets_sent) == (4, 2210)


def test_a_nack_is_answered_with_rtx_and_an_old_one_with_nothing() -> None:
    wire = Wire()
    sender = FastSender(PARAMS, wire, random.Random(2))
    sender.send_frame([b"x" * 100, b"y" * 100], 90, 0)
    lost = RtpPacket.parse(wire.packets[1], extension_map())
    assert sender.retransmit(lost.sequence_number)
    rtx = RtpPacket.parse(wire.packets[-1], extension_map())
    assert (rtx.payload_type, rtx.ssrc) == (112, PARAMS.rtx_ssrc)
    original = unwrap_rtx(rtx, payload_type=111, ssrc=PARAMS.ssrc)
    assert (original.sequence_number, original.payload, original.timestamp) == (
        lost.sequence_number, b"y" * 100, lost.timestamp)
    for _ in range(HISTORY):
        sender.send_frame([b"z"], 180, 0)
    assert not sender.retransmit(lost.sequence_number), "pushed out of the history"


def test_without_rtx_the_same_packet_is_sent_again() -> None:
    wire = Wire()
    sender = FastSender(RtpParameters(ssrc=7, payload_type=96), wire, random.Random(3))
    sender.send_frame([b"only"], 0, 0)
    seq = RtpPacket.parse(wire.packets[0]).sequence_number
    assert sender.retransmit(seq)
    assert wire.packets[1] == wire.packets[0]
    assert wire.packets[0][0] == 0x80, "no extension bit without extensions"


def test_retransmissions_keep_to_their_share_of_the_media_and_not_twice_at_once() -> None:
    wire = Wire()
    sender = FastSender(PARAMS, wire, random.Random(7))
    sender._resend_budget = 0.0  # a connection that has sent nothing has no budget to spend
    sender.send_frame([b"v" * 1000] * 10, 90, 0)   # ~10 kB sent: ~5 kB for retransmissions
    first = RtpPacket.parse(wire.packets[0], extension_map()).sequence_number
    answered = [sender.retransmit((first + i) % 65536) for i in range(10)]
    assert answered == [True] * 4 + [False] * 6, "half of what the media sent"
    assert sender.retransmits_refused == 6
    sender.send_frame([b"w" * 1000] * 10, 180, 0)
    assert not sender.retransmit(first), "asked again before the first answer could arrive"
    assert sender.retransmit((first + 4) % 65536)


def test_a_resent_packet_carries_the_time_it_is_sent_again() -> None:
    now = [0xE000_0000_0000_0000]
    wire = Wire()
    sender = FastSender(PARAMS, wire, random.Random(4), ntp_clock=lambda: now[0])
    sender.send_frame([b"p" * 50], 90, now[0])
    now[0] += 1 << 31  # half a second later
    assert sender.retransmit(RtpPacket.parse(wire.packets[0], extension_map()).sequence_number)
    rtx = RtpPacket.parse(wire.packets[1], extension_map())
    assert rtx.extensions.abs_send_time == (now[0] >> 14) & 0xFFFFFF


def test_padding_resends_recent_packets_as_rtx_up_to_the_budget() -> None:
    wire = Wire()
    sender = FastSender(PARAMS, wire, random.Random(5), ntp_clock=lambda: 0)
    sender.send_frame([b"k" * 1000] * 3, 90, 0)
    media = [RtpPacket.parse(p, extension_map()) for p in wire.packets]
    sent = sender.pad(5000, 0)
    padding = [RtpPacket.parse(p, extension_map()) for p in wire.packets[3:]]
    assert sent >= 5000 and sent == sum(len(p) for p in wire.packets[3:]) == sender.padding_bytes
    assert len(padding) == 5 and all(p.ssrc == PARAMS.rtx_ssrc for p in padding)
    # the newest first, then round again: the receiver already has each, so drops it
    originals = [unwrap_rtx(p, payload_type=111, ssrc=PARAMS.ssrc).sequence_number for p in padding]
    newest = [m.sequence_number for m in reversed(media)]
    assert originals == newest + newest[:2]
    assert sender.packets_sent == 3 and sender.seq == (media[-1].sequence_number + 1) % 65536
    assert sender.pad(0, 0) == 0
    wire.up = False
    assert sender.pad(5000, 0) == 0, "nothing goes out before the connection is up"


def test_padding_without_rtx_is_padding_only_packets_on_the_media_stream() -> None:
    wire = Wire()
    sender = FastSender(RtpParameters(ssrc=7, payload_type=96, abs_send_time_id=9), wire, random.Random(6))
    sender.send_frame([b"m" * 100], 3000, 0)
    sender.pad(600, 1 << 40)
    packets = [RtpPacket.parse(p, extension_map()) for p in wire.packets]
    assert len(packets) == 4
    first = packets[0].sequence_number
    assert [p.sequence_number for p in packets] == [(first + i) % 65536 for i in range(4)]
    for raw, packet in zip(wire.packets[1:], packets[1:], strict=True):
        assert raw[0] & 0x20 and packet.payload == b"", "P bit set; no payload after the padding"
        assert packet.timestamp == packets[0].timestamp and packet.extensions.abs_send_time == (1 << 26) & 0xFFFFFF


def test_gso_runs_hold_one_size_each_the_last_may_be_shorter() -> None:
    sizes = lambda runs: [[len(p) for p in run] for run in runs]  # noqa: E731
    packet = lambda n: bytes(n)  # noqa: E731
    # an H.264 frame: FU-A fragments one byte apart, then a short last one
    frame = [packet(1101)] * 3 + [packet(1100)] * 4 + [packet(300)]
    assert sizes(gso_runs(frame)) == [[1101, 1101, 1101, 1100], [1100, 1100, 1100, 300]]
    assert sizes(gso_runs([packet(200)])) == [[200]]
    assert sizes(gso_runs([packet(100), packet(200), packet(200)])) == [[100], [200, 200]]
    assert gso_runs([]) == []
    keyframe = [packet(1100)] * 130
    runs = gso_runs(keyframe)
    assert all(len(r) <= GSO_MAX_SEGMENTS and sum(map(len, r)) <= 65000 for r in runs)
    assert [p for r in runs for p in r] == keyframe  # every packet, in order
