"""What follows an event being created, changed or deleted, on this node — whether an
organizer did it here (signaling/http/events.py) or on another node of the cluster
(signaling/cluster/shared.py)."""

from __future__ import annotations

import logging

from aiohttp import web

from broadcast.lifecycle import CloseReason
from signaling.http import sources
from signaling.keys import ACCESS, BROADCASTER

logger = logging.getLogger(__name__)


async def event_changed(app: web.Application) -> None:
    """An event was created or changed: `record = true` starts recording its live feeds at once."""
    await app[BROADCASTER].recordings.reconcile()


async def event_removed(app: web.Application, slug: str) -> int:
    """Closes the event's connections and forgets it: its recordings stay in the library, its
    Q&A is archived in the store, its cameras are no longer pulled. Returns how many
    connections were closed."""
    access, broadcaster = app[ACCESS], app[BROADCASTER]
    closed = await access.close_where(lambda p: p.event == slug, lambda p: CloseReason.EVENT_DELETED)
    access.store.delete_event(slug)
    await broadcaster.recordings.forget_event(slug)
    broadcaster.qa.forget_event(slug)
    await sources.forget_event(app, slug)
    return closed
