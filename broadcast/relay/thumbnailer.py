"""Thumbnails: a still picture of each live feed, so viewers and moderators see what every
operating room shows before they switch to it.

A Thumbnailer is one more reader of a feed's video producer. It never decodes the stream:
it decodes a keyframe on its own (keyframes need no earlier frame) at most every 10 s, in a
worker thread, scales it to 320 pixels wide and encodes a JPEG. Browsers' encoders send
keyframes only when asked, so if none passes for a minute it asks for one — one extra
keyframe a minute, not a stream of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from broadcast.relay.frame import EncodedFrame
from broadcast.relay.producer import Producer
from broadcast.relay.stream import Stream
from broadcast.relay.streampath import StreamPath

logger = logging.getLogger(__name__)

THUMB_WIDTH = 320
CAPTURE_EVERY_S = 10.0
ASK_KEYFRAME_AFTER_S = 60.0
_DECODERS = {"H264": "h264", "VP8": "vp8"}


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    captured_at: float  # unix time
    width: int
    height: int


def render_jpeg(codec: str, data: bytes) -> Thumbnail | None:
    """Decode one keyframe and encode it as a small JPEG (runs in a worker thread)."""
    decoder: Any = av.CodecContext.create(_DECODERS[codec], "r")
    frames = list(decoder.decode(av.Packet(data)))
    frames += list(decoder.decode(None))
    if not frames:
        return None
    picture = frames[0]
    width = min(THUMB_WIDTH, picture.width)
    height = max(2, round(picture.height * width / picture.width / 2) * 2)
    small = picture.reformat(width=width, height=height, format="yuvj420p")
    encoder: Any = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qmin": "2", "qmax": "6"}
    small.pts = 0
    packets = list(encoder.encode(small)) + list(encoder.encode(None))
    return Thumbnail(bytes(packets[0]), time.time(), width, height) if packets else None


class Thumbnailer:
    """The thumbnail reader of one video producer."""

    def __init__(self, producer: Producer, pool: concurrent.futures.Executor,
                 keep: Thumbnail | None = None) -> None:
        self.producer = producer
        self.pool = pool
        self.latest = keep
        self.waiting_for_keyframe = False  # any keyframe will do, whenever it comes
        self._busy = False
        self._last_capture = 0.0
        self._last_ask = self._started = time.monotonic()
        self._closed = False
        producer.add_reader(self)  # asks for a keyframe: the first thumbnail comes at once

    def deliver(self, frame: EncodedFrame) -> None:
        now = time.monotonic()
        if not frame.keyframe or frame.codec not in _DECODERS:
            if now - max(self._last_capture, self._last_ask) > ASK_KEYFRAME_AFTER_S:
                self._last_ask = now
                self.producer.request_keyframe()
            return
        if self._busy or now - self._last_capture < CAPTURE_EVERY_S:
            return
        self._busy = True
        self._last_capture = now
        future = asyncio.get_running_loop().run_in_executor(self.pool, render_jpeg, frame.codec, frame.data)
        future.add_done_callback(self._rendered)

    def _rendered(self, future: asyncio.Future[Thumbnail | None]) -> None:
        self._busy = False
        try:
            thumbnail = future.result()
        except Exception as exc:  # a keyframe the decoder cannot read: try the next one
            logger.info("%s: no thumbnail from this keyframe (%s)", self.producer.path, exc)
            return
        if thumbnail is not None and not self._closed:
            self.latest = thumbnail

    def producer_reset(self, codec_changed: bool) -> None:
        self._last_capture = 0.0  # take the next keyframe of the returning publisher

    def stop(self) -> None:
        if not self._closed:
            self._closed = True
            self.producer.remove_reader(self)


class Thumbnails:
    """Every feed's thumbnailer; the last picture of a feed that left is kept."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="thumbnails")
        self._readers: dict[StreamPath, Thumbnailer] = {}
        self._kept: dict[StreamPath, Thumbnail] = {}

    def on_live(self, stream: Stream) -> None:
        if stream.path not in self._readers:
            self._readers[stream.path] = Thumbnailer(stream.video, self.pool, self._kept.pop(stream.path, None))

    def on_offline(self, stream: Stream) -> None:
        reader = self._readers.pop(stream.path, None)
        if reader is not None:
            reader.stop()
            if reader.latest is not None:
                self._kept[stream.path] = reader.latest

    def forget(self, path: StreamPath) -> None:
        """The feed's stills are gone (paused for privacy: the last one may show what was hidden)."""
        self._kept.pop(path, None)
        reader = self._readers.get(path)
        if reader is not None:
            reader.latest = None

    def get(self, path: StreamPath) -> Thumbnail | None:
        reader = self._readers.get(path)
        return reader.latest if reader is not None and reader.latest else self._kept.get(path)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.stop()
        self._readers.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
