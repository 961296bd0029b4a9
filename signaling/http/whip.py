"""WHIP ingest (RFC 9725): `POST /whip/{event}/{theatre}/{feed}` publishes one feed."""

from __future__ import annotations

from aiohttp import web

from broadcast.broadcaster import Session
from broadcast.participant import Participant
from signaling.auth.access import Identity
from signaling.http.params import stream_path
from signaling.http.webrtcsession import create_session, delete_session, options_handler, patch_session
from signaling.keys import ACCESS, BROADCASTER

FEED = "/whip/{event}/{theatre}/{feed}"
SESSION = FEED + "/{session}"


def _admit(request: web.Request) -> Identity:
    return request.app[ACCESS].admit_publisher(request, stream_path(request))


async def _publish(request: web.Request, offer: str, who: Participant) -> Session:
    return await request.app[BROADCASTER].publish(stream_path(request), offer, protocol="whip", participant=who)


async def post_offer(request: web.Request) -> web.Response:
    return await create_session(request, _admit, _publish, "WHIP")


def routes() -> list[web.RouteDef]:
    return [
        web.post(FEED, post_offer),
        web.options(FEED, options_handler("POST, OPTIONS")),
        web.patch(SESSION, patch_session),
        web.delete(SESSION, delete_session),
        web.options(SESSION, options_handler("PATCH, DELETE, OPTIONS")),
    ]
