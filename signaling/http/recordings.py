"""REST API for recordings: start and stop them, see their state, and the library.

Control (`record`: technician, moderator, organizer) works on an event, a theatre or one
feed. The library (`library`: the same roles) lists recordings with signed per-file URLs a
`<video>` element can play and seek (HTTP Range); deleting needs an organizer.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from broadcast.errors import InsufficientStorage
from broadcast.participant import ALL_EVENTS, Capability, Participant
from broadcast.recording.library import Recording
from broadcast.recording.manager import RecordingScope
from signaling.auth.access import Access
from signaling.auth.tokens import TokenClaims, TokenError
from signaling.http.bodies import check_keys, field, read_json
from signaling.http.errors import http_error
from signaling.http.params import query_flag, query_slug, stream_path
from signaling.keys import ACCESS, BROADCASTER, TICKETS

logger = logging.getLogger(__name__)

RECORDING_ID = re.compile(r"^\d{8}T\d{6}Z$")
MEDIA_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}


def _feed_visible(who: Participant, path: str) -> bool:
    return who.covers_theatre(path.split("/")[1])


# -- control ----------------------------------------------------------------------------
async def recording_state(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    slug = request.match_info["event"]
    who = access.require(request, slug, Capability.RECORD).participant
    manager = request.app[BROADCASTER].recordings
    rules = [{"scope": str(scope), "record": on} for scope, on in manager.rules.items()
             if scope.event == slug and (who.theatre is None or scope.theatre == who.theatre)]
    return web.json_response({
        "event_records": access.event(slug).record,
        "rules": rules,
        "feeds": [dataclasses.asdict(s) for s in manager.statuses(slug) if _feed_visible(who, s.path)],
        "free_bytes": manager.free_bytes(),
        "min_free_bytes": manager.settings.min_free_bytes,
    })


async def control(request: web.Request) -> web.Response:
    """Start or stop recording an event, a theatre or one feed."""
    access = request.app[ACCESS]
    slug = request.match_info["event"]
    who = access.require(request, slug, Capability.RECORD).participant
    data = await read_json(request)
    check_keys(data, {"action", "theatre", "feed"})
    action = field(data, "action", str, required=True)
    if action not in ("start", "stop"):
        raise web.HTTPBadRequest(text="'action' must be \"start\" or \"stop\"\n")
    theatre, feed = field(data, "theatre", str), field(data, "feed", str)
    if who.theatre is not None and theatre != who.theatre:
        raise web.HTTPForbidden(text=f"this link is for theatre {who.theatre!r}: it can record "
                                     f"that theatre or its feeds only (send \"theatre\": \"{who.theatre}\")\n")
    try:
        scope = RecordingScope(slug, theatre, feed)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    if theatre is not None and not access.event(slug).accepts_theatre(theatre):
        raise web.HTTPNotFound(text=f"the event has no theatre {theatre!r}\n")
    manager = request.app[BROADCASTER].recordings
    try:
        live = await manager.set(scope, action == "start")
    except InsufficientStorage as exc:
        raise http_error(exc) from None
    logger.info("recording %s for %s by %s", "started" if action == "start" else "stopped",
                scope, who.describe())
    return web.json_response({
        "scope": str(scope), "record": action == "start",
        "feeds": [dataclasses.asdict(manager.status(p)) for p in live],
    })


# -- library ----------------------------------------------------------------------------
def _library_reader(access: Access, request: web.Request) -> tuple[Participant, TokenClaims | None]:
    identity = access.identify_any(request)
    access.check_capability(identity.participant, Capability.LIBRARY)
    return identity.participant, identity.claims


def _recording_json(rec: Recording, claims: TokenClaims | None, request: web.Request) -> dict[str, Any]:
    tickets = request.app[TICKETS]
    out = dataclasses.asdict(rec)
    for seg in out["segments"]:
        resource = f"{rec.path}/{seg['file']}"
        url = f"/api/recordings/{resource}"
        if claims is not None:
            url += f"?ticket={quote(tickets.sign(resource, claims))}"
        seg["url"] = url
    return out


async def list_recordings(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    who, claims = _library_reader(access, request)
    event, theatre, feed = (query_slug(request, k) for k in ("event", "theatre", "feed"))
    if who.event != ALL_EVENTS:
        if event not in (None, who.event):
            raise web.HTTPForbidden(text=f"this link is for the event {who.event!r}\n")
        event = who.event
    if who.theatre is not None:
        if theatre not in (None, who.theatre):
            raise web.HTTPForbidden(text=f"this link is for theatre {who.theatre!r}\n")
        theatre = who.theatre
    if feed is not None and theatre is None:
        raise web.HTTPBadRequest(text="a 'feed' filter needs a 'theatre' filter too\n")
    manager = request.app[BROADCASTER].recordings
    recs = manager.library.recordings(event, theatre, feed, live=manager.live_segment)
    return web.json_response({"recordings": [_recording_json(r, claims, request) for r in recs]},
                             headers={"Cache-Control": "no-store"})


async def download(request: web.Request) -> web.StreamResponse:
    """One segment file, with Range support (a `<video>` seeks by asking for byte ranges)."""
    access = request.app[ACCESS]
    path = stream_path(request, not_found="no such recording")
    name = request.match_info["file"]
    ticket = request.query.get("ticket")
    if ticket is not None:
        try:
            claims = request.app[TICKETS].verify(f"{path}/{name}", ticket)
        except TokenError as exc:
            raise web.HTTPUnauthorized(text=f"{exc}\n") from None
        if access.store.is_revoked(claims):
            raise web.HTTPUnauthorized(text="the link this recording was opened with has been revoked\n")
        who = claims.participant()
        if not who.covers_event(path.event):
            raise web.HTTPForbidden(text="this recording link is for another event\n")
    else:
        who = access.identify(request, path.event).participant
    access.check_capability(who, Capability.LIBRARY)
    if not who.covers_theatre(path.theatre):
        raise web.HTTPForbidden(text=f"this link is for theatre {who.theatre!r}\n")
    manager = request.app[BROADCASTER].recordings
    try:
        file = manager.library.segment_file(path, name)
    except ValueError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    if not file.is_file():
        raise web.HTTPNotFound(text="no such recording file (deleted, or never recorded)\n")
    headers = {"Content-Type": MEDIA_TYPES[file.suffix], "Cache-Control": "private, no-cache"}
    if query_flag(request, "download"):
        headers["Content-Disposition"] = f'attachment; filename="{path.event}-{path.theatre}-{path.feed}-{name}"'
    return web.FileResponse(file, headers=headers)


async def delete_recording(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    path = stream_path(request, not_found="no such recording")
    who = access.require(request, path.event, Capability.ADMIN).participant
    rec_id = request.match_info["file"]
    if not RECORDING_ID.match(rec_id):
        raise web.HTTPNotFound(text="a recording id looks like 20261122T080000Z\n")
    manager = request.app[BROADCASTER].recordings
    if (str(path), rec_id) in manager.busy_recordings():
        raise web.HTTPConflict(text="this recording is still running: stop it first\n")
    removed = manager.library.delete(path, rec_id)
    if not removed:
        raise web.HTTPNotFound(text="no such recording\n")
    logger.info("recording %s of %s deleted (%d segment(s)) by %s", rec_id, path, removed, who.describe())
    return web.json_response({"deleted": rec_id, "segments": removed})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/events/{event}/recording", recording_state),
        web.post("/api/events/{event}/recording", control),
        web.get("/api/recordings", list_recordings),
        web.get("/api/recordings/{event}/{theatre}/{feed}/{file}", download),
        web.delete("/api/recordings/{event}/{theatre}/{feed}/{file}", delete_recording),
    ]
