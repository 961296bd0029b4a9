"""The role × endpoint table: one source for the matrix test and the README.

Each row is an entry point and the status each kind of caller gets. Columns:
no token, a server-wide organizer (`--event '*'`), then each role of the event
`matrix` (the technician is limited to theatre or1), then an organizer of another event.
WebSocket cells use the HTTP status the close code carries (4401 → 401); 101 is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

COLUMNS = ("none", "organizer*", "organizer", "technician@or1", "faculty", "moderator", "hall",
           "viewer", "other-event")


@dataclass(frozen=True)
class Row:
    entry: str      # method and path as the README shows it
    action: str     # what the matrix test does for it
    codes: str      # one status per column, in COLUMNS order

    @property
    def expect(self) -> dict[str, int]:
        values = [int(c) for c in self.codes.split()]
        assert len(values) == len(COLUMNS), self
        return dict(zip(COLUMNS, values, strict=True))


ROWS = (
    # entry                                              action              none org* org tech fac mod hall view other
    Row("POST /whip/{event}/or1/{feed}",                 "whip or1 cam",      "401 201 201 201 403 403 403 403 403"),
    Row("POST /whip/{event}/or2/{feed}",                 "whip or2 cam",      "401 201 201 403 403 403 403 403 403"),
    Row("POST /whip/{event}/or1/talkback",               "whip or1 talkback", "401 201 201 201 201 403 403 403 403"),
    Row("POST /whip/{event}/{unknown theatre}/{feed}",   "whip zz cam",       "401 404 404 403 403 403 403 403 403"),
    Row("POST /whep/{event}/or1/{feed}",                 "whep or1",          "401 201 201 201 201 201 201 201 403"),
    Row("POST /whep/{event}/or2/{feed}",                 "whep or2",          "401 201 201 403 201 201 201 201 403"),
    Row("DELETE /whep/…/{session} (another link's)",     "delete foreign",    "401 200 200 403 403 403 403 403 403"),
    Row("POST /whep/…/{session}/quality (another link's)", "quality foreign", "401 200 200 403 403 403 403 403 403"),
    Row("OPTIONS /whip/… (CORS preflight)",              "options whip",      "204 204 204 204 204 204 204 204 204"),
    Row("GET /ws/{event} (WebSocket)",                   "ws",                "401 101 101 101 101 101 101 101 403"),
    Row("draw on or1 (WebSocket message)",               "ws draw",           "401 200 200 403 200 200 403 403 403"),
    Row("GET /api/me",                                   "get /api/me",       "401 200 200 200 200 200 200 200 200"),
    Row("GET /api/events",                               "get /api/events",   "401 200 200 200 200 200 200 200 200"),
    Row("GET /api/events/{event}",                       "get event",         "401 200 200 200 200 200 200 200 403"),
    Row("GET /api/events/{event}/streams",               "get streams",       "401 200 200 200 200 200 200 200 403"),
    Row("POST /api/events/{event}/tokens",               "mint",              "401 201 201 403 403 403 403 403 403"),
    Row("GET /api/events/{event}/tokens",                "list tokens",       "401 200 200 403 403 403 403 403 403"),
    Row("DELETE /api/events/{event}/tokens/{jti}",       "revoke",            "401 200 200 403 403 403 403 403 403"),
    Row("GET /api/events/{event}/sessions",              "list sessions",     "401 200 200 403 403 403 403 403 403"),
    Row("DELETE /api/events/{event}/sessions/{id}",      "kick",              "401 200 200 403 403 403 403 403 403"),
    Row("DELETE /api/events/{event}/links/{jti}/connections", "kick link",   "401 200 200 403 403 403 403 403 403"),
    Row("POST /api/events/{event}/theatres",             "add theatre",       "401 201 201 403 403 403 403 403 403"),
    Row("POST /api/events",                              "create event",      "401 201 403 403 403 403 403 403 403"),
    Row("DELETE /api/events/{event}",                    "delete event",      "401 200 403 403 403 403 403 403 403"),
    Row("GET /api/streams (every event)",                "all streams",       "401 200 403 403 403 403 403 403 403"),
    Row("POST /qa/{event} (Q&A data channel only)",      "qa",                "401 201 201 201 201 201 201 201 403"),
    Row("GET /api/events/{event}/questions (export)",    "questions",         "401 200 200 403 403 200 403 403 403"),
    Row("GET /api/events/{event}/annotations (export)",  "annotations",       "401 200 200 403 403 200 403 403 403"),
    Row("POST /api/events/{event}/privacy/or1/{feed}",   "privacy or1",       "401 200 200 200 403 200 403 403 403"),
    Row("GET /api/events/{event}/log",                   "event log",         "401 200 200 403 403 200 403 403 403"),
    Row("GET /api/events/{event}/recording",             "recording state",   "401 200 200 200 403 200 403 403 403"),
    Row("POST /api/events/{event}/recording (or1)",      "recording stop",    "401 200 200 200 403 200 403 403 403"),
    Row("GET /api/events/{event}/sources",               "list sources",      "401 200 200 200 403 403 403 403 403"),
    Row("POST /api/events/{event}/sources (or1)",        "add source",        "401 201 201 201 403 403 403 403 403"),
    Row("DELETE /api/events/{event}/sources/or1/{feed}", "remove source",     "401 200 200 200 403 403 403 403 403"),
    Row("GET /api/recordings?event={event}",             "library",           "401 200 200 200 403 200 403 403 403"),
    Row("GET /api/recordings/{event}/or1/{feed}/{file}", "download",          "401 404 404 404 403 404 403 403 403"),
    Row("GET /api/recordings/…/{recording}/annotations", "recording strokes", "401 404 404 404 403 404 403 403 403"),
    Row("DELETE /api/recordings/{event}/…/{recording}",  "delete recording",  "401 404 404 403 403 403 403 403 403"),
    Row("GET /watch/{event}, /console/…, /admin, /recordings (page shell)", "page",
        "200 200 200 200 200 200 200 200 200"),
    Row("POST /api/events/{event}/revoke-all",           "revoke all",        "401 200 200 403 403 403 403 403 403"),
)


def markdown() -> str:
    head = "| entry point | " + " | ".join(COLUMNS) + " |"
    rule = "|---|" + "---|" * len(COLUMNS)
    lines = [head, rule]
    for row in ROWS:
        lines.append(f"| `{row.entry}` | " + " | ".join(str(row.expect[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)
