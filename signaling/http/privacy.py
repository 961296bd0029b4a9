"""The privacy pause: one button that hides a feed from everyone at once.

    POST /api/events/{event}/privacy/{theatre}/{feed}   {"paused": true|false, "audio": false}
    GET  /api/events/{event}/log                         the event's log (who paused what, when)

A technician (of that theatre), a moderator or an organizer pauses a feed: every viewer, the
hall, the recording and HLS get no picture from that moment (the pages show a "Paused for
privacy" card; the recording has a gap), the feed's last still is forgotten, and the sound is
muted too unless `audio` is true. Resuming starts the picture again on the next keyframe. In a
cluster every node is told (the node holding the source drops the frames before any pull).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from broadcast.participant import Capability, Participant
from broadcast.relay.stream import PrivacyPause
from broadcast.relay.streampath import StreamPath
from signaling.http.bodies import check_keys, field, read_json
from signaling.http.params import stream_path
from signaling.keys import ACCESS, BROADCASTER, CLUSTER, WS_HUB

logger = logging.getLogger(__name__)


def may_pause(who: Participant, path: StreamPath) -> bool:
    return who.can(Capability.MODERATE) or who.can(Capability.ADMIN) or (
        who.can(Capability.PUBLISH) and who.covers_theatre(path.theatre))


async def set_privacy(request: web.Request) -> web.Response:
    path = stream_path(request)
    access = request.app[ACCESS]
    who = access.require(request, path.event, Capability.VIEW).participant
    if not may_pause(who, path):
        raise web.HTTPForbidden(text="the privacy pause is for the theatre's technician, moderators and organizers\n")
    access.event(path.event)
    data = await read_json(request)
    check_keys(data, {"paused", "audio"})
    paused = field(data, "paused", bool, required=True)
    keep_audio = field(data, "audio", bool, default=False)
    pause = PrivacyPause(who.describe(), time.time(), keep_audio) if paused else None
    await apply_privacy(request.app, path, pause)
    node = request.app[CLUSTER]
    await node.cluster.announce({"type": "privacy", "event": path.event, "path": str(path), "paused": paused,
                                 "by": who.describe(), "audio": keep_audio})
    what = "paused for privacy" + (" (sound kept)" if keep_audio else "") if paused else "privacy pause ended"
    access.store.log_action(path.event, who.describe(), "privacy", f"{path.theatre}/{path.feed} {what}")
    logger.info("%s: %s by %s", path, what, who.describe())
    return web.json_response({"path": str(path), "paused": paused, "audio": keep_audio, "by": who.describe()})


async def apply_privacy(app: web.Application, path: StreamPath, pause: PrivacyPause | None) -> None:
    """Here: the media plane drops the frames, the pages are told at once."""
    app[BROADCASTER].set_privacy(path, pause)
    await app[WS_HUB].push()


async def event_log(request: web.Request) -> web.Response:
    slug = request.match_info["event"]
    who = request.app[ACCESS].require(request, slug, Capability.VIEW).participant
    if not (who.can(Capability.MODERATE) or who.can(Capability.ADMIN)):
        raise web.HTTPForbidden(text="the event's log is for moderators and organizers\n")
    return web.json_response({"log": request.app[ACCESS].store.event_log(slug)})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/events/{event}/privacy/{theatre}/{feed}", set_privacy),
        web.get("/api/events/{event}/log", event_log),
    ]
