"""RemoteViewerSession: the front's handle on a viewer session that a worker process holds.

To the Broadcaster, the access rules, the API and the metrics it is a session like any other
(it has an id, a participant, a path, a state; it can be closed, trickled, kicked); what it
does is asked of its worker over the worker link, and what happens there (connected, joined,
closed) comes back as messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from broadcast import errors
from broadcast.lifecycle import CloseReason, describe, notify
from broadcast.participant import Participant
from broadcast.relay.stream import Stream
from broadcast.workers.wire import ChannelClosed, RemoteError

logger = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0  # a worker that does not confirm a close by then is taken at its word


class WorkerLink(Protocol):
    """What a remote session needs of its worker (pool.WorkerProcess)."""

    index: int

    @property
    def alive(self) -> bool: ...

    def send(self, message: dict[str, Any]) -> None: ...

    async def request(self, message: dict[str, Any]) -> dict[str, Any]: ...


def local_error(exc: RemoteError) -> errors.BroadcastError:
    """The worker's refusal as the media-plane error it was there (the same HTTP status)."""
    kind = getattr(errors, exc.kind, None)
    if isinstance(kind, type) and kind in (errors.InvalidOffer, errors.UnsupportedOffer, errors.SessionNotFound):
        return kind(str(exc))
    return errors.BroadcastError(str(exc))


class RemoteViewerSession:
    role = "viewer"

    def __init__(self, worker: WorkerLink, stream: Stream, protocol: str,
                 participant: Participant | None, quality: str = "auto") -> None:
        self.worker = worker
        self.quality = quality  # as asked when it was made; the worker's session knows what it is now
        self.id = ""  # the worker names the session when it has made it
        self.stream = stream
        self.path = stream.path
        self.event = stream.path.event
        self.protocol = protocol
        self.participant = participant
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self.answer_sdp = ""
        self.close_reason = CloseReason.OTHER
        self.close_detail = ""
        self.on_closed: list[Callable[[RemoteViewerSession], None]] = []
        self.on_joined: Callable[[float], None] | None = None
        self._state = "new"
        self._closed = False
        self._ended = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connection_state(self) -> str:
        return self._state

    @property
    def worker_index(self) -> int:
        return self.worker.index

    @property
    def log_extra(self) -> dict[str, str]:
        return {"path": str(self.path), "session": self.id[:6]}

    def log_name(self) -> str:
        who = f" by {self.participant.describe()}" if self.participant else ""
        return f"viewer {self.id[:6]} on {self.path} (worker {self.worker.index}){who}"

    # -- told by the worker -------------------------------------------------------------
    def state_changed(self, state: str) -> None:
        self._state = state
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()

    def ended(self, reason: CloseReason, detail: str = "") -> None:
        """The session is over in the worker (or the worker is gone): tell the owner, once."""
        if self._ended.is_set():
            return
        self._closed = True
        self._state = "closed"
        if self.close_reason is CloseReason.OTHER:
            self.close_reason, self.close_detail = reason, detail
        self._ended.set()
        notify(self.on_closed, self, what=f"{self.log_name()}: a close listener")
        logger.info("%s: closed (%s)", self.log_name(), describe(self.close_reason, self.close_detail),
                    extra=self.log_extra)

    # -- asked of the worker ------------------------------------------------------------
    async def add_ice_fragment(self, fragment: str) -> None:
        try:
            await self.worker.request({"type": "ice", "session": self.id, "fragment": fragment})
        except RemoteError as exc:
            raise local_error(exc) from None
        except (ChannelClosed, TimeoutError):
            raise errors.SessionNotFound("the session ended with its worker process; start a new one") from None

    async def quality_status(self, quality: str | None = None) -> dict[str, Any]:
        """What the viewer gets and why, from the worker; with `quality`, change it first (on the
        target's next keyframe, on the same connection)."""
        try:
            reply = await self.worker.request({"type": "quality", "session": self.id, "quality": quality})
        except RemoteError as exc:
            raise local_error(exc) from None
        except (ChannelClosed, TimeoutError):
            raise errors.SessionNotFound("the session ended with its worker process; start a new one") from None
        status = reply.get("status")
        if not isinstance(status, dict):
            raise errors.BroadcastError(f"worker {self.worker.index} gave no quality status")
        self.quality = str(status.get("quality", self.quality))
        return status

    async def close(self, reason: CloseReason = CloseReason.OTHER, detail: str = "") -> None:
        """Idempotent: asks the worker to close the session and returns when it has (or after
        CLOSE_WAIT_S, or at once when the worker is gone)."""
        if not self._closed:
            self._closed = True
            self.close_reason, self.close_detail = reason, detail
            self.worker.send({"type": "close", "session": self.id, "reason": reason.name, "detail": detail})
        if not self.worker.alive:
            self.ended(reason, detail)
        try:
            await asyncio.wait_for(asyncio.shield(self._ended.wait()), CLOSE_WAIT_S)
        except TimeoutError:
            logger.warning("%s: its worker did not confirm the close in %.0f s", self.log_name(), CLOSE_WAIT_S)
            self.ended(reason, detail)
