"""`ORCAST_<SECTION>_<KEY>` environment variables: every config key (but `[[events]]`) can be set
without editing the file, e.g. `ORCAST_SERVER_PORT=8443`, `ORCAST_METRICS_TOKEN=…`,
`ORCAST_ICE_UDP_PORTS=40000-40199`, `ORCAST_SERVER_CORS_ORIGINS=https://a.example,https://b.example`,
`ORCAST_ICE_SERVERS='[{"urls": "turn:turn.example:3478", "username": "u", "credential": "p"}]'`.

Precedence: command-line flag > environment > config file > default.
`ORCAST_SECRET` is the signing secret (see signaling/auth/tokens.py), not a config key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PREFIX = "ORCAST_"
NOT_CONFIG = {"ORCAST_SECRET"}


def _convert(name: str, raw: str, expected: type | tuple[type, ...], problems: list[str]) -> Any:
    types = expected if isinstance(expected, tuple) else (expected,)
    text = raw.strip()
    if bool in types:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        problems.append(f"{name}: expected true or false, got {raw!r}")
        return None
    if int in types and float not in types:
        try:
            return int(text)
        except ValueError:
            problems.append(f"{name}: expected a whole number, got {raw!r}")
            return None
    if float in types:
        try:
            number = float(text)
        except ValueError:
            problems.append(f"{name}: expected a number, got {raw!r}")
            return None
        return int(number) if number.is_integer() and int in types else number
    if list in types:
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                problems.append(f"{name}: not valid JSON ({exc})")
                return None
            return value
        return [item.strip() for item in text.split(",") if item.strip()]
    return raw


def environment_overrides(environ: Mapping[str, str], schema: Mapping[str, Mapping[str, Any]],
                          problems: list[str]) -> dict[str, dict[str, Any]]:
    """The config data the environment sets, as the file's structure; problems name the variable."""
    keys = {f"{PREFIX}{section}_{key}".upper(): (section, key, expected)
            for section, entries in schema.items() for key, expected in entries.items()}
    data: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(PREFIX) or name in NOT_CONFIG:
            continue
        if name not in keys:
            problems.append(f"{name}: unknown environment variable (ORCAST_<SECTION>_<KEY>, e.g. "
                            "ORCAST_SERVER_PORT; see `orcast config example`)")
            continue
        section, key, expected = keys[name]
        value = _convert(name, raw, expected, problems)
        if value is not None:
            data.setdefault(section, {})[key] = value
    return data


def merge(file_data: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {section: (dict(values) if isinstance(values, dict) else values) for section, values in file_data.items()}
    for section, values in overrides.items():
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target.update(values)
    return merged
