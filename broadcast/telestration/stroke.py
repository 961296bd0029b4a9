"""A stroke drawn over a live picture: what a drawing page may send, checked field by field.

Coordinates are fractions of the video picture (0,0 its top-left corner, 1,1 its bottom-right),
not of a window: every page maps them onto the picture as it shows it (any size, letterboxed,
fullscreen, a phone), so a stroke sits on the same anatomy everywhere. Colours come from a
palette and widths from three sizes: a page cannot send a 200-pixel blot or a colour nobody
can read over tissue.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

KINDS = ("free", "arrow", "circle", "laser")
# yellow, green, cyan, magenta, white: readable over tissue, blood and the dark of an endoscope
PALETTE = ("#ffd400", "#00e676", "#00b0ff", "#ff4081", "#ffffff")
WIDTHS = (1, 2, 3)               # thin, medium, thick (pages scale them to the picture's height)
MAX_POINTS_PER_MESSAGE = 64      # a page sends what it drew in the last ~50 ms
MAX_POINTS = {"free": 2000, "laser": 2000, "arrow": 2, "circle": 2}
MAX_ID_CHARS = 32
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MARGIN = 0.02                    # a pointer a little past the picture's edge is kept (clamped)


class StrokeError(ValueError):
    """A message a drawing page should not have sent, in words for its console."""


@dataclass
class Stroke:
    id: str                       # the server's: unique in the feed
    kind: str
    color: str
    width: int
    points: list[tuple[float, float]]
    by: str                       # the drawer's name, as pages show it
    author: str                   # the drawer's link id (undo takes back one's own)
    started_at: float             # wall clock on the server when it began
    media_time: float | None = None  # the feed's media clock at the picture it was drawn on
    ended_at: float | None = None
    pinned: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "color": self.color, "width": self.width,
                "points": [list(p) for p in self.points], "by": self.by, "pinned": self.pinned,
                "started_at": round(self.started_at, 3), "ended": self.ended_at is not None,
                "media_time": None if self.media_time is None else round(self.media_time, 3)}


def client_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise StrokeError("'id' must be 1-32 of A-Z, a-z, 0-9, '_' and '-'")
    return value


def parse_points(value: Any, already: int, kind: str) -> list[tuple[float, float]]:
    """[[x, y], …] in the picture's fractions; rounded to 1/10000 (a 4K picture's pixel)."""
    if not isinstance(value, list):
        raise StrokeError("'points' must be a list of [x, y] pairs")
    if len(value) > MAX_POINTS_PER_MESSAGE:
        raise StrokeError(f"at most {MAX_POINTS_PER_MESSAGE} points per message (send the rest in the next one)")
    if already + len(value) > MAX_POINTS[kind]:
        raise StrokeError(f"a stroke of kind {kind!r} has at most {MAX_POINTS[kind]} points")
    out = []
    for point in value:
        if not (isinstance(point, list) and len(point) == 2 and all(_number(v) for v in point)):
            raise StrokeError("a point is [x, y] with two numbers")
        x, y = float(point[0]), float(point[1])
        if not (-MARGIN <= x <= 1 + MARGIN and -MARGIN <= y <= 1 + MARGIN):
            raise StrokeError("points are fractions of the picture: x and y from 0 to 1")
        out.append((round(min(max(x, 0.0), 1.0), 4), round(min(max(y, 0.0), 1.0), 4)))
    return out


def parse_style(data: dict[str, Any]) -> tuple[str, str, int]:
    kind = data.get("kind")
    if kind not in KINDS:
        raise StrokeError(f"'kind' must be one of {', '.join(KINDS)}")
    color = data.get("color")
    if not isinstance(color, str) or color.lower() not in PALETTE:
        raise StrokeError(f"'color' must be one of the palette: {', '.join(PALETTE)}")
    width = data.get("width", 2)
    if type(width) is not int or width not in WIDTHS:
        raise StrokeError("'width' must be 1 (thin), 2 or 3 (thick)")
    return str(kind), color.lower(), width


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)
