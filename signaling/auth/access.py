"""Access control for every entry point: who is asking (token → Participant), may they do
this (role, event, theatre), how many sessions they hold, and closing what they hold once
their link is revoked or expires.

Every adapter (WHIP, WHEP, WebSocket, REST) calls `Access`; nothing reaches the media plane
or the event store without passing through it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from broadcast.broadcaster import Broadcaster
from broadcast.lifecycle import CloseReason, start_every, stop_task
from broadcast.participant import ALL_EVENTS, Capability, Participant, Role
from broadcast.ratelimiter import RateLimiter
from broadcast.relay.streampath import StreamPath
from signaling.auth.clientaddress import check_rate
from signaling.auth.tokens import TokenClaims, TokenError, TokenIssuer
from signaling.config.settings import ServerConfig
from signaling.store.eventstore import Event, EventStore

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0  # revoked or expired links lose their sessions within this (+ close time)
GUEST_NAME = "guest"
GUEST_PREFIX = "guest-"  # a guest's made-up token id: each guest is its own


class Closable(Protocol):
    """A live connection that is not a media session (a WebSocket)."""

    participant: Participant

    async def close(self, reason: CloseReason = CloseReason.OTHER, detail: str = "") -> None: ...


@dataclass(frozen=True)
class Identity:
    participant: Participant
    claims: TokenClaims | None  # None: a guest of a public event


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=message + "\n",
        headers={"WWW-Authenticate": 'Bearer realm="orcast", error="invalid_token"'},
    )


def bearer_token(request: web.Request) -> str | None:
    """The Bearer token of the request; 401 for one that cannot be a token (not ASCII)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    if not token.isascii():  # aiohttp hands undecodable bytes on as surrogates
        raise _unauthorized("the Authorization header holds bytes that are not a token; "
                            "send 'Authorization: Bearer <token>' with the link's token")
    return token


class Access:
    def __init__(self, config: ServerConfig, issuer: TokenIssuer, store: EventStore,
                 broadcaster: Broadcaster) -> None:
        self.config = config
        self.issuer = issuer
        self.store = store
        self.broadcaster = broadcaster
        self.session_limiter = RateLimiter(config.session_rate, config.session_burst)
        self.connections: set[Closable] = set()   # WebSockets
        self._claims: dict[str, TokenClaims] = {}  # tokens behind live connections
        # admitted, not registered yet (still reading the offer): they count too. Keyed by
        # the admission's Participant object, so that a session that registers while its
        # admission is still open is not counted twice.
        self._pending: dict[int, Participant] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # tells the cluster's other nodes (revocations, kicks): set by the cluster, else None
        self.announce: Callable[[dict[str, Any], bool], Awaitable[None]] | None = None
        # a link's live connections on the cluster's other nodes: set by the cluster, else None
        self.elsewhere: Callable[[str], int] | None = None

    # -- identity -----------------------------------------------------------------------
    def identify_token(self, token: str | None, event: str) -> Identity:
        """Verify a token for `event`: 401 missing/invalid/revoked, 403 other event, 404 no event.

        A public event lets a request without a token in as a guest viewer.
        """
        known = self.store.get(event)
        if token is None:
            if known is not None and known.public:
                guest = Participant(event, Role.VIEWER, GUEST_NAME, GUEST_PREFIX + secrets.token_hex(6),
                                    guest=True)
                return Identity(guest, None)
            raise _unauthorized("this needs a link: send it as 'Authorization: Bearer <token>' "
                                "(ask the organizer if you have none)")
        try:
            claims = self.issuer.verify(token)
        except TokenError as exc:
            raise _unauthorized(str(exc)) from None
        if self.store.is_revoked(claims):
            raise _unauthorized("this link has been revoked; ask the organizer for a new one")
        participant = claims.participant()
        if not participant.covers_event(event):
            raise web.HTTPForbidden(text=f"this link is for the event {claims.event!r}, not {event!r}\n")
        if known is None:
            raise web.HTTPNotFound(text=f"there is no event {event!r}\n")
        return Identity(participant, claims)

    def identify_any(self, request: web.Request) -> Identity:
        """Verify a token for whatever event it names (or every event, for `*` organizers)."""
        token = bearer_token(request)
        if token is None:
            raise _unauthorized("this needs a link: send it as 'Authorization: Bearer <token>'")
        try:
            claims = self.issuer.verify(token)
        except TokenError as exc:
            raise _unauthorized(str(exc)) from None
        if claims.event != ALL_EVENTS:
            return self.identify_token(token, claims.event)
        if self.store.is_revoked(claims):
            raise _unauthorized("this link has been revoked; ask the organizer for a new one")
        return Identity(claims.participant(), claims)

    def identify(self, request: web.Request, event: str) -> Identity:
        return self.identify_token(bearer_token(request), event)

    def require(self, request: web.Request, event: str, capability: Capability) -> Identity:
        identity = self.identify(request, event)
        self.check_capability(identity.participant, capability)
        return identity

    @staticmethod
    def check_capability(participant: Participant, capability: Capability) -> None:
        if not participant.can(capability):
            raise web.HTTPForbidden(text=f"a {participant.role} link cannot {_VERBS[capability]}; "
                                         "ask the organizer for a link with that role\n")

    def event(self, slug: str) -> Event:
        event = self.store.get(slug)
        if event is None:
            raise web.HTTPNotFound(text=f"there is no event {slug!r}\n")
        return event

    # -- media sessions -----------------------------------------------------------------
    def admit_publisher(self, request: web.Request, path: StreamPath) -> Identity:
        identity = self.identify_token(bearer_token(request), path.event)
        if identity.claims is None:  # a guest of a public event
            raise _unauthorized("publishing needs a technician link, even for a public event")
        who = identity.participant
        if not who.may_send(path.event, path.theatre, path.feed):
            if who.can(Capability.TALKBACK) and who.covers_theatre(path.theatre):
                raise web.HTTPForbidden(text="a faculty link can only send a talk-back feed "
                                             "(a feed name starting with 'talkback')\n")
            if who.can(Capability.PUBLISH) or who.can(Capability.TALKBACK):
                raise web.HTTPForbidden(text=f"this link is for theatre {who.theatre!r}, "
                                             f"not {path.theatre!r}\n")
            raise web.HTTPForbidden(text=f"a {who.role} link cannot publish; "
                                         "ask the organizer for a technician link\n")
        self._check_theatre(path)
        # a returning encoder replaces its own live session: that one does not count
        self._admit(request, identity, spare=1 if self._publishes(path, identity) else 0)
        return identity

    def _publishes(self, path: StreamPath, identity: Identity) -> bool:
        stream = self.broadcaster.streams.get(path)
        owner = stream.publisher.participant if stream is not None and stream.publisher else None
        return owner is not None and identity.claims is not None and owner.token_id == identity.claims.jti

    def admit_viewer(self, request: web.Request, path: StreamPath) -> Identity:
        identity = self.identify(request, path.event)
        if not identity.participant.may_watch(path.event, path.theatre):
            raise web.HTTPForbidden(text=f"this link cannot watch theatre {path.theatre!r}\n")
        self._check_theatre(path)
        self._admit(request, identity)
        return identity

    def admit_qa(self, request: web.Request, event: str) -> Identity:
        """A data-channel-only Q&A connection: any link of the event (a guest of a public one)."""
        identity = self.identify(request, event)
        self.check_capability(identity.participant, Capability.VIEW)
        self._admit(request, identity)
        return identity

    def _check_theatre(self, path: StreamPath) -> None:
        event = self.event(path.event)
        if not event.accepts_theatre(path.theatre):
            raise web.HTTPNotFound(text=f"event {path.event!r} has no theatre {path.theatre!r}; "
                                        "the organizer can add it\n")

    def admit_connection(self, request: web.Request, identity: Identity) -> None:
        """Rate and per-link limits for a new WebSocket (its token arrived in a message)."""
        self._admit(request, identity)

    def _admit(self, request: web.Request, identity: Identity, spare: int = 0) -> None:
        check_rate(self.session_limiter, request, self.config.trusted_proxies)
        claims = identity.claims
        if claims is None:
            return
        limit = claims.max_sessions or self.config.sessions_per_token
        held = self.sessions_of(claims.jti) - spare
        if self.elsewhere is not None:
            held += self.elsewhere(claims.jti)
        if held >= limit:
            raise web.HTTPTooManyRequests(
                text=f"this link already holds {held} live session(s), its limit; close one "
                     "(another tab or device) or ask the organizer for a link that allows more\n",
                headers={"Retry-After": str(self.config.retry_after)},
            )
        self._claims[claims.jti] = claims
        self._pending[id(identity.participant)] = identity.participant

    def release(self, identity: Identity) -> None:
        """The admitted connection is now registered (or failed): stop counting it as pending."""
        self._pending.pop(id(identity.participant), None)

    def live_counts(self) -> Counter[str]:
        """Live sessions, WebSockets and admissions in progress per link (`jti`), in one pass."""
        pending = self._pending
        counts: Counter[str] = Counter(p.token_id for p in pending.values())
        # a session registers while its admission is open: count it once
        counts.update(s.participant.token_id for s in self.broadcaster.sessions.values()
                      if s.participant is not None and id(s.participant) not in pending)
        counts.update(c.participant.token_id for c in self.connections if id(c.participant) not in pending)
        return counts

    def sessions_of(self, jti: str) -> int:
        return self.live_counts()[jti]

    def may_manage_session(self, who: Participant, owner: Participant | None, event: str) -> bool:
        """The session's own link, or an organizer of its event."""
        if owner is not None and owner.token_id == who.token_id:
            return True
        if owner is not None and owner.guest and who.guest:
            return True  # guests of a public event share no token; the session URL is the secret
        return who.covers_event(event) and who.can(Capability.ADMIN)

    # -- revocation, expiry, kick --------------------------------------------------------
    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = start_every(SWEEP_INTERVAL_S, self.sweep, "closing revoked and expired links' connections")

    async def stop(self) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None

    async def sweep(self) -> int:
        """Close every live connection whose link was revoked or has expired."""
        now = time.time()
        live = self.live_counts()  # one pass over the sessions, not one per link
        dead: dict[str, CloseReason] = {}
        for jti, claims in list(self._claims.items()):
            if self.store.is_revoked(claims):
                dead[jti] = CloseReason.REVOKED
            elif claims.exp <= now:
                dead[jti] = CloseReason.EXPIRED
            elif not live[jti]:
                del self._claims[jti]
        for jti in dead:
            self._claims.pop(jti, None)
        if not dead:
            return 0
        return await self.close_where(lambda p: p.token_id in dead, lambda p: dead[p.token_id])

    async def close_where(self, match: Callable[[Participant], bool],
                          reason: Callable[[Participant], CloseReason], detail: str = "") -> int:
        """Close every connection of a matching participant: the pages (WebSockets) first, so
        they are told why before their media drops and do not reconnect."""
        closing: list[asyncio.Future[None]] = []
        reasons: set[str] = set()
        for conn in list(self.connections):
            if match(conn.participant):
                reasons.add(reason(conn.participant))
                closing.append(asyncio.ensure_future(conn.close(reason(conn.participant), detail)))
        for session in list(self.broadcaster.sessions.values()):
            if session.participant is not None and match(session.participant):
                reasons.add(reason(session.participant))
                closing.append(asyncio.ensure_future(session.close(reason(session.participant), detail)))
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
            logger.info("closed %d connection(s): %s", len(closing), ", ".join(sorted(reasons)))
        return len(closing)

    async def revoke(self, event: str, jti: str, expires_at: int | None = None, announce: bool = True) -> int:
        """`announce`: tell the cluster's other nodes (not when one of them told this node)."""
        self.store.revoke(event, jti, expires_at)
        if announce and self.announce is not None:
            await self.announce({"type": "revoke", "event": event, "jti": jti,
                                 "expires_at": self.store.token_expiry(jti)}, True)
        return await self.close_where(lambda p: p.token_id == jti, lambda p: CloseReason.REVOKED)

    async def revoke_all(self, event: str, gen: int | None = None, announce: bool = True) -> int:
        """`gen`: the event's new link generation, from the node that revoked them."""
        if gen is None:
            gen = self.store.revoke_all(event)
        elif not self.store.raise_token_gen(event, gen):
            return 0  # seen already
        if announce and self.announce is not None:
            await self.announce({"type": "revoke_all", "event": event, "gen": gen}, True)
        return await self.close_where(lambda p: p.event == event and not p.guest,
                                      lambda p: CloseReason.EVENT_REVOKED)

    async def kick_link(self, event: str, jti: str, by: str) -> int:
        """Close one link's pages and sessions on every node (the link stays valid)."""
        if self.announce is not None:
            await self.announce({"type": "kick", "event": event, "jti": jti, "by": by}, False)
        return await self.close_where(lambda p: p.event == event and p.token_id == jti,
                                      lambda p: CloseReason.KICKED, by)


_VERBS = {
    Capability.VIEW: "watch this event",
    Capability.PUBLISH: "publish",
    Capability.TALKBACK: "talk back",
    Capability.RECORD: "start or stop recordings",
    Capability.LIBRARY: "see or play recordings",
    Capability.MODERATE: "moderate",
    Capability.ASK: "ask questions",
    Capability.ADMIN: "manage the event (links, sessions, theatres)",
}

