"""A Consumer: one viewer's outgoing track of one producer.

On the fast path (the default) the producer's `deliver` sends each frame to the viewer at once,
through its `FastSender`: written, protected and handed to the socket in the producer's
fan-out loop. Until the viewer's connection is up, frames wait in a bounded queue from a
keyframe on and go out the moment it is (the first picture without waiting for a keyframe).

On aiortc's path (`[relay] send_path = "aiortc"`, kept for comparison) it is an aiortc
`MediaStreamTrack` whose `recv()` returns the shared `EncodedFrame`s, which the viewer's
sender packetizes through `SharedPacketizer` (no encode).

Either way a viewer that falls behind (its queue, or on the fast path its socket's backlog,
overflows) drops to the next keyframe and counts what it dropped, so it never holds up the
publisher or other viewers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from broadcast.lifecycle import call_listener
from broadcast.relay.frame import EncodedFrame
from broadcast.webrtc.aiortchooks import IcePairLink, fast_ntp_time, packetize, report_sent
from broadcast.webrtc.fastsender import FastSender, RtpParameters

if TYPE_CHECKING:
    from broadcast.relay.producer import Producer

logger = logging.getLogger(__name__)

# About 2 s of video at 30 fps or 1 s of Opus: beyond that the viewer is not keeping up.
VIDEO_QUEUE_FRAMES = 60
AUDIO_QUEUE_FRAMES = 50
# Bytes the viewer's socket has not taken yet (asyncio keeps them) before it counts as behind:
# about 1 s of 2 Mbit/s video.
MAX_SOCKET_BACKLOG = 256 * 1024


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
        self.fast: FastSender | None = None
        self._link: IcePairLink | None = None
        self._rtp_sender: RTCRtpSender | None = None
        # renditions (fast path): the outgoing timeline stays one across producers
        self._ts_offset = 0
        self._last_ts: int | None = None
        self._last_sent_wall = 0.0
        self._rebase = False
        self._switch: _SwitchTap | None = None  # waiting for the target's keyframe
        self.muted = False  # audio only: the video consumer sends nothing
        producer.add_reader(self)

    # -- called by the producer, on the event loop --------------------------------------
    def deliver(self, frame: EncodedFrame) -> None:
        if self._closed or self.muted:
            return
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                if self._recovering:
                    self.frames_dropped += 1  # lost to this viewer, unlike frames before joining
                return
            self.waiting_for_keyframe = False
            self._recovering = False
        link = self._link
        if link is not None and link.ready():
            self._send_now(frame, link)
            return
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

    # -- the fast path ------------------------------------------------------------------
    def use_fast_sender(self, sender: RTCRtpSender, params: RtpParameters, link: IcePairLink) -> FastSender:
        """Called when aiortc starts the viewer's sender: from now on frames go out here."""
        self._rtp_sender = sender
        self._link = link
        self.fast = FastSender(params, link, ntp_clock=fast_ntp_time)
        return self.fast

    def _send_now(self, frame: EncodedFrame, link: IcePairLink) -> None:
        fast = self.fast
        assert fast is not None and self._rtp_sender is not None
        if self._queue:  # what waited for the connection, from a keyframe on
            waiting = list(self._queue)
            self._queue.clear()
            for earlier in waiting:
                self._send_frame(fast, earlier)
        if link.backlog() > MAX_SOCKET_BACKLOG:
            self.frames_dropped += 1
            self.overflows += 1
            if self.kind == "video" and not frame.keyframe:
                self.waiting_for_keyframe = True
                self._recovering = True
                self.producer.request_keyframe()
            return
        self._send_frame(fast, frame)

    def _send_frame(self, fast: FastSender, frame: EncodedFrame) -> None:
        payloads = packetize(frame)
        if not payloads:
            return
        ntp = fast_ntp_time()
        now = time.monotonic()
        if self._rebase:  # the first frame from another producer (or after a mute): continue the timeline
            self._rebase = False
            if self._last_ts is not None:
                gap = max(1, round((now - self._last_sent_wall) * frame.clock_rate))
                self._ts_offset = (self._last_ts + gap - frame.timestamp) % 2**32
        timestamp = (frame.timestamp + self._ts_offset) % 2**32
        self._last_ts, self._last_sent_wall = timestamp, now
        fast.send_frame(payloads, timestamp, ntp)
        assert self._rtp_sender is not None
        report_sent(self._rtp_sender, ntp, fast)
        self._count_sent(frame)

    def _count_sent(self, frame: EncodedFrame) -> None:
        self.frames_sent += 1
        self.bytes_sent += len(frame.data)
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()  # join time, for metrics
            if self.on_first_frame is not None and self.kind == "video":
                call_listener(self.on_first_frame, self.first_frame_at - self.created_at, what="a join time listener")

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

    # -- renditions ------------------------------------------------------------------------
    def switch_to(self, target: Producer) -> None:
        """Read `target` from its next keyframe on (the current producer's frames go on until
        then, so the picture never breaks). Fast path only: aiortc's sender keeps one timeline
        per track, which a second producer's would break."""
        if self._closed or self.kind != "video":
            return
        self._cancel_switch()
        if target is self.producer:
            return
        if self.fast is None and self._rtp_sender is not None:
            logger.info("%s: no rendition switch on aiortc's send path", self.producer.path)
            return
        self._switch = _SwitchTap(self, target)
        target.add_reader(self._switch)  # asks the target for a keyframe

    def set_muted(self, muted: bool) -> None:
        """Audio only (video sends nothing, the connection stays) or back, from a keyframe."""
        if muted == self.muted or self.kind != "video":
            return
        self.muted = muted
        # a muted consumer waits for nothing: else the producer would keep asking for keyframes
        self.waiting_for_keyframe = not muted
        self._queue.clear()
        if not muted:
            self._recovering = False
            self._rebase = True
            self.producer.request_keyframe()

    def _cancel_switch(self) -> None:
        tap, self._switch = self._switch, None
        if tap is not None:
            tap.target.remove_reader(tap)

    def _switched(self, tap: _SwitchTap, frame: EncodedFrame) -> None:
        """The target's keyframe came: move there, and send it."""
        if tap is not self._switch or self._closed:
            return
        self._switch = None
        tap.target.remove_reader(tap)
        self.producer.remove_reader(self)
        self.producer = tap.target
        tap.target.take_over(self)
        self._queue.clear()
        self.waiting_for_keyframe = False
        self._recovering = False
        self._rebase = True
        self.deliver(frame)

    # -- called by the viewer's RTCRtpSender --------------------------------------------
    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        # on the fast path aiortc's send loop waits here, idle, until the consumer stops
        while self.fast is not None or not self._queue:
            if self._closed or self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame = self._queue.popleft()
        self._count_sent(frame)
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
            self._cancel_switch()
            self.producer.remove_reader(self)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        super().stop()


class _SwitchTap:
    """A consumer's look-out on the producer it switches to: the first keyframe completes the
    switch. Not a network reader: it sends nothing itself."""

    def __init__(self, consumer: Consumer, target: Producer) -> None:
        self.consumer = consumer
        self.target = target
        self.waiting_for_keyframe = True

    def deliver(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self.waiting_for_keyframe = False
            self.consumer._switched(self, frame)

    def producer_reset(self, codec_changed: bool) -> None:
        self.waiting_for_keyframe = True

    def stop(self) -> None:
        self.consumer._cancel_switch()
