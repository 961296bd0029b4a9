"""One lifecycle contract for the media plane (as mediasoup has it): a listener that throws is
logged and never stops the stream; a background loop that throws is logged and goes on; a
close says why with a CloseReason; `close()` is idempotent and waits for a close under way."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)


class CloseReason(enum.StrEnum):
    """Why a connection ended, in words a log or a page can show."""

    CLIENT_LEFT = "ended by the client"
    REPLACED = "replaced by a new session"
    REVOKED = "link revoked"
    EVENT_REVOKED = "all links of the event revoked"
    EXPIRED = "link expired"
    KICKED = "removed by an organizer"
    CONNECT_TIMEOUT = "not connected in time"
    CONNECTION_LOST = "connection lost"
    SHUTDOWN = "the server is shutting down"
    EVENT_DELETED = "the event was deleted"
    FAILED = "failed to start"
    OTHER = "closed"


def describe(reason: CloseReason, detail: str = "") -> str:
    return f"{reason} ({detail})" if detail else str(reason)


def call_listener(listener: Callable[..., Any], *args: Any, what: str) -> None:
    """Call `listener(*args)`; what it throws is logged, never raised."""
    try:
        listener(*args)
    except Exception:
        logger.exception("%s failed", what)


def notify(listeners: Iterable[Callable[..., Any]], *args: Any, what: str) -> None:
    """Every listener is told, whatever the ones before it did."""
    for listener in list(listeners):
        call_listener(listener, *args, what=what)


async def every(interval_s: float, step: Callable[[], Awaitable[Any] | Any], what: str,
                first_after: float | None = None) -> None:
    """Run `step` (sync or async) every `interval_s` until cancelled; an exception in one step is
    logged and the next step runs as planned."""
    await asyncio.sleep(interval_s if first_after is None else first_after)
    while True:
        try:
            result = step()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("%s failed; it runs again in %.0f s", what, interval_s)
        await asyncio.sleep(interval_s)


def start_every(interval_s: float, step: Callable[[], Awaitable[Any] | Any], what: str,
                first_after: float | None = None) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(every(interval_s, step, what, first_after), name=what)


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has stopped."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
