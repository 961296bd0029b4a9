"""What the relay knows of a connection that publishes or watches a stream: enough to say who
it is and to end it. The WebRTC sessions (broadcast/webrtc/) are such connections; the relay
core never depends on how they are made."""

from __future__ import annotations

from typing import Protocol

from broadcast.lifecycle import CloseReason
from broadcast.participant import Participant


class Connection(Protocol):
    id: str
    participant: Participant | None
    created_at: float  # time.monotonic()

    @property
    def closed(self) -> bool: ...

    def log_name(self) -> str: ...

    async def close(self, reason: CloseReason = CloseReason.OTHER, detail: str = "") -> None: ...
