"""What an organizer changes on one node, every node of the cluster gets: events (created,
changed, a theatre added, deleted) and the links minted (so that every node's link list shows
them; revoking them works everywhere anyway).

Each change goes over the bus as a kept announcement (the latest per event, and per link until
it expires), so a node that was away or joins later gets it too when it (re)subscribes. Every
node keeps its own copy in its event store: a node serves its events with Redis away.

Events from a node's config file are the file's: a change from another node is taken (a
theatre added on the organizer page), and the file wins again at the next start.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from aiohttp import web

from signaling.eventlife import event_changed, event_removed
from signaling.http.eventbody import parse_event  # the same checks as the organizer's request
from signaling.keys import ACCESS
from signaling.store.eventstore import Event, MintedToken, StoreError

logger = logging.getLogger(__name__)

EVENT = "event"
LINK = "link"
MAX_TEXT = 400  # of any text field of a link record from another node
_LINK_FIELDS = {f.name for f in dataclasses.fields(MintedToken)} - {"revoked_at"}


def event_message(event: Event) -> dict[str, Any]:
    return {"type": EVENT, "event": event.slug, "data": event.to_json(), "gen": event.token_gen}


def deleted_message(slug: str) -> dict[str, Any]:
    return {"type": EVENT, "event": slug, "data": None}


def link_message(token: MintedToken) -> dict[str, Any]:
    record = {k: v for k, v in dataclasses.asdict(token).items() if k in _LINK_FIELDS}
    return {"type": LINK, "event": token.event, "jti": token.jti, "record": record,
            "expires_at": token.expires_at}


async def share(app: web.Application, message: dict[str, Any]) -> None:
    """Tell the other nodes (kept for those away); nothing to do on a node alone."""
    announce = app[ACCESS].announce
    if announce is not None:
        await announce(message, True)


async def apply(app: web.Application, message: dict[str, Any]) -> bool:
    """Another node's change, applied here. False: not a message of this module's."""
    kind = message.get("type")
    if kind == EVENT:
        await _apply_event(app, message)
    elif kind == LINK:
        _apply_link(app, message)
    else:
        return False
    return True


async def _apply_event(app: web.Application, message: dict[str, Any]) -> None:
    store = app[ACCESS].store
    slug, data = message.get("event"), message.get("data")
    if not isinstance(slug, str):
        return
    known = store.get(slug)
    if data is None:
        if known is not None:
            closed = await event_removed(app, slug)
            logger.info("cluster: event %s was deleted on node %s; %d connection(s) here closed", slug,
                        message.get("from"), closed)
        return
    if not isinstance(data, dict):
        return
    try:
        event = parse_event({k: v for k, v in data.items() if k != "source"}, slug)
    except web.HTTPException as exc:
        logger.warning("cluster: event %s from node %s cannot be read here (%s); is it another ORcast version?",
                       slug, message.get("from"), exc.text and exc.text.strip())
        return
    event = dataclasses.replace(event, source=known.source if known else "api")
    if known is not None and dataclasses.replace(known, token_gen=0) == event:
        return  # given again (a node re-subscribing): nothing changed
    try:
        store.put_event(event, replace_existing=True)
        gen = message.get("gen")
        if known is None and isinstance(gen, int):
            store.adopt_token_gen(slug, gen)  # the links minted on the other node work here
    except StoreError as exc:
        logger.error("cluster: event %s from node %s could not be stored: %s", slug, message.get("from"), exc)
        return
    logger.info("cluster: event %s %s on node %s", slug, "changed" if known else "created", message.get("from"))
    await event_changed(app)


def _apply_link(app: web.Application, message: dict[str, Any]) -> None:
    store = app[ACCESS].store
    record = message.get("record")
    if not isinstance(record, dict) or set(record) != _LINK_FIELDS:
        return
    try:
        token = MintedToken(**record)
    except TypeError:
        return
    texts_ok = all(isinstance(getattr(token, k), str) and len(getattr(token, k)) <= MAX_TEXT
                   for k in ("jti", "event", "role", "name", "minted_by"))
    numbers_ok = all(isinstance(getattr(token, k), int) for k in ("issued_at", "expires_at"))
    numbers_ok = numbers_ok and (token.max_sessions is None or isinstance(token.max_sessions, int))
    texts_ok = texts_ok and (token.theatre is None or (isinstance(token.theatre, str) and len(token.theatre) <= 63))
    if not texts_ok or not numbers_ok or token.event != message.get("event") or store.get(token.event) is None:
        return
    store.import_token(token)
