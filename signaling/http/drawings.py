"""What was drawn on the pictures, for the recordings page and the Q&A export.

    GET /api/recordings/{event}/{theatre}/{feed}/{recording}/annotations
        the strokes of one recording, each at its second in the recording (library readers)
    GET /api/events/{event}/annotations?format=json|csv
        every stroke, undo, clear and pin of the event (moderators, organizers), with the
        questions' export on the moderator page

A stroke is kept with the feed's media clock; a recording's segment says where its first
picture sits on that clock, so `t` is exact to the frame whatever the segment's wall-clock
start. Segments written before annotations were kept have no such mark: their wall-clock
start stands in.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from broadcast.participant import Capability
from broadcast.recording.library import SegmentRecord
from broadcast.telestration.board import DEFAULT_FADE_S
from signaling.http.params import query_choice, stream_path
from signaling.http.qa import csv_cell
from signaling.http.recordings import RECORDING_ID
from signaling.keys import ACCESS, BROADCASTER, TELESTRATION

CSV_COLUMNS = ["feed", "type", "at_utc", "media_time", "by", "kind", "color", "width", "points", "pinned", "id"]


async def telestration_ctx(app: web.Application) -> AsyncIterator[None]:
    app[TELESTRATION].start()
    yield
    await app[TELESTRATION].close()


def _segment_start(seg: SegmentRecord) -> float:
    if seg.media_start is not None:
        return seg.media_start
    return datetime.fromisoformat(seg.started_at.replace("Z", "+00:00")).timestamp()


def place(records: list[dict[str, Any]], segments: list[SegmentRecord]) -> list[dict[str, Any]]:
    """Each record with `t`: its second in the recording (the segments played one after another)."""
    spans, offset = [], 0.0
    for seg in segments:
        spans.append((_segment_start(seg), seg.duration_s, offset))
        offset += seg.duration_s
    out = []
    for record in records:
        moment = record.get("media_time")
        if not isinstance(moment, (int, float)):
            continue
        for start, duration, before in spans:
            if start - 1.0 <= moment <= start + duration:
                out.append({**record, "t": round(before + max(0.0, moment - start), 3)})
                break
    return out


async def recording_annotations(request: web.Request) -> web.Response:
    path = stream_path(request, not_found="no such recording")
    rec_id = request.match_info["recording"]
    if not RECORDING_ID.match(rec_id):
        raise web.HTTPNotFound(text="no such recording (an id looks like 20261203T101500Z)\n")
    access = request.app[ACCESS]
    who = access.require(request, path.event, Capability.LIBRARY).participant
    if not who.covers_theatre(path.theatre):
        raise web.HTTPForbidden(text=f"this link is for theatre {who.theatre!r}\n")
    manager = request.app[BROADCASTER].recordings
    rec = next((r for r in manager.library.recordings(path.event, path.theatre, path.feed,
                                                      live=manager.live_segment) if r.id == rec_id), None)
    if rec is None:
        raise web.HTTPNotFound(text="no such recording (deleted, or never recorded)\n")
    telestration = request.app[TELESTRATION]
    records = telestration.log.read(path) if telestration.log is not None else []
    event = access.store.get(path.event)
    return web.json_response({"recording": rec_id, "fade_s": event.stroke_fade_s if event else DEFAULT_FADE_S,
                              "annotations": place(records, rec.segments)},
                             headers={"Cache-Control": "no-store"})


async def export_annotations(request: web.Request) -> web.Response:
    slug = request.match_info["event"]
    access = request.app[ACCESS]
    who = access.require(request, slug, Capability.VIEW).participant
    if not (who.can(Capability.MODERATE) or who.can(Capability.ADMIN)):
        raise web.HTTPForbidden(text="the annotations' export is for moderators and organizers\n")
    access.event(slug)
    form = query_choice(request, "format", ("json", "csv"), "json")
    log = request.app[TELESTRATION].log
    feeds = {f"{p.theatre}/{p.feed}": log.read(p) for p in log.feeds(slug)} if log is not None else {}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="{slug}-annotations-{stamp}.{form}"',
               "Cache-Control": "no-store"}
    if form == "json":
        return web.json_response({"event": slug, "exported_at": time.time(), "feeds": feeds}, headers=headers)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for feed, records in feeds.items():
        writer.writerows(_csv_row(feed, r) for r in records)
    return web.Response(body=("\ufeff" + out.getvalue()).encode(), content_type="text/csv", charset="utf-8",
                        headers=headers)


def _csv_row(feed: str, record: dict[str, Any]) -> list[Any]:
    at = record.get("ended_at") or record.get("at") or record.get("started_at")
    when = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds") if isinstance(at, (int, float)) else ""
    points = record.get("points")
    return [feed, record.get("type", ""), when, record.get("media_time", ""), csv_cell(record.get("by", "")),
            record.get("kind", ""), record.get("color", ""), record.get("width", ""),
            len(points) if isinstance(points, list) else "", record.get("pinned", ""), record.get("id", "")]


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/recordings/{event}/{theatre}/{feed}/{recording}/annotations", recording_annotations),
        web.get("/api/events/{event}/annotations", export_annotations),
    ]
