"""The middlewares every request passes, outermost first: its request id (for the logs and the
`X-Request-Id` header), security and CORS headers, and /api errors as JSON.

A client's own request id is kept when it looks like one, so a proxy's id follows the request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import MutableMapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from signaling.keys import CONFIG
from signaling.logs.format import REQUEST_ID

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), fullscreen=(self), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000"
CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, If-Match"
CORS_EXPOSED = "Location, Link, ETag, Accept-Patch, Accept-Post, Retry-After, WWW-Authenticate, X-Request-Id"


def _decorate(request: web.Request, headers: MutableMapping[str, str]) -> None:
    """Security headers on every response, CORS for allowed origins only."""
    for key, value in SECURITY_HEADERS.items():
        headers.setdefault(key, value)
    if request.path.startswith("/static/"):
        # revalidated on every load (ETag / Last-Modified), so that after an upgrade a page
        # never runs with an old copy of a shared module
        headers.setdefault("Cache-Control", "no-cache")
    config = request.app[CONFIG]
    if config.tls_cert is not None:
        headers.setdefault("Strict-Transport-Security", HSTS)
    origin = request.headers.get("Origin")
    if origin and ("*" in config.cors_origins or origin in config.cors_origins):
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = "Origin"
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = CORS_METHODS
            headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            headers["Access-Control-Max-Age"] = "600"


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        _decorate(request, exc.headers)
        raise
    if not response.prepared:
        _decorate(request, response.headers)
    return response


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """/api errors as JSON a page can show: {"error": "…", "status": N}."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        message = (exc.text or exc.reason).strip()
        return web.json_response({"error": message, "status": exc.status}, status=exc.status,
                                 headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _CLIENT_ID.fullmatch(given) else secrets.token_hex(8)
    token = REQUEST_ID.set(request_id)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Request-Id"] = request_id
            raise
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
        return response
    finally:
        REQUEST_ID.reset(token)


async def api_options(request: web.Request) -> web.Response:
    """A CORS preflight for /api: the headers come from the headers middleware."""
    return web.Response(status=204, headers={"Allow": CORS_METHODS})


MIDDLEWARES: list[Middleware] = [request_id_middleware, headers_middleware, api_errors]
