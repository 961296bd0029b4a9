"""WHEP playback (draft-ietf-wish-whep): `POST /whep/{event}/{theatre}/{feed}` plays one feed.

A feed that is not live answers 409 with Retry-After. A feed whose publisher is
reconnecting accepts viewers, who start when it returns.

`?quality=auto|high|low|audio` picks the rendition (default auto); `POST {session}/quality`
with `{"quality": …}` changes it on the same connection, on the target's next keyframe (for a
viewer a worker process holds too: the worker is asked).
"""

from __future__ import annotations

from aiohttp import web

from broadcast.broadcaster import Session
from broadcast.participant import Participant
from broadcast.relay.renditions import QUALITIES
from broadcast.webrtc.viewer import ViewerSession
from broadcast.workers.remotesession import RemoteViewerSession
from signaling.auth.access import Identity
from signaling.http.bodies import check_keys, read_json
from signaling.http.params import stream_path
from signaling.http.webrtcsession import create_session, delete_session, options_handler, patch_session, session_of
from signaling.keys import ACCESS, BROADCASTER, CLUSTER

FEED = "/whep/{event}/{theatre}/{feed}"
SESSION = FEED + "/{session}"


def _admit(request: web.Request) -> Identity:
    return request.app[ACCESS].admit_viewer(request, stream_path(request))


def _quality(value: object) -> str:
    if not isinstance(value, str) or value not in QUALITIES:
        raise web.HTTPBadRequest(text=f"quality must be one of {', '.join(QUALITIES)} (auto: the server picks by "
                                      "the viewer's connection)\n")
    return value


async def _play(request: web.Request, offer: str, who: Participant) -> Session:
    request.app[CLUSTER].prepare_play(stream_path(request), who)  # a feed another node holds is pulled
    return await request.app[BROADCASTER].play(stream_path(request), offer, protocol="whep", participant=who,
                                               quality=_quality(request.query.get("quality", "auto")))


async def post_offer(request: web.Request) -> web.Response:
    _quality(request.query.get("quality", "auto"))  # before the body is read: a typo is a 400 at once
    return await create_session(request, _admit, _play, "WHEP")


def _viewer(request: web.Request) -> ViewerSession | RemoteViewerSession:
    session = session_of(request)
    if not isinstance(session, (ViewerSession, RemoteViewerSession)):
        raise web.HTTPNotFound(text="no such viewer session (it may have ended); start a new one\n")
    return session


async def _status(session: ViewerSession | RemoteViewerSession, quality: str | None = None) -> web.Response:
    """A viewer held here answers at once; one a worker process holds is asked over its link."""
    if isinstance(session, RemoteViewerSession):
        return web.json_response(await session.quality_status(quality))
    if quality is not None:
        session.set_quality(quality)
    return web.json_response(session.quality_status())


async def get_quality(request: web.Request) -> web.Response:
    """What the viewer asked for, what it gets, and what its RTCP says of its link."""
    return await _status(_viewer(request))


async def set_quality(request: web.Request) -> web.Response:
    session = _viewer(request)
    data = await read_json(request)
    check_keys(data, {"quality"})
    return await _status(session, _quality(data.get("quality")))


def routes() -> list[web.RouteDef]:
    return [
        web.post(FEED, post_offer),
        web.options(FEED, options_handler("POST, OPTIONS")),
        web.patch(SESSION, patch_session),
        web.delete(SESSION, delete_session),
        web.options(SESSION, options_handler("PATCH, DELETE, OPTIONS")),
        web.post(SESSION + "/quality", set_quality),
        web.get(SESSION + "/quality", get_quality),
    ]
