"""The Q&A board's rules with fake clients: no peers, no sockets, an in-memory store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from broadcast.participant import Participant, Role
from broadcast.qa.board import Board, BoardLimits
from broadcast.qa.messages import QaError, parse
from broadcast.qa.store import QaStore


@dataclass(eq=False)
class FakeClient:
    participant: Participant
    author_key: str
    seen: set[int] = field(default_factory=set)
    received: list[dict[str, Any]] = field(default_factory=list)

    def deliver(self, text: str) -> None:
        self.received.append(json.loads(text))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind]


def person(role: Role, name: str, theatre: str | None = None) -> FakeClient:
    who = Participant("course", role, name, f"jti-{name}", theatre)
    return FakeClient(who, f"{who.token_id}:seat")


@pytest.fixture
def board() -> Board:
    return Board("course", QaStore(None), BoardLimits(questions_per_minute=3),
                 lambda event, theatre: theatre in ("or1", "or2"))


def act(board: Board, client: FakeClient, message: dict[str, Any]) -> dict[str, Any]:
    return board.handle(client, parse(json.dumps(message)))


def test_a_question_goes_from_pending_to_on_air_and_each_sees_their_part(board: Board) -> None:
    kim, lee = person(Role.VIEWER, "Dr Kim"), person(Role.VIEWER, "Dr Lee")
    mod, hall = person(Role.MODERATOR, "Mod"), person(Role.HALL, "Hall")
    for c in (kim, lee, mod, hall):
        board.join(c)
    asked = act(board, kim, {"type": "ask", "text": "Why \u202eligate first?", "theatre": "or1", "anonymous": True})
    qid = asked["question"]
    question = board.questions[qid]
    assert question.state == "pending" and question.text == "Why ligate first?"  # the override is gone
    assert any(m.get("question", {}).get("id") == qid for m in mod.of("question"))
    assert not lee.of("question") and not hall.of("question"), "pending is for moderators (and its author)"
    with pytest.raises(QaError) as refused:
        act(board, lee, {"type": "approve", "question": qid})
    assert refused.value.code == "forbidden"
    act(board, mod, {"type": "approve", "question": qid})
    shown = lee.of("question")[-1]["question"]
    assert shown["author"] == "Anonymous" and "Dr Kim" not in json.dumps(lee.received)
    act(board, lee, {"type": "vote", "question": qid})
    with pytest.raises(QaError) as twice:
        act(board, lee, {"type": "vote", "question": qid})
    assert twice.value.code == "already_voted"
    act(board, mod, {"type": "on_air", "question": qid, "theatre": "or1"})
    assert hall.of("on_air")[-1]["slots"]["or1"]["id"] == qid
    assert not hall.of("question"), "displays get the slots, never the queue"


def test_asking_is_rate_limited_per_author_and_theatres_are_checked(board: Board) -> None:
    kim = person(Role.VIEWER, "Dr Kim")
    board.join(kim)
    with pytest.raises(QaError) as bad:
        act(board, kim, {"type": "ask", "text": "where?", "theatre": "or9"})
    assert bad.value.code == "not_found" and "or9" in str(bad.value)
    for n in range(3):
        act(board, kim, {"type": "ask", "text": f"question {n}"})
    with pytest.raises(QaError) as limited:
        act(board, kim, {"type": "ask", "text": "one more"})
    assert limited.value.code == "rate_limited"


def test_two_moderators_at_once_the_second_gets_a_conflict(board: Board) -> None:
    kim, a, b = person(Role.VIEWER, "Dr Kim"), person(Role.MODERATOR, "A"), person(Role.MODERATOR, "B")
    qid = act(board, kim, {"type": "ask", "text": "a question"})["question"]
    act(board, a, {"type": "reject", "question": qid, "reason": "off topic"})
    with pytest.raises(QaError) as second:
        act(board, b, {"type": "reject", "question": qid})
    assert second.value.code == "conflict" and "rejected" in str(second.value)
