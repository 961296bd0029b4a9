"""WebSocket signalling: `GET /ws/{event}` keeps a page informed of its event's live state.

Browsers cannot put a token in a WebSocket header, so the first message authenticates:
`{"type": "auth", "token": "…"}` (non-browser clients may send `Authorization: Bearer` on the
upgrade request instead). The server answers `hello`, then sends `streams` whenever the
event's feeds change. A connection whose link is revoked gets `closing` and is closed.
Pages draw on the pictures over it too (`watch`, `draw`: signaling/telestration.py).

Close codes: 4000 + the HTTP status the same failure gets elsewhere (4401, 4403, 4404, 4429),
4408 when no `auth` arrives in time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from broadcast import jsontext
from broadcast.ratelimiter import RateLimiter
from signaling.auth.access import Identity, bearer_token
from signaling.auth.tokens import MAX_TOKEN_CHARS
from signaling.keys import ACCESS, CLUSTER, TELESTRATION, WS_HUB
from signaling.livehub import WsConnection

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
AUTH_TIMEOUT_S = 10.0
HEARTBEAT_S = 20.0
# A page sends a few messages a second, drawing ~25: past MESSAGE_RATE (a burst of MESSAGE_BURST)
# they are dropped unread, and a page that has had ABUSE_DROPS dropped is closed (4429): a page
# gone wrong must not take the server's CPU from everyone else's
MESSAGE_RATE = 200.0
MESSAGE_BURST = 400
ABUSE_DROPS = 5000


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
    guard = RateLimiter(MESSAGE_RATE, MESSAGE_BURST)
    try:
        claims = identity.claims
        await conn.send({"type": "hello", "connection": conn.id, "you": {
            "event": event, "role": str(who.role), "name": who.name, "theatre": who.theatre,
            "expires_at": claims.exp if claims else None},
            # a page that sees another instance of the same node knows its media sessions are gone
            "server": {"node": request.app[CLUSTER].cluster.node_id, "instance": hub.instance},
            "event": access.event(event).to_json()})
        await hub.push_to(conn)
        async for msg in ws:
            if guard.take("page") > 0:
                conn.dropped += 1
                if conn.dropped >= ABUSE_DROPS:
                    logger.warning("%s (%s): %d messages over the limit of %d a second; closed", conn.id,
                                   who.describe(), conn.dropped, int(MESSAGE_RATE))
                    await conn.send({"type": "error", "status": 429, "message": "this page sent far too many "
                                     "messages and was disconnected; reload it"})
                    await ws.close(code=4429, message=b"too many messages")
                    break
                continue
            if msg.type != WSMsgType.TEXT:
                await conn.send({"type": "error", "message": "send JSON text messages"})
                continue
            await _handle(request.app, conn, msg.data)
    finally:
        access.connections.discard(conn)
        hub.connections.discard(conn)
        request.app[TELESTRATION].end_connection(conn)
        await conn.stop_writer()
    return ws


async def _handle(app: web.Application, conn: WsConnection, text: str) -> None:
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
    elif kind in ("watch", "draw"):
        await app[TELESTRATION].handle(conn, data)
    elif kind == "auth":
        await conn.send({"type": "error", "message": "already authenticated"})
    else:
        await conn.send({"type": "error", "message": f"unknown message type {kind[:40]!r} "
                                                       "(known: ping, watch, draw)"})


async def on_shutdown(app: web.Application) -> None:
    await app[WS_HUB].say_goodbye()


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[WS_HUB]
    hub.start()
    yield
    await hub.close()


def routes() -> list[web.RouteDef]:
    return [web.get("/ws/{event}", websocket)]
