"""The `qa` data channel's incoming messages: JSON objects with a `type`, checked field by field.

Anything a client sends is parsed here into a `Command` or refused with a `QaError` whose
message says what to fix. Unknown fields are refused too, so a client's typo is not
silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from broadcast import jsontext
from broadcast.plaintext import normalised
from broadcast.relay.streampath import is_slug

MAX_MESSAGE_BYTES = 4096
MAX_TEXT_CHARS = 500
MAX_REASON_CHARS = 200
MAX_REF_CHARS = 64
MAX_QUESTION_ID = 2**31 - 1


class QaError(Exception):
    """A refused message or action; `code` is for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref: str | int | None = None  # the refused message's ref, once it is known


@dataclass(frozen=True)
class Command:
    type: str
    ref: str | int | None = None       # echoed in the reply, so a client can match it
    question: int | None = None
    into: int | None = None
    text: str | None = None
    theatre: str | None = None
    reason: str | None = None
    anonymous: bool = False
    pinned: bool = True
    seat: str | None = None
    mode: str | None = None            # hall layout: single, side or grid
    feeds: tuple[str, ...] = ()        # hall layout: "theatre/feed" per tile


# type → (required fields, optional fields); `type` and `ref` are always allowed
SCHEMA: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "hello": (frozenset(), frozenset({"seat"})),
    "ping": (frozenset(), frozenset()),
    "ask": (frozenset({"text"}), frozenset({"theatre", "anonymous"})),
    "vote": (frozenset({"question"}), frozenset()),
    "unvote": (frozenset({"question"}), frozenset()),
    "withdraw": (frozenset({"question"}), frozenset()),
    "approve": (frozenset({"question"}), frozenset()),
    "reject": (frozenset({"question"}), frozenset({"reason"})),
    "edit": (frozenset({"question", "text"}), frozenset()),
    "merge": (frozenset({"question", "into"}), frozenset()),
    "answered": (frozenset({"question"}), frozenset()),
    "on_air": (frozenset({"question"}), frozenset({"theatre"})),
    "off_air": (frozenset({"question"}), frozenset()),
    "pin": (frozenset({"question"}), frozenset({"pinned"})),
    "layout": (frozenset({"mode", "feeds"}), frozenset()),
}
# hall layouts and how many tiles each shows
LAYOUT_TILES = {"single": 1, "side": 2, "grid": 4}


def clean_text(value: Any, field: str, limit: int) -> str:
    """Normalised text: NFC, no control or direction-override characters, ≤ `limit` characters."""
    if not isinstance(value, str):
        raise QaError("bad_message", f"{field} must be a string")
    text = normalised(value)
    text = re.sub(r"\n{3,}", "\n\n", text)
    if not text:
        raise QaError("bad_message", f"{field} is empty")
    if len(text) > limit:
        raise QaError("too_long", f"{field} has {len(text)} characters; the limit is {limit}")
    return text


def _question_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUESTION_ID:
        raise QaError("bad_message", f"{field} must be a question number (a positive integer)")
    return value


def _theatre(value: Any, allow_all: bool) -> str | None:
    if value is None:
        return None
    if allow_all and value == "*":
        return "*"
    if not isinstance(value, str) or not is_slug(value):
        extra = ' or "*" for every theatre' if allow_all else ""
        raise QaError("bad_message", f"theatre must be a theatre's short name like \"or1\"{extra}")
    return value


def _feeds(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > max(LAYOUT_TILES.values()):
        raise QaError("bad_message", "feeds must be a list of at most 4 \"theatre/feed\" names")
    feeds = []
    for item in value:
        parts = item.split("/") if isinstance(item, str) else []
        if len(parts) != 2 or not all(is_slug(p) for p in parts):
            raise QaError("bad_message", "each feed is \"theatre/feed\", like \"or1/endoscope\"")
        feeds.append(item)
    return tuple(feeds)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise QaError("bad_message", f"{field} must be true or false")
    return value


def _ref(value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise QaError("bad_message", "ref must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_REF_CHARS:
        raise QaError("bad_message", f"ref is longer than {MAX_REF_CHARS} characters")
    if isinstance(value, int) and abs(value) > 2**53:
        raise QaError("bad_message", "ref is too large")
    return value


def parse(raw: str | bytes) -> Command:
    """One message from the channel → a Command, or QaError."""
    if isinstance(raw, bytes):
        raise QaError("bad_message", "send JSON as text messages, not binary")
    size = len(raw.encode("utf-8", "replace"))
    if size > MAX_MESSAGE_BYTES:
        raise QaError("too_large", f"message of {size} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        data = jsontext.loads(raw)
    except jsontext.JsonTooDeep as exc:
        raise QaError("bad_json", f"{exc}; a Q&A message is a flat JSON object") from None
    except ValueError:
        raise QaError("bad_json", "not valid JSON") from None
    if not isinstance(data, dict):
        raise QaError("bad_message", 'a message is a JSON object with a "type"')
    ref = _ref(data.get("ref"))
    try:
        return _command(data, ref)
    except QaError as exc:
        exc.ref = ref
        raise


def _command(data: dict[str, Any], ref: str | int | None) -> Command:
    kind = data.get("type")
    if not isinstance(kind, str):
        raise QaError("bad_message", 'a message is a JSON object with a "type"')
    if kind not in SCHEMA:
        raise QaError("unknown_type", f"unknown message type {kind[:40]!r} (known: {', '.join(SCHEMA)})")
    required, optional = SCHEMA[kind]
    fields = set(data) - {"type", "ref"}
    unknown = fields - required - optional
    if unknown:
        names = ", ".join(sorted(name[:40] for name in unknown)[:5])
        raise QaError("bad_message", f"{kind} has unknown field(s) {names}")
    missing = required - fields
    if missing:
        raise QaError("bad_message", f"{kind} needs {', '.join(sorted(missing))}")
    values: dict[str, Any] = {}
    for name in fields:
        value = data[name]
        if name in ("question", "into"):
            values[name] = _question_id(value, name)
        elif name == "text":
            values[name] = clean_text(value, "text", MAX_TEXT_CHARS)
        elif name == "reason":
            values[name] = None if value is None else clean_text(value, "reason", MAX_REASON_CHARS)
        elif name == "theatre":
            values[name] = _theatre(value, allow_all=kind == "on_air")
        elif name in ("anonymous", "pinned"):
            values[name] = _bool(value, name)
        elif name == "mode":
            if value not in LAYOUT_TILES:
                raise QaError("bad_message", f"mode must be one of {', '.join(LAYOUT_TILES)}")
            values[name] = value
        elif name == "feeds":
            values[name] = _feeds(value)
        elif name == "seat":
            if not isinstance(value, str) or len(value) > 128:
                raise QaError("bad_message", "seat must be the string the server gave you")
            values[name] = value
    return Command(type=kind, ref=ref, **values)
