"""Captures what the server logs and checks that no token or SDP credential is in it."""

from __future__ import annotations

import logging
import re
from types import TracebackType
from typing import ClassVar

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")
ICE_PWD = re.compile(r"a=ice-pwd:(?!<redacted>)\S+")
HLS_PREFIX = re.compile(r"/hls/s/\d+-[A-Za-z0-9_-]{22}")


class LogCapture(logging.Handler):
    secrets: ClassVar[set[str]] = set()  # every token the tests minted

    def __init__(self, level: int, redact: bool = False) -> None:
        """`redact`: pass records through the server's own log filter, as `orcast serve` does."""
        super().__init__(level)
        if redact:
            from signaling.logs.safety import RedactingFilter
            self.addFilter(RedactingFilter())
        self.lines: list[str] = []
        self._old_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record is not what this handler checks
            self.lines.append(str(record.msg))

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._old_level = root.level
        if root.level == logging.NOTSET or root.level > self.level:
            root.setLevel(self.level)
        root.addHandler(self)
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._old_level)

    def problems(self) -> list[str]:
        text = "\n".join(self.lines)
        found = [f"JWT-like string: {m[:20]}…" for m in JWT.findall(text)]
        found += [f"SDP ICE password: {m[:24]}…" for m in ICE_PWD.findall(text)]
        found += [f"an HLS prefix: {m[:16]}…" for m in HLS_PREFIX.findall(text)]
        found += [f"a minted token ({t[:12]}…)" for t in self.secrets if t in text]
        return found

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, f"the logs contain secrets: {problems[:5]}"
