"""A Producer: one incoming track of a feed, fanned out to its readers (viewers' consumers,
recorders, the thumbnailer).

The producer belongs to the stream path, not to a publisher connection: when the publisher
leaves and comes back (or an encoder reconnects after a network loss), the new source is
attached to the same producer and the viewers' consumers simply resume on its first
keyframe. Timestamps are rebased so the outgoing timeline never jumps backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from broadcast.lifecycle import notify
from broadcast.relay.frame import (
    AUDIO_CLOCK_RATE,
    VIDEO_CLOCK_RATE,
    EncodedFrame,
    H264ParameterSets,
    is_keyframe,
    vp8_resolution,
)
from broadcast.relay.mediaclock import MediaClock

logger = logging.getLogger(__name__)

# Keyframe requests (PLI) to the publisher. A request stays outstanding until a keyframe
# arrives: it is sent again every KEYFRAME_RETRY (a PLI can be lost, or swallowed by an
# encoder that is still starting), and every KEYFRAME_MIN_INTERVAL while the source has
# not yet heard its publisher (a PLI needs the publisher's SSRC); never more often than
# KEYFRAME_MIN_INTERVAL (each keyframe is a bitrate burst for the encoder). Requests made
# while one is outstanding ride on it: any keyframe after them serves them all.
KEYFRAME_MIN_INTERVAL = 0.2
KEYFRAME_RETRY = 1.0


class Source(Protocol):
    """Whatever feeds a producer: a publisher's receiver, a synthetic feed, a file."""

    name: str

    async def request_keyframe(self) -> bool: ...


class Reader(Protocol):
    """What a producer fans out to: a viewer's Consumer, a Recorder, the Thumbnailer."""

    # True while the reader drops frames until a keyframe: the producer keeps asking for one
    waiting_for_keyframe: bool

    def deliver(self, frame: EncodedFrame) -> None: ...

    def producer_reset(self, codec_changed: bool) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class NetworkReader(Reader, Protocol):
    """A reader that sends what it reads over the network (a viewer's Consumer): its bytes and
    drops are the feed's egress figures. Readers that write files or stills have none to fake."""

    bytes_sent: int
    frames_dropped: int


class Producer:
    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.clock_rate = VIDEO_CLOCK_RATE if kind == "video" else AUDIO_CLOCK_RATE
        self.codec: str | None = None
        self.source: Source | None = None
        self.readers: set[Reader] = set()
        self._network: set[NetworkReader] = set()  # the readers among them that count bytes
        self.resolution: tuple[int, int] | None = None
        self._h264 = H264ParameterSets()
        # timeline
        self._offset = 0
        self._rebase = True
        self._last_out: int | None = None
        self._last_source_ts = 0
        self.clock = MediaClock(self.clock_rate)  # for A/V sync of recordings
        self._last_push_wall = 0.0
        self._index = 0
        # keyframe requests
        self._kf_task: asyncio.Task[None] | None = None
        self._kf_last_sent = -KEYFRAME_RETRY
        self._kf_outstanding = False  # asked for, no keyframe since
        self._kf_arrived: asyncio.Event | None = None
        self.last_keyframe_at: float | None = None
        # counters
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframes_in = 0
        self.keyframe_requests_sent = 0
        self.retired_bytes_out = 0
        self.frames_held = 0     # frames not forwarded after an incoming loss, until a keyframe
        self._broken = False
        # privacy pause: nothing the source sends reaches any reader (viewers, workers, the
        # recorder, HLS, thumbnails); after it, video starts again on a keyframe
        self.paused = False
        self.frames_paused = 0
        self._resume_on_keyframe = False
        self.retired_frames_dropped = 0
        self._closed = False
        # told the number of readers whenever it changes (a rendition made on demand follows it)
        self.readers_listeners: list[Callable[[int], None]] = []

    # -- sources -------------------------------------------------------------------
    def attach(self, source: Source, codec: str) -> bool:
        """Make `source` the producer's input. Returns True if the codec changed, in which
        case every viewer negotiated for the old codec has been closed (a recorder starts a
        new file instead)."""
        changed = self.codec is not None and codec != self.codec
        if changed:
            self._h264 = H264ParameterSets()
            self.resolution = None
        self.codec = codec
        self.source = source
        self._rebase = True
        self._broken = False
        self._kf_last_sent = -KEYFRAME_RETRY  # a new source is asked at once
        self.clock.reset()
        for reader in list(self.readers):
            try:
                reader.producer_reset(changed)
            except Exception:
                logger.exception("%s %s: reader failed on a source change; it is closed",
                                 self.path, self.kind)
                reader.stop()
        if self.kind == "video" and (self.readers or self._kf_outstanding):
            self.request_keyframe()
        return changed

    def detach(self, source: Source) -> None:
        if self.source is source:
            self.source = None

    # -- media -------------------------------------------------------------------------
    def push(self, source: Source, data: bytes, timestamp: int, after_loss: bool = False,
             keyframe: bool | None = None) -> None:
        """Take one encoded frame from `source` (timestamp in this producer's clock units).

        `after_loss`: the source dropped frames it could not complete right before this one. A
        video frame that is not a keyframe then cannot be decoded cleanly; the feed's pictures
        hold (nothing goes to readers) until the keyframe asked for arrives.
        `keyframe`: already known (a worker's feed, read once by the front); else read here.
        """
        if self._closed or source is not self.source or not data or self.codec is None:
            return
        if keyframe is None:
            keyframe = is_keyframe(self.codec, data)
        if self.kind == "video" and (after_loss or self._broken):
            if not keyframe:
                if not self._broken:
                    logger.info("%s: frames lost on the way in; pictures hold until a keyframe", self.path)
                self._broken = True
                self.frames_held += 1
                self.request_keyframe()
                return
            self._broken = False
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
            self.clock.reset()
        self._last_out = out_ts
        self._last_source_ts = timestamp
        self._last_push_wall = now
        self.clock.on_frame(out_ts, time.time())

        if self.paused or (self._resume_on_keyframe and not keyframe):
            self.frames_paused += 1  # the timeline goes on: readers see a gap, not a jump
            return
        self._resume_on_keyframe = False
        codec = self.codec
        if keyframe and self.kind == "video":
            if codec == "H264":
                data = self._h264.complete(data)
                self.resolution = self._h264.resolution or self.resolution
            elif codec == "VP8":
                self.resolution = vp8_resolution(data) or self.resolution
            self.keyframes_in += 1
            self.last_keyframe_at = now
        self.frames_in += 1
        self.bytes_in += len(data)
        frame = EncodedFrame(codec, data, out_ts, keyframe, self.clock_rate, self._index)
        self._index += 1
        for reader in tuple(self.readers):
            try:
                reader.deliver(frame)
            except Exception:
                logger.exception("%s %s: reader failed; it is closed", self.path, self.kind)
                reader.stop()
        if keyframe and self._kf_outstanding:
            # served, unless a reader is still waiting (it joined on a frame it could not take)
            self._kf_outstanding = any(c.waiting_for_keyframe for c in self.readers)
            if self._kf_arrived is not None:
                self._kf_arrived.set()

    def media_time(self, seconds_ago: float, sender_clock: bool) -> float | None:
        """Where the picture that arrived `seconds_ago` sits on this feed's media clock (the
        clock the recorder puts audio and video on: the sender's when `sender_clock`, else ours
        by arrival). None before the first frame."""
        if self._last_out is None:
            return None
        offset = self.clock.sender_offset if sender_clock else self.clock.arrival_offset
        if offset is None:
            return None
        since_last = time.monotonic() - self._last_push_wall
        return self._last_out / self.clock_rate + offset + since_last - seconds_ago

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Frames flow again; video from the next keyframe (asked for now)."""
        if not self.paused:
            return
        self.paused = False
        if self.kind == "video":
            self._resume_on_keyframe = True
            self.request_keyframe()

    @property
    def last_frame_at(self) -> float | None:
        """When the source last pushed a frame (time.monotonic), None if it never did."""
        return self._last_push_wall or None

    def sender_report(self, source: Source, wall: float, rtp_timestamp: int) -> None:
        """An RTCP sender report of `source`: its wall clock `wall` matches `rtp_timestamp`."""
        if source is not self.source or self._last_out is None:
            return
        # the report's 32-bit timestamp, unwrapped next to the last frame's
        delta = ((rtp_timestamp - self._last_source_ts + 2**31) % 2**32) - 2**31
        self.clock.on_sender_report(wall, self._last_out + delta)

    # -- keyframes ---------------------------------------------------------------------
    def request_keyframe(self) -> None:
        """Ask the source for a keyframe; keep asking (throttled) until one arrives."""
        if self.kind != "video" or self._closed:
            return
        self._kf_outstanding = True
        if self.source is not None and (self._kf_task is None or self._kf_task.done()):
            self._kf_task = asyncio.get_running_loop().create_task(self._ask_until_keyframe())

    @property
    def keyframe_outstanding(self) -> bool:
        return self._kf_outstanding

    async def _ask_until_keyframe(self) -> None:
        """Runs while a request is outstanding and there is a source (attach() restarts it)."""
        arrived = self._kf_arrived = asyncio.Event()
        while self._kf_outstanding and not self._closed:
            source = self.source
            if source is None:
                return  # attach() asks the next source as soon as it arrives
            delay = self._kf_last_sent + KEYFRAME_MIN_INTERVAL - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._kf_last_sent = time.monotonic()
            self.keyframe_requests_sent += 1
            try:
                heard = await source.request_keyframe()
            except Exception:
                logger.warning("%s: keyframe request to %s failed", self.path, source.name, exc_info=True)
                heard = False
            arrived.clear()
            # not heard yet: no SSRC to address a PLI to, so try again soon
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), KEYFRAME_RETRY if heard else KEYFRAME_MIN_INTERVAL)

    # -- readers -----------------------------------------------------------------------
    def add_reader(self, reader: Reader) -> None:
        self.readers.add(reader)
        if isinstance(reader, NetworkReader):
            self._network.add(reader)
        if self.kind == "video":
            self.request_keyframe()
        self._readers_changed()

    def take_over(self, reader: NetworkReader) -> None:
        """A viewer's consumer that moves here from another producer (a rendition switch) on a
        keyframe of this one: no keyframe is asked for, and what it sent before stays counted
        by the producer it came from."""
        self.readers.add(reader)
        self._network.add(reader)
        self.retired_bytes_out -= reader.bytes_sent
        self.retired_frames_dropped -= reader.frames_dropped
        self._readers_changed()

    def remove_reader(self, reader: Reader) -> None:
        if reader not in self.readers:
            return
        self.readers.discard(reader)
        if isinstance(reader, NetworkReader) and reader in self._network:
            self._network.discard(reader)
            self.retired_bytes_out += reader.bytes_sent
            self.retired_frames_dropped += reader.frames_dropped
        self._readers_changed()

    def _readers_changed(self) -> None:
        if self.readers_listeners:
            notify(self.readers_listeners, len(self.readers), what="a readers listener")

    @property
    def bytes_out(self) -> int:
        return self.retired_bytes_out + sum(r.bytes_sent for r in self._network)

    @property
    def frames_dropped(self) -> int:
        return self.retired_frames_dropped + sum(r.frames_dropped for r in self._network)

    def close(self) -> None:
        """Idempotent; ends every reader."""
        if self._closed:
            return
        self._closed = True
        self.source = None
        if self._kf_task is not None:
            self._kf_task.cancel()
        for reader in list(self.readers):
            reader.stop()
