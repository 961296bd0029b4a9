"""A Q&A question, what each kind of participant may see of it, and the moderators' log.

States: `pending → approved → answered`, or `rejected`, `withdrawn` (by its author),
`merged` (into another question). Being on air is not a stored state but a slot: a question
is on air for one theatre or for all (`*`); views show such a question as `on_air`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

ALL_THEATRES = "*"
ANONYMOUS_NAME = "Anonymous"


class QuestionState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    ANSWERED = "answered"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    MERGED = "merged"


# What the audience sees of others' questions; an author always sees their own.
PUBLIC_STATES = frozenset({QuestionState.APPROVED, QuestionState.ANSWERED})


@dataclass
class Question:
    id: int                       # numbered per event from 1
    event: str
    text: str
    author_key: str               # link id + seat: who may withdraw it, whose rate limit it is
    author_name: str              # from the link, never from a message
    author_role: str
    anonymous: bool
    theatre: str | None           # the theatre it is for, if the author picked one
    created_at: float
    state: QuestionState = QuestionState.PENDING
    original_text: str | None = None  # the author's words, kept when a moderator edits
    edited_by: str | None = None
    reason: str | None = None     # why it was rejected: shown to its author only
    merged_into: int | None = None
    pinned: bool = False
    on_air: str | None = None     # theatre slug or ALL_THEATRES while on air
    answered_at: float | None = None
    updated_at: float = 0.0
    voters: set[str] = field(default_factory=set)

    @property
    def public(self) -> bool:
        return self.state in PUBLIC_STATES

    @property
    def shown_state(self) -> str:
        return "on_air" if self.on_air is not None else str(self.state)

    def audience_view(self) -> dict[str, Any]:
        """What every viewer sees of an approved question (no author identity if anonymous)."""
        return {
            "id": self.id, "text": self.text, "state": self.shown_state, "theatre": self.theatre,
            "author": ANONYMOUS_NAME if self.anonymous else self.author_name,
            "votes": len(self.voters), "pinned": self.pinned, "on_air": self.on_air,
            "edited": self.original_text is not None, "created_at": self.created_at,
            "answered_at": self.answered_at,
        }

    def author_view(self) -> dict[str, Any]:
        """Its author's view: also the reason of a rejection and what it was merged into."""
        view = self.audience_view()
        view.update(mine=True, reason=self.reason, merged_into=self.merged_into)
        return view

    def moderator_view(self) -> dict[str, Any]:
        view = self.audience_view()
        view.update(
            author=self.author_name, anonymous=self.anonymous, author_role=self.author_role,
            original_text=self.original_text, edited_by=self.edited_by, reason=self.reason,
            merged_into=self.merged_into, updated_at=self.updated_at,
        )
        return view


@dataclass(frozen=True)
class Action:
    """One entry of the moderators' log: who did what to which question, and when."""

    question: int
    action: str
    actor_name: str
    actor_role: str
    actor_id: str   # the link's id (jti), to tell two people of the same name apart
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "action": self.action, "by": self.actor_name,
                "role": self.actor_role, "link": self.actor_id, "at": self.at, **self.detail}
