"""WHIP ingest (RFC 9725): `POST /whip/{event}/{theatre}/{feed}` publishes one feed."""

from __future__ import annotations

from aiohttp import web

from broadcast.participant import Participant
from broadcast.session import PeerSession
from broadcast.streampath import StreamPath

from .access import Identity
from .appstate import ACCESS, BROADCASTER
from .httpsession import create_session, delete_session, options_handler, patch_session

FEED = "/whip/{event}/{theatre}/{feed}"
SESSION = FEED + "/{session}"


def _admit(request: web.Request, path: StreamPath) -> Identity:
    return request.app[ACCESS].admit_publisher(request, path)


async def _publish(request: web.Request, path: StreamPath, offer: str, who: Participant) -> PeerSession:
    return await request.app[BROADCASTER].publish(path, offer, protocol="whip", participant=who)


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
