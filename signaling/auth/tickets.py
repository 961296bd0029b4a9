"""Signed media URLs for recordings.

A `<video src>` cannot send an Authorization header, and seeking makes the browser fetch
the file again and again with Range requests. So the library hands out, per file, a URL
with a ticket: an HMAC over that one file, the link it was issued to and an expiry. The
ticket opens nothing else, dies with its link (revocation is checked on every request)
and expires after a few hours at most. The logs' redaction masks `ticket=` values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from broadcast.participant import Role
from signaling.auth.tokens import TokenClaims, TokenError

TICKET_TTL_S = 6 * 3600
_CONTEXT = b"orcast media ticket v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MediaTickets:
    def __init__(self, secret: bytes) -> None:
        # a key of its own: a ticket can never be mistaken for a link token
        self._key = hmac.new(secret, _CONTEXT, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "MediaTickets(<secret>)"

    def sign(self, resource: str, claims: TokenClaims, now: float | None = None) -> str:
        exp = min(int(now if now is not None else time.time()) + TICKET_TTL_S, claims.exp)
        payload = _b64(json.dumps({"r": resource, "e": claims.event, "o": str(claims.role),
                                   "j": claims.jti, "g": claims.gen, "x": exp},
                                  separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:24])

    def verify(self, resource: str, ticket: str, now: float | None = None) -> TokenClaims:
        """The claims of the link the ticket was issued to. Raises TokenError (401)."""
        payload, _, mac = ticket.partition(".")
        if not payload or len(ticket) > 2048 or not hmac.compare_digest(mac, self._mac(payload)):
            raise TokenError("this recording link is not valid; open it again from the library")
        try:
            data = json.loads(_unb64(payload))
            claims = TokenClaims(event=str(data["e"]), role=Role(data["o"]), name="", jti=str(data["j"]),
                                 exp=int(data["x"]), iat=0, gen=int(data["g"]))
            same = data["r"] == resource
        except (ValueError, KeyError, TypeError):
            raise TokenError("this recording link is not valid; open it again from the library") from None
        if not same:
            raise TokenError("this recording link is for another file")
        if claims.exp < (now if now is not None else time.time()):
            raise TokenError("this recording link has expired; open it again from the library")
        return claims
