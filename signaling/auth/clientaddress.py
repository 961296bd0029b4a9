"""Per-client rate limits on the endpoints that create sessions (a token bucket per address).

The client address is the TCP peer, or the address a trusted reverse proxy puts in
X-Forwarded-For; an untrusted peer cannot choose its own address that way.
"""

from __future__ import annotations

import ipaddress
import math

from aiohttp import web

from broadcast.ratelimiter import RateLimiter


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
