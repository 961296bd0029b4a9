"""WHEP playback (draft-ietf-wish-whep): `POST /whep/{event}/{theatre}/{feed}` plays one feed.

A feed that is not live answers 409 with Retry-After. A feed whose publisher is
reconnecting accepts viewers, who start when it returns.
"""

from __future__ import annotations

from aiohttp import web

from broadcast.broadcaster import Session
from broadcast.participant import Participant
from signaling.auth.access import Identity
from signaling.http.params import stream_path
from signaling.http.webrtcsession import create_session, delete_session, options_handler, patch_session
from signaling.keys import ACCESS, BROADCASTER

FEED = "/whep/{event}/{theatre}/{feed}"
SESSION = FEED + "/{session}"


def _admit(request: web.Request) -> Identity:
    return request.app[ACCESS].admit_viewer(request, stream_path(request))


async def _play(request: web.Request, offer: str, who: Participant) -> Session:
    return await request.app[BROADCASTER].play(stream_path(request), offer, protocol="whep", participant=who)


async def post_offer(request: web.Request) -> web.Response:
    return await create_session(request, _admit, _play, "WHEP")


def routes() -> list[web.RouteDef]:
    return [
        web.post(FEED, post_offer),
        web.options(FEED, options_handler("POST, OPTIONS")),
        web.patch(SESSION, patch_session),
        web.delete(SESSION, delete_session),
        web.options(SESSION, options_handler("PATCH, DELETE, OPTIONS")),
    ]
