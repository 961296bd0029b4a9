"""A `qa` data channel bound to its event's board: the wire side of the Q&A.

Per channel: a message-rate limit (a flooding client is throttled, its errors are sent at
most once a second, and nobody else waits for it), the 4 KiB message cap, and a bound on
what may wait to be sent: a client that does not read is not fed deltas beyond it, and
gets a fresh snapshot once it has caught up. The channel stays open through every error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from broadcast.participant import Participant
from broadcast.qa.board import Board, audience_of, encode
from broadcast.qa.messages import MAX_MESSAGE_BYTES, MAX_REASON_CHARS, MAX_TEXT_CHARS, Command, QaError, parse
from broadcast.ratelimiter import RateLimiter

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

    from broadcast.qa.seats import Seats

logger = logging.getLogger(__name__)

LABEL = "qa"
MESSAGES_PER_S = 10.0
MESSAGE_BURST = 40
SEND_HIGH_WATER = 1 << 20   # bytes queued for this client before deltas stop
SEND_LOW_WATER = 64 << 10   # … and below which it gets a fresh snapshot
NOTICE_INTERVAL_S = 1.0


class QaChannel:
    def __init__(self, channel: RTCDataChannel, participant: Participant, board: Board,
                 seats: Seats, questions_per_minute: int) -> None:
        self.channel = channel
        self.participant = participant
        self.board = board
        self.seats = seats
        self.seat, self.author_key = seats.issue(participant)
        self.seen: set[int] = set()
        self.stale = False
        self.closed = False
        self.throttled = 0
        self._questions_per_minute = questions_per_minute
        self._limiter = RateLimiter(MESSAGES_PER_S, MESSAGE_BURST)
        self._last_notice = 0.0
        self._last_shared: asyncio.Task[None] | None = None
        channel.bufferedAmountLowThreshold = SEND_LOW_WATER
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._on_drained)
        channel.on("close", self.close)

    def start(self) -> None:
        self._welcome()
        self.board.join(self)

    def _welcome(self) -> None:
        who = self.participant
        self.deliver(encode({
            "type": "welcome", "seat": self.seat, "event": self.board.event,
            "you": {"name": who.name, "role": str(who.role), "theatre": who.theatre,
                    "sees": audience_of(who)},
            "limits": {"text_chars": MAX_TEXT_CHARS, "reason_chars": MAX_REASON_CHARS,
                       "message_bytes": MAX_MESSAGE_BYTES,
                       "questions_per_minute": self._questions_per_minute},
        }))

    # -- out ----------------------------------------------------------------------------
    def deliver(self, text: str) -> None:
        if self.closed or self.channel.readyState != "open":
            return
        if self.stale:
            return  # behind: it gets a snapshot when it has drained
        if self.channel.bufferedAmount > SEND_HIGH_WATER:
            self.stale = True
            logger.warning("Q&A %s: %s reads too slowly; pausing its updates until it catches up",
                           self.board.event, self.participant.describe())
            return
        try:
            self.channel.send(text)
        except Exception as exc:  # closing under us, or a peer with a tiny message size
            logger.info("Q&A %s: send to %s failed: %r", self.board.event, self.participant.describe(), exc)

    def _on_drained(self) -> None:
        if self.stale and not self.closed:
            self.stale = False
            self.board.send_snapshot(self)

    def _reply(self, message: dict[str, Any]) -> None:
        self.deliver(encode(message))

    # -- in -----------------------------------------------------------------------------
    def _on_message(self, raw: str | bytes) -> None:
        # runs inside aiortc's SCTP receive path: it must never raise
        try:
            self._handle(raw)
        except Exception:
            logger.exception("Q&A %s: a message from %s failed", self.board.event, self.participant.describe())
            self._reply({"type": "error", "code": "internal", "message": "the server failed on this "
                         "message; it has been logged. Try again"})

    def _handle(self, raw: str | bytes) -> None:
        if self.closed:
            return
        if self._limiter.take("") > 0:
            self.throttled += 1
            now = time.monotonic()
            if now - self._last_notice >= NOTICE_INTERVAL_S:
                self._last_notice = now
                self._reply({"type": "error", "code": "rate_limited", "message":
                             f"too many messages: at most {MESSAGES_PER_S:.0f} a second; "
                             f"{self.throttled} ignored so far"})
            return
        ref: Any = None
        try:
            command = parse(raw)
            ref = command.ref
            if command.type == "ping":
                self._reply({"type": "pong", "ref": ref, "time": time.time()})
            elif command.type == "hello":
                self._resume(command.seat)
                self._reply({"type": "ack", "ref": ref, "for": "hello"})
            elif self.board.sync is not None:
                self._shared(command)  # a cluster's board: answered once its log has it
            else:
                result = self.board.handle(self, command)
                self._reply({"type": "ack", "ref": ref, "for": command.type, **result})
        except QaError as exc:
            self._reply({"type": "error", "ref": ref if ref is not None else exc.ref, "code": exc.code,
                         "message": exc.message})

    def _shared(self, command: Command) -> None:
        """One command on a shared board, after this channel's earlier ones (in order)."""
        previous = self._last_shared

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(BaseException):
                    await previous
            try:
                result = await self.board.handle_shared(self, command)
                self._reply({"type": "ack", "ref": command.ref, "for": command.type, **result})
            except QaError as exc:
                self._reply({"type": "error", "ref": command.ref, "code": exc.code, "message": exc.message})
            except Exception:
                logger.exception("Q&A %s: a message from %s failed", self.board.event, self.participant.describe())
                self._reply({"type": "error", "ref": command.ref, "code": "internal", "message": "the server "
                             "failed on this message; it has been logged. Try again"})

        self._last_shared = asyncio.get_running_loop().create_task(run())

    def _resume(self, seat: str | None) -> None:
        """A returning client presents its seat: it is the same author again."""
        if seat is None or seat == self.seat:
            return
        author_key = self.seats.verify(self.participant, seat)
        if author_key is None:
            raise QaError("bad_seat", "that seat is not valid for this link; carry on with the new "
                                      "seat in the welcome message")
        self.seat, self.author_key = seat, author_key
        self._welcome()
        self.board.send_snapshot(self)

    def close(self) -> None:
        """Idempotent: leaves the board (the channel closes with its connection)."""
        if self.closed:
            return
        self.closed = True
        self.board.leave(self)
