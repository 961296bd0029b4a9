"""Reassembly without an added frame of latency: complete on the marker, in order through
reordering and retransmission, a hole that never fills dropped with a PLI and `after_loss`."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from broadcast.webrtc.framebuffer import GAP_WAIT_S, AudioPacketBuffer, LossAwareFrame, VideoFrameBuffer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def packet(seq: int, ts: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=ts, marker=int(marker))
    p._data = data  # type: ignore[attr-defined]  # what the receiver's depayload sets
    return p


def frame_packets(first_seq: int, ts: int, parts: int) -> list[RtpPacket]:
    return [packet(first_seq + i, ts, i == parts - 1, bytes([ts % 251, i])) for i in range(parts)]


def feed(buffer: VideoFrameBuffer, packets: list[RtpPacket]) -> tuple[list[LossAwareFrame], bool]:
    """Every frame handed on (what `add` returns, then what the tap drains) and whether a PLI was asked."""
    out: list[LossAwareFrame] = []
    pli = False
    for p in packets:
        asked, frame = buffer.add(p)
        pli = pli or asked
        if frame is not None:
            assert isinstance(frame, LossAwareFrame)
            out.append(frame)
        out.extend(buffer.drain())
    return out, pli


def test_a_frame_goes_out_on_its_marker_packet_not_the_next_frame() -> None:
    buffer = VideoFrameBuffer(clock=Clock())
    first = frame_packets(1000, 3000, 3)
    assert buffer.add(first[0]) == (False, None)
    assert buffer.add(first[1]) == (False, None)
    pli, frame = buffer.add(first[2])  # the marker: complete now, nothing of frame 2 needed
    assert not pli and frame is not None
    assert frame.data == b"".join(p._data for p in first)  # type: ignore[attr-defined]
    assert frame.timestamp == 3000 and not frame.after_loss  # type: ignore[attr-defined]


def test_a_lost_marker_ends_the_frame_where_the_next_begins() -> None:
    buffer = VideoFrameBuffer(clock=Clock())
    a = [packet(1, 3000, False, b"a0"), packet(2, 3000, False, b"a1")]  # no marker (some encoders)
    b = frame_packets(3, 6000, 2)
    frames, _ = feed(buffer, a + b)
    assert [f.timestamp for f in frames] == [3000, 6000]
    assert frames[0].data == b"a0a1"


def test_reordered_and_retransmitted_packets_complete_frames_in_order() -> None:
    clock = Clock()
    buffer = VideoFrameBuffer(clock=clock)
    f1, f2, f3 = frame_packets(65534, 3000, 3), frame_packets(1, 6000, 2), frame_packets(3, 9000, 2)
    missing = f1[1]  # lost, NACKed; frames 2 and 3 arrive complete meanwhile (across the wrap)
    frames, pli = feed(buffer, [f1[0], f1[2], *f2, *f3])
    assert frames == [] and not pli
    clock.now = GAP_WAIT_S / 2
    frames, pli = feed(buffer, [missing])  # the retransmission: all three go out at once, in order
    assert [f.timestamp for f in frames] == [3000, 6000, 9000] and not pli
    assert not any(f.after_loss for f in frames)
    # a late duplicate of what went out already is ignored
    assert feed(buffer, [f1[0]]) == ([], False)
    assert buffer.packets_late == 1


def test_a_hole_that_never_fills_drops_its_frame_asks_for_a_keyframe_and_marks_the_next() -> None:
    clock = Clock()
    buffer = VideoFrameBuffer(clock=clock)
    f1, f2, f3 = frame_packets(10, 3000, 3), frame_packets(13, 6000, 2), frame_packets(15, 9000, 2)
    frames, pli = feed(buffer, [f1[0], f1[2], *f2])
    assert frames == [] and not pli
    clock.now = GAP_WAIT_S + 0.01
    frames, pli = feed(buffer, f3[:1])
    assert pli, "the frame that cannot complete asks for a keyframe"
    assert [f.timestamp for f in frames] == [6000]
    assert frames[0].after_loss, "the frame after a dropped one says so"
    frames, _ = feed(buffer, f3[1:])
    assert [f.timestamp for f in frames] == [9000] and not frames[0].after_loss
    assert buffer.frames_dropped == 1
    # the retransmission that comes too late changes nothing
    assert feed(buffer, [f1[1]]) == ([], False)


def test_a_lost_first_packet_is_a_hole_too() -> None:
    clock = Clock()
    buffer = VideoFrameBuffer(clock=clock)
    f1, f2 = frame_packets(100, 3000, 2), frame_packets(102, 6000, 2)
    feed(buffer, f1)
    frames, _ = feed(buffer, [f2[1], *frame_packets(104, 9000, 1)])  # f2's first packet lost
    assert frames == []
    clock.now = 1.0
    frames, pli = feed(buffer, frame_packets(105, 12000, 1))
    assert pli and [f.timestamp for f in frames] == [9000, 12000] and frames[0].after_loss


def test_a_sender_that_starts_over_far_away_is_followed() -> None:
    buffer = VideoFrameBuffer(clock=Clock())
    feed(buffer, frame_packets(5000, 3000, 2))
    frames, pli = feed(buffer, frame_packets(40000, 777, 2))  # new sequence space
    assert [f.timestamp for f in frames] == [777] and pli and frames[0].after_loss


def test_audio_goes_out_packet_by_packet_and_late_packets_are_dropped() -> None:
    buffer = AudioPacketBuffer()
    got = []
    for seq in (1, 2, 4, 3, 5):  # 3 arrives after 4: the decoder has concealed it by then
        _, frame = buffer.add(packet(seq, seq * 960, False, bytes([seq])))
        got.append(frame.data if frame else None)
    assert got == [b"\x01", b"\x02", b"\x04", None, b"\x05"]
    assert buffer.packets_late == 1
