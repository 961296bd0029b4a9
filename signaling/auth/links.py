"""Which page each role opens, and the link that carries its token.

The token rides in the URL fragment (`#token=…`): browsers never send a fragment to the
server or in a Referer header, and the page removes it from the address bar at once.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from broadcast.participant import ALL_EVENTS, Role
from signaling.auth.tokens import TokenClaims, TokenIssuer
from signaling.config.settings import ServerConfig
from signaling.store.eventstore import EventStore


def role_page(role: Role, event: str, theatre: str | None = None) -> str:
    if role is Role.ORGANIZER:
        return "/admin"  # the page finds its event(s) from the token
    if role is Role.TECHNICIAN:
        return f"/console/{event}/{theatre}" if theatre else f"/console/{event}"
    if role is Role.MODERATOR:
        return f"/moderate/{event}"
    if role is Role.HALL:
        return f"/hall/{event}"
    return f"/watch/{event}"  # viewer, faculty (talk-back is a control on the same page)


def role_link(base: str, role: Role, event: str, theatre: str | None, token: str) -> str:
    return f"{base.rstrip('/')}{role_page(role, event, theatre)}#token={quote(token, safe='')}"


def server_base(config: ServerConfig) -> str:
    """The base URL printed by the command line (no request to look at)."""
    if config.public_url:
        return config.public_url.rstrip("/")
    scheme = "https" if config.tls_cert else "http"
    host = "localhost" if config.host in ("127.0.0.1", "0.0.0.0", "::", "::1") else config.host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{config.port}"


def request_base(request: web.Request, config: ServerConfig) -> str:
    """The base URL as the asking browser sees it (or the configured public URL)."""
    if config.public_url:
        return config.public_url.rstrip("/")
    return f"{request.scheme}://{request.host}"


def mint_link(store: EventStore, issuer: TokenIssuer, base: str, event: str, role: Role, name: str,
              ttl_s: int, theatre: str | None = None, max_sessions: int | None = None,
              minted_by: str = "") -> tuple[str, str, TokenClaims]:
    """Mint a token for an existing event (recorded, so it can be listed and revoked) and its link.

    Raises ValueError with a message a person can act on.
    """
    if event != ALL_EVENTS:
        known = store.get(event)
        if known is None:
            raise ValueError(f"there is no event {event!r}; define it in the config file "
                             "([[events]]) or create it through the API")
        if theatre is not None and not known.accepts_theatre(theatre):
            raise ValueError(f"event {event!r} has no theatre {theatre[:40]!r}")
    token, claims = issuer.mint(event, role, name, ttl_s, theatre, gen=store.token_gen(event),
                                max_sessions=max_sessions)
    store.record_token(claims, minted_by)
    return token, role_link(base, role, event, theatre, token), claims
