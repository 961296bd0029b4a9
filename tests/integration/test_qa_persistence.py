"""The board on disk: a server killed mid-event comes back with every question, vote and
on-air slot, clients reconnect with their seats and resync; the export after the event."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.demoproc import DemoProcess, start_demo
from tests.support.peers import bearer
from tests.support.qaclient import QaClient, connect, joined

VOLATILE = ("updated_at",)


async def _everyone(server: DemoProcess, http: aiohttp.ClientSession, seats: dict[str, str] | None = None,
                    links: DemoProcess | None = None) -> dict[str, QaClient]:
    """Everyone connects to `server` with the links `links` printed (the same links after a restart)."""
    seats = seats or {}
    base = server.base
    links = links or server
    people = {
        "viewer": await joined(http, base, "demo", links.token("viewer"), seat=seats.get("viewer")),
        "faculty": await joined(http, base, "demo", links.token("faculty"), seat=seats.get("faculty")),
        "moderator": await joined(http, base, "demo", links.token("moderator")),
        # the hall watches the synthetic OR 1 feed; the OR 2 technician publishes a camera
        "hall": await connect(http, base, "/whep/demo/or1/endoscope", links.token("hall"), media="recv"),
        "technician": await connect(http, base, "/whip/demo/or2/room", links.token("technician"), media="send"),
    }
    for client in people.values():
        await client.wait_until(lambda c=client: c.snapshots >= 1, what="snapshot")
    return people


def _board(client: QaClient) -> dict[int, dict[str, Any]]:
    return {qid: {k: v for k, v in q.items() if k not in VOLATILE} for qid, q in client.questions.items()}


async def test_kill_and_restart_keeps_the_board_and_clients_resync(tmp_path: Path) -> None:
    server = start_demo(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            p = await _everyone(server, http)
            viewer, faculty, mod = p["viewer"], p["faculty"], p["moderator"]
            q1 = (await viewer.ok("ask", text="Why not a laparoscopic approach?", theatre="or2"))["question"]
            q2 = (await viewer.ok("ask", text="Off topic question", anonymous=True))["question"]
            q3 = (await faculty.ok("ask", text="Which stapler for the hepatic vein?", theatre="or2"))["question"]
            await mod.ok("approve", question=q1)
            await mod.ok("reject", question=q2, reason="Please use the course forum")
            await mod.ok("approve", question=q3)
            await mod.ok("edit", question=q3, text="Which stapler do you use for the right hepatic vein?")
            await faculty.ok("vote", question=q1)
            await mod.ok("on_air", question=q1)
            await p["technician"].wait_until(lambda: "or2" in p["technician"].slots, what="on air")
            await mod.wait_until(lambda: mod.questions[q1]["votes"] == 1, what="vote count")
            before = _board(mod)
            seats = {"viewer": viewer.welcome["seat"], "faculty": faculty.welcome["seat"]}
            server.kill()  # no goodbye: nothing may rely on a clean shutdown
        for client in p.values():
            await client.close()

        again = start_demo(tmp_path, secret=server.secret, name="again")
        try:
            async with aiohttp.ClientSession() as http:
                p = await _everyone(again, http, seats, links=server)
                viewer, faculty, mod = p["viewer"], p["faculty"], p["moderator"]
                assert _board(mod) == before, "the board changed across the restart"
                assert mod.questions[q3]["original_text"] == "Which stapler for the hepatic vein?"
                # the seats bring back what is one's own
                assert viewer.questions[q2]["mine"] and viewer.questions[q2]["reason"] == "Please use the course forum"
                assert q2 not in faculty.questions
                assert faculty.questions[q1]["voted"] is True
                assert (await faculty.request("vote", question=q1))["code"] == "already_voted"
                for display in (p["hall"], p["technician"]):
                    assert display.slots["or2"]["id"] == q1 and display.slots["or2"]["state"] == "on_air"
                # and the board goes on where it stopped
                q4 = (await viewer.ok("ask", text="How long did the operation take?"))["question"]
                assert q4 == q3 + 1
                await mod.ok("answered", question=q1)
                await p["hall"].wait_until(lambda: p["hall"].slots == {}, what="off air after answered")
                async with http.get(f"{again.base}/api/events/demo/questions",
                                    headers=bearer(again.token("organizer"))) as r:
                    export = await r.json()
                actions = [(a["question"], a["action"]) for a in export["actions"]]
                assert actions[:3] == [(q1, "ask"), (q2, "ask"), (q3, "ask")]
                assert (q1, "answered") in actions and (q4, "ask") in actions
        finally:
            again.stop()
    finally:
        server.stop()


async def test_export_csv_and_json(server: RunningServer) -> None:
    http, base = server.http, server.base
    ana = await joined(http, base, "course", server.token("viewer", name="Dr Ana Lima"))
    zoe = await joined(http, base, "course", server.token("viewer", name="Zoë Ørsted"))
    mod = await joined(http, base, "course", server.token("moderator", name="Moderator Kim"))
    q1 = (await ana.ok("ask", text="=HYPERLINK(\"http://x\",\"click\") is this safe?", anonymous=True))["question"]
    q2 = (await zoe.ok("ask", text="Résection hépatique: quelle marge?\nEt pourquoi?", theatre="or1"))["question"]
    q3 = (await ana.ok("ask", text="Margin width?"))["question"]
    await mod.ok("approve", question=q2)
    await ana.ok("vote", question=q2)
    await mod.ok("merge", question=q3, into=q2)
    await mod.ok("reject", question=q1, reason="Not a question about the case")
    await mod.ok("on_air", question=q2)

    moderator = bearer(server.token("moderator"))
    async with http.get(f"{base}/api/events/course/questions", headers=moderator) as r:
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        data = await r.json()
    rows = {q["id"]: q for q in data["questions"]}
    assert rows[q1]["author"] == "Dr Ana Lima" and rows[q1]["anonymous"] is True  # moderators know
    assert rows[q1]["state"] == "rejected" and rows[q1]["reason"] == "Not a question about the case"
    assert rows[q2]["state"] == "on_air" and rows[q2]["votes"] == 1  # ana voted, and q3's author is ana: once
    assert rows[q3]["state"] == "merged" and rows[q3]["merged_into"] == q2
    log = [(a["question"], a["action"], a["by"]) for a in data["actions"]]
    assert (q3, "merge", "Moderator Kim") in log and (q2, "on_air", "Moderator Kim") in log
    assert all(a["at"] > 0 and a["role"] for a in data["actions"])

    async with http.get(f"{base}/api/events/course/questions?format=csv", headers=moderator) as r:
        assert r.status == 200 and r.content_type == "text/csv" and r.charset == "utf-8"
        raw = await r.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [int(row["id"]) for row in table] == [q1, q2, q3]
    assert table[0]["text"].startswith("'=HYPERLINK"), "a formula must not reach a spreadsheet as one"
    assert table[1]["text"] == "Résection hépatique: quelle marge?\nEt pourquoi?"
    assert table[1]["author"] == "Zoë Ørsted" and table[1]["on_air"] == "or1" and table[1]["votes"] == "1"
    assert table[0]["created_at"].endswith("+00:00") and table[2]["merged_into"] == str(q2)

    for role in ("viewer", "hall", "technician", "faculty"):
        link = server.token(role, theatre="or1" if role == "technician" else None)
        async with aiohttp.ClientSession() as other, other.get(
                f"{base}/api/events/course/questions", headers=bearer(link)) as r:
            assert r.status == 403, role
            assert "moderate" in (await r.json())["error"]
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{base}/api/events/course/questions") as r:
            assert r.status == 401
    async with http.get(f"{base}/api/events/course/questions?format=xml", headers=moderator) as r:
        assert r.status == 400 and "json or csv" in json.dumps(await r.json())
    async with http.get(f"{base}/api/events/nosuch/questions") as r:
        assert r.status == 404


async def test_a_full_disk_refuses_the_action_and_loses_nothing() -> None:
    runner, base, app = await start_server(make_config(questions_per_minute=600))
    try:
        async with organizer_session(app) as http:
            await _full_disk(RunningServer(base, app, http))
    finally:
        await runner.cleanup()


async def _full_disk(server: RunningServer) -> None:
    http, base = server.http, server.base
    viewer = await joined(http, base, "course", server.token("viewer"))
    mod = await joined(http, base, "course", server.token("moderator"))
    first = (await viewer.ok("ask", text="Before the disk filled up?"))["question"]
    await mod.wait_until(lambda: first in mod.questions, what="first question")
    db = server.broadcaster.qa.store._db  # SQLite's own "database or disk is full" path
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    refused = None
    for n in range(60):  # until the file would have to grow
        reply = await viewer.request("ask", text=f"Question {n} while the disk is full? " + "x" * 400)
        if reply["type"] == "error":
            refused = reply
            break
        await asyncio.sleep(0.11)  # within a connection's message rate
    assert refused is not None and refused["code"] == "storage", refused
    assert "nothing was changed" in refused["message"]
    saved = set(server.broadcaster.qa.board("course").questions)
    await asyncio.sleep(0.3)
    assert set(mod.questions) == saved, "a question nobody could save was announced"
    db.execute("PRAGMA max_page_count = 1073741823")
    again = (await viewer.ok("ask", text="After space came back?"))["question"]
    assert again == max(saved) + 1
    assert {q.id for q in server.broadcaster.qa.store.load("course")} == saved | {again}
