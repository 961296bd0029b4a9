"""Defence in depth for logs: whatever a library or a message prints, tokens, bearer
headers and SDP credentials are masked before a line is written.

ORcast's own code never logs them; this catches what third-party code might.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "<token>"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1<token>"),
    (re.compile(r"(?i)((?:token|ticket)=)[^&\s\"']+"), r"\1<token>"),
    (re.compile(r"(a=ice-pwd:)\S+"), r"\1<redacted>"),
    # an HLS address's signed prefix (/hls/s/{window}-{mac}/…): it opens a feed
    (re.compile(r"(/hls/s/)[0-9]+-[A-Za-z0-9_-]+"), r"\1<prefix>"),
    (re.compile(r"(?i)(credential=\"?)[^\";\s]+"), r"\1<redacted>"),
    # a password in a URL (rtsp://user:password@camera): FFmpeg quotes URLs in its errors
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1***@"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_safety(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
