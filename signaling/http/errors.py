"""The one mapping from domain errors to HTTP. The media plane and the stores raise errors
that say what went wrong in words; only here do they get a status (and a Retry-After where
waiting helps). WHIP/WHEP answer them as text, the `/api/` middleware turns them into JSON."""

from __future__ import annotations

from aiohttp import web

from broadcast.errors import (
    BroadcastError,
    InsufficientStorage,
    InvalidOffer,
    InvalidSource,
    Overloaded,
    SessionNotFound,
    SourceStarting,
    StreamBusy,
    StreamNotLive,
    UnsupportedOffer,
)
from signaling.store.eventstore import AlreadyExists, NotFound, StoreError

# most specific first
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (InvalidOffer, 400),
    (InvalidSource, 400),
    (UnsupportedOffer, 422),
    (StreamNotLive, 409),
    (StreamBusy, 409),
    (Overloaded, 503),
    (SourceStarting, 503),
    (SessionNotFound, 404),
    (InsufficientStorage, 507),
    (AlreadyExists, 409),
    (NotFound, 404),
    (StoreError, 400),
)


def status_of(exc: BroadcastError | StoreError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def http_error(exc: BroadcastError | StoreError) -> web.HTTPException:
    """The HTTP answer to a domain error: its status, its words, Retry-After where it has one."""
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    error = web.HTTPException(text=f"{exc}\n", headers=headers)
    error.set_status(status_of(exc))
    return error
