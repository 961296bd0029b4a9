"""Per-client rate limits on the endpoints that create sessions (a token bucket per address).

The client address is the TCP peer, or the address a trusted reverse proxy puts in
X-Forwarded-For; an untrusted peer cannot choose its own address that way.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from aiohttp import web

MAX_TRACKED = 100_000  # addresses remembered at once; full buckets are forgotten first


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for `key`. Returns 0 if allowed, else seconds until one is free."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_TRACKED:  # still full: under attack from many addresses
            self._buckets.clear()


def client_address(request: web.Request, trusted_proxies: list[str]) -> str:
    peer = request.remote or "unknown"
    if peer not in trusted_proxies:
        return peer
    # the right-most address that is not one of our proxies is the client
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


def check_rate(limiter: RateLimiter, request: web.Request, trusted_proxies: list[str]) -> None:
    wait = limiter.take(client_address(request, trusted_proxies))
    if wait > 0:
        raise web.HTTPTooManyRequests(
            text=f"too many new sessions from your address; retry in {math.ceil(wait)} s\n",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
