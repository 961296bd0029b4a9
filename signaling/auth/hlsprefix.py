"""Signed URL prefixes for HLS: `/hls/s/{prefix}/{event}/{theatre}/{feed}/…`.

A cache can share a response only between requests for the same URL, so the prefix is the
same for every viewer of a feed at the same time: an HMAC over the feed, a time window, the
event's link generation and how many of its links are revoked. A viewer's page gets it with its
own link (`GET /api/events/{event}/hls/{theatre}/{feed}`); a player that sends no headers
(Safari's own HLS) and a shared cache need nothing else. So:

* a prefix is valid for its window and the next (WINDOW_S each): at most 2 × WINDOW_S;
* revoking the whole event (a new generation) or any one link of it (one more revoked) makes
  every prefix of the event invalid at once: pages ask for a new one with their own links,
  which a revoked link no longer gets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

WINDOW_S = 600
_CONTEXT = b"orcast hls prefix v1"
PREFIX = re.compile(r"^(\d{1,12})-([A-Za-z0-9_-]{22})$")


class HlsPrefixes:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _CONTEXT, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "HlsPrefixes(<secret>)"

    def _mac(self, path: str, window: int, gen: int, revoked: int) -> str:
        message = f"{path}|{window}|{gen}|{revoked}".encode()
        return base64.urlsafe_b64encode(hmac.new(self._key, message, hashlib.sha256).digest()[:16]).rstrip(
            b"=").decode()

    def current(self, path: str, gen: int, revoked: int, now: float | None = None) -> tuple[str, int]:
        """The prefix of this window for `path` (event/theatre/feed) and when it stops working."""
        window = int((now if now is not None else time.time()) // WINDOW_S)
        return f"{window}-{self._mac(path, window, gen, revoked)}", (window + 2) * WINDOW_S

    def valid(self, prefix: str, path: str, gen: int, revoked: int, now: float | None = None) -> bool:
        match = PREFIX.match(prefix)
        if match is None:
            return False
        window = int(match.group(1))
        current = int((now if now is not None else time.time()) // WINDOW_S)
        if window not in (current, current - 1):
            return False
        return hmac.compare_digest(match.group(2), self._mac(path, window, gen, revoked))
