"""The live hub behind the event WebSocket (`/ws/{event}`): every page's connection, and each
event's live feeds pushed to them once a second when they change. A service: it gets the
media plane in its constructor; the WebSocket handler (signaling/http/ws.py) uses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from broadcast.broadcaster import Broadcaster
from broadcast.lifecycle import CloseReason, describe, start_every, stop_task
from broadcast.participant import Participant
from broadcast.relay.stream import StreamInfo
from broadcast.workers.remotesession import RemoteViewerSession
from signaling.views import visible_streams

if TYPE_CHECKING:
    from signaling.auth.access import Identity

logger = logging.getLogger(__name__)

PUSH_INTERVAL_S = 1.0
OUTBOX_MAX = 400  # messages a page may be behind (a drawing flood is ~40 a second)
# what a page tells its person (auth.js closedMessage)
PAGE_KINDS = {CloseReason.REVOKED: "revoked", CloseReason.EVENT_REVOKED: "revoked",
              CloseReason.EVENT_DELETED: "revoked", CloseReason.EXPIRED: "expired", CloseReason.KICKED: "kicked"}


class WsConnection:
    def __init__(self, ws: web.WebSocketResponse, identity: Identity, event: str) -> None:
        self.event = event
        self.id = "ws-" + secrets.token_urlsafe(12)
        self.ws = ws
        self.identity = identity
        self.participant: Participant = identity.participant
        self.connected_at = time.time()
        self.last_streams: str | None = None
        self.watching: frozenset[str] = frozenset()  # the feeds ("or1/endoscope") whose drawings it gets
        # what many pages are told at once (drawings) waits here: one slow page slows nobody else
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.overflowed = 0  # times its outbox was full (a page that cannot keep up)
        self.dropped = 0     # messages it sent over the socket's rate, dropped unread (signaling/http/ws.py)

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(message))

    def post(self, text: str) -> bool:
        """Queue an encoded message without waiting. False: the page is OUTBOX_MAX behind, its
        queue was dropped (the caller sends it the state afresh)."""
        if self.ws.closed:
            return True
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.clear()
            self.overflowed += 1
            return False
        self._outbox.append(text)
        self._wake.set()
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"writing to {self.id}")
        return True

    async def _write(self) -> None:
        while not self.ws.closed:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox and not self.ws.closed:
                try:
                    await self.ws.send_str(self._outbox.popleft())
                except (ConnectionError, RuntimeError):
                    self._outbox.clear()
                    return

    async def stop_writer(self) -> None:
        self._outbox.clear()
        await stop_task(self._writer)

    async def close(self, reason: CloseReason = CloseReason.OTHER, detail: str = "") -> None:
        """Idempotent; tells the page why before closing. 1012 (a server restart): come back in
        a moment. 4403: do not come back by yourself; `kind` says why ("revoked", "expired",
        "kicked": a kicked page may be opened again by its person, a revoked link never works
        again)."""
        if self.ws.closed:
            return
        reconnect = reason is CloseReason.SHUTDOWN
        text = describe(reason, detail)
        await self.send({"type": "closing", "reason": text, "reconnect": reconnect,
                         "kind": PAGE_KINDS.get(reason, "ended")})
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=1012 if reconnect else 4403, message=text.encode()[:120])


class WsHub:
    """Pushes each event's live feeds to its connections once a second when they change."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self.broadcaster = broadcaster
        self.infos: Callable[[], list[StreamInfo]] = broadcaster.stream_infos  # a cluster's: every node's
        self.connections: set[WsConnection] = set()
        self.instance = secrets.token_urlsafe(8)  # this process: a page that sees another knows it restarted
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        broadcaster.lost_listeners.append(self.sessions_lost)

    def start(self) -> None:
        self._task = start_every(PUSH_INTERVAL_S, self.push, "pushing the live state to pages")

    async def close(self) -> None:
        await stop_task(self._task)
        await self.say_goodbye()

    async def say_goodbye(self) -> None:
        """On shutdown, before aiohttp cancels the handlers: pages reconnect to the next server."""
        await asyncio.gather(*(c.close(CloseReason.SHUTDOWN, "it is restarting") for c in list(self.connections)),
                             return_exceptions=True)

    def sessions_lost(self, sessions: list[RemoteViewerSession]) -> None:
        """A worker process died with these sessions: tell their links' pages, which reconnect now
        instead of waiting for ICE to notice (seconds). A session's id is its URL's secret, so
        only pages of the same link hear it (guests of a public event share no link: ICE tells them)."""
        by_link: dict[str, list[str]] = {}
        for session in sessions:
            who = session.participant
            if who is not None and not who.guest:
                by_link.setdefault(who.token_id, []).append(session.id)
        for conn in list(self.connections):
            ids = by_link.get(conn.participant.token_id)
            if ids:
                task = asyncio.get_running_loop().create_task(conn.send({"type": "media-lost", "sessions": ids}))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    async def push(self) -> None:
        infos = self.infos()  # once for every connection
        for conn in list(self.connections):
            await self.push_to(conn, infos)

    async def push_to(self, conn: WsConnection, infos: list[StreamInfo] | None = None) -> None:
        streams = visible_streams(infos if infos is not None else self.infos(),
                                  conn.participant, conn.event)
        # live/stalled, viewers, codec, recording and who publishes only: rates change every
        # second and would wake every page
        key = json.dumps([(s["path"], s["live"], s["stalled"], s["viewers"], s["video_codec"], s["recording"],
                           s["publisher_name"], s["low_wanted"], s["privacy_by"]) for s in streams])
        if key != conn.last_streams:
            conn.last_streams = key
            await conn.send({"type": "streams", "streams": streams})


