"""REST API for pulled sources (IP cameras): list, add, remove.

    GET    /api/events/{event}/sources                     organizer; technician: its theatre
    POST   /api/events/{event}/sources                     {"theatre", "feed", "url", "transport"?, "token"?,
                                                            "on_demand"?}
    DELETE /api/events/{event}/sources/{theatre}/{feed}

Sources from the config file are listed (`"origin": "config"`) but only the file changes them;
sources added here are kept in the event store and pulled again after a restart. A URL is
never sent back as given: its password shows as `***`.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from broadcast.errors import BroadcastError
from broadcast.participant import Capability, Participant
from broadcast.relay.streampath import StreamPath, is_slug
from broadcast.sources.ondemand import OnDemandPull
from broadcast.sources.pulled import TRANSPORTS, PulledSource, PullSettings
from broadcast.webrtc.wheppull import WhepPull
from signaling.http.bodies import check_keys, field, read_json
from signaling.http.errors import http_error
from signaling.http.params import stream_path
from signaling.keys import ACCESS, BROADCASTER, CONFIG
from signaling.store.eventstore import StoredSource, StoreError

logger = logging.getLogger(__name__)


def _origin(request: web.Request, path: str) -> str:
    return "config" if any(s.path == path for s in request.app[CONFIG].sources) else "api"


def source_json(request: web.Request, source: PulledSource | WhepPull | OnDemandPull) -> dict[str, Any]:
    return {**source.status(), "origin": _origin(request, source.settings.path)}


def _theatre_allowed(who: Participant, theatre: str) -> None:
    if not who.covers_theatre(theatre):
        raise web.HTTPForbidden(text=f"this link is for theatre {who.theatre!r}: it can manage that "
                                     "theatre's sources only\n")


async def list_sources(request: web.Request) -> web.Response:
    slug = request.match_info["event"]
    access = request.app[ACCESS]
    who = access.require(request, slug, Capability.PUBLISH).participant
    access.event(slug)
    rows = [source_json(request, s) for path, s in sorted(request.app[BROADCASTER].pulled.items(), key=str)
            if path.event == slug and who.covers_theatre(path.theatre)]
    return web.json_response({"sources": rows})


async def add_source(request: web.Request) -> web.Response:
    slug = request.match_info["event"]
    access = request.app[ACCESS]
    who = access.require(request, slug, Capability.PUBLISH).participant
    event = access.event(slug)
    data = await read_json(request)
    check_keys(data, {"theatre", "feed", "url", "transport", "token", "on_demand"})
    theatre = field(data, "theatre", str, required=True)
    feed = field(data, "feed", str, required=True)
    if not is_slug(theatre) or not is_slug(feed):
        raise web.HTTPBadRequest(text="'theatre' and 'feed' must be slugs like \"or3\" and \"room\"\n")
    _theatre_allowed(who, theatre)
    if not event.accepts_theatre(theatre):
        raise web.HTTPNotFound(text=f"the event has no theatre {theatre!r}; add it first\n")
    url = field(data, "url", str, required=True)
    transport = field(data, "transport", str, default="tcp")
    if transport not in TRANSPORTS:
        raise web.HTTPBadRequest(text=f"'transport' must be one of {', '.join(TRANSPORTS)}\n")
    token = field(data, "token", str)
    on_demand = field(data, "on_demand", bool, default=False)
    if token is not None and not (0 < len(token) <= 4096 and token.isprintable() and " " not in token):
        raise web.HTTPBadRequest(text="'token' must be the other server's bearer token (no spaces, at most 4096)\n")
    path = StreamPath(slug, theatre, feed)
    try:  # the media plane checks the url
        settings = PullSettings(str(path), url, transport, on_demand=on_demand, token=token)
        source = request.app[BROADCASTER].add_pulled_source(settings)
    except BroadcastError as exc:
        raise http_error(exc) from None
    try:
        access.store.put_source(StoredSource(str(path), url, transport, who.describe(), token, on_demand))
    except StoreError as exc:
        await request.app[BROADCASTER].remove_pulled_source(path)
        raise http_error(exc) from None
    logger.info("source %s added by %s: %s (%s%s)", path, who.describe(), settings.shown_url, transport,
                ", on demand" if on_demand else "")
    return web.json_response({"source": source_json(request, source)}, status=201)


async def remove_source(request: web.Request) -> web.Response:
    path = stream_path(request)
    access = request.app[ACCESS]
    who = access.require(request, path.event, Capability.PUBLISH).participant
    _theatre_allowed(who, path.theatre)
    broadcaster = request.app[BROADCASTER]
    if path not in broadcaster.pulled:
        raise web.HTTPNotFound(text=f"{path} is not pulled from a source\n")
    if _origin(request, str(path)) == "config":
        raise web.HTTPConflict(text=f"the source of {path} is in the config file ([[sources]]); remove it there "
                                    "and restart\n")
    await broadcaster.remove_pulled_source(path)
    access.store.delete_source(str(path))
    logger.info("source %s removed by %s", path, who.describe())
    return web.json_response({"removed": str(path)})


async def forget_event(app: web.Application, slug: str) -> None:
    """An event was deleted: stop pulling its feeds (the store dropped their rows with it)."""
    broadcaster = app[BROADCASTER]
    for path in [p for p in broadcaster.pulled if p.event == slug]:
        await broadcaster.remove_pulled_source(path)


def start_sources(app: web.Application) -> None:
    """At start-up: the config file's sources, then those added through the API."""
    broadcaster, store = app[BROADCASTER], app[ACCESS].store
    wanted = [(s, "config") for s in app[CONFIG].sources]
    wanted += [(PullSettings(s.path, s.url, s.transport, on_demand=s.on_demand, token=s.token), "api")
               for s in store.sources()
               if not any(c.path == s.path for c in app[CONFIG].sources)]
    for settings, origin in wanted:
        event = StreamPath.parse(settings.path).event
        if store.get(event) is None:
            logger.error("the source for %s names event %r, which does not exist; add it to [[events]] or "
                         "create it on the organizer page, then restart", settings.path, event)
            continue
        try:
            broadcaster.add_pulled_source(settings)
        except BroadcastError as exc:
            logger.error("the source for %s (%s) cannot start: %s", settings.path, origin, exc)
            continue
        logger.info("%s %s from %s (%s, from the %s)", "on demand:" if settings.on_demand else "pulling",
                    settings.path, settings.shown_url, settings.transport,
                    "config file" if origin == "config" else "event store")


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/api/events/{event}/sources", list_sources),
        web.post("/api/events/{event}/sources", add_source),
        web.delete("/api/events/{event}/sources/{theatre}/{feed}", remove_source),
    ]
