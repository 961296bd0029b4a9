"""A Consumer: one viewer's outgoing track of one producer.

It is an aiortc `MediaStreamTrack` whose `recv()` returns shared `EncodedFrame`s, which the
viewer's sender packetizes through `SharedPacketizer` (no encode). Its queue is bounded:
a viewer that falls behind drops to the next keyframe and counts what it dropped, so it
never holds up the publisher or other viewers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from broadcast.lifecycle import call_listener
from broadcast.relay.frame import EncodedFrame

if TYPE_CHECKING:
    from broadcast.relay.producer import Producer

logger = logging.getLogger(__name__)

# About 2 s of video at 30 fps or 1 s of Opus: beyond that the viewer is not keeping up.
VIDEO_QUEUE_FRAMES = 60
AUDIO_QUEUE_FRAMES = 50


class Consumer(MediaStreamTrack):
    def __init__(self, producer: Producer, max_queue: int | None = None) -> None:
        super().__init__()
        self.kind = producer.kind
        self.producer = producer
        self.max_queue = max_queue or (
            VIDEO_QUEUE_FRAMES if producer.kind == "video" else AUDIO_QUEUE_FRAMES
        )
        self._queue: deque[EncodedFrame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # Video starts on a keyframe; so does a viewer that overflowed.
        self.waiting_for_keyframe = producer.kind == "video"
        self._recovering = False  # waiting for a keyframe after an overflow
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0
        self.overflows = 0
        self.created_at = time.monotonic()
        self.first_frame_at: float | None = None
        # told the join time (first frame sent - created) once, for metrics
        self.on_first_frame: Callable[[float], None] | None = None
        self._closed = False
        producer.add_reader(self)

    # -- called by the producer, on the event loop --------------------------------------
    def deliver(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                if self._recovering:
                    self.frames_dropped += 1  # lost to this viewer, unlike frames before joining
                return
            self.waiting_for_keyframe = False
            self._recovering = False
        if len(self._queue) >= self.max_queue:
            dropped = len(self._queue) + 1
            self._queue.clear()
            self.frames_dropped += dropped
            self.overflows += 1
            if self.kind == "video":
                if not frame.keyframe:
                    self.waiting_for_keyframe = True
                    self._recovering = True
                    self.producer.request_keyframe()
                    return
                self.frames_dropped -= 1  # this keyframe restarts the queue
            else:
                return
        self._queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def producer_reset(self, codec_changed: bool) -> None:
        """The producer's source changed: wait for its first keyframe, drop stale frames.
        A new codec ends this consumer: its viewer negotiated the old one."""
        if codec_changed:
            self.stop()
            return
        self._queue.clear()
        if self.kind == "video":
            self.waiting_for_keyframe = True
            self._recovering = False

    # -- called by the viewer's RTCRtpSender --------------------------------------------
    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        while not self._queue:
            if self._closed or self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame = self._queue.popleft()
        self.frames_sent += 1
        self.bytes_sent += len(frame.data)
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()  # join time, for metrics
            if self.on_first_frame is not None and self.kind == "video":
                call_listener(self.on_first_frame, self.first_frame_at - self.created_at, what="a join time listener")
        return frame

    @property
    def queued(self) -> int:
        return len(self._queue)

    def request_keyframe(self) -> None:
        """The viewer lost a picture (PLI/FIR): ask upstream, throttled by the producer."""
        if self.kind == "video":
            self.producer.request_keyframe()

    def stop(self) -> None:
        """Idempotent: detaches from the producer and ends the track."""
        if not self._closed:
            self._closed = True
            self._queue.clear()
            self.producer.remove_reader(self)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        super().stop()
