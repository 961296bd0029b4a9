"""Reading request bodies: the right Content-Type (415), a size cap (413), then text (SDP)
or a JSON object (400 otherwise), and typed JSON fields with errors that name them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from broadcast import jsontext

MAX_JSON_BYTES = 16 * 1024
BODY_TIMEOUT_S = 10.0  # a client that sends its body this slowly is stuck (or a slowloris)


async def read_capped(request: web.Request, content_type: str, limit: int) -> bytes:
    if request.content_type != content_type:
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Type must be {content_type} (got {request.content_type or 'none'})\n")
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    # Read to the end of the body: one read() returns only what has arrived so far, and
    # networks, proxies and chunked uploads split bodies.
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while True:
                chunk = await request.content.read(limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
    except TimeoutError:
        raise web.HTTPRequestTimeout(text=f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s; "
                                          "send it again\n") from None
    return b"".join(chunks)


async def read_text(request: web.Request, content_type: str, limit: int) -> str:
    body = await read_capped(request, content_type, limit)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="body is not UTF-8 text\n") from None


async def read_json(request: web.Request) -> dict[str, Any]:
    body = await read_capped(request, "application/json", MAX_JSON_BYTES)
    try:
        data = jsontext.loads(body.decode("utf-8"))
    except jsontext.JsonTooDeep as exc:
        raise web.HTTPBadRequest(text=f"the body is {exc}; send a plain JSON object\n") from None
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(text="the body is not valid JSON\n") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    return data


def field(data: dict[str, Any], key: str, kind: type, required: bool = False,
          default: Any = None) -> Any:
    """One typed field of a JSON object, with a 400 that names it."""
    if key not in data or data[key] is None:
        if required:
            raise web.HTTPBadRequest(text=f"{key!r} is required\n")
        return default
    value = data[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise web.HTTPBadRequest(text=f"{key!r} must be a {kind.__name__}\n")
    return value


def check_keys(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}; "
                                      f"known: {', '.join(sorted(allowed))}\n")
