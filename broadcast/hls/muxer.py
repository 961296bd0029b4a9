"""HlsMuxer: one more reader of a feed (like the recorder) that muxes its encoded frames into
fragmented MP4 for LL-HLS — H.264 and Opus as they came, never decoded.

On the event loop it only queues the shared frames. A thread of its own gives them
presentation times on one timeline (audio placed against the picture by the wall clock, as the
recorder does) and hands them to FFmpeg's mp4 muxer, which cuts a fragment (`moof` + `mdat`)
at every keyframe and every `part_s`. Each fragment is one LL-HLS part; the playlist starts a
segment at the first keyframe part after the target duration. A slow muxer drops frames
(and starts again on a keyframe); it never holds up the publisher or the viewers.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import av

from broadcast.hls.fmp4 import Track, boxes, fragment_runs, init_tracks
from broadcast.recording.segmentwriter import mux_encoded
from broadcast.relay.frame import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE, EncodedFrame, keyframe_resolution
from broadcast.sources.mediaconvert import h264_profile_level_id

if TYPE_CHECKING:
    from broadcast.relay.mediaclock import MediaClock
    from broadcast.relay.producer import Producer
    from broadcast.relay.stream import Stream

logger = logging.getLogger(__name__)

OPUS_SAMPLES = 960
MAX_QUEUE_BYTES = 16 * 1024 * 1024    # frames waiting for the muxer (~1 min of 2 Mbit/s)
KEYFRAME_ASK_AFTER_SEGMENTS = 2.0      # a segment this many targets long asks the encoder for a keyframe
_VIDEO_TB = fractions.Fraction(1, VIDEO_CLOCK_RATE)
_AUDIO_TB = fractions.Fraction(1, AUDIO_CLOCK_RATE)

# (init number, fMP4 bytes, codecs, resolution) and (init number, part bytes, duration, independent, wall)
InitSink = Callable[[int, bytes, str, "tuple[int, int] | None"], None]
PartSink = Callable[[int, bytes, float, bool, float], None]


class NotMuxable(ValueError):
    """A feed HLS cannot carry without transcoding (VP8 video)."""


class _Item(NamedTuple):
    kind: str
    frame: EncodedFrame
    offset: float | None   # the frame's clock offset (wall = ts / rate + offset) when it arrived
    synced: bool           # both tracks' offsets come from sender reports


class _Restart(NamedTuple):
    reason: str


_STOP = object()


class HlsInput:
    """The muxer's reader on one producer."""

    def __init__(self, muxer: HlsMuxer, producer: Producer) -> None:
        self.muxer = muxer
        self.producer = producer
        self.kind = producer.kind
        self.waiting_for_keyframe = False  # the muxer asks for its own keyframes
        self._closed = False
        producer.add_reader(self)

    def deliver(self, frame: EncodedFrame) -> None:
        self.muxer.enqueue(self, frame)

    def producer_reset(self, codec_changed: bool) -> None:
        self.muxer.restart("codec change" if codec_changed else "reconnect")

    def stop(self) -> None:
        if not self._closed:
            self._closed = True
            self.producer.remove_reader(self)


class _Sink:
    """The file FFmpeg writes to: bytes kept in memory, taken box by box."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: Any) -> int:
        self.buffer += data
        return len(data)

    def take(self) -> list[tuple[bytes, bytes]]:
        """The complete top-level boxes written so far, as (type, bytes)."""
        out, end = [], 0
        for box in boxes(self.buffer):
            out.append((box.kind, bytes(self.buffer[box.start:box.end])))
            end = box.end
        del self.buffer[:end]
        return out


class _Container:
    """One run of FFmpeg's muxer: one init section and the fragments after it."""

    def __init__(self, number: int, width: int, height: int, audio: bool, part_s: float) -> None:
        self.number = number
        self.size = (width, height)
        self.sink = _Sink()
        self.av: Any = av.open(self.sink, "w", format="mp4", options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
            "frag_duration": str(int(part_s * 1_000_000)), "flush_packets": "1",
            "max_interleave_delta": "100000"})
        self.video: Any = self.av.add_mux_stream("h264", rate=30, width=width, height=height)
        self.video.time_base = _VIDEO_TB
        self.audio: Any = None
        if audio:
            # libopus only supplies the OpusHead the mp4 needs; nothing is encoded
            self.audio = self.av.add_stream("libopus", rate=AUDIO_CLOCK_RATE, layout="stereo")
            self.audio.time_base = _AUDIO_TB
        self.tracks: dict[int, Track] = {}
        self.pending: bytes | None = None  # a moof waiting for its mdat
        self.last_video_dts = -1
        self.last_audio_dts = -1
        self.audio_end = 0

    def mux(self, stream: Any, data: bytes, ts: int, time_base: fractions.Fraction, keyframe: bool) -> None:
        mux_encoded(self.av, stream, data, ts, time_base, keyframe)

    def close(self) -> None:
        try:
            self.av.close()
        except Exception as exc:  # what is lost is the fragment being filled
            logger.debug("hls: closing the muxer: %s", exc)


class HlsMuxer:
    def __init__(self, path: str, part_s: float, target_s: float, on_init: InitSink, on_part: PartSink,
                 variant: str = "high") -> None:
        self.path = path
        self.variant = variant  # high: the feed's video; low: its low rendition's
        self.part_s = part_s
        self.target_s = target_s
        self._on_init = on_init
        self._on_part = on_part
        self.error: str | None = None
        self.frames_dropped = 0
        self.parts = 0
        self._loop = asyncio.get_running_loop()
        self._inputs: list[HlsInput] = []
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued_bytes = 0       # on the loop
        self._taken_bytes = 0        # by the thread
        self._overflowing = False
        self._stopping = False
        self._has_audio = False
        # thread state
        self._container: _Container | None = None
        self._inits = 0
        self._video_base = 0
        self._base_wall = 0.0
        self._audio_base: int | None = None
        self._segment_start = 0      # pts of the keyframe the current segment began with
        self._last_ask = 0.0
        self._ftyp = b""
        self._codecs = ""
        self._size: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name=f"hls {path}", daemon=True)
        self._thread.start()

    # -- the event loop side -----------------------------------------------------------
    def attach(self, stream: Stream) -> None:
        """Read `stream` (the feed went live, or came back). Raises NotMuxable for VP8."""
        self.detach()
        if stream.video.codec not in (None, "H264"):
            self.error = (f"{stream.video.codec} video cannot go into HLS without transcoding; publish this feed "
                          "in H.264 (the console's codec setting, or the encoder's) for large audiences")
            raise NotMuxable(self.error)
        if stream.video.codec is None:
            self.error = "this feed has no video; HLS here carries video feeds"
            raise NotMuxable(self.error)
        self.error = None
        self._has_audio = stream.audio.codec is not None
        # reading the low rendition makes the server encode it if the publisher sends none
        video = stream.renditions.low if self.variant == "low" else stream.video
        self._inputs = [HlsInput(self, video)] + ([HlsInput(self, stream.audio)] if self._has_audio else [])
        self._queue.put(_Restart("attach"))

    def reads(self, stream: Stream) -> bool:
        mine = (stream.renditions.low if self.variant == "low" else stream.video, stream.audio)
        return bool(self._inputs) and all(i.producer in mine for i in self._inputs)

    def detach(self) -> None:
        inputs, self._inputs = self._inputs, []
        for reader in inputs:
            reader.stop()

    def restart(self, reason: str) -> None:
        self._queue.put(_Restart(reason))

    def enqueue(self, reader: HlsInput, frame: EncodedFrame) -> None:
        size = len(frame.data)
        if self._queued_bytes - self._taken_bytes + size > MAX_QUEUE_BYTES:
            if not self._overflowing:
                self._overflowing = True
                logger.warning("%s: HLS falls behind; frames are dropped until it catches up", self.path)
            self.frames_dropped += 1
            return
        if self._overflowing:
            if reader.kind != "video" or not frame.keyframe:
                self.frames_dropped += 1
                return
            self._overflowing = False
            self._queue.put(_Restart("gap"))
        self._queued_bytes += size
        clock: MediaClock = reader.producer.clock
        others = [i.producer.clock for i in self._inputs]
        synced = all(c.sender_offset is not None for c in others)
        offset = clock.sender_offset if synced else clock.arrival_offset
        self._queue.put(_Item(reader.kind, frame, offset, synced))

    async def stop(self) -> None:
        """Idempotent: the last fragment is handed over, the thread ends."""
        if not self._stopping:
            self._stopping = True
            self.detach()
            self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closing

    # -- the muxer thread --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    self._close()
                    return
                if isinstance(item, _Restart):
                    self._close()
                elif isinstance(item, _Item):
                    self._taken_bytes += len(item.frame.data)
                    if item.kind == "video":
                        self._video(item)
                    else:
                        self._audio(item)
                    self._drain()
            except Exception as exc:  # one bad frame: a new init section on the next keyframe
                logger.warning("%s: HLS muxing failed (%s: %s); starting again on the next keyframe", self.path,
                               type(exc).__name__, exc)
                self._container = None

    def _wall(self, item: _Item) -> float:
        return item.frame.timestamp / item.frame.clock_rate + (item.offset or 0.0)

    def _video(self, item: _Item) -> None:
        frame = item.frame
        box = self._container
        if box is not None and frame.keyframe and frame.codec == "H264":
            size = keyframe_resolution(frame.codec, frame.data)
            if size is not None and size != box.size:
                self._close()  # a new init section for the new size (a discontinuity)
                box = None
        if box is None:
            if not frame.keyframe or frame.codec != "H264":
                self._ask_keyframe()
                return
            box = self._open(item)
        pts = frame.timestamp - self._video_base
        dts = max(pts, box.last_video_dts + 1)
        if frame.keyframe:
            self._segment_start = dts
        elif (dts - self._segment_start) / VIDEO_CLOCK_RATE >= KEYFRAME_ASK_AFTER_SEGMENTS * self.target_s:
            self._ask_keyframe()
        box.mux(box.video, frame.data, dts, _VIDEO_TB, frame.keyframe)
        box.last_video_dts = dts

    def _audio(self, item: _Item) -> None:
        box = self._container
        if box is None or box.audio is None:
            return  # a run starts with the picture
        frame = item.frame
        expected = round((self._wall(item) - self._base_wall) * AUDIO_CLOCK_RATE)
        if self._audio_base is None:
            if expected < -OPUS_SAMPLES // 2:
                return  # sounded before the run's first picture
            self._audio_base = frame.timestamp - max(0, expected)
        pts = frame.timestamp - self._audio_base
        if item.synced and abs(expected - pts) > 2 * OPUS_SAMPLES:
            self._audio_base -= expected - pts  # the sender's clocks drift apart: realign on its reports
            pts = expected
        if pts < box.audio_end:
            return
        box.mux(box.audio, frame.data, pts, _AUDIO_TB, True)
        box.audio_end = pts + OPUS_SAMPLES

    def _open(self, item: _Item) -> _Container:
        frame = item.frame
        width, height = keyframe_resolution(frame.codec, frame.data) or (1280, 720)
        self._inits += 1
        box = _Container(self._inits, width, height, self._has_audio, self.part_s)
        self._container = box
        self._video_base = frame.timestamp
        self._base_wall = self._wall(item)
        self._audio_base = None
        profile = h264_profile_level_id(frame.data) or "42e01f"
        self._codecs = f"avc1.{profile}" + (",opus" if self._has_audio else "")
        self._size = (width, height)
        return box

    def _ask_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._last_ask < self.target_s:
            return
        self._last_ask = now
        for reader in list(self._inputs):
            if reader.kind == "video":
                self._call_on_loop(reader.producer.request_keyframe)

    def _drain(self) -> None:
        box = self._container
        if box is None:
            return
        for kind, data in box.sink.take():
            if kind == b"moov":
                box.tracks = init_tracks(data)
                self._call_on_loop(self._on_init, box.number, self._ftyp + data, self._codecs, self._size)
            elif kind == b"ftyp":
                self._ftyp = data
            elif kind == b"moof":
                box.pending = data
            elif kind == b"mdat" and box.pending is not None:
                self._part(box, box.pending, data)
                box.pending = None

    def _part(self, box: _Container, moof: bytes, mdat: bytes) -> None:
        runs = fragment_runs(moof, next(iter(boxes(moof))), box.tracks)
        video = next((r for r in runs.values() if box.tracks[r.track_id].handler == "vide"), None)
        main = video or next(iter(runs.values()), None)
        if main is None:
            return
        scale = box.tracks[main.track_id].timescale
        duration = main.duration / scale
        wall = self._base_wall + main.base_time / scale
        self.parts += 1
        self._call_on_loop(self._on_part, box.number, moof + mdat, duration,
                           video is not None and video.starts_with_sync, wall)

    def _close(self) -> None:
        box, self._container = self._container, None
        if box is not None:
            box.close()
            self._container = box  # for what closing flushed
            try:
                self._drain()
            finally:
                self._container = None
