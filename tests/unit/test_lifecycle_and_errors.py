"""The lifecycle contract and the one error mapping: listeners and loops that throw are logged,
never raised; close() waits for a close under way; each domain error has one HTTP status."""

from __future__ import annotations

import asyncio

import pytest

from broadcast.errors import (
    InsufficientStorage,
    InvalidOffer,
    Overloaded,
    SessionNotFound,
    StreamBusy,
    StreamNotLive,
    UnsupportedOffer,
)
from broadcast.lifecycle import CloseReason, describe, notify, start_every, stop_task
from signaling.http.errors import http_error
from signaling.store.eventstore import AlreadyExists, NotFound, StoreError


def test_a_listener_that_throws_is_logged_and_the_others_are_still_told(caplog: pytest.LogCaptureFixture) -> None:
    told: list[int] = []

    def broken(value: int) -> None:
        raise RuntimeError("boom")

    notify([broken, told.append, broken, told.append], 7, what="a test listener")
    assert told == [7, 7]
    assert caplog.text.count("a test listener failed") == 2


async def test_a_loop_that_throws_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    def step() -> None:
        runs.append(1)
        if len(runs) == 2:
            raise ValueError("one bad round")

    task = start_every(0.01, step, "a test loop", first_after=0.0)
    while len(runs) < 4:
        await asyncio.sleep(0.01)
    await stop_task(task)
    assert task.done() and "a test loop failed" in caplog.text


def test_close_reasons_read_as_words() -> None:
    assert describe(CloseReason.KICKED, "Course office") == "removed by an organizer (Course office)"
    assert describe(CloseReason.CLIENT_LEFT) == "ended by the client"


@pytest.mark.parametrize(("error", "status", "retry_after"), [
    (InvalidOffer("bad SDP"), 400, None), (UnsupportedOffer("no codec"), 422, None),
    (StreamNotLive("not live", 2), 409, "2"), (StreamBusy("busy", 2), 409, "2"), (StreamBusy("busy"), 409, None),
    (Overloaded("full", 5), 503, "5"), (SessionNotFound("gone"), 404, None),
    (InsufficientStorage("disk"), 507, None), (AlreadyExists("twice"), 409, None), (NotFound("no event"), 404, None),
    (StoreError("bad"), 400, None),
])
def test_each_domain_error_has_one_status(error: Exception, status: int, retry_after: str | None) -> None:
    answer = http_error(error)  # type: ignore[arg-type]
    assert answer.status == status and answer.text == f"{error}\n"
    assert answer.headers.get("Retry-After") == retry_after
