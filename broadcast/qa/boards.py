"""Every event's Q&A board, their store, and the `qa` data channels attached to them.

Seats (who is the author of a question on a shared link) live in seats.py.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from broadcast.participant import Participant
from broadcast.qa.board import Board, BoardLimits, encode
from broadcast.qa.channel import LABEL, QaChannel
from broadcast.qa.question import Action, Question
from broadcast.qa.seats import Seats
from broadcast.qa.store import QaStore

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

logger = logging.getLogger(__name__)

@dataclass
class QaSettings:
    db_path: Path | None = None  # None: boards live in memory only
    limits: BoardLimits = field(default_factory=BoardLimits)
    seat_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)


class QaBoards:
    def __init__(self, settings: QaSettings | None = None) -> None:
        self.settings = settings or QaSettings()
        self.seats = Seats(self.settings.seat_secret)
        # which theatres an event has (the control plane knows; every slug passes by default)
        self.accepts_theatre: Callable[[str, str], bool] = lambda event, theatre: True
        self.boards: dict[str, Board] = {}
        # told of each board as it is made (a cluster shares it: the control plane sets this)
        self.on_board: Callable[[Board], None] | None = None
        self._store: QaStore | None = None
        self._closed = False

    @property
    def store(self) -> QaStore:
        if self._store is None:
            self._store = QaStore(self.settings.db_path)
        return self._store

    def board(self, event: str) -> Board:
        board = self.boards.get(event)
        if board is None:
            board = self.boards[event] = Board(event, self.store, self.settings.limits,
                                               self.accepts_theatre)
            if self.on_board is not None:
                self.on_board(board)
        return board

    def attach(self, channel: RTCDataChannel, participant: Participant | None, event: str) -> QaChannel | None:
        """A peer opened a data channel; a `qa` one joins the event's board."""
        if channel.label != LABEL:
            logger.info("data channel %r ignored (only %r is served)", channel.label[:40], LABEL)
            return None
        problem = None
        if self._closed:
            problem = "the server is shutting down"
        elif participant is None:
            problem = "the Q&A needs a link"
        elif not channel.ordered or channel.maxRetransmits is not None or channel.maxPacketLifeTime is not None:
            problem = "the qa channel must be reliable and ordered (no maxRetransmits/maxPacketLifeTime)"
        if problem is not None or participant is None:
            if channel.readyState == "open":
                channel.send(encode({"type": "error", "code": "refused", "message": problem}))
            channel.close()
            return None
        client = QaChannel(channel, participant, self.board(event), self.seats,
                           self.settings.limits.questions_per_minute)
        client.start()
        return client

    def export(self, event: str) -> tuple[list[Question], list[Action]]:
        board = self.board(event)
        return sorted(board.questions.values(), key=lambda q: q.id), self.store.actions(event)

    def forget_event(self, event: str) -> None:
        """The event was deleted: its board is archived in the store under `{event}@deleted-{time}`
        (kept, not shown: an event created later with the same name starts with an empty board)."""
        board = self.boards.pop(event, None)
        if board is not None:
            for client in list(board.clients):
                if isinstance(client, QaChannel):
                    client.deliver(encode({"type": "closing", "reason": "the event was deleted",
                                           "reconnect": False}))
                    client.close()
            board.close()
        self.store.archive_event(event, f"{event}@deleted-{int(time.time())}")

    def say_goodbye(self, reason: str) -> None:
        """Before a shutdown: every client hears why its channel is about to close (and may
        come back: `reconnect`)."""
        text = encode({"type": "closing", "reason": reason, "reconnect": True})
        for board in self.boards.values():
            for client in list(board.clients):
                client.deliver(text)

    def close(self) -> None:
        """Idempotent: sends pending vote counts and closes the store."""
        if self._closed:
            return
        self._closed = True
        for board in self.boards.values():
            board.close()
        if self._store is not None:
            self._store.close()
