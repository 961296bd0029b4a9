"""REST API for organizers: mint and list links, revoke them, see and kick live sessions.

Tokens are returned once, when minted, and never stored: the store keeps their `jti`,
role and name so that they can be listed and revoked.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from broadcast.lifecycle import CloseReason
from broadcast.participant import Capability, Participant, Role
from signaling.auth.links import mint_link, request_base
from signaling.auth.tokens import check_name, parse_ttl
from signaling.cluster import shared
from signaling.cluster.directory import FORWARDED
from signaling.cluster.forward import tagged
from signaling.http.bodies import check_keys, field, read_json
from signaling.keys import ACCESS, BROADCASTER, CLUSTER, CONFIG, WS_HUB
from signaling.store.eventstore import MintedToken

logger = logging.getLogger(__name__)

MAX_LINK_SESSIONS = 100_000


def _organizer(request: web.Request) -> tuple[str, Participant]:
    slug = request.match_info["event"]
    who = request.app[ACCESS].require(request, slug, Capability.ADMIN).participant
    return slug, who


async def mint(request: web.Request) -> web.Response:
    slug, who = _organizer(request)
    access, config = request.app[ACCESS], request.app[CONFIG]
    data = await read_json(request)
    check_keys(data, {"role", "name", "theatre", "ttl", "max_sessions"})
    role_text = field(data, "role", str, required=True)
    if role_text not in Role.__members__.values():
        raise web.HTTPBadRequest(text=f"'role' must be one of {', '.join(r.value for r in Role)}\n")
    role = Role(role_text)
    try:
        name = check_name(field(data, "name", str, default=role.value))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"'name': {exc}\n") from None
    theatre = field(data, "theatre", str)
    ttl = data.get("ttl")
    if ttl is None:
        ttl_s = config.default_ttl_s
    elif isinstance(ttl, (str, int)) and not isinstance(ttl, bool):
        try:
            ttl_s = parse_ttl(str(ttl))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"'ttl': {exc}\n") from None
    else:
        raise web.HTTPBadRequest(text="'ttl' is seconds or text like \"12h\", \"30m\", \"7d\"\n")
    max_sessions = field(data, "max_sessions", int)
    if max_sessions is not None and not 0 < max_sessions <= MAX_LINK_SESSIONS:
        raise web.HTTPBadRequest(text=f"'max_sessions' must be 1-{MAX_LINK_SESSIONS}\n")
    try:
        token, link, claims = mint_link(access.store, access.issuer, request_base(request, config), slug,
                                        role, name, ttl_s, theatre, max_sessions, minted_by=who.describe())
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    # listed on every node of a cluster too
    await shared.share(request.app, shared.link_message(MintedToken(
        claims.jti, slug, str(role), name, theatre, claims.iat, claims.exp, max_sessions, who.describe())))
    return web.json_response({
        "token": token,
        "link": link,
        "jti": claims.jti, "role": str(role), "name": name, "theatre": theatre,
        "expires_at": claims.exp, "max_sessions": max_sessions,
    }, status=201, headers={"Cache-Control": "no-store"})


async def list_tokens(request: web.Request) -> web.Response:
    slug, _ = _organizer(request)
    access = request.app[ACCESS]
    now = time.time()
    live = access.live_counts()
    elsewhere = access.elsewhere or (lambda jti: 0)  # on the cluster's other nodes
    out = []
    for t in access.store.tokens(slug):
        state = "revoked" if t.revoked_at else "expired" if t.expires_at <= now else "valid"
        out.append({"jti": t.jti, "role": t.role, "name": t.name, "theatre": t.theatre,
                    "issued_at": t.issued_at, "expires_at": t.expires_at, "max_sessions": t.max_sessions,
                    "minted_by": t.minted_by, "state": state, "live_sessions": live[t.jti] + elsewhere(t.jti)})
    return web.json_response({"tokens": out})


async def revoke(request: web.Request) -> web.Response:
    slug, _ = _organizer(request)
    jti = request.match_info["jti"]
    if not 0 < len(jti) <= 64:
        raise web.HTTPBadRequest(text="a token id (jti) is 1-64 characters\n")
    closed = await request.app[ACCESS].revoke(slug, jti)
    return web.json_response({"revoked": jti, "closed_sessions": closed})


async def revoke_all(request: web.Request) -> web.Response:
    slug, _ = _organizer(request)
    closed = await request.app[ACCESS].revoke_all(slug)
    return web.json_response({
        "revoked": "all", "closed_sessions": closed,
        "note": "every link of this event minted so far no longer works, including organizer "
                "links of this event; mint new ones with a server-wide organizer link or "
                "`orcast token`",
    })


def _session_row(kind: str, sid: str, who: Participant | None, **extra: Any) -> dict[str, Any]:
    return {"id": sid, "kind": kind,
            "role": str(who.role) if who else None, "name": who.name if who else None,
            "theatre": who.theatre if who else None, "jti": who.token_id if who else None, **extra}


async def list_sessions(request: web.Request) -> web.Response:
    """The event's live sessions on this node and, in a cluster, on every other node (asked
    with the caller's own link); each id names its node, so a kick reaches it from any node."""
    slug, _ = _organizer(request)
    node = request.app[CLUSTER]
    me = node.cluster.node_id if node.cluster.enabled else None
    now = time.monotonic()
    rows = []
    for session in request.app[BROADCASTER].sessions.values():
        if session.event != slug:
            continue
        rows.append(_session_row(
            session.role, tagged(session.id, me), session.participant,
            path=str(session.path) if session.path else None,
            state=session.connection_state, seconds=round(now - session.created_at, 1),
            worker=getattr(session, "worker_index", 0), node=me))
    for conn in request.app[WS_HUB].connections:
        if conn.event == slug:
            rows.append(_session_row("websocket", tagged(conn.id, me), conn.participant, path=None,
                                     state="connected", seconds=round(time.time() - conn.connected_at, 1), node=me))
    unreachable: list[str] = []
    if me is not None and not request.headers.get(FORWARDED):
        for entry, answer in await node.ask_others(request.rel_url.path, request.headers.get("Authorization")):
            if isinstance(answer, dict) and isinstance(answer.get("sessions"), list):
                rows.extend(r for r in answer["sessions"] if isinstance(r, dict))
            else:
                unreachable.append(entry.node_id)
    return web.json_response({"sessions": rows, "nodes_unreachable": unreachable})


async def kick(request: web.Request) -> web.Response:
    slug, who = _organizer(request)
    sid = request.match_info["session"]
    session = request.app[BROADCASTER].sessions.get(sid)
    if session is not None and session.event == slug:
        await session.close(CloseReason.KICKED, who.name)
        return web.json_response({"kicked": sid})
    for conn in list(request.app[WS_HUB].connections):
        if conn.id == sid and conn.event == slug:
            await conn.close(CloseReason.KICKED, who.name)
            return web.json_response({"kicked": sid})
    raise web.HTTPNotFound(text="no such live session in this event (it may have ended)\n")


async def kick_link(request: web.Request) -> web.Response:
    """End every connection of one link in this event: its pages are told why and do not come
    back by themselves (they may be opened again; revoking the link keeps its holder out)."""
    slug, who = _organizer(request)
    jti = request.match_info["jti"]
    pages = [c for c in request.app[WS_HUB].connections if c.event == slug and c.participant.token_id == jti]
    sessions = [s for s in request.app[BROADCASTER].sessions.values()
                if s.event == slug and s.participant is not None and s.participant.token_id == jti]
    cluster = request.app[CLUSTER].cluster.enabled
    if not pages and not sessions and not cluster:
        raise web.HTTPNotFound(text="this link holds no live connection in this event\n")
    # the pages first (told before their media drops, they stop instead of reconnecting), on
    # every node of a cluster
    await request.app[ACCESS].kick_link(slug, jti, who.name)
    logger.info("%s kicked link %s of %s: %d page(s), %d session(s)", who.describe(), jti[:8], slug,
                len(pages), len(sessions))
    return web.json_response({"kicked": jti, "pages": len(pages), "sessions": len(sessions)})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/events/{event}/tokens", mint),
        web.get("/api/events/{event}/tokens", list_tokens),
        web.delete("/api/events/{event}/tokens/{jti}", revoke),
        web.post("/api/events/{event}/revoke-all", revoke_all),
        web.get("/api/events/{event}/sessions", list_sessions),
        web.delete("/api/events/{event}/sessions/{session}", kick),
        web.delete("/api/events/{event}/links/{jti}/connections", kick_link),
    ]
