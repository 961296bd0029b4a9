"""An event as an organizer sends it (the REST API, and another node of the cluster): checked
field by field, with a message a person can act on."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from broadcast.plaintext import single_line
from broadcast.relay.streampath import is_slug
from broadcast.telestration.board import DEFAULT_FADE_S
from signaling.http.bodies import check_keys, field
from signaling.store.eventstore import Event, Theatre

MAX_TITLE = 200
MIN_FADE_S, MAX_FADE_S = 1.0, 600.0
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?)?$")


def parse_event(data: dict[str, Any], slug: str | None = None) -> Event:
    check_keys(data, {"slug", "title", "theatres", "record", "public", "adhoc_theatres",
                      "starts_at", "ends_at", "viewers_draw", "stroke_fade_s"})
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
                 adhoc_theatres=field(data, "adhoc_theatres", bool, default=False),
                 viewers_draw=field(data, "viewers_draw", bool, default=False),
                 stroke_fade_s=fade_seconds(data.get("stroke_fade_s", DEFAULT_FADE_S)), **dates)


def fade_seconds(value: Any) -> float:
    if type(value) not in (int, float) or not MIN_FADE_S <= value <= MAX_FADE_S:
        raise web.HTTPBadRequest(text=f"'stroke_fade_s' is how long a stroke stays: {MIN_FADE_S:g}-{MAX_FADE_S:g} "
                                      "seconds (pin a stroke to keep it)\n")
    return float(value)


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
