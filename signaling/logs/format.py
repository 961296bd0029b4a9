"""Log lines: human-readable text, or JSON (one object per line) for log collectors.

Every line written while an HTTP request is handled carries that request's id (also sent back
as `X-Request-Id`, or taken from the client's if it looks like one, so a proxy's id follows
the request through). Media-plane lines carry `path` and `session` when they have them
(`extra={"path": …, "session": …}`). Tokens and SDP credentials are masked before either
format writes a line (safety.py runs first on every handler).
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

from aiohttp.http_exceptions import HttpProcessingError

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("orcast_request_id", default=None)
_FIELDS = ("path", "session")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BadHttpFilter(logging.Filter):
    """aiohttp logs every malformed request (a scanner, a TLS hello on the HTTP port, a cut
    connection) at ERROR with a traceback; it is the client's fault and needs no operator:
    one INFO line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.INFO):
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "malformed HTTP request from %s: %s", (remote, _first_line(exc))
        record.exc_info = record.exc_text = None
        return True


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def install_bad_http_filter() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadHttpFilter) for f in server.filters):
        server.addFilter(BadHttpFilter())


def configure_logging(level: str, form: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    install_bad_http_filter()
