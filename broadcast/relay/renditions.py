"""A feed's renditions: `high` (the feed as published), `low` (at most 640×360, about
500 kbit/s), and `audio` (no video).

The low rendition is a Producer of its own, next to the feed's video producer. A publisher
that sends it (the technician console, an encoder with a second video track) feeds it
directly, and nothing is encoded here. For a feed published in one rendition (a hardware
encoder, an RTSP camera) the server makes it: the LowRendition reads the feed's video like any
reader, decodes and encodes it once, in a thread (its queue full, it drops to the next
keyframe: it never holds up the high rendition or its viewers), in the feed's codec (H.264
constrained baseline, or VP8). It runs only while the low producer has readers, and stops
GRACE_S after the last one left. In a worker process the maker is a request to the front,
which makes (or relays) it once for every process.

Viewers' consumers move between the producers on a keyframe of the target (consumer.py), so
a switch costs no reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from broadcast.relay.frame import EncodedFrame
from broadcast.relay.producer import Producer, Source
from broadcast.relay.streampath import StreamPath
from broadcast.sources.mediaconvert import EncodeTarget, ThreadedVideoTranscoder

logger = logging.getLogger(__name__)

QUALITIES = ("auto", "high", "low", "audio")
LOW_SIZE = (640, 360)
LOW_BIT_RATE = 500_000
GRACE_S = 5.0  # the low encode goes on this long after its last reader left
DECODERS = {"H264": "h264", "VP8": "vp8"}


class LowMaker(Protocol):
    """What makes a feed's low rendition while it has readers: the server's own encode here
    (LowRendition), or in a worker process a request to the front, which makes it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LowRendition:
    """Reader of the feed's video, source of its low producer: one decode and one encode."""

    def __init__(self, high: Producer, low: Producer, path: str) -> None:
        self.name = f"low rendition of {path}"
        self.high = high
        self.low = low
        self.path = path
        self.waiting_for_keyframe = True
        self.codec: str | None = None
        self.frames_in = 0
        self.frames_skipped = 0   # the encoder could not keep up: dropped to the next keyframe
        self._transcoder: ThreadedVideoTranscoder | None = None
        self._stopped = False

    def start(self) -> None:
        self._open(self.high.codec)
        self.high.add_reader(self)  # asks the publisher for a keyframe to start from

    def _open(self, codec: str | None) -> None:
        if self._transcoder is not None:
            self._transcoder.close()
            self._transcoder = None
        self.codec = codec
        if codec not in DECODERS:
            return  # no video yet (or none to make smaller): waits for the source's codec
        self._transcoder = ThreadedVideoTranscoder(
            DECODERS[codec], self._deliver, self.name, EncodeTarget(codec, LOW_SIZE, LOW_BIT_RATE))
        self.low.attach(self, codec)
        logger.info("%s: making the low rendition (%s, at most %d×%d, %d kbit/s)", self.path, codec,
                    *LOW_SIZE, LOW_BIT_RATE // 1000)

    # -- as a reader of the feed's video --------------------------------------------------
    def deliver(self, frame: EncodedFrame) -> None:
        if self._stopped:
            return
        if frame.codec != self.codec:
            self._open(frame.codec)
        transcoder = self._transcoder
        if transcoder is None:
            return
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                return
            self.waiting_for_keyframe = False
        self.frames_in += 1
        if not transcoder.put(frame.data, frame.timestamp):
            self.frames_skipped += 1
            if self.frames_skipped == 1 or self.frames_skipped % 100 == 0:
                logger.warning("%s: the low rendition's encoder cannot keep up; it skips to the next keyframe "
                               "(%d times so far): the server needs more CPU", self.path, self.frames_skipped)
            self.waiting_for_keyframe = True  # decoding on from here would break the picture
            self.high.request_keyframe()

    def producer_reset(self, codec_changed: bool) -> None:
        self.waiting_for_keyframe = True
        if codec_changed:
            self._open(None)  # reopened for the new codec on its first frame

    def stop(self) -> None:
        """Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        logger.info("%s: stopped making the low rendition (%s)", self.path,
                    "nobody watches it" if not self.low.readers else "the publisher sends its own")
        self.high.remove_reader(self)
        if self._transcoder is not None:
            self._transcoder.close()
            self._transcoder = None
        self.low.detach(self)

    # -- as the source of the low producer --------------------------------------------------
    async def request_keyframe(self) -> bool:
        transcoder = self._transcoder
        if transcoder is None:
            return False
        transcoder.request_keyframe()  # the encoder makes one at once
        return True

    def _deliver(self, data: bytes, timestamp: int) -> None:
        if not self._stopped:
            self.low.push(self, data, timestamp)


class Renditions:
    """The low producer of one stream (beside `high`, its video producer) and what feeds it:
    the publisher's own low rendition when it sends one (a second video track), else a maker
    (the server's encode), on demand."""

    def __init__(self, path: StreamPath, high: Producer, grace_s: float = GRACE_S,
                 make: Callable[[], LowMaker] | None = None) -> None:
        self.path = path
        self.high = high
        self.low = Producer(str(path), "video")
        self.low.readers_listeners.append(self._low_readers)
        self.grace_s = grace_s
        self._make = make or (lambda: LowRendition(self.high, self.low, str(self.path)))
        self.maker: LowMaker | None = None
        self.published: object | None = None  # the publisher's own low source, while it sends one
        self._grace: asyncio.TimerHandle | None = None
        self._closed = False

    def producer(self, quality: str) -> Producer:
        """The producer a viewer of `quality` reads ("audio" viewers keep the high one, muted)."""
        return self.low if quality == "low" else self.high

    @property
    def made_by(self) -> str | None:
        """Who makes the low rendition now: "publisher", "server", or None (nobody watches it)."""
        if self.published is not None:
            return "publisher"
        return "server" if self.maker is not None else None

    # -- the publisher's own low rendition ---------------------------------------------------
    def publish(self, source: Source, codec: str) -> None:
        """A publisher sends its own low rendition: it feeds the low producer (its readers
        resume on its first keyframe) and the server stops making one."""
        self.published = source
        self.low.attach(source, codec)
        if self.maker is not None:
            logger.info("%s: the publisher sends its own low rendition; the server stops making one", self.path)
            self._stop_maker(force=True)

    def unpublish(self, source: Source) -> None:
        if self.published is not source:
            return
        self.published = None
        self.low.detach(source)
        if self.low.readers and not self._closed:
            self._low_readers(len(self.low.readers))  # the server makes it from here on

    # -- made on demand ------------------------------------------------------------------------
    def _low_readers(self, count: int) -> None:
        if self._closed:
            return
        if count:
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            if self.maker is None and self.published is None:
                self.maker = self._make()
                self.maker.start()
        elif self.maker is not None and self._grace is None:
            self._grace = asyncio.get_running_loop().call_later(self.grace_s, self._stop_maker)

    def _stop_maker(self, force: bool = False) -> None:
        if self._grace is not None:
            self._grace.cancel()
        self._grace = None
        if self.maker is not None and (force or not self.low.readers):
            self.maker.stop()
            self.maker = None

    def close(self) -> None:
        """Idempotent: the maker stops, the low producer's readers end."""
        if self._closed:
            return
        self._closed = True
        self._stop_maker(force=True)
        self.low.close()
