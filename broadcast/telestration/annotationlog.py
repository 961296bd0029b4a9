"""AnnotationLog: every stroke drawn over a feed, kept next to the feed's recordings.

One JSON object a line in `<recordings>/<event>/<theatre>/<feed>/annotations.jsonl`: a stroke
once it ends (its points, colour, who drew it, and `media_time`: the feed's media clock at the
picture it was drawn on, the clock the recorder aligns audio and video on), and every undo,
clear and pin with its media time. A recording's segment says where its first picture sits on
that clock (`media_start`), so a player puts each stroke at its moment.

Lines are buffered and written by `flush()` (in a thread, twice a second): the event loop never
waits for a disk. A line that cannot be read (a crash in the middle of a write) is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broadcast.relay.streampath import StreamPath, is_slug

logger = logging.getLogger(__name__)

FILE_NAME = "annotations.jsonl"
MAX_FILE_BYTES = 64 * 1024 * 1024  # a day of heavy drawing is a few MB; past this, drawing goes on unkept


class AnnotationLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: dict[StreamPath, list[str]] = {}
        self._lock = threading.Lock()
        self._files = threading.Lock()  # appending and rewriting (retention) never overlap
        self._full: set[StreamPath] = set()
        self.written = 0

    def file(self, path: StreamPath) -> Path:
        return self.root / path.event / path.theatre / path.feed / FILE_NAME

    def record(self, path: StreamPath, item: dict[str, Any]) -> None:
        with self._lock:
            self._pending.setdefault(path, []).append(json.dumps(item, separators=(",", ":")))

    def flush(self) -> None:
        """Write what is pending (blocking: call it in a thread)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        with self._files:
            self._append(pending)

    def _append(self, pending: dict[StreamPath, list[str]]) -> None:
        for path, lines in pending.items():
            target = self.file(path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() and target.stat().st_size > MAX_FILE_BYTES:
                    if path not in self._full:
                        self._full.add(path)
                        logger.error("%s: %s is over %d MB; new strokes are shown but not kept", path, target,
                                     MAX_FILE_BYTES // 2**20)
                    continue
                with target.open("a+b") as out:
                    size = out.seek(0, os.SEEK_END)
                    if size:
                        out.seek(size - 1)
                    torn = size > 0 and out.read(1) != b"\n"
                    # a line a crash cut short stays alone (skipped when read), the next ones are whole
                    out.write((("\n" if torn else "") + "\n".join(lines) + "\n").encode())
                self.written += len(lines)
            except OSError as exc:
                logger.error("%s: %d annotation(s) could not be kept in %s (%s); check the recordings "
                             "directory's space and permissions", path, len(lines), target, exc)

    def expire(self, days: float, now: float | None = None) -> int:
        """Retention, as for the recordings: annotations older than `days` go (blocking: call it
        in a thread). Returns how many."""
        cutoff = (now or time.time()) - days * 86400
        removed = 0
        with self._files:
            for file in self.root.glob(f"*/*/*/{FILE_NAME}"):
                items = list(self._read_file(file))
                kept = [i for i in items if not (isinstance(t := _moment(i), float) and t < cutoff)]
                if len(kept) == len(items):
                    continue
                removed += len(items) - len(kept)
                tmp = file.with_name(f".{FILE_NAME}.tmp")
                try:
                    tmp.write_text("".join(json.dumps(i, separators=(",", ":")) + "\n" for i in kept), encoding="utf-8")
                    os.replace(tmp, file)
                except OSError as exc:
                    logger.error("retention: %s could not be rewritten (%s)", file, exc)
        if removed:
            logger.info("retention: %d annotation(s) older than %g days deleted", removed, days)
        return removed

    def read(self, path: StreamPath) -> list[dict[str, Any]]:
        """What is kept for one feed, oldest first (pending lines included)."""
        out = list(self._read_file(self.file(path)))
        with self._lock:
            out += [json.loads(line) for line in self._pending.get(path, [])]
        return out

    def feeds(self, event: str) -> list[StreamPath]:
        """The event's feeds that have annotations."""
        if not is_slug(event):
            return []
        base = self.root / event
        found = {StreamPath(event, f.parent.parent.name, f.parent.name) for f in base.glob(f"*/*/{FILE_NAME}")
                 if is_slug(f.parent.parent.name) and is_slug(f.parent.name)}
        with self._lock:
            found |= {p for p in self._pending if p.event == event}
        return sorted(found, key=str)

    @staticmethod
    def _read_file(file: Path) -> Iterator[dict[str, Any]]:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return
        for line in text.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


def _moment(item: dict[str, Any]) -> float | None:
    value = item.get("ended_at") or item.get("at") or item.get("started_at")
    return float(value) if isinstance(value, (int, float)) else None
