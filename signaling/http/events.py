"""REST API, the part every role uses: who am I, events, their theatres and live feeds.

Errors are JSON `{"error": "…", "status": N}` (see middleware.api_errors).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from aiohttp import web

from broadcast.lifecycle import CloseReason
from broadcast.participant import ALL_EVENTS, Capability, Participant
from broadcast.plaintext import single_line
from broadcast.relay.streampath import is_slug
from signaling.http import sources
from signaling.http.bodies import check_keys, field, read_json
from signaling.http.errors import http_error
from signaling.http.params import query_flag, stream_path
from signaling.keys import ACCESS, BROADCASTER, CLUSTER
from signaling.store.eventstore import Event, StoreError, Theatre
from signaling.views import visible_streams

MAX_TITLE = 200
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?)?$")


def you(who: Participant, exp: int | None) -> dict[str, Any]:
    return {"event": who.event, "role": str(who.role), "name": who.name, "theatre": who.theatre,
            "capabilities": sorted(str(c) for c in who.capabilities), "expires_at": exp}


async def me(request: web.Request) -> web.Response:
    """Who this token is: pages call it first to know what to show."""
    identity = request.app[ACCESS].identify_any(request)
    return web.json_response({"you": you(identity.participant, identity.claims.exp if identity.claims else None)})


async def list_events(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    who = access.identify_any(request).participant
    events = access.store.events() if who.event == ALL_EVENTS else [access.event(who.event)]
    return web.json_response({"events": [e.to_json() for e in events]})


def parse_event(data: dict[str, Any], slug: str | None = None) -> Event:
    check_keys(data, {"slug", "title", "theatres", "record", "public", "adhoc_theatres",
                      "starts_at", "ends_at"})
    slug = slug or field(data, "slug", str, required=True)
    if not is_slug(slug):
        raise web.HTTPBadRequest(text="'slug' must be 1-63 of a-z, 0-9 and '-', like \"hpb-2026\"\n")
    title = _title(field(data, "title", str, default=slug), "'title'")
    theatres = [parse_theatre(t) for t in field(data, "theatres", list, default=[])]
    if len({t.slug for t in theatres}) != len(theatres):
        raise web.HTTPBadRequest(text="a theatre is listed twice\n")
    if len(theatres) > 100:
        raise web.HTTPBadRequest(text="at most 100 theatres per event\n")
    dates = {}
    for key in ("starts_at", "ends_at"):
        value = field(data, key, str)
        if value is not None and not _ISO_DATE.match(value):
            raise web.HTTPBadRequest(text=f"{key!r} must be an ISO 8601 date/time like 2026-05-12T08:00+02:00\n")
        dates[key] = value
    return Event(slug=slug, title=title, theatres=tuple(theatres),
                 record=field(data, "record", bool, default=False),
                 public=field(data, "public", bool, default=False),
                 adhoc_theatres=field(data, "adhoc_theatres", bool, default=False), **dates)


def parse_theatre(item: Any) -> Theatre:
    if isinstance(item, str):
        item = {"slug": item}
    if not isinstance(item, dict):
        raise web.HTTPBadRequest(text="a theatre is \"or1\" or {\"slug\": \"or1\", \"title\": \"OR 1\"}\n")
    check_keys(item, {"slug", "title"})
    slug = field(item, "slug", str, required=True)
    if not is_slug(slug):
        raise web.HTTPBadRequest(text=f"theatre {slug[:40]!r}: a slug like \"or1\" (a-z, 0-9, '-')\n")
    return Theatre(slug, _title(field(item, "title", str, default=slug), f"the title of theatre {slug!r}"))


def _title(text: str, what: str) -> str:
    try:
        return single_line(text, what, MAX_TITLE)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None


def require_server_organizer(request: web.Request) -> Participant:
    who = request.app[ACCESS].identify_any(request).participant
    if who.event != ALL_EVENTS or not who.can(Capability.ADMIN):
        raise web.HTTPForbidden(text="this needs a server-wide organizer link "
                                     "(orcast token --event '*' --role organizer)\n")
    return who


async def create_event(request: web.Request) -> web.Response:
    """Only a server-wide organizer link (minted with `orcast token --event '*'`) creates events."""
    require_server_organizer(request)
    event = parse_event(await read_json(request))
    try:
        event = request.app[ACCESS].store.put_event(event)
    except StoreError as exc:
        raise http_error(exc) from None
    await request.app[BROADCASTER].recordings.reconcile()  # `record = true` starts at once
    return web.json_response({"event": event.to_json()}, status=201,
                             headers={"Location": f"/api/events/{event.slug}"})


async def delete_event(request: web.Request) -> web.Response:
    require_server_organizer(request)
    access = request.app[ACCESS]
    slug = request.match_info["event"]
    access.event(slug)
    closed = await access.close_where(lambda p: p.event == slug, lambda p: CloseReason.EVENT_DELETED)
    try:
        access.store.delete_event(slug)
    except StoreError as exc:
        raise http_error(exc) from None
    await request.app[BROADCASTER].recordings.forget_event(slug)  # the files stay in the library
    request.app[BROADCASTER].qa.forget_event(slug)  # the Q&A is archived in the store
    await sources.forget_event(request.app, slug)  # its cameras are no longer pulled
    return web.json_response({"deleted": slug, "closed": closed})


async def get_event(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    slug = request.match_info["event"]
    identity = access.require(request, slug, Capability.VIEW)
    who = identity.participant
    return web.json_response({
        "event": access.event(slug).to_json(),
        "streams": visible_streams(request.app[CLUSTER].stream_infos(), who, slug),
        "you": you(who, identity.claims.exp if identity.claims else None),
    })


async def event_streams(request: web.Request) -> web.Response:
    slug = request.match_info["event"]
    who = request.app[ACCESS].require(request, slug, Capability.VIEW).participant
    return web.json_response({"streams": visible_streams(request.app[CLUSTER].stream_infos(), who, slug)})


async def add_theatre(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    slug = request.match_info["event"]
    access.require(request, slug, Capability.ADMIN)
    theatre = parse_theatre(await read_json(request))
    try:
        event = access.store.add_theatre(slug, theatre)
    except StoreError as exc:
        raise http_error(exc) from None
    return web.json_response({"event": event.to_json()}, status=201)


async def all_streams(request: web.Request) -> web.Response:
    """Every feed on this server: a server-wide organizer's overview."""
    require_server_organizer(request)
    live_only = not query_flag(request, "all")
    streams = [dataclasses.asdict(info) for info in request.app[CLUSTER].stream_infos()
               if info.live or not live_only]
    return web.json_response({"streams": streams})


async def thumbnail(request: web.Request) -> web.Response:
    """The latest still of a feed (JPEG, 320 px wide, at most ~10 s old while it is live)."""
    path = stream_path(request)
    identity = request.app[ACCESS].require(request, path.event, Capability.VIEW)
    if not identity.participant.may_watch(path.event, path.theatre):
        raise web.HTTPForbidden(text=f"this link cannot watch theatre {path.theatre!r}\n")
    broadcaster = request.app[BROADCASTER]
    picture = broadcaster.thumbnails.get(path)
    if picture is None:
        stream = broadcaster.streams.get(path)
        remote = None if stream is not None and stream.live else await request.app[CLUSTER].remote_thumbnail(path)
        if remote is not None:  # a feed another node of the cluster holds
            return web.Response(body=remote[0], content_type="image/jpeg", headers={
                "Cache-Control": "no-store", "X-Captured-At": remote[1]})
        held_elsewhere = request.app[CLUSTER].cluster.holder(str(path)) is not None
        if (stream is not None and stream.live) or held_elsewhere:
            # live, its first still is on its way: not an error (a browser logs every 404)
            return web.Response(status=204, headers={"Retry-After": "2", "Cache-Control": "no-store"})
        raise web.HTTPNotFound(text=f"no picture of {path}: it is not live and has never been\n")
    return web.Response(body=picture.jpeg, content_type="image/jpeg", headers={
        "Cache-Control": "no-store", "X-Captured-At": f"{picture.captured_at:.0f}"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/me", me),
        web.get("/api/events", list_events),
        web.post("/api/events", create_event),
        web.get("/api/events/{event}", get_event),
        web.delete("/api/events/{event}", delete_event),
        web.get("/api/events/{event}/streams", event_streams),
        web.post("/api/events/{event}/theatres", add_theatre),
        web.get("/api/streams", all_streams),
        web.get("/api/events/{event}/thumbnails/{theatre}/{feed}", thumbnail),
    ]
