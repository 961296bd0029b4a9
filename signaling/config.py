"""Server configuration: a TOML file, overridden by command-line flags.

Unknown keys are errors (a typo must not silently fall back to a default in a hospital).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcast.session import IceServer

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """One or more problems in the configuration, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("orcast-data")
    log_level: str = "info"
    cors_origins: list[str] = field(default_factory=list)
    ice_servers: list[IceServer] = field(default_factory=list)
    max_sessions: int = 2000
    connect_timeout: float = 30.0
    retry_after: int = 2


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "server": {"host": str, "port": int, "data_dir": str, "log_level": str,
               "cors_origins": list},
    "limits": {"max_sessions": int, "connect_timeout": (int, float), "retry_after": int},
    "ice": {"servers": list},
}


def _check_type(key: str, value: Any, expected: type | tuple[type, ...], problems: list[str]) -> bool:
    if isinstance(value, bool) or not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(
            t.__name__ for t in expected)
        problems.append(f"{key}: expected {names}, got {type(value).__name__}")
        return False
    return True


def parse_config(data: dict[str, Any]) -> ServerConfig:
    cfg = ServerConfig()
    problems: list[str] = []
    for section, values in data.items():
        if section not in _SCHEMA:
            problems.append(f"{section}: unknown section (known: {', '.join(_SCHEMA)})")
            continue
        if not isinstance(values, dict):
            problems.append(f"{section}: must be a table")
            continue
        for key, value in values.items():
            full = f"{section}.{key}"
            expected = _SCHEMA[section].get(key)
            if expected is None:
                problems.append(f"{full}: unknown key (known: {', '.join(_SCHEMA[section])})")
            elif _check_type(full, value, expected, problems):
                _apply(cfg, section, key, value, problems)
    _validate(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def _apply(cfg: ServerConfig, section: str, key: str, value: Any, problems: list[str]) -> None:
    if section == "ice":
        for i, item in enumerate(value):
            where = f"ice.servers[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("urls"), (str, list)):
                problems.append(f"{where}: needs urls = \"stun:host:port\" or a list of URLs")
                continue
            extra = set(item) - {"urls", "username", "credential"}
            if extra:
                problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
            urls = [item["urls"]] if isinstance(item["urls"], str) else list(item["urls"])
            if not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "turn", "turns")
                       for u in urls):
                problems.append(f"{where}.urls: each URL must start with stun:, turn: or turns:")
            cfg.ice_servers.append(IceServer(urls, item.get("username"), item.get("credential")))
    elif key == "data_dir":
        cfg.data_dir = Path(value)
    else:
        setattr(cfg, key, value)


def _validate(cfg: ServerConfig, problems: list[str]) -> None:
    if not 0 < cfg.port < 65536:
        problems.append(f"server.port: {cfg.port} is not a TCP port (1-65535)")
    if cfg.log_level not in LOG_LEVELS:
        problems.append(f"server.log_level: must be one of {', '.join(LOG_LEVELS)}")
    if cfg.max_sessions < 1:
        problems.append("limits.max_sessions: must be at least 1")
    if cfg.connect_timeout <= 0:
        problems.append("limits.connect_timeout: must be positive (seconds)")
    if not all(isinstance(o, str) for o in cfg.cors_origins):
        problems.append("server.cors_origins: must be a list of origins like \"https://hall.example\"")


def load_config(path: Path | None) -> ServerConfig:
    if path is None:
        return ServerConfig()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_config(data)
