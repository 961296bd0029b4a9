"""The recording library: segment files on disk, their metadata, and housekeeping.

Layout: `{root}/{event}/{theatre}/{feed}/{20261122T080000Z}.mp4|webm`, each with a sidecar
`….mp4.json` holding what the recorder knew (codecs, size, frames, why it started and
ended). A sidecar is written when a segment opens (state `recording`) and when it closes;
one still saying `recording` when no recorder owns it was left by a crash, and
`recover()` makes that file whole again. Segments that share a `recording` id were
recorded in one go (rotations, a publisher's reconnect, a codec change) and are listed as
one recording.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broadcast.recording.segmentwriter import finish_crashed
from broadcast.relay.streampath import StreamPath, is_slug

logger = logging.getLogger(__name__)

SEGMENT_NAME = re.compile(r"^\d{8}T\d{6}Z(-\d{1,4})?\.(mp4|webm)$")
SIDECAR_SUFFIX = ".json"


def utc_stamp(moment: float) -> str:
    """A file-name-safe UTC time: 20261122T080000Z."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%SZ")


def utc_iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SegmentRecord:
    """What the library knows of one segment file (its sidecar)."""

    path: str                       # stream path event/theatre/feed
    file: str                       # file name in the feed's directory
    recording: str                  # id shared by the segments of one recording
    state: str                      # recording | complete | recovered | cut
    started_at: str
    ended_at: str | None = None
    duration_s: float = 0.0
    size_bytes: int = 0
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    audio_codec: str | None = None
    video_frames: int = 0
    keyframes: int = 0
    audio_frames: int = 0
    start_reason: str = "start"     # start | rotation | reconnect | codec change | resolution change | gap
    end_reason: str | None = None   # stop | rotation | feed offline | disk full | crash | …
    error: str | None = None
    # the first picture's place on the feed's media clock (annotations are kept on that clock)
    media_start: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def write_sidecar(media: Path, record: SegmentRecord) -> None:
    """Atomically (a crash leaves the old sidecar or the new one, never half of one)."""
    target = media.with_name(media.name + SIDECAR_SUFFIX)
    tmp = media.with_name(f".{media.name}.json.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1))
    os.replace(tmp, target)


def read_sidecar(media: Path) -> SegmentRecord | None:
    try:
        return SegmentRecord.from_json(json.loads(media.with_name(media.name + SIDECAR_SUFFIX).read_text()))
    except (OSError, ValueError, TypeError):
        return None


@dataclass
class Recording:
    """One recording: the segments of one start-to-stop run of a feed."""

    id: str
    path: str
    started_at: str
    ended_at: str | None
    state: str                      # recording | complete | incomplete (a segment was cut or recovered)
    duration_s: float
    size_bytes: int
    codecs: list[str]
    width: int | None
    height: int | None
    segments: list[SegmentRecord] = field(default_factory=list)


class RecordingLibrary:
    def __init__(self, root: Path) -> None:
        self.root = root

    def feed_dir(self, path: StreamPath) -> Path:
        return self.root / path.event / path.theatre / path.feed

    def segment_file(self, path: StreamPath, name: str) -> Path:
        """The file for a download request; ValueError for any name that is not a segment."""
        if not SEGMENT_NAME.match(name):
            raise ValueError(f"{name[:80]!r} is not a recording file name")
        return self.feed_dir(path) / name

    # -- reading -----------------------------------------------------------------------
    def _feed_dirs(self, event: str | None, theatre: str | None, feed: str | None) -> Iterable[Path]:
        def level(parent: Path, only: str | None) -> list[Path]:
            if only is not None:
                return [parent / only] if (parent / only).is_dir() else []
            with contextlib.suppress(OSError):
                return sorted(p for p in parent.iterdir() if p.is_dir() and is_slug(p.name))
            return []

        for ev in level(self.root, event):
            for th in level(ev, theatre):
                yield from level(th, feed)

    def segments(self, event: str | None = None, theatre: str | None = None,
                 feed: str | None = None) -> list[SegmentRecord]:
        out: list[SegmentRecord] = []
        for directory in self._feed_dirs(event, theatre, feed):
            path = "/".join(directory.parts[-3:])
            for media in sorted(directory.iterdir()):
                if not SEGMENT_NAME.match(media.name):
                    continue
                record = read_sidecar(media) or SegmentRecord(
                    path=path, file=media.name, recording=media.stem, state="recording",
                    started_at=utc_iso(media.stat().st_mtime))
                with contextlib.suppress(OSError):
                    if record.state != "recording":
                        record.size_bytes = media.stat().st_size
                out.append(record)
        return out

    def recordings(self, event: str | None = None, theatre: str | None = None,
                   feed: str | None = None,
                   live: Callable[[SegmentRecord], SegmentRecord] | None = None) -> list[Recording]:
        """Recordings, newest first. `live` refreshes segments a recorder is still writing."""
        groups: dict[tuple[str, str], list[SegmentRecord]] = {}
        for seg in self.segments(event, theatre, feed):
            if live is not None:
                seg = live(seg)
            groups.setdefault((seg.path, seg.recording), []).append(seg)
        out = []
        for (path, rec_id), segs in groups.items():
            segs.sort(key=lambda s: s.file)
            states = {s.state for s in segs}
            state = ("recording" if "recording" in states else
                     "incomplete" if states & {"cut", "recovered"} else "complete")
            first_video = next((s for s in segs if s.video_codec), None)
            codecs = sorted({c for s in segs for c in (s.video_codec, s.audio_codec) if c})
            out.append(Recording(
                id=rec_id, path=path, started_at=segs[0].started_at, ended_at=segs[-1].ended_at,
                state=state, duration_s=round(sum(s.duration_s for s in segs), 3),
                size_bytes=sum(s.size_bytes for s in segs), codecs=codecs,
                width=first_video.width if first_video else None,
                height=first_video.height if first_video else None, segments=segs))
        out.sort(key=lambda r: r.started_at, reverse=True)
        return out

    # -- changing ----------------------------------------------------------------------
    def delete(self, path: StreamPath, recording: str) -> int:
        """Delete every segment of a recording. Returns the number of files removed."""
        removed = 0
        directory = self.feed_dir(path)
        for seg in self.segments(path.event, path.theatre, path.feed):
            if seg.recording != recording:
                continue
            media = directory / seg.file
            for victim in (media, media.with_name(media.name + SIDECAR_SUFFIX)):
                with contextlib.suppress(FileNotFoundError):
                    victim.unlink()
            removed += 1
        self._prune_dirs(directory)
        return removed

    def _prune_dirs(self, directory: Path) -> None:
        for d in (directory, directory.parent, directory.parent.parent):
            if d == self.root or not d.is_relative_to(self.root):
                break
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty

    def expire(self, days: float, busy: set[tuple[str, str]], now: float | None = None) -> int:
        """Delete recordings that ended more than `days` ago (retention). Returns how many."""
        cutoff = (now or time.time()) - days * 86400
        count = 0
        for rec in self.recordings():
            if (rec.path, rec.id) in busy or rec.state == "recording" or rec.ended_at is None:
                continue
            ended = datetime.fromisoformat(rec.ended_at.replace("Z", "+00:00")).timestamp()
            if ended < cutoff:
                self.delete(StreamPath.parse(rec.path), rec.id)
                logger.info("retention: deleted recording %s of %s (ended %s)", rec.id, rec.path, rec.ended_at)
                count += 1
        return count

    def recover(self, busy: set[tuple[str, str]]) -> int:
        """Finish segments a crash left open (run at start-up, before any recorder starts)."""
        left_open = [s for s in self.segments() if s.state == "recording" and (s.path, s.file) not in busy]
        if left_open:
            logger.warning("recordings: %d segment(s) were left open by a crash or power loss; "
                           "making them playable", len(left_open))
        for i, seg in enumerate(left_open, 1):
            media = self.root / seg.path / seg.file
            try:
                fixed = finish_crashed(media)
            except Exception as exc:  # a file with nothing usable in it: keep it, say so
                with contextlib.suppress(OSError):
                    media.with_name(f".{media.name}.fixing").unlink()
                logger.error("recordings: %s could not be repaired (%s); it is kept as it is",
                             media, exc)
                write_sidecar(media, replace(seg, state="cut", end_reason="crash",
                                             error=f"left open by a crash; not repairable: {exc}"))
                continue
            # when the media ends, not when it was repaired (the file's time is the repair's)
            started = datetime.fromisoformat(seg.started_at.replace("Z", "+00:00")).timestamp()
            ended = seg.ended_at or utc_iso(started + fixed.duration_s)
            write_sidecar(media, replace(
                seg, state="recovered", ended_at=ended, duration_s=round(fixed.duration_s, 3),
                size_bytes=media.stat().st_size, video_frames=fixed.video_frames, keyframes=fixed.keyframes,
                audio_frames=fixed.audio_frames, end_reason="crash",
                error="the server stopped without closing this file; its last second may be missing"))
            logger.info("recordings: repaired %s (%.1f s) [%d/%d]", media, fixed.duration_s, i, len(left_open))
        return len(left_open)
