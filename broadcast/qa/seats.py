"""Seats: one viewer link is often shared by hundreds of people, so the link alone cannot
say who asked a question or who voted. Each channel gets a seat, a random id signed for
its link, which the page keeps and presents again (`hello`) after a reconnect or a server
restart: its questions and votes are its own again. A seat cannot be forged or moved to
another link; a person who throws their seat away does get a new one (and could vote
again), which only personal links prevent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from broadcast.participant import Participant

_SEAT_CONTEXT = b"orcast qa seat v1"


class Seats:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _SEAT_CONTEXT, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "Seats(<secret>)"

    @staticmethod
    def _owner(participant: Participant) -> str:
        # guests of a public event have no link id that survives a reconnect
        return "guest" if participant.guest else participant.token_id

    def _mac(self, owner: str, seat_id: str) -> str:
        digest = hmac.new(self._key, f"{owner}|{seat_id}".encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, participant: Participant) -> tuple[str, str]:
        """A new seat: (what the client keeps, the author key the board uses)."""
        owner = self._owner(participant)
        seat_id = secrets.token_urlsafe(9)
        return f"{seat_id}.{self._mac(owner, seat_id)}", f"{owner}:{seat_id}"

    def verify(self, participant: Participant, seat: str) -> str | None:
        """The author key of a presented seat, or None if it is not this link's."""
        seat_id, _, mac = seat.partition(".")
        owner = self._owner(participant)
        if not seat_id or not hmac.compare_digest(mac, self._mac(owner, seat_id)):
            return None
        return f"{owner}:{seat_id}"
