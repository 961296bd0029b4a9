"""Text that people type (questions, names, titles) and others read: characters that can
hide or reorder what is shown — control characters, zero-width and text-direction
overrides (U+202E makes "gpj.exe" read "exe.jpg") — are not allowed in it."""

from __future__ import annotations

import re
import unicodedata

HIDDEN_CHARS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def normalised(text: str) -> str:
    """NFC, tabs as spaces, hidden characters removed, trimmed."""
    return HIDDEN_CHARS.sub("", unicodedata.normalize("NFC", text).replace("\t", " ")).strip()


def single_line(text: str, what: str, limit: int) -> str:
    """A title or a name: one line of 1..limit visible characters, else ValueError saying why."""
    text = unicodedata.normalize("NFC", text).strip()
    bad = HIDDEN_CHARS.search(text)
    if bad:
        raise ValueError(f"{what} contains the invisible character U+{ord(bad.group()):04X} "
                         "(a control, zero-width or text-direction character); remove it")
    if not text or len(text) > limit:
        raise ValueError(f"{what} must be 1-{limit} characters")
    return text
