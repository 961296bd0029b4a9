"""JSON from outside (request bodies, WebSocket and data-channel messages), parsed with a
depth limit: a `[` × 8000 body fits any size cap and makes `json.loads` raise
RecursionError, which is not a ValueError and would otherwise surface as a 500."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # far more than any ORcast message needs


class JsonTooDeep(ValueError):
    pass


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` that raises ValueError (never RecursionError) for nesting beyond `max_depth`."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:  # iterative: the check itself must not recurse
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return data
