"""One event's Q&A board: the rules of asking, voting and moderating, and who is told what.

Who sees what:
- moderators (and organizers) see every question with its author and history fields;
- the audience (viewers, faculty) sees approved and answered questions and their own in any
  state (with a rejection's reason);
- displays (hall, technician consoles) only get what is on air.
Everyone gets the on-air slots at once when they change. A change is saved before anyone
is told (a refused save changes nothing); vote counts are sent coalesced, a few times a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from broadcast.participant import Capability, Participant
from broadcast.qa.messages import LAYOUT_TILES, Command, QaError
from broadcast.qa.question import ALL_THEATRES, Action, Question, QuestionState
from broadcast.qa.store import QaStore, StoreFailed
from broadcast.ratelimiter import RateLimiter

logger = logging.getLogger(__name__)

SNAPSHOT_PART_BYTES = 14_000   # well below every data channel's message size limit
SHARED_ATTEMPTS = 4            # a shared board: a command decided again on a newer board at most this often
SHARED_WAIT_S = 5.0            # … and its change back from the cluster's log within this
LOG_LOST_WAIT_S = 1.0          # the shared log is shorter than this copy: it is being given again
VOTE_FLUSH_S = 0.25
MODERATOR, AUDIENCE, DISPLAY = "moderator", "audience", "display"


class BoardClient(Protocol):
    """A connection that follows a board (a `qa` data channel)."""

    participant: Participant
    author_key: str
    seen: set[int]  # questions this client has been shown, so it can be told when they vanish

    def deliver(self, text: str) -> None: ...


@dataclass(frozen=True)
class BoardLimits:
    questions_per_minute: int = 5
    max_questions: int = 10_000
    max_pending_per_author: int = 20


@dataclass
class Change:
    """What one accepted command changes: the changed questions (copies, without votes),
    the moderators' log entries, votes, the hall layout. Applied as one, on every node of a
    cluster in the same order."""
    changed: list[Question] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    votes_added: list[tuple[int, str]] = field(default_factory=list)
    votes_removed: list[tuple[int, str]] = field(default_factory=list)
    layout: dict[str, Any] | None = None
    at: float = field(default_factory=time.time)
    # a vote commutes with any other change; everything else is checked against the board
    # it was decided on (`checked`)
    checked: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"changed": [_question_json(q) for q in self.changed],
                "actions": [dataclasses.asdict(a) for a in self.actions],
                "votes_added": self.votes_added, "votes_removed": self.votes_removed,
                "layout": self.layout, "at": self.at, "checked": self.checked}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        """Raises KeyError, TypeError, ValueError on a record this version cannot read."""
        return cls(changed=[_question_from(q) for q in data["changed"]],
                   actions=[Action(**a) for a in data["actions"]],
                   votes_added=[(int(q), str(v)) for q, v in data["votes_added"]],
                   votes_removed=[(int(q), str(v)) for q, v in data["votes_removed"]],
                   layout=data.get("layout"), at=float(data["at"]), checked=bool(data.get("checked", True)))


def _question_json(q: Question) -> dict[str, Any]:
    data = dataclasses.asdict(q)
    data.pop("voters")  # votes travel as votes_added / votes_removed
    data["state"] = str(q.state)
    return data


def _question_from(data: dict[str, Any]) -> Question:
    fields = {f.name for f in dataclasses.fields(Question)} - {"voters"}
    q = Question(**{k: v for k, v in data.items() if k in fields})
    q.state = QuestionState(q.state)
    return q


class BoardSync(Protocol):
    """A board shared by several nodes: changes count once the shared log has them, and come
    back to every node's board (`Board.apply_shared`) in the log's order."""

    async def submit(self, event: str, change: Change, expected_rev: int | None) -> tuple[bool, int]:
        """Append `change` if the log is still at `expected_rev` (None: in any case).
        Returns (accepted, the log's revision: the change's own, or the one that won).
        Raises QaError when the shared store cannot be reached."""
        ...


def audience_of(participant: Participant) -> str:
    if participant.can(Capability.MODERATE):
        return MODERATOR
    if participant.can(Capability.ASK):
        return AUDIENCE
    return DISPLAY


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _copy(question: Question) -> Question:
    return dataclasses.replace(question, voters=set(question.voters))


def _merged(changes: list[Change]) -> Change:
    if len(changes) == 1:
        return changes[0]
    out = Change(at=changes[0].at, checked=any(c.checked for c in changes))
    for c in changes:
        out.changed += c.changed
        out.actions += c.actions
        out.votes_added += c.votes_added
        out.votes_removed += c.votes_removed
        out.layout = c.layout if c.layout is not None else out.layout
    return out


class Board:
    def __init__(self, event: str, store: QaStore, limits: BoardLimits,
                 accepts_theatre: Callable[[str, str], bool]) -> None:
        self.event = event
        self.store = store
        self.limits = limits
        self.accepts_theatre = accepts_theatre
        self.questions: dict[int, Question] = {q.id: q for q in store.load(event)}
        # what the hall displays show, set by a moderator
        self.layout: dict[str, Any] = store.layout(event) or {"mode": "single", "feeds": []}
        self.clients: set[BoardClient] = set()
        self.rev = 0
        rate = limits.questions_per_minute
        self._ask_limiter = RateLimiter(rate / 60.0, max(1, rate))
        self._dirty_votes: set[int] = set()
        self._vote_flush: asyncio.TimerHandle | None = None
        # shared by a cluster's nodes: set by the control plane; None for a board of one node
        self.sync: BoardSync | None = None
        self.log_rev = 0  # the shared log's last revision applied here
        self._staged: list[Change] | None = None
        self._rev_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- clients ------------------------------------------------------------------------
    def join(self, client: BoardClient) -> None:
        self.clients.add(client)
        self.send_snapshot(client)

    def leave(self, client: BoardClient) -> None:
        self.clients.discard(client)

    def close(self) -> None:
        if self._vote_flush is not None:
            self._vote_flush.cancel()
            self._flush_votes()
        self.clients.clear()

    def slots(self) -> dict[str, Question]:
        return {q.on_air: q for q in self.questions.values() if q.on_air is not None}

    def _slots_message(self) -> str:
        slots = {theatre: q.audience_view() for theatre, q in sorted(self.slots().items())}
        return encode({"type": "on_air", "rev": self.rev, "slots": slots})

    def _view(self, client: BoardClient, q: Question) -> dict[str, Any] | None:
        kind = audience_of(client.participant)
        if kind == MODERATOR:
            view = q.moderator_view()
        elif kind == DISPLAY:
            return None
        elif q.author_key == client.author_key:
            view = q.author_view()
        elif q.public:
            view = q.audience_view()
        else:
            return None
        view["mine"] = q.author_key == client.author_key
        view["voted"] = client.author_key in q.voters
        return view

    def send_snapshot(self, client: BoardClient) -> None:
        """The whole board as this client may see it, in parts, then deltas follow."""
        pieces: list[str] = []
        client.seen.clear()
        for q in sorted(self.questions.values(), key=lambda q: q.id):
            view = self._view(client, q)
            if view is not None:
                pieces.append(encode(view))
                client.seen.add(q.id)
        parts: list[list[str]] = [[]]
        size = 0
        for piece in pieces:
            length = len(piece.encode())
            if parts[-1] and size + length > SNAPSHOT_PART_BYTES:
                parts.append([])
                size = 0
            parts[-1].append(piece)
            size += length + 1
        slots = {theatre: q.audience_view() for theatre, q in sorted(self.slots().items())}
        for number, part in enumerate(parts, 1):
            tail = f',"on_air":{encode(slots)},"layout":{encode(self.layout)}' if number == len(parts) else ""
            self._deliver(client, f'{{"type":"snapshot","rev":{self.rev},"part":{number},'
                                  f'"parts":{len(parts)},"questions":[{",".join(part)}]{tail}}}')

    def _deliver(self, client: BoardClient, text: str) -> None:
        try:
            client.deliver(text)
        except Exception:  # one broken client never stops the others' updates
            logger.exception("Q&A %s: delivering to %s failed", self.event, client.participant.describe())

    # -- commands -----------------------------------------------------------------------
    def handle(self, client: BoardClient, command: Command) -> dict[str, Any]:
        """Carry out one command for `client` on a board of one node; returns the reply's
        fields or raises QaError."""
        result: dict[str, Any] = self._handler(command)(client, command)
        return result

    def _handler(self, command: Command) -> Callable[[BoardClient, Command], dict[str, Any]]:
        handler = getattr(self, f"_do_{command.type}", None)
        if handler is None:
            raise QaError("unknown_type", f"{command.type} is not a board action")
        return handler  # type: ignore[no-any-return]

    async def handle_shared(self, client: BoardClient, command: Command) -> dict[str, Any]:
        """The same on a board that a cluster shares: the command is decided on this node's
        copy, appended to the shared log if nobody else changed the board meanwhile (else it
        is decided again on the newer board), and answered once it is applied here."""
        assert self.sync is not None
        handler = self._handler(command)
        for _ in range(SHARED_ATTEMPTS):
            self._staged = []
            try:
                result = handler(client, command)
                staged = self._staged
            finally:
                self._staged = None
            if not staged:
                return result
            change = _merged(staged)
            expected = self.log_rev if change.checked else None
            accepted, rev = await self.sync.submit(self.event, change, expected)
            if not accepted and rev < self.log_rev:
                await asyncio.sleep(LOG_LOST_WAIT_S)  # the shared log was lost: this node gives it its board again
                continue
            await self._until_applied(rev)
            if accepted:
                return self._refreshed(result)
        raise QaError("conflict", "the board kept changing while this was decided (many moderators at once?); "
                                  "try again")

    def _refreshed(self, result: dict[str, Any]) -> dict[str, Any]:
        """Vote counts in a reply as the board has them after the change."""
        key = "into" if "into" in result else "question"
        if "votes" in result and result.get(key) in self.questions:
            result["votes"] = len(self.questions[result[key]].voters)
        return result

    async def _until_applied(self, rev: int) -> None:
        if self.log_rev >= rev:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rev_waiters.append((rev, waiter))
        try:
            await asyncio.wait_for(waiter, SHARED_WAIT_S)
        except TimeoutError:
            raise QaError("storage", "the cluster's Q&A log did not come back in time; what you did may show in a "
                                     "moment — look before trying again") from None

    def apply_shared(self, rev: int, change: Change) -> None:
        """The shared log's next change (every node applies the same ones in the same order)."""
        if rev <= self.log_rev:
            return  # seen already
        self.log_rev = rev
        self._apply(change, shared=True)
        waiting, self._rev_waiters = self._rev_waiters, []
        for target, waiter in waiting:
            if rev >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                self._rev_waiters.append((target, waiter))

    def reset(self) -> None:
        """Forget this node's copy: the shared log is replayed into it from the start."""
        self.questions.clear()
        self.layout = {"mode": "single", "feeds": []}
        self.log_rev = 0
        self.rev += 1
        for client in list(self.clients):
            self.send_snapshot(client)

    def seed(self) -> Change:
        """This node's board as one change: the first entry of a shared log nobody began."""
        return Change(changed=[_copy(q) for q in self.questions.values()],
                      votes_added=[(q.id, v) for q in self.questions.values() for v in sorted(q.voters)],
                      layout=self.layout)

    def _question(self, qid: int | None) -> Question:
        question = self.questions.get(qid or 0)
        if question is None:
            raise QaError("not_found", f"there is no question #{qid}")
        return question

    @staticmethod
    def _require(client: BoardClient, capability: Capability, what: str) -> None:
        if not client.participant.can(capability):
            raise QaError("forbidden", f"a {client.participant.role} link cannot {what}")

    @staticmethod
    def _action(client: BoardClient, q: int, action: str, **detail: Any) -> Action:
        who = client.participant
        return Action(q, action, who.name, str(who.role), who.token_id, time.time(), detail)

    def _check_theatre(self, theatre: str | None) -> None:
        if theatre is not None and theatre != ALL_THEATRES and not self.accepts_theatre(self.event, theatre):
            raise QaError("not_found", f"this event has no theatre {theatre!r}")

    def _commit(self, changed: list[Question], actions: list[Action],
                votes_added: Sequence[tuple[int, str]] = (),
                votes_removed: Sequence[tuple[int, str]] = (), layout: dict[str, Any] | None = None) -> None:
        change = Change(list(changed), list(actions), list(votes_added), list(votes_removed), layout,
                        checked=bool(changed or actions or layout))
        if self._staged is not None:
            self._staged.append(change)  # a shared board: it counts once the cluster's log has it
        else:
            self._apply(change)

    def _apply(self, change: Change, shared: bool = False) -> None:
        """Save, then install the changed copies and tell every client what it may see. On a
        board of one node a refused save changes nothing; on a shared one the cluster's log
        has the change already, so it is installed even if this node's copy cannot be saved."""
        before = {theatre: q.id for theatre, q in self.slots().items()}
        try:
            self.store.commit(self.event, change.changed, change.actions, change.votes_added, change.votes_removed,
                              change.layout)
        except StoreFailed:
            if not shared:
                raise QaError("storage", "the board could not be saved (the server's disk may be full); "
                                         "nothing was changed, try again in a moment") from None
            logger.error("Q&A %s: this node's copy of the shared board could not be saved; the cluster has it",
                         self.event)
        for q in change.changed:
            old = self.questions.get(q.id)
            q.voters = set(old.voters) if old is not None else set(q.voters)  # votes come as votes
            q.updated_at = change.at
            self.questions[q.id] = q
        for qid, voter in change.votes_added:
            if qid in self.questions:
                self.questions[qid].voters.add(voter)
        for qid, voter in change.votes_removed:
            if qid in self.questions:
                self.questions[qid].voters.discard(voter)
        if change.changed:
            self.rev += 1
            self._publish(change.changed, before != {t: q.id for t, q in self.slots().items()}
                          or any(q.on_air is not None for q in change.changed))
        if change.votes_added or change.votes_removed:
            self._dirty_votes.update(qid for qid, _ in (*change.votes_added, *change.votes_removed))
            self._schedule_vote_flush()
        if change.layout is not None:
            self.layout = change.layout
            self.rev += 1
            text = encode({"type": "layout", "rev": self.rev, "layout": change.layout})
            for other in list(self.clients):
                self._deliver(other, text)

    def _publish(self, changed: list[Question], slots_changed: bool) -> None:
        # one encoding per (kind, question) for everyone who neither wrote nor voted for it
        plain: dict[tuple[str, int], str] = {}
        for client in list(self.clients):
            kind = audience_of(client.participant)
            if kind == DISPLAY:
                continue
            for q in changed:
                personal = q.author_key == client.author_key or client.author_key in q.voters
                text = None if personal else plain.get((kind, q.id))
                if text is None:
                    view = self._view(client, q)
                    if view is None:
                        if q.id in client.seen:
                            client.seen.discard(q.id)
                            self._deliver(client, encode({"type": "removed", "rev": self.rev, "question": q.id}))
                        continue
                    text = encode({"type": "question", "rev": self.rev, "question": view})
                    if not personal:
                        plain[(kind, q.id)] = text
                client.seen.add(q.id)
                self._deliver(client, text)
        if slots_changed:
            text = self._slots_message()
            # the OR screens and the hall first: they are few, and the surgeon is waiting
            for client in sorted(self.clients, key=lambda c: audience_of(c.participant) != DISPLAY):
                self._deliver(client, text)

    def _schedule_vote_flush(self) -> None:
        if self._vote_flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._flush_votes()
                return
            self._vote_flush = loop.call_later(VOTE_FLUSH_S, self._flush_votes)

    def _flush_votes(self) -> None:
        self._vote_flush = None
        counts = {str(qid): len(self.questions[qid].voters) for qid in sorted(self._dirty_votes)
                  if qid in self.questions}
        self._dirty_votes.clear()
        if not counts:
            return
        text = encode({"type": "votes", "rev": self.rev, "votes": counts})
        for client in list(self.clients):
            if audience_of(client.participant) != DISPLAY:
                self._deliver(client, text)

    # -- the audience -------------------------------------------------------------------
    def _do_ask(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        self._require(client, Capability.ASK, "ask questions")
        if len(self.questions) >= self.limits.max_questions:
            raise QaError("board_full", f"the board holds its limit of {self.limits.max_questions} "
                                        "questions; ask a moderator")
        pending = sum(1 for q in self.questions.values()
                      if q.author_key == client.author_key and q.state is QuestionState.PENDING)
        if pending >= self.limits.max_pending_per_author:
            raise QaError("rate_limited", f"{pending} of your questions are waiting for a moderator; "
                                          "wait until they are answered")
        self._check_theatre(cmd.theatre)
        wait = self._ask_limiter.take(client.author_key)
        if wait > 0:
            raise QaError("rate_limited", f"you can ask {self.limits.questions_per_minute} questions a "
                                          f"minute; try again in {math.ceil(wait)} s")
        who = client.participant
        q = Question(id=max(self.questions, default=0) + 1, event=self.event, text=cmd.text or "",
                     author_key=client.author_key, author_name=who.name, author_role=str(who.role),
                     anonymous=cmd.anonymous, theatre=cmd.theatre, created_at=time.time())
        self._commit([q], [self._action(client, q.id, "ask")])
        return {"question": q.id}

    def _do_vote(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        self._require(client, Capability.ASK, "vote")
        q = self._question(cmd.question)
        if q.state is not QuestionState.APPROVED:
            raise QaError("conflict", f"#{q.id} is not open for votes")
        if q.author_key == client.author_key:
            raise QaError("conflict", "you cannot vote for your own question")
        if client.author_key in q.voters:
            raise QaError("already_voted", f"you already voted for #{q.id}")
        self._commit([], [], votes_added=[(q.id, client.author_key)])
        return {"question": q.id, "votes": len(q.voters), "voted": True}

    def _do_unvote(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        self._require(client, Capability.ASK, "vote")
        q = self._question(cmd.question)
        if client.author_key not in q.voters:
            raise QaError("conflict", f"you have not voted for #{q.id}")
        self._commit([], [], votes_removed=[(q.id, client.author_key)])
        return {"question": q.id, "votes": len(q.voters), "voted": False}

    def _do_withdraw(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q = self._question(cmd.question)
        if q.author_key != client.author_key:
            raise QaError("forbidden", "you can only withdraw your own questions")
        if q.on_air is not None:
            raise QaError("conflict", f"#{q.id} is on air; ask a moderator to take it off")
        if q.state not in (QuestionState.PENDING, QuestionState.APPROVED):
            raise QaError("conflict", f"#{q.id} is {q.state} and cannot be withdrawn")
        new = _copy(q)
        new.state = QuestionState.WITHDRAWN
        self._commit([new], [self._action(client, q.id, "withdraw")])
        return {"question": q.id}

    # -- moderators ---------------------------------------------------------------------
    def _moderate(self, client: BoardClient, cmd: Command, what: str,
                  allowed: tuple[QuestionState, ...]) -> tuple[Question, Question]:
        """Check a moderator action on `cmd.question`: (the question, a copy to change)."""
        if not client.participant.can(Capability.MODERATE):
            raise QaError("forbidden", f"only moderators and organizers can {what} questions "
                                       f"(this is a {client.participant.role} link)")
        q = self._question(cmd.question)
        if q.state not in allowed:
            merged = f" into #{q.merged_into}" if q.merged_into else ""
            raise QaError("conflict", f"#{q.id} is {q.state}{merged}; cannot {what} it "
                                      "(another moderator may have acted on it)")
        return q, _copy(q)

    def _do_approve(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q, new = self._moderate(client, cmd, "approve",
                                (QuestionState.PENDING, QuestionState.REJECTED, QuestionState.ANSWERED))
        new.state, new.reason, new.answered_at = QuestionState.APPROVED, None, None
        self._commit([new], [self._action(client, q.id, "approve", previous=str(q.state))])
        return {"question": q.id}

    def _do_reject(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q, new = self._moderate(client, cmd, "reject", (QuestionState.PENDING, QuestionState.APPROVED))
        new.state, new.reason, new.on_air = QuestionState.REJECTED, cmd.reason, None
        self._commit([new], [self._action(client, q.id, "reject", reason=cmd.reason)])
        return {"question": q.id}

    def _do_edit(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q, new = self._moderate(client, cmd, "edit", (QuestionState.PENDING, QuestionState.APPROVED,
                                                      QuestionState.ANSWERED, QuestionState.REJECTED))
        if cmd.text == q.text:
            raise QaError("conflict", f"#{q.id} already reads like that")
        new.original_text = q.original_text or q.text
        new.text, new.edited_by = cmd.text or q.text, client.participant.name
        self._commit([new], [self._action(client, q.id, "edit", before=q.text, after=new.text)])
        return {"question": q.id}

    def _do_merge(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        """Fold a duplicate into another question: its author and voters now vote for that one."""
        q, source = self._moderate(client, cmd, "merge", (QuestionState.PENDING, QuestionState.APPROVED,
                                                          QuestionState.ANSWERED, QuestionState.REJECTED))
        target = self._question(cmd.into)
        if target.id == q.id:
            raise QaError("conflict", "a question cannot be merged into itself")
        if target.state not in (QuestionState.PENDING, QuestionState.APPROVED, QuestionState.ANSWERED):
            raise QaError("conflict", f"#{target.id} is {target.state}; merge into an open question")
        source.state, source.merged_into, source.on_air = QuestionState.MERGED, target.id, None
        gained = sorted(({*q.voters, q.author_key} - target.voters) - {target.author_key})
        into = _copy(target)
        self._commit([source, into], [self._action(client, q.id, "merge", into=target.id),
                                      self._action(client, target.id, "merged_from", source=q.id)],
                     votes_added=[(target.id, voter) for voter in gained])
        return {"question": q.id, "into": target.id, "votes": len(self.questions[target.id].voters)}

    def _do_answered(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q, new = self._moderate(client, cmd, "mark answered", (QuestionState.PENDING, QuestionState.APPROVED))
        new.state, new.on_air, new.answered_at = QuestionState.ANSWERED, None, time.time()
        self._commit([new], [self._action(client, q.id, "answered")])
        return {"question": q.id}

    def _do_on_air(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        """On air for one theatre (replacing what it showed) or for all (replacing every slot)."""
        q, new = self._moderate(client, cmd, "put on air", (QuestionState.PENDING, QuestionState.APPROVED,
                                                            QuestionState.ANSWERED))
        theatre = cmd.theatre or q.theatre or ALL_THEATRES
        self._check_theatre(theatre)
        changed = [new]
        for other in self.questions.values():
            if other.id != q.id and other.on_air is not None and (
                    theatre == ALL_THEATRES or other.on_air == theatre):
                off = _copy(other)
                off.on_air = None
                changed.append(off)
        new.state, new.on_air, new.answered_at = QuestionState.APPROVED, theatre, None
        actions = [self._action(client, q.id, "on_air", theatre=theatre)]
        actions += [self._action(client, o.id, "off_air", replaced_by=q.id) for o in changed[1:]]
        self._commit(changed, actions)
        return {"question": q.id, "theatre": theatre}

    def _do_off_air(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q, new = self._moderate(client, cmd, "take off air", (QuestionState.APPROVED,))
        if q.on_air is None:
            raise QaError("conflict", f"#{q.id} is not on air")
        new.on_air = None
        self._commit([new], [self._action(client, q.id, "off_air", theatre=q.on_air)])
        return {"question": q.id}

    def _do_layout(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        """The hall displays' layout: single, side by side or a 2×2 grid of `theatre/feed`s."""
        if not client.participant.can(Capability.MODERATE):
            raise QaError("forbidden", "only moderators and organizers can set the hall layout")
        mode = cmd.mode or "single"
        if len(cmd.feeds) > LAYOUT_TILES[mode]:
            raise QaError("bad_message", f"a {mode} layout shows {LAYOUT_TILES[mode]} feed(s), not {len(cmd.feeds)}")
        for feed in cmd.feeds:
            self._check_theatre(feed.split("/")[0])
        layout = {"mode": mode, "feeds": list(cmd.feeds), "set_by": client.participant.name, "at": time.time()}
        self._commit([], [self._action(client, 0, "layout", mode=mode, feeds=list(cmd.feeds))], layout=layout)
        return {"mode": mode, "feeds": list(cmd.feeds)}

    def _do_pin(self, client: BoardClient, cmd: Command) -> dict[str, Any]:
        q, new = self._moderate(client, cmd, "pin", (QuestionState.PENDING, QuestionState.APPROVED,
                                                     QuestionState.ANSWERED))
        if q.pinned == cmd.pinned:
            raise QaError("conflict", f"#{q.id} is already {'pinned' if q.pinned else 'not pinned'}")
        new.pinned = cmd.pinned
        self._commit([new], [self._action(client, q.id, "pin" if cmd.pinned else "unpin")])
        return {"question": q.id, "pinned": cmd.pinned}
