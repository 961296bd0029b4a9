"""The Q&A's HTTP side.

- `POST /qa/{event}`: a WebRTC connection that carries only the `qa` data channel (WHEP-like:
  SDP offer in, 201 + answer + Location out; PATCH/DELETE on the session). Viewers, halls and
  technician consoles can open the same channel on their WHEP/WHIP connections instead.
- `GET /api/events/{event}/questions?format=json|csv`: the export after (or during) the event,
  for moderators and organizers.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from broadcast.broadcaster import Session
from broadcast.participant import Capability, Participant
from broadcast.qa.question import Question
from signaling.auth.access import Identity
from signaling.http.params import query_choice
from signaling.http.webrtcsession import create_session, delete_session, options_handler, patch_session
from signaling.keys import ACCESS, BROADCASTER

BOARD = "/qa/{event}"
SESSION = BOARD + "/{session}"
CSV_COLUMNS = ("id", "state", "theatre", "text", "original_text", "author", "anonymous", "author_role",
               "votes", "pinned", "on_air", "merged_into", "reason", "edited_by", "created_at",
               "answered_at", "updated_at")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _admit(request: web.Request) -> Identity:
    return request.app[ACCESS].admit_qa(request, request.match_info["event"])


async def _join(request: web.Request, offer: str, who: Participant) -> Session:
    return await request.app[BROADCASTER].join_qa(request.match_info["event"], offer, participant=who)


async def post_offer(request: web.Request) -> web.Response:
    return await create_session(request, _admit, _join, "Q&A")


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


def csv_cell(value: Any) -> Any:
    # a question starting with "=" must not become a formula in a spreadsheet
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_row(q: Question) -> list[Any]:
    view = q.moderator_view()
    view["created_at"], view["answered_at"], view["updated_at"] = (
        _iso(q.created_at), _iso(q.answered_at), _iso(q.updated_at))
    return [csv_cell(view.get(column)) if view.get(column) is not None else "" for column in CSV_COLUMNS]


async def export_questions(request: web.Request) -> web.Response:
    slug = request.match_info["event"]
    request.app[ACCESS].require(request, slug, Capability.MODERATE)
    form = query_choice(request, "format", ("json", "csv"), "json")
    questions, actions = request.app[BROADCASTER].qa.export(slug)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    disposition = f'attachment; filename="{slug}-questions-{stamp}.{form}"'
    if form == "json":
        body = {"event": slug, "exported_at": time.time(),
                "questions": [q.moderator_view() for q in questions],
                "actions": [a.to_json() for a in actions]}
        return web.json_response(body, headers={"Content-Disposition": disposition})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(q) for q in questions)
    # a BOM so spreadsheet programs read the UTF-8 (names and questions in every language)
    return web.Response(body=("\ufeff" + out.getvalue()).encode(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": disposition})


def routes() -> list[web.RouteDef]:
    return [
        web.post(BOARD, post_offer),
        web.options(BOARD, options_handler("POST, OPTIONS")),
        web.patch(SESSION, patch_session),
        web.delete(SESSION, delete_session),
        web.options(SESSION, options_handler("PATCH, DELETE, OPTIONS")),
        web.get("/api/events/{event}/questions", export_questions),
    ]
