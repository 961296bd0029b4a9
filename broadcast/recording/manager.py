"""RecordingManager: which feeds are recorded, and the recorders that do it.

What should be recorded is a set of rules on scopes (an event, a theatre, one feed), each
on or off; the most specific rule covering a feed wins, and without one the event's
`record` setting (the `policy`) decides. Starting a scope clears the narrower rules under
it, so "record OR 1" after "stop OR 1's room camera" records both cameras again. Rules are
kept on disk: a restart at lunch does not stop the afternoon's recordings.

A recorder outlives its publisher: when a feed drops and returns, the same recording goes
on in a new segment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from broadcast.errors import InsufficientStorage
from broadcast.lifecycle import notify, start_every, stop_task
from broadcast.recording.library import RecordingLibrary, SegmentRecord, utc_iso
from broadcast.recording.recorder import Recorder, RecorderSettings, RecorderState
from broadcast.relay.streampath import StreamPath, is_slug

if TYPE_CHECKING:
    from broadcast.relay.stream import Stream

logger = logging.getLogger(__name__)

RULES_FILE = "recording-rules.json"
HOUSEKEEPING_INTERVAL_S = 3600.0


@dataclass
class RecordingSettings:
    root: Path = Path("orcast-data/recordings")
    segment_s: float = 600.0
    min_free_bytes: int = 1024**3           # refuse to start below this much free space
    delete_after_days: float = 0.0          # retention; 0 keeps recordings until deleted
    max_queue_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class RecordingScope:
    event: str
    theatre: str | None = None
    feed: str | None = None

    def __post_init__(self) -> None:
        if self.feed is not None and self.theatre is None:
            raise ValueError("a feed is named within a theatre: give the theatre too")
        for value in (self.event, self.theatre, self.feed):
            if value is not None and not is_slug(value):
                raise ValueError(f"{value[:70]!r} is not a valid event, theatre or feed name")

    @classmethod
    def parse(cls, text: str) -> RecordingScope:
        parts = text.split("/")
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"{text[:100]!r} is not event[/theatre[/feed]]")
        return cls(*parts)

    @property
    def specificity(self) -> int:
        return 1 + (self.theatre is not None) + (self.feed is not None)

    def covers(self, path: StreamPath) -> bool:
        return (path.event == self.event and self.theatre in (None, path.theatre)
                and self.feed in (None, path.feed))

    def contains(self, other: RecordingScope) -> bool:
        return (other.event == self.event and self.theatre in (None, other.theatre)
                and self.feed in (None, other.feed))

    def __str__(self) -> str:
        return "/".join(p for p in (self.event, self.theatre, self.feed) if p is not None)


@dataclass(frozen=True)
class RecordingStatus:
    path: str
    state: str                  # off | waiting | starting | recording | stopped | failed
    wanted: bool                # the rules say this feed is recorded
    recording: str | None       # id of the current (or last) recording
    file: str | None            # the segment being written
    started_at: str | None
    duration_s: float           # of the whole recording so far
    size_bytes: int
    segments: int
    frames_dropped: int
    error: str | None


class RecordingManager:
    def __init__(self, settings: RecordingSettings, streams: dict[StreamPath, Stream]) -> None:
        self.settings = settings
        self.library = RecordingLibrary(settings.root)
        self.policy: Callable[[str], bool] = lambda event: False  # the event's `record` setting
        self._streams = streams
        self.rules: dict[RecordingScope, bool] = {}
        self.recorders: dict[StreamPath, Recorder] = {}
        self.ended: dict[StreamPath, RecordingStatus] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._closed = False
        # told after the rules (or an event's `record`) changed, e.g. to pull on-demand cameras
        self.rules_listeners: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the rules, repair what a crash left open, start retention."""
        self.rules = self._load_rules()
        busy = {(str(p), cur.file) for p, r in self.recorders.items() if (cur := r.current())}
        await asyncio.to_thread(self.library.recover, busy)
        self._housekeeping = start_every(HOUSEKEEPING_INTERVAL_S, self._housekeep, "recording retention",
                                         first_after=0.0)
        await self.reconcile()  # feeds that went live while this was starting

    async def close(self) -> None:
        """Idempotent: every recorder finishes its file."""
        if self._closed:
            return
        self._closed = True
        await stop_task(self._housekeeping)
        await asyncio.gather(*(self._stop(p) for p in list(self.recorders)), return_exceptions=True)

    async def _housekeep(self) -> None:
        if self.settings.delete_after_days > 0:
            await asyncio.to_thread(self.library.expire, self.settings.delete_after_days, self.busy_recordings())

    def busy_recordings(self) -> set[tuple[str, str]]:
        return {(str(p), r.recording_id) for p, r in self.recorders.items()}

    # -- rules -------------------------------------------------------------------------
    def wants(self, path: StreamPath) -> bool:
        best: tuple[int, bool] | None = None
        for scope, on in self.rules.items():
            if scope.covers(path) and (best is None or scope.specificity > best[0]):
                best = (scope.specificity, on)
        return best[1] if best is not None else self.policy(path.event)

    async def set(self, scope: RecordingScope, on: bool) -> list[StreamPath]:
        """Start or stop recording `scope`. Returns the live feeds it now covers."""
        if on:
            self.check_disk()
            for path, recorder in list(self.recorders.items()):
                if scope.covers(path) and recorder.state == RecorderState.FAILED:
                    await self._stop(path)  # starting again clears a failure
        for narrower in [s for s in self.rules if scope.contains(s)]:
            del self.rules[narrower]
        self.rules[scope] = on
        self._save_rules()
        await self.reconcile()
        return [p for p, s in self._streams.items() if s.live and scope.covers(p)]

    async def forget_event(self, event: str) -> None:
        """The event is gone: drop its rules and stop its recorders (files stay)."""
        self.rules = {s: on for s, on in self.rules.items() if s.event != event}
        self._save_rules()
        for path in [p for p in self.recorders if p.event == event]:
            await self._stop(path)

    async def reconcile(self) -> None:
        """Bring recorders in line with the rules (after a rule or an event changed)."""
        for path, stream in list(self._streams.items()):
            if stream.live and self.wants(path):
                self._ensure(stream)
        for path in list(self.recorders):
            if not self.wants(path):
                await self._stop(path)
        notify(self.rules_listeners, what="a recording rules listener")

    def _rules_path(self) -> Path:
        return self.settings.root / RULES_FILE

    def _load_rules(self) -> dict[RecordingScope, bool]:
        try:
            data = json.loads(self._rules_path().read_text())
            return {RecordingScope.parse(k): bool(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            logger.error("recording rules in %s are unreadable (%s); starting without them; "
                         "events with record = true are still recorded", self._rules_path(), exc)
            return {}

    def _save_rules(self) -> None:
        path = self._rules_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps({str(s): on for s, on in self.rules.items()}, indent=1))
            os.replace(tmp, path)
        except OSError as exc:
            logger.error("could not save the recording rules to %s (%s); they hold until a restart",
                         path, exc)

    # -- disk --------------------------------------------------------------------------
    def free_bytes(self) -> int:
        target = self.settings.root
        while not target.exists() and target != target.parent:
            target = target.parent
        return shutil.disk_usage(target).free

    def check_disk(self) -> None:
        free = self.free_bytes()
        if free < self.settings.min_free_bytes:
            raise InsufficientStorage(
                f"only {free / 1e9:.2f} GB free where recordings go ({self.settings.root}); "
                f"recording needs at least {self.settings.min_free_bytes / 1e9:.2f} GB "
                "(recording.min_free_gb): free space or point recording.dir at a larger disk")

    # -- feeds going live and offline (called by the Broadcaster) -----------------------
    def on_live(self, stream: Stream) -> None:
        if not self._closed and self.wants(stream.path):
            self._ensure(stream)

    def on_offline(self, stream: Stream) -> None:
        recorder = self.recorders.get(stream.path)
        if recorder is not None:
            recorder.detach("feed offline")

    def _ensure(self, stream: Stream) -> None:
        path = stream.path
        recorder = self.recorders.get(path)
        if recorder is not None:
            if not recorder.stopped and not recorder.reads(stream):
                recorder.attach(stream)
            return  # a failed recorder waits for someone to start it again
        try:
            self.check_disk()
        except InsufficientStorage as exc:
            logger.error("%s: not recording: %s", path, exc)
            self.ended[path] = RecordingStatus(str(path), str(RecorderState.FAILED), True, None, None,
                                               None, 0.0, 0, 0, 0, str(exc))
            return
        recorder = Recorder(path, self.library.feed_dir(path), RecorderSettings(
            self.settings.segment_s, self.settings.max_queue_bytes))
        self.recorders[path] = recorder
        self.ended.pop(path, None)
        recorder.attach(stream)
        logger.info("%s: recording on (recording %s)", path, recorder.recording_id)

    async def _stop(self, path: StreamPath) -> None:
        recorder = self.recorders.get(path)
        if recorder is None:
            return
        await recorder.stop()
        self.recorders.pop(path, None)
        self.ended[path] = self._status_of(path, recorder)
        logger.info("%s: recording %s ended (%s)", path, recorder.recording_id, recorder.state)

    # -- reporting ---------------------------------------------------------------------
    def _status_of(self, path: StreamPath, recorder: Recorder) -> RecordingStatus:
        current = recorder.current()
        segments = recorder.segments + ([current] if current else [])
        return RecordingStatus(
            path=str(path), state=str(recorder.state), wanted=self.wants(path),
            recording=recorder.recording_id, file=current.file if current else None,
            started_at=utc_iso(recorder.started_at),
            duration_s=round(sum(s.duration_s for s in segments), 3),
            size_bytes=sum(s.size_bytes for s in segments), segments=len(segments),
            frames_dropped=recorder.frames_dropped, error=recorder.error)

    def status(self, path: StreamPath) -> RecordingStatus:
        recorder = self.recorders.get(path)
        if recorder is not None:
            return self._status_of(path, recorder)
        ended = self.ended.get(path)
        if ended is not None:
            return ended
        return RecordingStatus(str(path), "off", self.wants(path), None, None, None, 0.0, 0, 0, 0, None)

    def statuses(self, event: str | None = None) -> list[RecordingStatus]:
        """Every live feed's recording state, and feeds recorded or failed since the start."""
        paths = {p for p, s in self._streams.items() if s.live} | set(self.recorders) | set(self.ended)
        return [self.status(p) for p in sorted(paths, key=str) if event in (None, p.event)]

    def live_segment(self, record: SegmentRecord) -> SegmentRecord:
        """A library entry, refreshed from its recorder if the file is still being written."""
        if record.state != "recording":
            return record
        recorder = self.recorders.get(StreamPath.parse(record.path))
        current = recorder.current() if recorder else None
        return current if current is not None and current.file == record.file else record
