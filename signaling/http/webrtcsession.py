"""What WHIP and WHEP share: reading SDP bodies, the session resource (PATCH, DELETE),
OPTIONS/CORS and ICE server Link headers (media-plane errors become HTTP in errors.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from broadcast.broadcaster import Session
from broadcast.errors import BroadcastError, SessionNotFound
from broadcast.lifecycle import CloseReason
from broadcast.participant import Participant
from broadcast.webrtc.sdpoffer import MAX_SDP_BYTES
from broadcast.webrtc.session import IceServer
from signaling.auth.access import Identity
from signaling.cluster.forward import tagged
from signaling.http.bodies import read_text
from signaling.http.errors import http_error
from signaling.http.params import stream_path
from signaling.keys import ACCESS, BROADCASTER, CLUSTER, HEALTH

logger = logging.getLogger(__name__)

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
EXPOSED = "Location, Link, ETag, Accept-Patch, Retry-After"


def text_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


def ice_link_header(servers: list[IceServer]) -> str | None:
    links = []
    for server in (s.resolved() for s in servers):
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username and server.credential:
                link += (f'; username="{server.username}"; credential="{server.credential}"; '
                         'credential-type="password"')
            links.append(link)
    return ", ".join(links) or None


def options_handler(methods: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def options(request: web.Request) -> web.Response:
        headers = {"Allow": methods}
        if "POST" in methods:
            headers["Accept-Post"] = SDP
        if "PATCH" in methods:
            headers["Accept-Patch"] = TRICKLE
        link = ice_link_header(request.app[BROADCASTER].settings.ice_servers)
        if link:
            headers["Link"] = link
        return web.Response(status=204, headers=headers)

    return options


Admitter = Callable[[web.Request], Identity]
Starter = Callable[[web.Request, str, Participant], Awaitable[Session]]


async def create_session(request: web.Request, admit: Admitter, start: Starter, kind: str) -> web.Response:
    """POST an offer: who asks is checked first, then the body; 201 with the answer and Location."""
    if request.app[HEALTH].stopping:
        return text_error(503, "the server is shutting down; retry in a few seconds (it is restarting, "
                               "or another server takes over)", {"Retry-After": "5"})
    identity = admit(request)
    try:
        offer = await read_text(request, SDP, MAX_SDP_BYTES)
        session = await start(request, offer, identity.participant)
    except BroadcastError as exc:
        logger.info("%s %s refused for %s: %s", kind, request.path, identity.participant.describe(), exc)
        raise http_error(exc) from None
    finally:
        request.app[ACCESS].release(identity)
    node = request.app[CLUSTER].cluster
    headers = {
        # in a cluster the URL names this node: any node can pass a request for it on here
        "Location": f"{request.path.rstrip('/')}/{tagged(session.id, node.node_id if node.enabled else None)}",
        "Content-Type": SDP,
    }
    link = ice_link_header(request.app[BROADCASTER].settings.ice_servers)
    if link:
        headers["Link"] = link
    return web.Response(status=201, text=session.answer_sdp, headers=headers)


def session_of(request: web.Request) -> Session:
    """The session named by the URL, for its own link or an organizer of its event."""
    event = request.match_info["event"]
    path = stream_path(request) if "feed" in request.match_info else None  # None: a Q&A session
    access = request.app[ACCESS]
    who = access.identify(request, event).participant
    try:
        session = request.app[BROADCASTER].get_session(request.match_info["session"])
    except SessionNotFound as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    if session.event != event or session.path != path:
        raise web.HTTPNotFound(text="no such session at this address\n")
    if not access.may_manage_session(who, session.participant, event):
        raise web.HTTPForbidden(text="this session belongs to another link\n")
    return session


async def patch_session(request: web.Request) -> web.Response:
    session = session_of(request)
    fragment = await read_text(request, TRICKLE, MAX_SDP_BYTES)
    if "a=ice-ufrag:" in fragment and not request.headers.get("If-Match"):
        return text_error(428, "an ICE restart needs an If-Match header")
    try:
        await session.add_ice_fragment(fragment)
    except BroadcastError as exc:
        raise http_error(exc) from None
    return web.Response(status=204)


async def delete_session(request: web.Request) -> web.Response:
    session = session_of(request)
    await session.close(CloseReason.CLIENT_LEFT)
    return web.Response(status=200)
