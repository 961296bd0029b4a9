"""Reading what a URL carries: the feed in its path, names and switches in its query. Each
refusal says which part is wrong and what it should look like (400), or 404 where a malformed
name can only mean that the thing does not exist."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from broadcast.relay.streampath import StreamPath, is_slug

TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")


def stream_path(request: web.Request, not_found: str | None = None) -> StreamPath:
    """The `{event}/{theatre}/{feed}` of the route. A malformed one is 400, or 404 with
    `not_found` as its message (for things that are looked up by that path, such as files)."""
    info = request.match_info
    try:
        return StreamPath(info["event"], info["theatre"], info["feed"])
    except ValueError as exc:
        if not_found is not None:
            raise web.HTTPNotFound(text=f"{not_found}\n") from None
        raise web.HTTPBadRequest(text=f"{exc}\n") from None


def query_slug(request: web.Request, key: str) -> str | None:
    """`?key=or1`: a name (lower-case letters, digits, '-'), or None when absent."""
    value = request.query.get(key)
    if value is not None and not is_slug(value):
        raise web.HTTPBadRequest(text=f"{key!r} must be a name like \"or1\" (lower-case letters, digits, '-')\n")
    return value


def query_flag(request: web.Request, key: str, default: bool = False) -> bool:
    """`?key=1` / `?key=true` … or `?key=0` / `?key=false`; anything else is refused."""
    value = request.query.get(key)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS or value == "":
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise web.HTTPBadRequest(text=f"{key!r} must be 1 or 0 (true or false)\n")


def query_choice(request: web.Request, key: str, choices: Collection[str], default: str) -> str:
    """`?key=one-of-choices`, or `default` when absent."""
    value = request.query.get(key, default)
    if value not in choices:
        raise web.HTTPBadRequest(text=f"{key} must be {' or '.join(choices)}\n")
    return value
