"""A Producer: one incoming track of a feed, fanned out to its consumers.

The producer belongs to the stream path, not to a publisher connection: when the publisher
leaves and comes back (or an encoder reconnects after a network loss), the new source is
attached to the same producer and the viewers' consumers simply resume on its first
keyframe. Timestamps are rebased so the outgoing timeline never jumps backwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

from .frame import (
    AUDIO_CLOCK_RATE,
    VIDEO_CLOCK_RATE,
    EncodedFrame,
    H264ParameterSets,
    is_keyframe,
    vp8_resolution,
)

if TYPE_CHECKING:
    from .consumer import Consumer

logger = logging.getLogger(__name__)

# Keyframe requests (PLI) to the publisher: while a requested keyframe is on its way, further
# requests ride on it; it is asked again after KEYFRAME_RETRY without one; never more often
# than every KEYFRAME_MIN_INTERVAL (each keyframe is a bitrate burst for the encoder).
KEYFRAME_MIN_INTERVAL = 0.2
KEYFRAME_RETRY = 1.0


class Source(Protocol):
    """Whatever feeds a producer: a publisher's receiver, a synthetic feed, a file."""

    name: str

    async def request_keyframe(self) -> bool: ...


class Producer:
    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.clock_rate = VIDEO_CLOCK_RATE if kind == "video" else AUDIO_CLOCK_RATE
        self.codec: str | None = None
        self.source: Source | None = None
        self.consumers: set[Consumer] = set()
        self.resolution: tuple[int, int] | None = None
        self._h264 = H264ParameterSets()
        # timeline
        self._offset = 0
        self._rebase = True
        self._last_out: int | None = None
        self._last_push_wall = 0.0
        self._index = 0
        # keyframe requests
        self._kf_task: asyncio.Task[None] | None = None
        self._kf_last_sent = -KEYFRAME_RETRY
        self._kf_pending = False
        self.last_keyframe_at: float | None = None
        # counters
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframes_in = 0
        self.keyframe_requests_sent = 0
        self.retired_bytes_out = 0
        self.retired_frames_dropped = 0
        self._closed = False

    # -- sources -------------------------------------------------------------------
    def attach(self, source: Source, codec: str) -> bool:
        """Make `source` the producer's input. Returns True if the codec changed, in which
        case every consumer negotiated for the old codec has been closed."""
        changed = self.codec is not None and codec != self.codec
        if changed:
            for consumer in list(self.consumers):
                consumer.stop()
            self._h264 = H264ParameterSets()
            self.resolution = None
        self.codec = codec
        self.source = source
        self._rebase = True
        self._kf_pending = False
        for consumer in self.consumers:
            consumer.producer_reset()
        if self.kind == "video" and self.consumers:
            self.request_keyframe()
        return changed

    def detach(self, source: Source) -> None:
        if self.source is source:
            self.source = None

    # -- media -------------------------------------------------------------------------
    def push(self, source: Source, data: bytes, timestamp: int) -> None:
        """Take one encoded frame from `source` (timestamp in this producer's clock units)."""
        if self._closed or source is not self.source or not data or self.codec is None:
            return
        now = time.monotonic()
        if self._rebase:
            if self._last_out is None:
                self._offset = -timestamp
            else:
                gap = max(1, round((now - self._last_push_wall) * self.clock_rate))
                self._offset = self._last_out + gap - timestamp
            self._rebase = False
        out_ts = timestamp + self._offset
        if self._last_out is not None and out_ts < self._last_out:
            # A source whose clock went backwards: keep the outgoing timeline monotonic.
            self._offset += self._last_out - out_ts + 1
            out_ts = self._last_out + 1
        self._last_out = out_ts
        self._last_push_wall = now

        codec = self.codec
        keyframe = is_keyframe(codec, data)
        if keyframe and self.kind == "video":
            if codec == "H264":
                data = self._h264.complete(data)
                self.resolution = self._h264.resolution or self.resolution
            elif codec == "VP8":
                self.resolution = vp8_resolution(data) or self.resolution
            self.keyframes_in += 1
            self.last_keyframe_at = now
            self._kf_pending = False
        self.frames_in += 1
        self.bytes_in += len(data)
        frame = EncodedFrame(codec, data, out_ts, keyframe, self.clock_rate, self._index)
        self._index += 1
        for consumer in tuple(self.consumers):
            try:
                consumer.deliver(frame)
            except Exception:
                logger.exception("%s %s: consumer failed; it is closed", self.path, self.kind)
                consumer.stop()

    # -- keyframes ---------------------------------------------------------------------
    def request_keyframe(self) -> None:
        """Ask the source for a keyframe, coalesced with one already on its way."""
        if self.kind != "video" or self._closed:
            return
        now = time.monotonic()
        if self._kf_pending and now - self._kf_last_sent < KEYFRAME_RETRY:
            return  # the keyframe already asked for will serve this request too
        if self._kf_task is not None and not self._kf_task.done():
            return  # a request is already scheduled
        delay = max(0.0, self._kf_last_sent + KEYFRAME_MIN_INTERVAL - now)
        self._kf_task = asyncio.get_running_loop().create_task(self._send_keyframe_request(delay))

    async def _send_keyframe_request(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        source = self.source
        if source is None:
            return  # attach() asks the next source as soon as it arrives
        self._kf_last_sent = time.monotonic()
        self._kf_pending = True
        self.keyframe_requests_sent += 1
        try:
            await source.request_keyframe()
        except Exception:
            logger.warning("%s: keyframe request to %s failed", self.path, source.name, exc_info=True)

    # -- consumers ---------------------------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.add(consumer)
        if self.kind == "video":
            self.request_keyframe()

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.discard(consumer)
            self.retired_bytes_out += consumer.bytes_sent
            self.retired_frames_dropped += consumer.frames_dropped

    @property
    def bytes_out(self) -> int:
        return self.retired_bytes_out + sum(c.bytes_sent for c in self.consumers)

    @property
    def frames_dropped(self) -> int:
        return self.retired_frames_dropped + sum(c.frames_dropped for c in self.consumers)

    def close(self) -> None:
        """Idempotent; ends every consumer."""
        if self._closed:
            return
        self._closed = True
        self.source = None
        if self._kf_task is not None:
            self._kf_task.cancel()
        for consumer in list(self.consumers):
            consumer.stop()
