"""A Recorder: a reader of one feed's producers that writes its encoded frames to disk.

On the event loop it only queues the shared frames (no copy, no decode, no encode). A writer
thread of its own puts audio and video in wall-clock order, starts each segment on a
keyframe, rotates on a keyframe, and muxes; a slow or failing disk can therefore never
hold up the publisher or the viewers.

A/V sync: each segment starts at a video keyframe; audio joins at the sample that plays at
the same wall-clock moment (from RTCP sender reports when both tracks have them, else from
arrival times), then follows its own RTP clock. When reports show audio drifting more than
one Opus packet from the picture, audio is shifted back into line.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from broadcast.recording.library import SegmentRecord, utc_iso, utc_stamp, write_sidecar
from broadcast.recording.segmentwriter import SegmentFormat, SegmentWriter
from broadcast.relay.frame import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE, EncodedFrame, keyframe_resolution
from broadcast.relay.mediaclock import MediaClock
from broadcast.relay.streampath import StreamPath

if TYPE_CHECKING:
    from broadcast.relay.producer import Producer
    from broadcast.relay.stream import Stream

logger = logging.getLogger(__name__)

OPUS_SAMPLES = 960            # one 20 ms Opus packet at 48 kHz
REORDER_S = 0.3               # how long a frame waits for the other track to catch up
SYNC_WAIT_S = 1.0             # at a start, how long to wait for both tracks' sender reports
KEYFRAME_ASK_AFTER_S = 2.0    # a due rotation waits this long for the encoder's own keyframe
DEFAULT_SIZE = (1280, 720)


class RecorderState(enum.StrEnum):
    WAITING = "waiting"       # recording is on; the feed is not live
    STARTING = "starting"     # live; waiting for a keyframe to start a file on
    RECORDING = "recording"
    FAILED = "failed"         # stopped by an error (disk full …); see `error`
    STOPPED = "stopped"


@dataclass
class RecorderSettings:
    segment_s: float = 600.0
    max_queue_bytes: int = 64 * 1024 * 1024  # frames waiting for the disk (~4 min of 2 Mbps)


class _Item(NamedTuple):
    kind: str
    frame: EncodedFrame
    arrival: float                 # time.monotonic() when the producer delivered it
    clock: MediaClock
    sender_offset: float | None    # the clock's offsets when the frame arrived: the writer
    arrival_offset: float | None   # may reach it later, when they have moved on


class _Cut(NamedTuple):
    reason: str         # why the current segment ends (the next one starts on a keyframe)


_STOP = object()


class RecorderInput:
    """The recorder's reader on one producer (what a Consumer is to a viewer)."""

    def __init__(self, recorder: Recorder, producer: Producer) -> None:
        self.recorder = recorder
        self.producer = producer
        self.kind = producer.kind
        self.frames_dropped = 0  # its own figure (the recording metrics), not the viewers'
        self.waiting_for_keyframe = False  # the recorder asks for its own keyframes
        self._closed = False
        producer.add_reader(self)  # for video this asks the publisher for a keyframe

    def deliver(self, frame: EncodedFrame) -> None:
        self.recorder.enqueue(self, frame)

    def producer_reset(self, codec_changed: bool) -> None:
        self.recorder.cut("codec change" if codec_changed else "reconnect")

    def stop(self) -> None:
        if not self._closed:
            self._closed = True
            self.producer.remove_reader(self)


class Recorder:
    def __init__(self, path: StreamPath, directory: Path, settings: RecorderSettings,
                 recording_id: str | None = None) -> None:
        self.path = path
        self.directory = directory
        self.settings = settings
        self.recording_id = recording_id or utc_stamp(time.time())
        self._terminal: RecorderState | None = None  # FAILED or STOPPED, once and for all
        self.error: str | None = None
        self.segments: list[SegmentRecord] = []   # closed ones
        self.frames_dropped = 0
        self.sync_corrections = 0
        self.started_at = time.time()
        self._loop = asyncio.get_running_loop()
        self._inputs: list[RecorderInput] = []
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._enqueued_bytes = 0   # written on the loop only
        self._dequeued_bytes = 0   # written by the thread only
        self._overflowing = False
        self._stopping = False
        # writer thread state
        self._pending: dict[str, deque[_Item]] = {"video": deque(), "audio": deque()}
        self._reported: dict[str, bool] = {}  # per track: a sender report has been seen
        self._has_video = True
        self._has_audio = False
        self._hold_until: float | None = None
        self._writer: SegmentWriter | None = None
        self._record: SegmentRecord | None = None
        self._next_reason = "start"
        self._video_base = 0
        self._audio_base: int | None = None
        self._base_wall = 0.0
        self._segment_ticks = int(settings.segment_s * VIDEO_CLOCK_RATE)
        self._due_since: float | None = None
        self._last_keyframe_ask = 0.0
        self._thread = threading.Thread(target=self._run, name=f"recorder {path}", daemon=True)
        self._thread.start()

    # -- the event loop side -----------------------------------------------------------
    def attach(self, stream: Stream) -> None:
        """Record `stream` (the feed went live, or came back)."""
        self.detach()
        if self.stopped:
            return
        self._has_video = stream.video.codec is not None
        self._has_audio = stream.audio.codec is not None
        self._inputs = [RecorderInput(self, p) for p in stream.producers if p.codec is not None]
        self._queue.put(_Cut("reconnect" if self.segments or self._record else "start"))

    def reads(self, stream: Stream) -> bool:
        return bool(self._inputs) and all(i.producer in stream.producers for i in self._inputs)

    def detach(self, reason: str | None = None) -> None:
        """Stop reading the feed; with a reason, the current segment ends."""
        inputs, self._inputs = self._inputs, []
        for recorder_input in inputs:
            recorder_input.stop()
        if reason is not None:
            self._queue.put(_Cut(reason))

    def enqueue(self, recorder_input: RecorderInput, frame: EncodedFrame) -> None:
        size = len(frame.data)
        if self._enqueued_bytes - self._dequeued_bytes + size > self.settings.max_queue_bytes:
            if not self._overflowing:
                self._overflowing = True
                logger.warning("%s: recording falls behind the disk; frames are dropped until "
                               "it catches up (a new segment starts then)", self.path)
            self.frames_dropped += 1
            return
        if self._overflowing:
            if recorder_input.kind != "video" or not frame.keyframe:
                self.frames_dropped += 1
                return
            self._overflowing = False
            self._queue.put(_Cut("gap"))
        self._enqueued_bytes += size
        clock = recorder_input.producer.clock
        self._queue.put(_Item(recorder_input.kind, frame, time.monotonic(), clock,
                              clock.sender_offset, clock.arrival_offset))

    def cut(self, reason: str) -> None:
        """End the current segment; the next starts on the next keyframe."""
        self._queue.put(_Cut(reason))

    async def stop(self) -> None:
        """Idempotent: ends the current segment and the writer thread."""
        if not self._stopping:
            self._stopping = True
            self.detach()
            self._queue.put(_Cut("stop"))
            self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        if self._terminal is None:
            self._terminal = RecorderState.STOPPED

    @property
    def stopped(self) -> bool:
        return self._stopping or self._terminal is not None

    @property
    def state(self) -> RecorderState:
        if self._terminal is not None:
            return self._terminal
        if not self._inputs:
            return RecorderState.WAITING
        return RecorderState.RECORDING if self._writer is not None else RecorderState.STARTING

    def current(self) -> SegmentRecord | None:
        """The segment being written, with its size and duration now."""
        record, writer = self._record, self._writer
        if record is None or writer is None:
            return None
        return replace(record, duration_s=round(writer.duration_s, 3), size_bytes=writer.size,
                       video_frames=writer.video_frames, keyframes=writer.keyframes,
                       audio_frames=writer.audio_frames)

    def _call_on_loop(self, callback: object, *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]
        except RuntimeError:
            pass  # the loop is closing: nothing left to ask

    # -- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if item is _STOP:
                    self._release(flush=True)
                    self._close_segment("stop")
                    return
                if isinstance(item, _Cut):
                    self._release(flush=True)
                    self._close_segment(item.reason)
                    self._next_reason = item.reason if item.reason != "stop" else "start"
                    self._hold_until = None
                    self._reported.clear()
                elif isinstance(item, _Item):
                    self._dequeued_bytes += len(item.frame.data)
                    if item.sender_offset is not None:
                        self._reported[item.kind] = True
                    if self._hold_until is None and self._writer is None:
                        self._hold_until = time.monotonic() + SYNC_WAIT_S
                    self._pending[item.kind].append(item)
                self._release()
        except Exception as exc:
            self._fail(exc)

    def _synced(self) -> bool:
        """Both tracks have sender reports: their clocks can be compared."""
        return len(self._reported) == 2

    def _wall(self, item: _Item) -> float:
        """The frame's time on the shared wall clock (the sender's, once both tracks report)."""
        if self._synced():
            offset = item.sender_offset if item.sender_offset is not None else item.clock.sender_offset
        else:
            offset = item.arrival_offset if item.arrival_offset is not None else item.clock.arrival_offset
        return item.frame.timestamp / item.frame.clock_rate + (offset or 0.0)

    def _holding(self, now: float) -> bool:
        """At a start, hold frames up to SYNC_WAIT_S until both tracks have sender reports."""
        if self._hold_until is None:
            return False
        if now >= self._hold_until or not (self._has_video and self._has_audio) or self._synced():
            self._hold_until = None
            return False
        return True

    def _release(self, flush: bool = False) -> None:
        """Write pending frames in wall-clock order, keeping REORDER_S for latecomers."""
        video, audio = self._pending["video"], self._pending["audio"]
        now = time.monotonic()
        if not flush and self._holding(now):
            return
        while video or audio:
            if video and audio:
                item = video.popleft() if self._wall(video[0]) <= self._wall(audio[0]) else audio.popleft()
            else:
                waiting = video or audio
                if not flush and now - waiting[0].arrival < REORDER_S:
                    return
                item = waiting.popleft()
            if item.kind == "video":
                self._write_video(item)
            else:
                self._write_audio(item)

    def _write_video(self, item: _Item) -> None:
        frame = item.frame
        writer = self._writer
        if writer is not None:
            pts = frame.timestamp - self._video_base
            reason = None
            if frame.codec != writer.format.video_codec:
                reason = "codec change"
            elif frame.keyframe:
                size = keyframe_resolution(frame.codec, frame.data)
                if size is not None and size != (writer.format.width, writer.format.height):
                    reason = "resolution change"
                elif pts >= self._segment_ticks:
                    reason = "rotation"
            if reason is None:
                if pts >= self._segment_ticks:
                    self._ask_keyframe_if_late(item)
                writer.write_video(frame.data, pts, frame.keyframe)
                return
            self._close_segment(reason)
            self._next_reason = reason
        if not frame.keyframe:
            self._ask_keyframe_if_late(item)
            return
        self._open_segment(item)

    def _ask_keyframe_if_late(self, item: _Item) -> None:
        now = time.monotonic()
        if self._due_since is None:
            self._due_since = now
        if now - self._due_since >= KEYFRAME_ASK_AFTER_S and now - self._last_keyframe_ask >= KEYFRAME_ASK_AFTER_S:
            self._last_keyframe_ask = now
            for recorder_input in list(self._inputs):
                if recorder_input.kind == "video":
                    self._call_on_loop(recorder_input.producer.request_keyframe)

    def _write_audio(self, item: _Item) -> None:
        frame = item.frame
        if self._writer is None:
            if self._has_video:
                return  # the file starts with the picture
            self._open_segment(item)
        writer = self._writer
        if writer is None:
            return
        if not writer.format.audio:
            return
        expected = round((self._wall(item) - self._base_wall) * AUDIO_CLOCK_RATE)
        if self._audio_base is None:
            if expected < -OPUS_SAMPLES // 2:
                return  # sounded before the segment's first picture
            self._audio_base = frame.timestamp - max(0, expected)
        pts = frame.timestamp - self._audio_base
        if self._synced() and abs(expected - pts) > OPUS_SAMPLES:
            # the sender's audio clock drifts from its video clock: realign on the reports
            self._audio_base -= expected - pts
            pts = expected
            self.sync_corrections += 1
        if pts < writer.audio_end:
            return  # overlaps what is written (after a realignment backwards)
        writer.write_audio(frame.data, pts, OPUS_SAMPLES)

    def _open_segment(self, item: _Item) -> None:
        frame = item.frame
        is_video = item.kind == "video"
        size = (keyframe_resolution(frame.codec, frame.data) if is_video else None) or DEFAULT_SIZE
        fmt = SegmentFormat(frame.codec if is_video else None, size[0], size[1], self._has_audio)
        now = time.time()
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp, n = utc_stamp(now), 1
        media = self.directory / f"{stamp}.{fmt.container}"
        while media.exists():
            n += 1
            media = self.directory / f"{stamp}-{n}.{fmt.container}"
        self._writer = SegmentWriter(media, fmt)
        self._record = SegmentRecord(
            path=str(self.path), file=media.name, recording=self.recording_id, state="recording",
            started_at=utc_iso(now), video_codec=fmt.video_codec,
            width=size[0] if is_video else None, height=size[1] if is_video else None,
            audio_codec="opus" if fmt.audio else None, start_reason=self._next_reason,
            media_start=round(self._wall(item), 3))
        write_sidecar(media, self._record)
        self._video_base = frame.timestamp if is_video else 0
        self._audio_base = None
        self._base_wall = self._wall(item)
        self._due_since = None
        logger.info("%s: recording to %s (%s, %s)", self.path, media.name,
                    "+".join(fmt.codecs), self._next_reason)
        if is_video:
            self._writer.write_video(frame.data, 0, True)

    def _close_segment(self, reason: str) -> None:
        writer, record = self._writer, self._record
        if writer is None or record is None:
            return
        self._writer = self._record = None
        try:
            writer.close()
        except OSError as exc:
            writer.abort()
            self._finish_record(writer, record, "cut", reason, exc)
            raise
        self._finish_record(writer, record, "complete", reason, None)

    def _finish_record(self, writer: SegmentWriter, record: SegmentRecord, state: str,
                       reason: str, exc: BaseException | None) -> None:
        done = replace(record, state=state, ended_at=utc_iso(time.time()),
                       duration_s=round(writer.duration_s, 3), size_bytes=writer.size,
                       video_frames=writer.video_frames, keyframes=writer.keyframes,
                       audio_frames=writer.audio_frames, end_reason=reason,
                       error=describe_error(exc) if exc else None)
        self.segments.append(done)
        try:
            write_sidecar(writer.path, done)
        except OSError:
            logger.warning("%s: could not write the sidecar of %s (disk full?); the library "
                           "will read the file itself", self.path, writer.path.name)

    def _fail(self, exc: BaseException) -> None:
        message = describe_error(exc)
        writer, record = self._writer, self._record
        self._writer = self._record = None
        if writer is not None and record is not None:
            writer.abort()
            self._finish_record(writer, record, "cut", "error", exc)
            message += f"; {writer.path.name} was closed at {writer.duration_s:.1f} s and plays"
        self.error = message
        self._terminal = RecorderState.FAILED
        logger.error("%s: recording stopped: %s. The live stream is not affected.", self.path, message)
        self._call_on_loop(self.detach)


def describe_error(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return "the disk is full; free space, then start the recording again"
    if code == errno.EFBIG:
        return "the file system refused a larger file (file size limit); start the recording again"
    if code == errno.EDQUOT:
        return "the disk quota is used up; free space, then start the recording again"
    if isinstance(exc, OSError):
        return f"writing failed: {exc.strerror or exc}; check the recordings directory"
    return f"recording failed: {type(exc).__name__}: {exc}"
