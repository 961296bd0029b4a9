"""REST API, the part every role uses: who am I, events, their theatres and live feeds.

Errors are JSON `{"error": "…", "status": N}` (see middleware.api_errors).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from broadcast.participant import ALL_EVENTS, Capability, Participant
from signaling.cluster import shared
from signaling.eventlife import event_changed, event_removed
from signaling.http.bodies import read_json
from signaling.http.errors import http_error
from signaling.http.eventbody import parse_event, parse_theatre
from signaling.http.params import query_flag, stream_path
from signaling.keys import ACCESS, BROADCASTER, CLUSTER
from signaling.store.eventstore import StoreError
from signaling.views import visible_streams


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
    await request.app[CLUSTER].new_event_generation(event.slug, event.token_gen)
    await shared.share(request.app, shared.event_message(event))  # every node of a cluster has it
    await event_changed(request.app)
    return web.json_response({"event": event.to_json()}, status=201,
                             headers={"Location": f"/api/events/{event.slug}"})


async def delete_event(request: web.Request) -> web.Response:
    require_server_organizer(request)
    slug = request.match_info["event"]
    request.app[ACCESS].event(slug)
    try:
        closed = await event_removed(request.app, slug)
    except StoreError as exc:
        raise http_error(exc) from None
    await shared.share(request.app, shared.deleted_message(slug))
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
    await shared.share(request.app, shared.event_message(event))
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
