"""The Q&A over real data channels: aiortc clients on WHEP, WHIP and Q&A-only connections to a
real server, asking, voting, moderating and receiving what their role may see."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from broadcast.qa.channel import MESSAGE_BURST
from tests.conftest import RunningServer
from tests.support.peers import make_offer_sdp, post_offer
from tests.support.qaclient import QaClient, connect, joined

QUESTION = "How do you identify the right hepatic duct when the anatomy is aberrant?"


async def _people(server: RunningServer) -> dict[str, QaClient]:
    """Everyone of a course: two viewers (one on a WHEP feed), a moderator, the OR 1 technician
    publishing over WHIP, and a hall display watching that feed, all with the `qa` channel."""
    http, base = server.http, server.base
    technician = await connect(http, base, "/whip/course/or1/endoscope",
                               server.token("technician", theatre="or1", name="OR 1 tech"), media="send")
    people = {
        "technician": technician,
        "ana": await connect(http, base, "/whep/course/or1/endoscope",
                             server.token("viewer", name="Dr Ana Lima"), media="recv"),
        "ben": await joined(http, base, "course", server.token("viewer", name="Dr Ben Okafor")),
        "mod": await joined(http, base, "course", server.token("moderator", name="Moderator Kim")),
        "hall": await connect(http, base, "/whep/course/or1/endoscope", server.token("hall"), media="recv"),
    }
    for client in people.values():
        await client.wait_until(lambda c=client: c.snapshots >= 1, what="first snapshot")
    return people


async def test_ask_moderate_and_put_on_air(server: RunningServer) -> None:
    p = await _people(server)
    ana, ben, mod, hall, tech = p["ana"], p["ben"], p["mod"], p["hall"], p["technician"]
    assert [c.welcome["you"]["sees"] for c in (ana, mod, hall, tech)] == [
        "audience", "moderator", "display", "display"]

    asked = await ana.ok("ask", text=f"  {QUESTION}\u202e ", theatre="or1", anonymous=True)
    qid = asked["question"]
    await mod.wait_until(lambda: qid in mod.questions, what="moderator sees the new question")
    pending = mod.questions[qid]
    assert pending["state"] == "pending" and pending["text"] == QUESTION  # trimmed, no RTL override
    assert pending["author"] == "Dr Ana Lima" and pending["anonymous"] is True
    assert ana.questions[qid]["mine"] is True and ana.questions[qid]["state"] == "pending"
    await asyncio.sleep(0.3)
    assert qid not in ben.questions, "a pending question reached another viewer"

    # a viewer forging a moderator's action is refused and changes nothing
    for kind, fields in (("approve", {}), ("on_air", {"theatre": "*"}), ("reject", {}),
                         ("merge", {"into": qid}), ("edit", {"text": "x"})):
        reply = await ben.request(kind, question=qid, **fields)
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
    forged = await ana.request("approve", question=qid)
    assert forged["code"] == "forbidden"
    assert server.broadcaster.qa.board("course").questions[qid].state == "pending"

    await mod.ok("approve", question=qid)
    await ben.wait_until(lambda: qid in ben.questions, what="approved question reaches other viewers")
    seen = ben.questions[qid]
    assert seen["author"] == "Anonymous" and seen["text"] == QUESTION and "anonymous" not in seen
    assert "Dr Ana Lima" not in json.dumps(ben.messages), "an anonymous author's name reached a viewer"

    vote = await ben.ok("vote", question=qid)
    assert vote["votes"] == 1 and vote["voted"] is True
    assert (await ben.request("vote", question=qid))["code"] == "already_voted"
    assert (await ana.request("vote", question=qid))["code"] == "conflict"  # one's own
    await ana.wait_until(lambda: ana.questions[qid]["votes"] == 1, what="vote count reaches the author")
    await mod.wait_until(lambda: mod.questions[qid]["votes"] == 1, what="vote count reaches moderators")

    await mod.ok("on_air", question=qid)  # to its own theatre, or1
    for display in (tech, hall):
        await display.wait_until(lambda d=display: "or1" in d.slots, what="on-air question reaches a display")
        assert display.slots["or1"]["text"] == QUESTION and display.slots["or1"]["id"] == qid
        assert display.questions == {}, "a display was sent the question queue"
    await ben.wait_until(lambda: ben.questions[qid]["state"] == "on_air", what="viewer sees it on air")

    # to every theatre: replaces every slot
    second = (await ben.ok("ask", text="Which energy device for the parenchymal transection?"))["question"]
    await mod.ok("on_air", question=second, theatre="*")
    await tech.wait_until(lambda: set(tech.slots) == {"*"}, what="all-theatres slot replaces or1")
    await ben.wait_until(lambda: ben.questions[qid]["state"] == "approved", what="first one off air")

    await mod.ok("answered", question=second)
    await hall.wait_until(lambda: hall.slots == {}, what="answered question leaves the air")
    assert mod.questions[second]["state"] == "answered" and mod.questions[second]["answered_at"]
    assert [m for m in tech.messages if m["type"] == "error"] == []


async def test_reject_edit_merge_withdraw_pin(server: RunningServer) -> None:
    http, base = server.http, server.base
    ana = await joined(http, base, "course", server.token("viewer", name="Dr Ana Lima"))
    ben = await joined(http, base, "course", server.token("viewer", name="Dr Ben Okafor"))
    cleo = await joined(http, base, "course", server.token("faculty", theatre="or2", name="Prof Cleo Ruiz"))
    mod = await joined(http, base, "course", server.token("moderator", name="Moderator Kim"))
    kim2 = await joined(http, base, "course", server.token("organizer", name="Organizer Lee"))

    off_topic = (await ana.ok("ask", text="Is lunch included?"))["question"]
    await mod.ok("reject", question=off_topic, reason="Off topic: please ask the organizers")
    await ana.wait_until(lambda: ana.questions[off_topic]["state"] == "rejected", what="author sees rejection")
    assert ana.questions[off_topic]["reason"] == "Off topic: please ask the organizers"
    reply = await kim2.request("reject", question=off_topic)  # another moderator, a moment later
    assert reply["code"] == "conflict" and "rejected" in reply["message"]

    original = "what is the role of ICG fluorescence here"
    q1 = (await ben.ok("ask", text=original, theatre="or1"))["question"]
    q2 = (await cleo.ok("ask", text="ICG fluorescence: useful for the bile ducts?", theatre="or1"))["question"]
    for qid in (q1, q2):
        await mod.ok("approve", question=qid)
    await ana.ok("vote", question=q1)
    await ana.ok("vote", question=q2)  # voted for both: counts once after the merge
    assert (await mod.request("vote", question=q2))["code"] == "forbidden"  # moderators moderate
    await kim2.ok("vote", question=q2)  # an organizer may do everything

    edited = "What is the role of ICG fluorescence cholangiography here?"
    await mod.ok("edit", question=q1, text=edited)
    await ben.wait_until(lambda: ben.questions[q1]["text"] == edited, what="edit reaches the author")
    assert ben.questions[q1]["edited"] is True
    await mod.wait_until(lambda: mod.questions[q1]["original_text"] == original, what="original kept")
    assert mod.questions[q1]["edited_by"] == "Moderator Kim"

    merged = await mod.ok("merge", question=q2, into=q1)
    # q1: ana (voted for both: once), kim2 (q2), cleo (q2's author: now a vote); not ben, its author
    assert merged["votes"] == 3, merged
    await ana.wait_until(lambda: q2 not in ana.questions, what="a merged question leaves others' lists")
    await cleo.wait_until(lambda: cleo.questions.get(q2, {}).get("merged_into") == q1,
                          what="its author sees where it went")
    await ana.wait_until(lambda: ana.questions[q1]["votes"] == 3, what="merged votes")

    await mod.ok("pin", question=q1)
    await ana.wait_until(lambda: ana.questions[q1]["pinned"] is True, what="pin")
    assert (await mod.request("pin", question=q1))["code"] == "conflict"

    mine = (await ana.ok("ask", text="Could you show the portal vein again?"))["question"]
    assert (await ben.request("withdraw", question=mine))["code"] == "forbidden"
    await ana.ok("withdraw", question=mine)
    await mod.wait_until(lambda: mod.questions[mine]["state"] == "withdrawn", what="withdrawn")
    assert (await mod.request("approve", question=mine))["code"] == "conflict"

    log = server.broadcaster.qa.store.actions("course")
    assert [(a.action, a.actor_name) for a in log if a.question == q2] == [
        ("ask", "Prof Cleo Ruiz"), ("approve", "Moderator Kim"), ("merge", "Moderator Kim")]
    assert {(a.question, a.action) for a in log} >= {(q1, "edit"), (q1, "merged_from"), (q1, "pin"),
                                                      (off_topic, "reject"), (mine, "withdraw")}
    assert all(a.at > 0 and a.actor_id for a in log)


async def test_bad_messages_get_errors_and_the_channel_stays_up(server: RunningServer) -> None:
    viewer = await joined(server.http, server.base, "course", server.token("viewer"))
    cases = [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        (json.dumps({"type": "shout", "ref": 1}), "unknown_type"),
        (json.dumps({"type": "ask", "ref": 2}), "bad_message"),                    # no text
        (json.dumps({"type": "ask", "ref": 3, "text": "x", "colour": "red"}), "bad_message"),
        (json.dumps({"type": "ask", "ref": 4, "text": "y" * 501}), "too_long"),
        (json.dumps({"type": "ask", "ref": 5, "text": "   \u200b "}), "bad_message"),  # empty
        (json.dumps({"type": "ask", "ref": 6, "text": "ok?", "theatre": "OR 1"}), "bad_message"),
        (json.dumps({"type": "vote", "ref": 7, "question": 0}), "bad_message"),
        (json.dumps({"type": "vote", "ref": 8, "question": "1"}), "bad_message"),
        (json.dumps({"type": "vote", "ref": 9, "question": 999}), "not_found"),
        (json.dumps({"type": "ask", "ref": 10, "text": "z" * 4200}), "too_large"),
        (json.dumps({"type": "hello", "ref": 11, "seat": "forged.seat"}), "bad_seat"),
    ]
    for raw, _ in cases:
        viewer.send_raw(raw)
    viewer.send_raw(b"\x00binary")
    await viewer.wait_until(lambda: len(viewer.errors()) >= len(cases) + 1, what="an error per bad message")
    assert [e["code"] for e in viewer.errors()] == [c for _, c in cases] + ["bad_message"]
    assert all(e["message"] for e in viewer.errors())
    assert [e["ref"] for e in viewer.errors()[2:11]] == list(range(1, 10))  # matched to the message

    # the per-author limit: 5 questions a minute by default
    for n in range(5):
        await viewer.ok("ask", text=f"Question number {n + 1}?")
    limited = await viewer.request("ask", text="A sixth question?")
    assert limited["code"] == "rate_limited" and "5 questions a minute" in limited["message"]
    viewer.send_raw(json.dumps({"type": "ping", "ref": "alive"}))
    await viewer.wait_until(lambda: any(m.get("ref") == "alive" and m["type"] == "pong" for m in viewer.messages),
                            what="the channel survived the bad messages")
    assert len(server.broadcaster.qa.board("course").questions) == 5


async def test_a_flooding_viewer_is_throttled_and_others_are_served(server: RunningServer) -> None:
    http, base = server.http, server.base
    flooder = await joined(http, base, "course", server.token("viewer", name="Flooder"))
    other = await joined(http, base, "course", server.token("viewer", name="Patient reader"))
    mod = await joined(http, base, "course", server.token("moderator"))
    qid = (await other.ok("ask", text="Why a Pringle manoeuvre here?"))["question"]
    await mod.ok("approve", question=qid)
    await other.wait_until(lambda: other.questions[qid]["state"] == "approved", what="approved")

    for n in range(1000):
        flooder.send_raw(json.dumps({"type": "ask", "text": f"spam {n}"}))
    await mod.ok("on_air", question=qid, theatre="or1")
    await other.wait_until(lambda: "or1" in other.slots, what="on air despite the flood")

    await flooder.wait_until(lambda: any(e["code"] == "rate_limited" for e in flooder.errors()),
                             what="throttle notice")
    await asyncio.sleep(1.2)
    reply = await flooder.request("hello")
    assert reply["type"] == "ack", "the flooder's channel was closed"
    board = server.broadcaster.qa.board("course")
    assert sum(1 for q in board.questions.values() if q.author_name == "Flooder") == 5
    # the burst is answered message by message, the rest with one notice a second
    replies = flooder.errors()
    assert len(replies) <= MESSAGE_BURST + 5, f"{len(replies)} error replies to one flood"
    print(f"\nflood of 1000 messages: {len(replies)} error replies, 5 questions kept")


async def test_late_joiner_gets_the_board_in_parts(server: RunningServer) -> None:
    http, base = server.http, server.base
    mod = await joined(http, base, "course", server.token("moderator"))
    askers = [await joined(http, base, "course", server.token("viewer", name=f"Surgeon {n}")) for n in range(8)]
    expected = []
    for n, asker in enumerate(askers):
        for k in range(5):
            qid = (await asker.ok("ask", text=f"Surgeon {n} asks question {k}: " + "ü" * 440))["question"]
            await mod.ok("approve", question=qid)
            expected.append(qid)
    late = await joined(http, base, "course", server.token("viewer", name="Late"))
    parts = [m for m in late.messages if m["type"] == "snapshot"]
    assert len(parts) >= 3 and [m["part"] for m in parts] == list(range(1, len(parts) + 1))
    assert all(len(json.dumps(m, ensure_ascii=False).encode()) < 16 * 1024 for m in parts)
    assert sorted(late.questions) == expected


async def test_seat_survives_a_reconnect_and_cannot_move_links(server: RunningServer) -> None:
    http, base = server.http, server.base
    token = server.token("viewer", name="Shared viewer link")
    first = await joined(http, base, "course", token)
    qid = (await first.ok("ask", text="Is the drain left in place?"))["question"]
    seat = first.welcome["seat"]
    await first.close(http)

    again = await joined(http, base, "course", token, seat=seat)
    assert again.questions[qid]["mine"] is True and again.questions[qid]["state"] == "pending"
    stranger = await joined(http, base, "course", token)  # same shared link, another person
    assert qid not in stranger.questions
    other_link = await joined(http, base, "course", server.token("viewer"))
    refused = await other_link.request("hello", seat=seat)
    assert refused["code"] == "bad_seat"
    assert (await other_link.request("withdraw", question=qid))["code"] == "forbidden"
    await again.ok("withdraw", question=qid)


async def test_unreliable_channel_and_bad_offers_are_refused(server: RunningServer) -> None:
    http, base = server.http, server.base
    lossy = await connect(http, base, "/qa/course", server.token("viewer"), ordered=False)
    await lossy.wait_until(lambda: bool(lossy.messages), what="refusal")
    assert lossy.messages[0]["code"] == "refused" and "reliable" in lossy.messages[0]["message"]
    await lossy.wait_until(lambda: lossy.channel.readyState == "closed", what="channel closed")

    other = await connect(http, base, "/qa/course", server.token("viewer"), label="chat")
    await asyncio.sleep(0.3)
    assert other.messages == []  # only `qa` is served

    media = await make_offer_sdp("recvonly")
    status, body, _ = await post_offer(http, f"{base}/qa/course", media, server.token("viewer"))
    assert status == 422 and "only the data channel" in body
    data_only = await make_offer_sdp("recvonly", video=0, audio=0)
    assert "m=" not in data_only
    status, body, _ = await post_offer(http, f"{base}/qa/course", data_only, server.token("viewer"))
    assert status == 400 and "no media sections" in body
    async with aiohttp.ClientSession() as anonymous:
        status, body, _ = await post_offer(anonymous, f"{base}/qa/course", media)
        assert status == 401 and "needs a link" in body
    status, body, _ = await post_offer(http, f"{base}/qa/nosuch", media, server.token("viewer"))
    assert status == 403 and "not 'nosuch'" in body


async def test_moderator_sets_the_hall_layout(server: RunningServer) -> None:
    http, base = server.http, server.base
    hall = await joined(http, base, "course", server.token("hall"))
    viewer = await joined(http, base, "course", server.token("viewer"))
    mod = await joined(http, base, "course", server.token("moderator", name="Moderator Kim"))
    assert hall.layout == {"mode": "single", "feeds": []}
    grid = ["or1/endoscope", "or2/endoscope", "or1/room", "podium/camera"]
    await mod.ok("layout", mode="grid", feeds=grid)
    await hall.wait_until(lambda: hall.layout.get("mode") == "grid", what="layout reaches the hall")
    assert hall.layout["feeds"] == grid and hall.layout["set_by"] == "Moderator Kim"
    assert (await viewer.request("layout", mode="single", feeds=[]))["code"] == "forbidden"
    for bad in ({"mode": "mosaic", "feeds": []}, {"mode": "side", "feeds": grid[:3]},
                {"mode": "single", "feeds": ["or1"]}, {"mode": "single", "feeds": "or1/endoscope"}):
        assert (await mod.request("layout", **bad))["code"] == "bad_message", bad
    late = await joined(http, base, "course", server.token("hall"))
    assert late.layout["feeds"] == grid, "a hall that joins later gets the layout in its snapshot"
    assert server.broadcaster.qa.store.layout("course")["mode"] == "grid"
