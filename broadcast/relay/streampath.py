"""The address of a feed: `{event}/{theatre}/{feed}`."""

from __future__ import annotations

import re
from dataclasses import dataclass

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def is_slug(value: str) -> bool:
    return SLUG.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class StreamPath:
    event: str
    theatre: str
    feed: str

    def __post_init__(self) -> None:
        for part, value in (("event", self.event), ("theatre", self.theatre), ("feed", self.feed)):
            if not is_slug(value):
                raise ValueError(
                    f"{part} {value[:70]!r} is not a valid name: use 1-63 lower-case letters, "
                    "digits and '-', starting with a letter or digit"
                )

    @classmethod
    def parse(cls, text: str) -> StreamPath:
        parts = text.strip("/").split("/")
        if len(parts) != 3:
            raise ValueError(f"stream path {text[:200]!r} must look like event/theatre/feed")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.event}/{self.theatre}/{self.feed}"
