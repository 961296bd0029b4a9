"""Telestration over the event WebSocket: strokes drawn on a live picture, shown on every page
that shows that feed, kept with the feed's recordings.

Why the event WebSocket and not a data channel: every page already holds it, authenticated
with its link, on the front process where the links, the event's settings and the cluster bus
are; a page watching over HLS (no WebRTC at all) and the hall get strokes the same way; a
media session lives in a worker process and may move. Strokes are small and must all arrive
in order (an undo after its stroke), which a reliable ordered stream gives; on a LAN the
round trip is a millisecond.

Messages a page sends (JSON on `/ws/{event}`):
    {"type": "watch", "feeds": ["or1/endoscope", …]}      the feeds it shows (replaces the last)
    {"type": "draw", "feed": "or1/endoscope", "op": "begin", "id": "s1", "kind": "free",
     "color": "#ffd400", "width": 2, "points": [[x, y], …], "lag": 120, "end": false}
    {"type": "draw", "feed": …, "op": "add", "id": "s1", "points": [[x, y], …], "end": true}
    {"type": "draw", "feed": …, "op": "undo" | "clear"}
    {"type": "draw", "feed": …, "op": "pin", "id": "s1", "pinned": true}
Pages get `drawing` (a feed's strokes, when they start watching it or fell behind) and `draw`
(each change, with the server's stroke ids). Who may draw: faculty (of their theatre, if their
link names one), moderators and organizers; viewers too where the event allows it. Each link may
send DRAW_RATE messages a second (a burst of DRAW_BURST); the rest are dropped and the page is
told, and every page's messages wait in its own queue: a flood from one page slows nobody.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from broadcast.broadcaster import Broadcaster
from broadcast.lifecycle import start_every, stop_task
from broadcast.participant import Participant, Role
from broadcast.ratelimiter import RateLimiter
from broadcast.relay.streampath import StreamPath
from broadcast.telestration.annotationlog import AnnotationLog
from broadcast.telestration.board import DEFAULT_FADE_S, Drawer, DrawingBoard
from broadcast.telestration.stroke import KINDS, PALETTE, WIDTHS, StrokeError
from signaling.livehub import WsConnection, WsHub

if TYPE_CHECKING:
    from signaling.auth.access import Access
    from signaling.cluster.node import ClusterNode
    from signaling.store.eventstore import Event

logger = logging.getLogger(__name__)

DRAW_RATE = 40.0        # messages a second per link: a page sends one every ~50 ms while drawing
DRAW_BURST = 80
MAX_WATCHED = 16        # feeds one page shows at once (the hall's grid)
MAX_LAG_S = 3.0         # how long a page may say its picture stood before the stroke
PRUNE_S = 1.0
FLUSH_S = 0.5
RETENTION_S = 3600.0
DRAWING_ROLES = frozenset({Role.FACULTY, Role.MODERATOR, Role.ORGANIZER})


def may_draw(who: Participant, event: Event, path: StreamPath) -> bool:
    if not (who.covers_event(path.event) and who.may_watch(path.event, path.theatre)):
        return False
    if who.role is Role.FACULTY:
        return who.covers_theatre(path.theatre)  # a faculty link for OR 1 draws on OR 1
    return who.role in DRAWING_ROLES or (who.role is Role.VIEWER and event.viewers_draw)


class Telestration:
    def __init__(self, broadcaster: Broadcaster, hub: WsHub, access: Access, log: AnnotationLog | None,
                 node: ClusterNode | None = None) -> None:
        self.broadcaster = broadcaster
        self.hub = hub
        self.access = access
        self.log = log
        self.node = node
        self.boards: dict[StreamPath, DrawingBoard] = {}
        self.limiter = RateLimiter(DRAW_RATE, DRAW_BURST)
        self.dropped = 0
        self.refused = 0
        self.messages = 0
        self._told_at: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [start_every(PRUNE_S, self.prune, "forgetting faded strokes"),
                       start_every(FLUSH_S, self.flush, "keeping annotations"),
                       start_every(RETENTION_S, self.expire, "annotation retention", first_after=60.0)]

    async def close(self) -> None:
        for task in self._tasks:
            await stop_task(task)
        now = time.time()
        for board in self.boards.values():
            board.end_connection("", now)  # strokes drawn when the server stopped are kept too
        await self.flush()

    async def expire(self) -> None:
        """The recordings' retention holds for what was drawn on them too."""
        days = self.broadcaster.recordings.settings.delete_after_days
        if self.log is not None and days > 0:
            await asyncio.to_thread(self.log.expire, days)

    async def flush(self) -> None:
        if self.log is not None:
            await asyncio.to_thread(self.log.flush)

    def prune(self) -> None:
        now = time.time()
        for path, board in list(self.boards.items()):
            board.prune(now, self._fade_s(path.event))
            if not board.strokes:
                del self.boards[path]

    # -- a page's messages ---------------------------------------------------------------------
    async def handle(self, conn: WsConnection, data: dict[str, Any]) -> None:
        if data["type"] == "watch":
            await self._watch(conn, data.get("feeds"))
            return
        who = conn.participant
        if self.limiter.take(who.token_id if not who.guest else conn.id) > 0:
            self.dropped += 1
            await self._tell(conn, "drawing too fast: some strokes were dropped (at most "
                                   f"{int(DRAW_RATE)} messages a second)")
            return
        try:
            path = self._path(conn, data.get("feed"))
            event = self.access.store.get(conn.event)
            if event is None:
                raise StrokeError("this event is gone")
            if not may_draw(who, event, path):
                raise PermissionError(self._why_not(who))
            if data.get("op") == "begin" and not self._live(path):
                raise StrokeError(f"{path.theatre}/{path.feed} is not live: there is no picture to draw on")
            lag = data.get("lag", 0)
            if type(lag) not in (int, float) or not 0 <= lag <= MAX_LAG_S * 1000:
                raise StrokeError("'lag' is the milliseconds the picture stood before the stroke "
                                  f"(0-{int(MAX_LAG_S * 1000)})")
            seen_at = time.time() - lag / 1000
            drawer = Drawer(conn.id, who.token_id, who.name)
            op = self._apply(path, drawer, data, seen_at)
        except PermissionError as exc:
            self.refused += 1
            await conn.send({"type": "error", "status": 403, "about": "draw", "message": str(exc)})
            return
        except StrokeError as exc:
            await conn.send({"type": "error", "about": "draw", "message": str(exc)})
            return
        self.messages += 1
        # the drawing page keeps its own ids: it is told the server's for what it began
        if op["op"] == "begin":
            await conn.send({"type": "drawn", "feed": f"{path.theatre}/{path.feed}", "id": data["id"],
                             "stroke": op["stroke"]["id"]})
        # the drawing page shows its own stroke as it draws it; the rest it hears like everyone
        self.fan_out(path, op, exclude=conn if op["op"] in ("begin", "add") else None)
        if self.node is not None and self.node.cluster.enabled:
            await self.node.cluster.announce({
                "type": "draw", "event": path.event, "path": str(path), "data": data, "seen_at": seen_at,
                "drawer": {"connection": drawer.connection, "author": drawer.author, "name": drawer.name}})

    async def on_announced(self, message: dict[str, Any]) -> None:
        """A stroke drawn through another node (checked there, and again here)."""
        try:
            path = StreamPath.parse(str(message.get("path")))
            raw, data = message.get("drawer"), message.get("data")
            if not isinstance(raw, dict) or not isinstance(data, dict):
                return
            drawer = Drawer(str(raw.get("connection"))[:40], str(raw.get("author"))[:40], str(raw.get("name"))[:80])
            seen_at = float(message.get("seen_at") or time.time())
            op = self._apply(path, drawer, data, seen_at)
        except (ValueError, TypeError, StrokeError) as exc:
            logger.debug("a stroke from another node was not applied: %s", exc)
            return
        self.fan_out(path, op)

    def end_connection(self, conn: WsConnection) -> None:
        now = time.time()
        for board in self.boards.values():
            board.end_connection(conn.id, now)

    # -- what pages are told -------------------------------------------------------------------
    def fan_out(self, path: StreamPath, op: dict[str, Any], exclude: WsConnection | None = None) -> None:
        rel = f"{path.theatre}/{path.feed}"
        text = json.dumps({"type": "draw", "feed": rel, **op}, separators=(",", ":"))  # once for everyone
        for conn in list(self.hub.connections):
            if conn is exclude or conn.event != path.event or rel not in conn.watching:
                continue
            if not conn.post(text):  # fell behind: the board as it is now, afresh
                conn.post(json.dumps(self.snapshot(conn, path)))

    def snapshot(self, conn: WsConnection, path: StreamPath) -> dict[str, Any]:
        board = self.boards.get(path)
        fade_s = self._fade_s(path.event)
        event = self.access.store.get(path.event)
        return {"type": "drawing", "feed": f"{path.theatre}/{path.feed}",
                "strokes": board.snapshot(time.time(), fade_s) if board else [],
                "fade_s": fade_s, "may_draw": event is not None and may_draw(conn.participant, event, path),
                "palette": list(PALETTE), "kinds": list(KINDS), "widths": list(WIDTHS)}

    async def _watch(self, conn: WsConnection, feeds: Any) -> None:
        if not isinstance(feeds, list) or len(feeds) > MAX_WATCHED or not all(isinstance(f, str) for f in feeds):
            await conn.send({"type": "error", "about": "watch",
                             "message": f"'feeds' must be a list of at most {MAX_WATCHED} \"theatre/feed\" names"})
            return
        paths = []
        for feed in dict.fromkeys(feeds):
            try:
                paths.append(self._path(conn, feed))
            except (StrokeError, PermissionError) as exc:
                await conn.send({"type": "error", "about": "watch", "message": str(exc)})
                return
        new = frozenset(f"{p.theatre}/{p.feed}" for p in paths)
        added = [p for p in paths if f"{p.theatre}/{p.feed}" not in conn.watching]
        conn.watching = new
        for path in added:
            await conn.send(self.snapshot(conn, path))

    def _path(self, conn: WsConnection, feed: Any) -> StreamPath:
        if not isinstance(feed, str) or feed.count("/") != 1 or len(feed) > 130:
            raise StrokeError("'feed' must be \"theatre/feed\", like \"or1/endoscope\"")
        try:
            path = StreamPath(conn.event, *feed.split("/"))
        except ValueError as exc:
            raise StrokeError(str(exc)) from None
        if not conn.participant.may_watch(path.event, path.theatre):
            raise PermissionError(f"this link does not show {feed}")
        return path

    def _apply(self, path: StreamPath, drawer: Drawer, data: dict[str, Any], seen_at: float) -> dict[str, Any]:
        board = self.boards.get(path)
        if board is None:
            board = self.boards[path] = DrawingBoard(str(path), lambda item: self._record(path, item))
        stream = self.broadcaster.streams.get(path)
        media_time = (lambda: stream.media_time(max(0.0, time.time() - seen_at))) if stream is not None else (
            lambda: None)
        return board.apply(drawer, data, time.time(), media_time)

    def _record(self, path: StreamPath, item: dict[str, Any]) -> None:
        """Kept by the node that holds the feed (its recorder is there, not a node that pulls it
        from there); alone, by this one."""
        if self.log is None:
            return
        if self.node is None or not self.node.cluster.enabled:
            self.log.record(path, item)
            return
        stream = self.broadcaster.streams.get(path)
        if stream is not None and stream.live and str(path) not in self.node.pulls:
            self.log.record(path, item)

    def _live(self, path: StreamPath) -> bool:
        return any(info.path == str(path) and info.live for info in self.hub.infos())

    def _fade_s(self, event: str) -> float:
        found = self.access.store.get(event)
        return found.stroke_fade_s if found is not None else DEFAULT_FADE_S

    def _why_not(self, who: Participant) -> str:
        if who.role is Role.FACULTY:
            return f"this faculty link draws on {who.theatre} only"
        if who.role is Role.VIEWER:
            return "viewers cannot draw in this event (the organizer may allow it in the event's settings)"
        return f"a {who.role} link cannot draw on the picture (faculty, moderators and organizers can)"

    async def _tell(self, conn: WsConnection, message: str) -> None:
        """At most once a second per page: a flood is not answered with a flood."""
        now = time.monotonic()
        if now - self._told_at.get(conn.id, 0.0) >= 1.0:
            self._told_at[conn.id] = now
            if len(self._told_at) > 10_000:
                self._told_at.clear()
            await conn.send({"type": "error", "about": "draw", "message": message})
