"""Telestration over the event WebSocket: who may draw (checked by the server), what a drawing
page may send, every page showing the feed gets the stroke (and a page that joins later gets the
board), a flood from one page is cut down without holding anyone else up, and every stroke is
kept with the feed's media clock, so the recording's player puts it at its second."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from signaling.keys import TELESTRATION, WS_HUB
from tests.conftest import RunningServer
from tests.integration.test_recording import rec_server
from tests.support.drawclient import DrawSocket
from tests.support.peers import publish

PATH = "course/or1/endoscope"
FEED = "or1/endoscope"


__all__ = ["rec_server"]


async def live(server: RunningServer, path: str = PATH) -> None:
    """The feed's first frames are in (a stroke needs a picture to be drawn on)."""
    deadline = time.monotonic() + 10
    while not ((s := server.broadcaster.streams.get(StreamPath.parse(path))) and s.live and s.video.frames_in):
        assert time.monotonic() < deadline, f"{path} did not go live"
        await asyncio.sleep(0.05)


async def page(server: RunningServer, role: Role, *feeds: str, **token: Any) -> DrawSocket:
    sock = await DrawSocket.open(server.base, "course", server.token(role, **token))
    if feeds:
        await sock.watch(*feeds)
        await sock.wait_for(lambda m: m.get("type") == "drawing" and m["feed"] == feeds[0])
    return sock


def drawing_errors(sock: DrawSocket) -> list[str]:
    return [m["message"] for m in sock.of("error") if m.get("about") == "draw"]


async def test_faculty_draws_and_every_page_of_the_feed_sees_it_a_viewer_cannot(server: RunningServer) -> None:
    publisher = await publish(server.http, server.base, PATH)
    await live(server)
    pages: list[DrawSocket] = []
    try:
        faculty = await page(server, Role.FACULTY, FEED, theatre="or1", name="Prof. Weber")
        viewer = await page(server, Role.VIEWER, FEED)
        hall = await page(server, Role.HALL, FEED)
        console = await page(server, Role.TECHNICIAN, FEED, theatre="or1")
        elsewhere = await page(server, Role.VIEWER, "or2/endoscope")  # shows another feed
        pages += [faculty, viewer, hall, console, elsewhere]
        assert faculty.of("drawing")[0]["may_draw"] is True
        assert viewer.of("drawing")[0]["may_draw"] is False, viewer.of("drawing")
        assert hall.of("drawing")[0]["may_draw"] is False, (hall.hello, hall.of("drawing"))

        await faculty.stroke(FEED, [[0.25, 0.25], [0.3, 0.32], [0.5, 0.5]])
        for sock in (viewer, hall, console):
            _, begun = await sock.wait_for(lambda m: m.get("type") == "draw" and m["op"] == "begin")
            _, added = await sock.wait_for(lambda m: m.get("type") == "draw" and m["op"] == "add")
            assert begun["feed"] == FEED and begun["stroke"]["by"] == "Prof. Weber"
            assert begun["stroke"]["points"] == [[0.25, 0.25]] and added["points"] == [[0.3, 0.32], [0.5, 0.5]]
            assert added["end"] is True and added["id"] == begun["stroke"]["id"]
        _, drawn = await faculty.wait_for(lambda m: m.get("type") == "drawn")
        assert faculty.of("draw") == []  # a page draws its own stroke as it goes; it is not sent back

        # a viewer link is refused by the server, not only shown no tool; nothing reaches the others
        before = len(hall.messages)
        await viewer.stroke(FEED, [[0.1, 0.1], [0.2, 0.2]])
        _, refused = await viewer.wait_for(lambda m: m.get("type") == "error" and m.get("status") == 403)
        assert "viewers cannot draw" in refused["message"]
        # faculty of OR 1 does not draw on OR 2, a hall display never draws
        await faculty.send("or2/endoscope", "begin", id="x1", kind="free", color="#ffd400", points=[[0.1, 0.1]])
        await faculty.wait_for(lambda m: m.get("status") == 403 and "or1 only" in m["message"])
        await hall.stroke(FEED, [[0.1, 0.1]])
        await hall.wait_for(lambda m: m.get("status") == 403)
        await asyncio.sleep(0.3)
        assert [m for _, m in hall.messages[before:] if m.get("type") == "draw"] == []
        assert elsewhere.of("draw") == []  # strokes go to the pages that show the feed

        # a page that opens later gets the board as it is; undo and clear reach everyone
        late = await page(server, Role.VIEWER, FEED)
        pages.append(late)
        (board,) = late.of("drawing")
        assert [s["points"] for s in board["strokes"]] == [[[0.25, 0.25], [0.3, 0.32], [0.5, 0.5]]]
        assert board["fade_s"] == 8.0 and board["strokes"][0]["id"] == drawn["stroke"]
        await faculty.send(FEED, "undo")
        for sock in (viewer, late, faculty):
            await sock.wait_for(lambda m: m.get("op") == "undo" and m["id"] == drawn["stroke"])
        await faculty.send(FEED, "undo")
        await faculty.wait_for(lambda m: m.get("about") == "draw" and "nothing of yours" in m["message"])
        moderator = await page(server, Role.MODERATOR, FEED)
        pages.append(moderator)
        await moderator.stroke(FEED, [[0.6, 0.6], [0.9, 0.9]], kind="arrow")
        await late.wait_for(lambda m: m.get("op") == "add" and m.get("replace") == [[0.6, 0.6], [0.9, 0.9]])
        await moderator.send(FEED, "clear")
        await hall.wait_for(lambda m: m.get("op") == "clear")
    finally:
        for sock in pages:
            await sock.close()
        await publisher.pc.close()


@pytest.mark.parametrize("message, error", [
    ({"op": "begin", "id": "a", "kind": "blob", "color": "#ffd400", "points": [[0.1, 0.1]]}, "'kind' must be"),
    ({"op": "begin", "id": "a", "kind": "free", "color": "#123456", "points": [[0.1, 0.1]]}, "palette"),
    ({"op": "begin", "id": "a", "kind": "free", "color": "#ffd400", "width": 9, "points": []}, "'width'"),
    ({"op": "begin", "id": "a", "kind": "free", "color": "#ffd400", "points": [[1.5, 0.1]]}, "fractions"),
    ({"op": "begin", "id": "a", "kind": "free", "color": "#ffd400", "points": [["x", 0.1]]}, "two numbers"),
    ({"op": "begin", "id": "a", "kind": "free", "color": "#ffd400", "points": [[0.1, 0.1]] * 65}, "at most 64"),
    ({"op": "begin", "id": "a b", "kind": "free", "color": "#ffd400", "points": []}, "'id'"),
    ({"op": "begin", "id": "a", "kind": "free", "color": "#ffd400", "points": [], "lag": -5}, "'lag'"),
    ({"op": "add", "id": "nope", "points": [[0.1, 0.1]]}, "begin it first"),
    ({"op": "pin", "id": "nope", "pinned": True}, "no such stroke"),
    ({"op": "erase"}, "'op' must be"),
    ({"op": "begin", "feed": "or1", "id": "a"}, "'feed' must be"),
    ({"op": "begin", "feed": "OR1/Cam", "id": "a"}, "not a valid name"),
])
async def test_bad_drawing_messages_are_refused_with_a_reason_and_the_page_stays(
        server: RunningServer, message: dict[str, Any], error: str) -> None:
    publisher = await publish(server.http, server.base, PATH)
    await live(server)
    moderator = await page(server, Role.MODERATOR, FEED)
    viewer = await page(server, Role.VIEWER, FEED)
    try:
        await moderator.ws.send_json({"type": "draw", "feed": FEED, **message})
        _, got = await moderator.wait_for(lambda m: m.get("type") == "error")
        assert error in got["message"], got
        await moderator.stroke(FEED, [[0.5, 0.5], [0.6, 0.6]])  # the same page draws on
        await viewer.wait_for(lambda m: m.get("op") == "add" and m["end"])
        assert viewer.of("draw", op="begin")[0]["stroke"]["points"] == [[0.5, 0.5]]
    finally:
        await moderator.close()
        await viewer.close()
        await publisher.pc.close()


async def test_a_flood_from_one_page_is_cut_down_and_slows_nobody(server: RunningServer) -> None:
    publisher = await publish(server.http, server.base, PATH)
    await live(server)
    flooder = await page(server, Role.MODERATOR, FEED)
    faculty = await page(server, Role.FACULTY, FEED, theatre="or1")
    viewers = [await page(server, Role.VIEWER, FEED) for _ in range(5)]
    try:
        await flooder.send(FEED, "begin", id="f", kind="laser", color="#ff4081", points=[[0.5, 0.5]])
        flood = [json.dumps({"type": "draw", "feed": FEED, "op": "add", "id": "f", "points": [[0.5, 0.5]] * 30})
                 for _ in range(1500)]
        sending = asyncio.gather(*(flooder.ws.send_str(text) for text in flood))
        await asyncio.sleep(0.05)
        sent_at = time.monotonic()
        await faculty.stroke(FEED, [[0.2, 0.2], [0.3, 0.3]], color="#00e676")
        await sending
        for sock in viewers:
            await sock.wait_for(lambda m: m.get("op") == "begin" and m["stroke"]["color"] == "#00e676", timeout=10)
        arrivals = [next(at for at, m in v.messages if m.get("op") == "begin" and m["stroke"]["color"] == "#00e676")
                    for v in viewers]
        print(f"\nfaculty's stroke during a flood of 1500 messages: at the viewers after "
              f"{max(arrivals) - sent_at:.3f} s (the bench measures this under load)")
        await flooder.wait_for(lambda m: m.get("about") == "draw" and "too fast" in m["message"])
        telestration = server.app[TELESTRATION]
        # the page's burst passed, the rest was dropped: unread past the socket's rate, then past the
        # drawing rate (and the stroke's points are capped too)
        unread = sum(c.dropped for c in server.app[WS_HUB].connections)
        assert telestration.dropped + unread >= 1000, (telestration.dropped, unread)
        forwarded = len(viewers[0].of("draw", op="add", id=viewers[0].of("draw", op="begin")[0]["stroke"]["id"]))
        assert forwarded <= 81, forwarded
        # told once a second that it is too fast, not once a message
        assert len([e for e in drawing_errors(flooder) if "too fast" in e]) <= 5

        # a page that goes on is disconnected; everyone else draws and sees on
        await asyncio.gather(*(flooder.ws.send_str(text) for text in flood * 4), return_exceptions=True)
        _, closing = await flooder.wait_for(lambda m: m.get("status") == 429)
        assert "reload" in closing["message"]
        await faculty.stroke(FEED, [[0.7, 0.7], [0.8, 0.8]], color="#00b0ff")
        for sock in viewers:
            await sock.wait_for(lambda m: m.get("op") == "begin" and m["stroke"]["color"] == "#00b0ff")
    finally:
        for sock in [flooder, faculty, *viewers]:
            await sock.close()
        await publisher.pc.close()


async def test_strokes_are_kept_with_the_media_clock_and_placed_in_the_recording(rec_server: RunningServer) -> None:
    server = rec_server
    http, base = server.http, server.base
    publisher = await publish(http, base, PATH)
    await live(server)
    faculty = await page(server, Role.FACULTY, FEED, theatre="or1", name="Prof. Weber")
    try:
        async with http.post(f"{base}/api/events/course/recording",
                             json={"action": "start", "theatre": "or1", "feed": "endoscope"}) as resp:
            assert resp.status == 200
        await asyncio.sleep(2.0)
        await faculty.stroke(FEED, [[0.4, 0.4], [0.45, 0.5]], kind="circle", pinned=True, lag=200)
        drawn_at = time.time() - 0.2
        await faculty.wait_for(lambda m: m.get("type") == "drawn")
        await asyncio.sleep(1.0)
        async with http.post(f"{base}/api/events/course/recording",
                             json={"action": "stop", "theatre": "or1", "feed": "endoscope"}) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.8)  # the annotation log is written twice a second
        async with http.get(f"{base}/api/recordings?event=course") as resp:
            (rec,) = (await resp.json())["recordings"]
        (seg,) = rec["segments"]
        assert seg["media_start"] is not None
        async with http.get(f"{base}/api/recordings/{PATH}/{rec['id']}/annotations") as resp:
            assert resp.status == 200, await resp.text()
            got = await resp.json()
        (stroke,) = [a for a in got["annotations"] if a["type"] == "stroke"]
        assert stroke["kind"] == "circle" and stroke["points"] == [[0.4, 0.4], [0.45, 0.5]] and stroke["pinned"]
        assert stroke["by"] == "Prof. Weber" and got["fade_s"] == 8.0
        # its second in the recording: when it was drawn, on the recording's own clock
        assert 0.5 < stroke["t"] < rec["duration_s"], (stroke["t"], rec["duration_s"])
        assert abs(stroke["media_time"] - drawn_at) < 1.0, (stroke["media_time"], drawn_at)

        # the export, with the Q&A's: moderators and organizers only
        async with http.get(f"{base}/api/events/course/annotations?format=csv") as resp:
            assert resp.status == 200
            text = await resp.text()
        assert text.splitlines()[0].lstrip("\ufeff").startswith("feed,type,at_utc,media_time,by")
        assert "or1/endoscope,stroke," in text and "Prof. Weber" in text
        async with http.get(f"{base}/api/events/course/annotations") as resp:
            assert (await resp.json())["feeds"][FEED][0]["type"] == "stroke"
        for role in (Role.VIEWER, Role.FACULTY, Role.HALL):
            async with http.get(f"{base}/api/events/course/annotations",
                                headers=server.auth(server.token(role))) as resp:
                assert resp.status == 403, role
        async with http.get(f"{base}/api/recordings/{PATH}/{rec['id']}/annotations",
                            headers=server.auth(server.token(Role.VIEWER))) as resp:
            assert resp.status == 403
        async with http.get(f"{base}/api/recordings/{PATH}/not-an-id/annotations") as resp:
            assert resp.status == 404
    finally:
        await faculty.close()
        await publisher.pc.close()


async def test_an_event_may_let_viewers_draw_and_sets_how_long_strokes_stay(server: RunningServer) -> None:
    async with server.http.post(f"{server.base}/api/events", json={
            "slug": "open", "theatres": ["or1"], "viewers_draw": True, "stroke_fade_s": 3}) as resp:
        assert resp.status == 201, await resp.text()
    async with server.http.post(f"{server.base}/api/events", json={
            "slug": "bad", "stroke_fade_s": 0}) as resp:
        assert resp.status == 400 and "stroke_fade_s" in await resp.text()
    publisher = await publish(server.http, server.base, "open/or1/endoscope")
    await live(server, "open/or1/endoscope")
    viewer = await DrawSocket.open(server.base, "open", server.token(Role.VIEWER, event="open"))
    other = await DrawSocket.open(server.base, "open", server.token(Role.HALL, event="open"))
    try:
        for sock in (viewer, other):
            await sock.watch(FEED)
        _, board = await viewer.wait_for(lambda m: m.get("type") == "drawing")
        assert board["may_draw"] is True and board["fade_s"] == 3.0
        await viewer.stroke(FEED, [[0.1, 0.9], [0.2, 0.8]])
        await other.wait_for(lambda m: m.get("op") == "add" and m["end"])
    finally:
        await viewer.close()
        await other.close()
        await publisher.pc.close()
