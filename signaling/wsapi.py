"""WebSocket signalling: `GET /ws/{event}` keeps a page informed of its event's live state.

Browsers cannot put a token in a WebSocket header, so the first message authenticates:
`{"type": "auth", "token": "…"}` (non-browser clients may send `Authorization: Bearer` on the
upgrade request instead). The server answers `hello`, then sends `streams` whenever the
event's feeds change. A connection whose link is revoked gets `closing` and is closed.

Close codes: 4000 + the HTTP status the same failure gets elsewhere (4401, 4403, 4404, 4429),
4408 when no `auth` arrives in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from broadcast import jsontext
from broadcast.participant import Participant
from broadcast.stream import StreamInfo

from .access import Identity, bearer_token
from .api import visible_streams
from .appstate import ACCESS, BROADCASTER, WS_HUB
from .tokens import MAX_TOKEN_CHARS

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
AUTH_TIMEOUT_S = 10.0
PUSH_INTERVAL_S = 1.0
HEARTBEAT_S = 20.0


class WsConnection:
    def __init__(self, ws: web.WebSocketResponse, identity: Identity, event: str) -> None:
        self.event = event
        self.id = "ws-" + secrets.token_urlsafe(12)
        self.ws = ws
        self.identity = identity
        self.participant: Participant = identity.participant
        self.connected_at = time.time()
        self.last_streams: str | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(message))

    async def close(self, reason: str, reconnect: bool = False, kind: str = "ended") -> None:
        """Idempotent; tells the page why before closing. 4403: do not come back by yourself
        (`kind` says why: "revoked", "expired", "kicked" — a kicked page may be opened again by
        its person, a revoked link never works again); 1012 (service restart, with
        `reconnect`): come back in a moment."""
        if self.ws.closed:
            return
        if kind == "ended":
            kind = "revoked" if "revoked" in reason else "expired" if "expired" in reason else kind
        await self.send({"type": "closing", "reason": reason, "reconnect": reconnect, "kind": kind})
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=1012 if reconnect else 4403, message=reason.encode()[:120])


class WsHub:
    """Pushes each event's live feeds to its connections once a second when they change."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.connections: set[WsConnection] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._push_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.say_goodbye()

    async def say_goodbye(self) -> None:
        """On shutdown, before aiohttp cancels the handlers: pages reconnect to the next server."""
        await asyncio.gather(*(c.close("the server is restarting", reconnect=True) for c in list(self.connections)),
                             return_exceptions=True)

    async def push(self) -> None:
        infos = self.app[BROADCASTER].stream_infos()  # once for every connection
        for conn in list(self.connections):
            await self.push_to(conn, infos)

    async def push_to(self, conn: WsConnection, infos: list[StreamInfo] | None = None) -> None:
        streams = visible_streams(infos if infos is not None else self.app[BROADCASTER].stream_infos(),
                                  conn.participant, conn.event)
        # live/stalled, viewers, codec, recording and who publishes only: rates change every
        # second and would wake every page
        key = json.dumps([(s["path"], s["live"], s["stalled"], s["viewers"], s["video_codec"], s["recording"],
                           s["publisher_name"]) for s in streams])
        if key != conn.last_streams:
            conn.last_streams = key
            await conn.send({"type": "streams", "streams": streams})

    async def _push_forever(self) -> None:
        while True:
            await asyncio.sleep(PUSH_INTERVAL_S)
            try:
                await self.push()
            except Exception:
                logger.exception("pushing live state failed; will retry")


async def _authenticate(request: web.Request, ws: web.WebSocketResponse, event: str) -> Identity | None:
    access = request.app[ACCESS]
    try:
        token = bearer_token(request)
    except web.HTTPException as exc:
        await _refuse(ws, exc)
        return None
    if token is None:
        try:
            msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
        except TimeoutError:
            await ws.close(code=4408, message=b"send {\"type\": \"auth\", \"token\": ...} first")
            return None
        if msg.type != WSMsgType.TEXT:
            await ws.close(code=4400, message=b"the first message must be auth JSON")
            return None
        try:
            data = jsontext.loads(msg.data)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("type") != "auth":
            await ws.close(code=4400, message=b"the first message must be {\"type\": \"auth\", ...}")
            return None
        raw = data.get("token")
        if raw is not None and (not isinstance(raw, str) or len(raw) > MAX_TOKEN_CHARS):
            await ws.close(code=4401, message=b"token must be a string")
            return None
        token = raw or None
    try:
        identity = access.identify_token(token, event)
        access.admit_connection(request, identity)
    except web.HTTPException as exc:
        await _refuse(ws, exc)
        return None
    return identity


async def _refuse(ws: web.WebSocketResponse, exc: web.HTTPException) -> None:
    """Say why (as the HTTP endpoints would), then close with 4000 + the status."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(json.dumps({"type": "error", "status": exc.status, "message": (exc.text or "").strip()}))
        await ws.close(code=4000 + exc.status, message=(exc.text or "").strip().encode()[:120])


async def websocket(request: web.Request) -> web.WebSocketResponse:
    event = request.match_info["event"]
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    identity = await _authenticate(request, ws, event)
    if identity is None:
        return ws
    access, hub = request.app[ACCESS], request.app[WS_HUB]
    conn = WsConnection(ws, identity, event)
    access.connections.add(conn)
    hub.connections.add(conn)
    access.release(identity)
    who = identity.participant
    try:
        claims = identity.claims
        await conn.send({"type": "hello", "connection": conn.id, "you": {
            "event": event, "role": str(who.role), "name": who.name, "theatre": who.theatre,
            "expires_at": claims.exp if claims else None},
            "event": access.event(event).to_json()})
        await hub.push_to(conn)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                await conn.send({"type": "error", "message": "send JSON text messages"})
                continue
            await _handle(conn, msg.data)
    finally:
        access.connections.discard(conn)
        hub.connections.discard(conn)
    return ws


async def _handle(conn: WsConnection, text: str) -> None:
    try:
        data = jsontext.loads(text)
    except ValueError as exc:
        await conn.send({"type": "error", "message": str(exc) if isinstance(exc, jsontext.JsonTooDeep)
                         else "not valid JSON"})
        return
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        await conn.send({"type": "error", "message": "a message is a JSON object with a \"type\""})
        return
    kind = data["type"]
    if kind == "ping":
        await conn.send({"type": "pong", "time": time.time()})
    elif kind == "auth":
        await conn.send({"type": "error", "message": "already authenticated"})
    else:
        await conn.send({"type": "error", "message": f"unknown message type {kind[:40]!r} "
                                                       "(known: ping)"})


async def on_shutdown(app: web.Application) -> None:
    await app[WS_HUB].say_goodbye()


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[WS_HUB]
    hub.start()
    yield
    await hub.close()


def routes() -> list[web.RouteDef]:
    return [web.get("/ws/{event}", websocket)]
