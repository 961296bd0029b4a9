"""Reassembling a publisher's frames with no added latency.

aiortc's JitterBuffer hands a video frame on only when the first packet of the *next* frame
arrives (that is how it knows the frame ended): one whole frame interval of latency, 33 ms at
30 fps, added to every relayed picture. It does the same to audio, one packet (20 ms) late.

`VideoFrameBuffer` hands a frame on as soon as it is complete: every packet from the frame's
first (the one after the previous frame's end) to the one with the marker bit, without a gap.
A frame whose marker was lost ends where a packet with another timestamp begins, as before.
Reordering and loss: packets wait in the ring until the gap is filled (a NACK's retransmission
completes the frame, which goes out then, followed by the frames that were complete behind it);
a gap that is not filled within `gap_wait_s` drops the incomplete frame, asks for a keyframe
(PLI) and marks the next frame handed on `after_loss`, so the producer holds the viewers'
pictures until a keyframe instead of sending them a smeared one.

`AudioPacketBuffer` hands every packet on at once (an Opus packet is a frame); a packet older
than one already handed on is dropped (the decoder has concealed it by then).

Both keep aiortc's `add(packet) -> (pli_flag, frame | None)` interface; frames completed by the
same packet after the first wait in `ready` for the tap to take (`drain`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

SEQ_MOD = 1 << 16
HALF = SEQ_MOD // 2
VIDEO_CAPACITY = 512     # packets in flight: 2 s at 2 Mbit/s, as aiortc's video buffer
GAP_WAIT_S = 0.25        # how long a hole waits for its retransmission (about two NACK round trips)
MAX_MISORDER = 100       # a packet this far behind is late; farther, the sender started over


def seq_delta(a: int, b: int) -> int:
    """a − b on the 16-bit sequence circle, in −32768 … 32767."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= HALF else d


class LossAwareFrame(JitterFrame):
    """A JitterFrame that says whether frames were dropped right before it."""

    def __init__(self, data: bytes, timestamp: int, after_loss: bool) -> None:
        super().__init__(data, timestamp)
        self.after_loss = after_loss


class VideoFrameBuffer(JitterBuffer):
    def __init__(self, capacity: int = VIDEO_CAPACITY, gap_wait_s: float = GAP_WAIT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity, is_video=True)
        self._ring: list[RtpPacket | None] = self._packets  # the base class's ring, used our way
        self._mask = capacity - 1
        self._start: int | None = None  # sequence number where the next frame to hand on begins
        self._newest: int | None = None
        self._scanned = 0               # packets from _start known present, all of one frame
        self._gap_since: float | None = None
        self._gap_wait = gap_wait_s
        self._clock = clock
        self._lost = False              # frames were dropped since the last one handed on
        self.ready: deque[LossAwareFrame] = deque()
        self.frames_dropped = 0
        self.packets_late = 0

    # -- aiortc's interface -------------------------------------------------------------
    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli = False
        seq = packet.sequence_number
        if self._start is None:
            self._start = self._newest = seq
        assert self._newest is not None
        ahead = seq_delta(seq, self._start)
        if -MAX_MISORDER < ahead < 0:
            self.packets_late += 1   # a duplicate, or a retransmission of a frame already dropped
            return False, self._next()
        if ahead < 0 or ahead >= self.capacity:
            # far beyond what the ring holds (a long outage, an encoder restart): start over there
            pli = self._drop_all(seq)
            ahead = 0
        if seq_delta(seq, self._newest) > 0:
            self._newest = seq
        self._ring[seq & self._mask] = packet
        pli = self._assemble() or pli
        return pli, self._next()

    def remove(self, count: int) -> None:  # aiortc calls none of these on a receiver's buffer
        raise NotImplementedError("VideoFrameBuffer manages its own packets")

    def drain(self) -> list[LossAwareFrame]:
        """The frames completed after the one `add` returned, in order."""
        out = list(self.ready)
        self.ready.clear()
        return out

    # -- assembling ---------------------------------------------------------------------
    def _next(self) -> JitterFrame | None:
        return self.ready.popleft() if self.ready else None

    def _assemble(self) -> bool:
        """Hand on every frame that is complete from the start; drop one stuck too long."""
        pli = False
        while True:
            state = self._complete_frame()
            if state == "done":
                self._gap_since = None
                continue
            if state == "waiting":
                return pli
            # a hole with packets beyond it
            now = self._clock()
            if self._gap_since is None:
                self._gap_since = now
            if now - self._gap_since < self._gap_wait:
                return pli
            self._drop_stuck_frame()
            self._gap_since = None
            pli = True

    def _complete_frame(self) -> str:
        """'done' (a frame was handed on), 'waiting' (nothing beyond the start is missing yet),
        or 'gap' (a packet is missing and later ones have arrived)."""
        assert self._start is not None and self._newest is not None
        span = seq_delta(self._newest, self._start) + 1
        first = self._ring[self._start & self._mask]
        if first is None:
            return "gap" if span > 0 else "waiting"
        timestamp = first.timestamp
        count = self._scanned
        while count < span:
            packet = self._ring[(self._start + count) & self._mask]
            if packet is None:
                self._scanned = count
                return "gap"
            if packet.timestamp != timestamp:
                self._emit(count)         # the marker was lost: the frame ended before this one
                return "done"
            count += 1
            if packet.marker:
                self._emit(count)
                return "done"
        self._scanned = count
        return "waiting"

    def _emit(self, count: int) -> None:
        assert self._start is not None
        parts = []
        timestamp = 0
        for i in range(count):
            pos = (self._start + i) & self._mask
            packet = self._ring[pos]
            assert packet is not None
            timestamp = packet.timestamp
            parts.append(packet._data)  # type: ignore[attr-defined]  # set by the receiver's depayload
            self._ring[pos] = None
        self._start = (self._start + count) % SEQ_MOD
        self._scanned = 0
        self.ready.append(LossAwareFrame(b"".join(parts), timestamp, self._lost))
        self._lost = False

    def _drop_stuck_frame(self) -> None:
        """Skip to the first packet of the next frame past the hole."""
        assert self._start is not None and self._newest is not None
        span = seq_delta(self._newest, self._start) + 1
        stuck_ts: int | None = None
        for i in range(span):
            packet = self._ring[(self._start + i) & self._mask]
            if packet is None:
                continue
            if stuck_ts is None:
                stuck_ts = packet.timestamp
            elif packet.timestamp != stuck_ts:
                self._clear(i)
                self.frames_dropped += 1
                self._lost = True
                return
        # everything present belongs to the stuck frame: wait past it for the next one
        self._clear(span)
        self.frames_dropped += 1
        self._lost = True

    def _clear(self, count: int) -> None:
        assert self._start is not None
        for i in range(count):
            self._ring[(self._start + i) & self._mask] = None
        self._start = (self._start + count) % SEQ_MOD
        self._scanned = 0

    def _drop_all(self, seq: int) -> bool:
        had = any(p is not None for p in self._ring)
        self._ring[:] = [None] * self.capacity
        self._start = self._newest = seq
        self._scanned = 0
        self._gap_since = None
        if had:
            self.frames_dropped += 1
        self._lost = True
        return True


class AudioPacketBuffer(JitterBuffer):
    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._last: int | None = None
        self.packets_late = 0
        self.ready: deque[LossAwareFrame] = deque()  # always empty: a packet is its own frame

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and -MAX_MISORDER < seq_delta(seq, self._last) <= 0:
            self.packets_late += 1
            return False, None
        self._last = seq
        return False, JitterFrame(packet._data, packet.timestamp)  # type: ignore[attr-defined]

    def remove(self, count: int) -> None:
        raise NotImplementedError("AudioPacketBuffer keeps no packets")

    def drain(self) -> list[LossAwareFrame]:
        return []


class TimestampUnwrapper:
    """RTP timestamps (32 bits, wrapping) as a count from the first one, for the frames handed on.

    Stands in for aiortc's TimestampMapper, which takes any step back for a wrap: a B-frame
    (shown before the frame sent ahead of it) would push the whole timeline 2^32 ticks on. Here
    a step of less than 2^31 either way is a step (RFC 1982 serial arithmetic), so reordered
    frames keep their own times and only a real wrap carries over."""

    def __init__(self) -> None:
        self._origin: int | None = None  # the first timestamp (aiortc's name: sender reports use it)
        self._last = 0
        self._unwrapped = 0

    def map(self, timestamp: int) -> int:
        if self._origin is None:
            self._origin = self._last = timestamp
            self._unwrapped = 0
            return 0
        step = (timestamp - self._last) & 0xFFFFFFFF
        if step >= 1 << 31:
            step -= 1 << 32
        self._last = timestamp
        self._unwrapped += step
        return self._unwrapped
