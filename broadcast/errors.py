"""Media-plane errors. Each says what went wrong in words a person can act on;
the control plane maps them to protocol status codes."""

from __future__ import annotations


class BroadcastError(Exception):
    """Base of every error the media plane reports to a caller."""


class InvalidOffer(BroadcastError):
    """The SDP offer cannot be parsed or is not an offer (HTTP 400)."""


class UnsupportedOffer(BroadcastError):
    """The offer parses but asks for something the relay cannot do (HTTP 422)."""


class StreamBusy(BroadcastError):
    """Another publisher is already live on this stream path (HTTP 409, with Retry-After
    when waiting can help: a publisher that goes silent is replaced)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamNotLive(BroadcastError):
    """Nobody publishes on this stream path yet (HTTP 409 with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(BroadcastError):
    """The server is at its session limit (HTTP 503 with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SessionNotFound(BroadcastError):
    """No session with this id (HTTP 404)."""


class InsufficientStorage(BroadcastError):
    """The recordings disk has less free space than the configured minimum (HTTP 507)."""


class InvalidSource(BroadcastError):
    """A pulled source's settings cannot work: a bad URL, an unknown scheme (HTTP 400)."""


class SourceStarting(BroadcastError):
    """An on-demand source was asked for and is still connecting (HTTP 503 with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after
