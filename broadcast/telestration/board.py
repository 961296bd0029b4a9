"""DrawingBoard: the strokes over one feed's picture right now.

Every drawing message changes a board and gives back what every page watching the feed is
told (an `op`); a page that joins gets the board's strokes at once. Strokes fade `fade_s`
after they end unless pinned; a laser pointer fades in LASER_FADE_S. A stroke a page began and
never ended (the page closed mid-stroke) ends by itself after OPEN_STROKE_S.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broadcast.telestration.stroke import Stroke, StrokeError, client_id, parse_points, parse_style

LASER_FADE_S = 1.5
OPEN_STROKE_S = 30.0
MAX_STROKES = 300           # per feed: the oldest unpinned go first
DEFAULT_FADE_S = 8.0


@dataclass(frozen=True)
class Drawer:
    """Who sends a drawing message: the connection (its strokes' ids), the link, the name."""

    connection: str
    author: str
    name: str


class DrawingBoard:
    def __init__(self, path: str, record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        self.strokes: dict[str, Stroke] = {}
        # the annotation log: every stroke once it ends, and every undo, clear and pin
        self.record = record

    # -- what a drawing page sends -----------------------------------------------------------
    def apply(self, drawer: Drawer, data: dict[str, Any], now: float,
              media_time: Callable[[], float | None]) -> dict[str, Any]:
        """One drawing message (already known to be from someone who may draw here) → the op
        every watcher gets. Raises StrokeError (the page is told, nothing changes)."""
        op = data.get("op")
        if op == "begin":
            return self._begin(drawer, data, now, media_time())
        if op == "add":
            return self._add(drawer, data, now)
        if op == "undo":
            out = self._undo(drawer, now)
        elif op == "clear":
            for each in self.strokes.values():
                self._end(each, now)
            self.strokes.clear()
            out = {"op": "clear", "by": drawer.name}
        elif op == "pin":
            stroke = self.strokes.get(self._sid(drawer, data))
            if stroke is None:
                raise StrokeError("no such stroke on this picture (it faded or was cleared)")
            pinned = data.get("pinned")
            if not isinstance(pinned, bool):
                raise StrokeError("'pinned' must be true or false")
            if stroke.kind == "laser":
                raise StrokeError("a laser pointer fades; draw a stroke to pin it")
            stroke.pinned = pinned
            out = {"op": "pin", "id": stroke.id, "pinned": pinned}
        else:
            raise StrokeError("'op' must be begin, add, undo, clear or pin")
        self._log(out, now, media_time(), drawer)
        return out

    def _sid(self, drawer: Drawer, data: dict[str, Any]) -> str:
        return f"{drawer.connection}.{client_id(data.get('id'))}"

    def _begin(self, drawer: Drawer, data: dict[str, Any], now: float, media_time: float | None) -> dict[str, Any]:
        sid = self._sid(drawer, data)
        if sid in self.strokes:
            raise StrokeError("a stroke with this id was begun already; use a new id")
        kind, color, width = parse_style(data)
        points = parse_points(data.get("points", []), 0, kind)
        stroke = Stroke(sid, kind, color, width, points, drawer.name, drawer.author, now, media_time)
        if data.get("pinned") is True and kind != "laser":
            stroke.pinned = True
        if data.get("end") is True:
            self._end(stroke, now)
        self.strokes[sid] = stroke
        self._trim(now)
        return {"op": "begin", "stroke": stroke.to_json()}

    def _add(self, drawer: Drawer, data: dict[str, Any], now: float) -> dict[str, Any]:
        sid = self._sid(drawer, data)
        stroke = self.strokes.get(sid)
        if stroke is None:
            raise StrokeError("no such stroke: begin it first (or it was cleared)")
        if stroke.ended_at is not None:
            raise StrokeError("this stroke has ended; begin a new one")
        line = stroke.kind in ("arrow", "circle")  # its first point stays, the second moves
        points = parse_points(data.get("points", []), 1 if line else len(stroke.points), stroke.kind)
        if line:
            stroke.points = (stroke.points[:1] + points)[-2:] if stroke.points else points[-2:]
        else:
            stroke.points.extend(points)
        ended = data.get("end") is True
        if ended:
            self._end(stroke, now)
        return {"op": "add", "id": sid, "points": [list(p) for p in points], "end": ended,
                **({"replace": [list(p) for p in stroke.points]} if stroke.kind in ("arrow", "circle") else {})}

    def _undo(self, drawer: Drawer, now: float) -> dict[str, Any]:
        mine = [s for s in self.strokes.values() if s.author == drawer.author and s.kind != "laser"]
        if not mine:
            raise StrokeError("nothing of yours to undo on this picture")
        last = max(mine, key=lambda s: s.started_at)
        self._end(last, now)
        del self.strokes[last.id]
        return {"op": "undo", "id": last.id}

    # -- what a joining page gets --------------------------------------------------------------
    def snapshot(self, now: float, fade_s: float) -> list[dict[str, Any]]:
        self.prune(now, fade_s)
        return [s.to_json() | {"age": round(now - (s.ended_at or now), 3)} for s in self.strokes.values()]

    def prune(self, now: float, fade_s: float) -> None:
        for sid, stroke in list(self.strokes.items()):
            if stroke.ended_at is None and now - stroke.started_at > OPEN_STROKE_S:
                self._end(stroke, now)
            if self._faded(stroke, now, fade_s):
                del self.strokes[sid]

    def end_connection(self, connection: str, now: float) -> None:
        """A page went away mid-stroke: its open strokes end now (and are kept). "": everyone's."""
        prefix = connection + "." if connection else ""
        for stroke in self.strokes.values():
            if stroke.ended_at is None and stroke.id.startswith(prefix):
                self._end(stroke, now)

    def _faded(self, stroke: Stroke, now: float, fade_s: float) -> bool:
        if stroke.pinned or stroke.ended_at is None:
            return False
        return now - stroke.ended_at > (LASER_FADE_S if stroke.kind == "laser" else fade_s)

    def _trim(self, now: float) -> None:
        while len(self.strokes) > MAX_STROKES:
            oldest = min(self.strokes.values(), key=lambda s: (s.pinned, s.started_at))
            self._end(oldest, now)
            del self.strokes[oldest.id]

    def _end(self, stroke: Stroke, now: float) -> None:
        if stroke.ended_at is not None:
            return
        stroke.ended_at = now
        if self.record is not None:
            self.record({"type": "stroke", **stroke.to_json(), "ended_at": round(now, 3)})

    def _log(self, op: dict[str, Any], now: float, media_time: float | None, drawer: Drawer) -> None:
        if self.record is not None:
            self.record({"type": op["op"], **{k: v for k, v in op.items() if k != "op"}, "by": drawer.name,
                         "at": round(now, 3), "media_time": None if media_time is None else round(media_time, 3)})
