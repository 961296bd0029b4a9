"""The whole role × endpoint table (tests/support/accesstable.py), cell by cell, against a live server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcast.participant import ALL_EVENTS, Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.pulled import PullSettings
from broadcast.sources.synthetic import SyntheticFeed, encode_clip
from signaling.keys import BROADCASTER
from signaling.store.eventstore import Event, Theatre
from tests.conftest import RunningServer, make_config, mint, organizer_session, start_server
from tests.support.accesstable import COLUMNS, ROWS, Row, markdown
from tests.support.peers import make_offer_sdp

EVENT = "matrix"
LIVE = StreamPath(EVENT, "or1", "endoscope")
LIVE2 = StreamPath(EVENT, "or2", "endoscope")
_counter = itertools.count()


@pytest.fixture
async def matrix_server() -> AsyncIterator[tuple[RunningServer, dict[str, str | None], dict[str, str]]]:
    config = make_config(min_free_gb=0.0, events=[
        Event(EVENT, "Matrix", (Theatre("or1", "OR 1"), Theatre("or2", "OR 2")), source="config"),
        Event("other", "Other", (Theatre("or1", "OR 1"),), source="config"),
    ], session_rate=1000.0, session_burst=1000)
    runner, base, app = await start_server(config)
    feeds = []
    for path in (LIVE, LIVE2):
        feed = SyntheticFeed(encode_clip("VP8", 160, 120, 15, 1, 200_000), "synthetic")
        stream = app[BROADCASTER].attach_source(path, (feed, "VP8"), feed)
        feed.start(stream.video, stream.audio)
        feeds.append(feed)
    tokens: dict[str, str | None] = {"none": None}
    tokens["organizer*"] = mint(app, Role.ORGANIZER, ALL_EVENTS)
    for role in ("organizer", "faculty", "moderator", "hall", "viewer"):
        tokens[role] = mint(app, role, EVENT)
    tokens["technician@or1"] = mint(app, Role.TECHNICIAN, EVENT, theatre="or1")
    tokens["other-event"] = mint(app, Role.ORGANIZER, "other")
    sdp = {"sendonly": await make_offer_sdp("sendonly", 1, 0), "recvonly": await make_offer_sdp("recvonly", 1, 0),
           "data": await make_offer_sdp(video=0, audio=0, data=True)}
    async with organizer_session(app) as http:
        yield RunningServer(base, app, http), tokens, sdp
    for feed in feeds:
        await feed.stop()
    await runner.cleanup()


def headers(token: str | None, **extra: str) -> dict[str, str]:
    return ({"Authorization": f"Bearer {token}"} if token else {}) | extra


async def run_cell(server: RunningServer, row: Row, column: str, token: str | None,
                   sdp: dict[str, str], http: aiohttp.ClientSession) -> int:
    base, n = server.base, next(_counter)
    action = row.action
    if action.startswith(("whip", "whep", "qa")):
        proto, *rest = action.split()
        if proto == "whip":
            theatre, feed = rest
            url, body = f"{base}/whip/{EVENT}/{theatre}/{feed}-{n}", sdp["sendonly"]
        elif proto == "qa":
            url, body = f"{base}/qa/{EVENT}", sdp["data"]
        else:
            url, body = f"{base}/whep/{EVENT}/{rest[0]}/endoscope", sdp["recvonly"]
        async with http.post(url, data=body, headers=headers(token, **{"Content-Type": "application/sdp"})) as r:
            status = r.status
            location = r.headers.get("Location")
        if status == 201:  # the session's own link may end it
            async with http.delete(base + str(location), headers=headers(token)) as r:
                assert r.status == 200, f"{column} could not DELETE its own session: {r.status}"
        return status
    if action in ("quality foreign", "delete foreign"):  # another link's viewer session
        owner = server.token(Role.VIEWER, EVENT)
        async with http.post(f"{base}/whep/{LIVE}", data=sdp["recvonly"],
                             headers=headers(owner, **{"Content-Type": "application/sdp"})) as r:
            assert r.status == 201
            location = r.headers["Location"]
        if action == "quality foreign":
            async with http.post(base + location + "/quality", json={"quality": "low"}, headers=headers(token)) as r:
                status = r.status
        else:
            async with http.delete(base + location, headers=headers(token)) as r:
                status = r.status
        async with http.delete(base + location, headers=headers(owner)):
            pass
        return status
    if action == "options whip":
        async with http.options(f"{base}/whip/{LIVE}") as r:
            return r.status
    if action in ("ws", "ws draw"):
        async with http.ws_connect(f"{base}/ws/{EVENT}") as ws:
            await ws.send_json({"type": "auth", "token": token})
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.TEXT and msg.json()["type"] == "hello":
                if action == "ws":
                    return 101
                await ws.send_json({"type": "draw", "feed": "or1/endoscope", "op": "begin", "id": f"m{n}",
                                    "kind": "free", "color": "#ffd400", "points": [[0.5, 0.5]], "end": True})
                while True:  # `drawn` when the stroke is taken, else an error with the status
                    data = await ws.receive_json(timeout=10)
                    if data["type"] == "drawn":
                        return 200
                    if data["type"] == "error":
                        return int(data["status"])
            while msg.type == aiohttp.WSMsgType.TEXT:  # the error message, then the close
                msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            return int(msg.data) - 4000
    method, url, body = "GET", "", None
    if action.startswith("get /api"):
        url = action.split()[1]
    elif action == "get event":
        url = f"/api/events/{EVENT}"
    elif action == "get streams":
        url = f"/api/events/{EVENT}/streams"
    elif action == "mint":
        method, url, body = "POST", f"/api/events/{EVENT}/tokens", {"role": "viewer", "name": f"guest {n}"}
    elif action == "list tokens":
        url = f"/api/events/{EVENT}/tokens"
    elif action == "revoke":
        victim = server.access.issuer.verify(server.token(Role.VIEWER, EVENT)).jti
        method, url = "DELETE", f"/api/events/{EVENT}/tokens/{victim}"
    elif action == "list sessions":
        url = f"/api/events/{EVENT}/sessions"
    elif action in ("kick", "kick link"):
        owner = server.token(Role.VIEWER, EVENT)
        async with http.post(f"{base}/whep/{LIVE}", data=sdp["recvonly"],
                             headers=headers(owner, **{"Content-Type": "application/sdp"})) as r:
            assert r.status == 201
            session_id = r.headers["Location"].rsplit("/", 1)[1]
        jti = server.broadcaster.sessions[session_id].participant.token_id  # type: ignore[union-attr]
        target = f"sessions/{session_id}" if action == "kick" else f"links/{jti}/connections"
        async with http.delete(f"{base}/api/events/{EVENT}/{target}", headers=headers(token)) as r:
            status = r.status
        async with http.delete(f"{base}/whep/{LIVE}/{session_id}", headers=headers(owner)):
            pass  # what a refused kick left behind
        return status
    elif action == "add theatre":
        method, url, body = "POST", f"/api/events/{EVENT}/theatres", {"slug": f"t{n}"}
    elif action == "create event":
        method, url, body = "POST", "/api/events", {"slug": f"new-{n}", "title": "New"}
    elif action == "delete event":
        server.access.store.put_event(Event(f"gone-{n}", "Throwaway"))
        method, url = "DELETE", f"/api/events/gone-{n}"
    elif action == "all streams":
        url = "/api/streams"
    elif action == "page":
        statuses = set()
        for page in (f"/watch/{EVENT}", f"/console/{EVENT}/or1", f"/hall/{EVENT}", "/admin",
                     f"/recordings/{EVENT}"):
            async with http.get(base + page) as r:
                statuses.add(r.status)
                assert "Matrix" not in await r.text(), "a page shell must not reveal the event"
        assert len(statuses) == 1
        return statuses.pop()
    elif action == "revoke all":
        method, url = "POST", f"/api/events/{EVENT}/revoke-all"
    elif action == "recording state":
        url = f"/api/events/{EVENT}/recording"
    elif action == "recording stop":
        method, url, body = "POST", f"/api/events/{EVENT}/recording", {"action": "stop", "theatre": "or1"}
    elif action == "list sources":
        url = f"/api/events/{EVENT}/sources"
    elif action == "add source":  # a camera that is not there: pulled (and retried) all the same
        method, url, body = "POST", f"/api/events/{EVENT}/sources", {
            "theatre": "or1", "feed": f"cam{n}", "url": f"rtsp://cam:pw@127.0.0.1:9/s{n}"}
    elif action == "remove source":
        server.broadcaster.add_pulled_source(PullSettings(f"{EVENT}/or1/gone{n}", "rtsp://127.0.0.1:9/s"))
        method, url = "DELETE", f"/api/events/{EVENT}/sources/or1/gone{n}"
    elif action == "library":
        url = f"/api/recordings?event={EVENT}"
    elif action == "download":
        url = f"/api/recordings/{EVENT}/or1/endoscope/20260101T080000Z.mp4"
    elif action == "annotations":
        url = f"/api/events/{EVENT}/annotations?format=csv"
    elif action == "privacy or1":
        method, url, body = "POST", f"/api/events/{LIVE.event}/privacy/{LIVE.theatre}/{LIVE.feed}", {"paused": False}
    elif action == "event log":
        url = f"/api/events/{EVENT}/log"
    elif action == "recording strokes":
        url = f"/api/recordings/{EVENT}/or1/endoscope/20260101T080000Z/annotations"
    elif action == "questions":
        url = f"/api/events/{EVENT}/questions?format=csv"
    elif action == "delete recording":
        method, url = "DELETE", f"/api/recordings/{EVENT}/or1/endoscope/20260101T080000Z"
    else:
        raise AssertionError(f"no action {action!r}")
    async with http.request(method, base + url, json=body, headers=headers(token)) as r:
        if r.status >= 400:
            data = await r.json()
            assert data["error"] and data["status"] == r.status, "API errors are JSON with a message"
        return r.status


async def test_role_endpoint_matrix(matrix_server: tuple[RunningServer, dict[str, str | None], dict[str, str]]) -> None:
    server, tokens, sdp = matrix_server
    failures = []
    async with aiohttp.ClientSession() as http:
        for row in ROWS:
            # the organizer's revoke-all would end the other columns' links: it goes last
            order = {"organizer": 1, "organizer*": 2}
            columns = sorted(COLUMNS, key=lambda c: order.get(c, 0)) if row.action == "revoke all" else COLUMNS
            for column in columns:
                got = await run_cell(server, row, column, tokens[column], sdp, http)
                if got != row.expect[column]:
                    failures.append(f"{row.entry} as {column}: expected {row.expect[column]}, got {got}")
    assert not failures, "\n".join(failures)
    # nothing was left behind by the cells
    assert not [s for s in server.broadcaster.sessions.values() if s.path not in (LIVE, LIVE2)]


def test_readme_has_the_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown() in readme, "README's role × endpoint table differs from tests/support/accesstable.py; " \
        "paste the output of: python -c 'from tests.support.accesstable import markdown; print(markdown())'"
