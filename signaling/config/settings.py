"""Server configuration: a TOML file, overridden by `ORCAST_…` environment variables, overridden
by command-line flags.

Unknown keys are errors (a typo must not silently fall back to a default in a hospital).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcast.errors import InvalidSource
from broadcast.plaintext import single_line
from broadcast.relay.streampath import StreamPath, is_slug
from broadcast.sources.pulled import TRANSPORTS, PullSettings, check_url
from broadcast.telestration.board import DEFAULT_FADE_S
from broadcast.webrtc.session import IceServer
from broadcast.webrtc.udpports import UdpPortRange
from signaling.auth.tokens import parse_ttl
from signaling.config.environment import environment_overrides, merge
from signaling.store.eventstore import Event, Theatre

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


SEND_PATHS = ("fast", "aiortc")
MAX_WORKERS = 64


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. `taskset` or a cpuset), capped
    at MAX_WORKERS. A container's CPU quota is not visible here: set server.workers to it."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(count, MAX_WORKERS))


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
    public_url: str | None = None          # the base of printed links, when behind a proxy
    trusted_proxies: list[str] = field(default_factory=list)  # honour X-Forwarded-For from these
    tls_cert: Path | None = None
    tls_key: Path | None = None
    default_ttl_s: int = 12 * 3600         # lifetime of a minted link when none is given
    max_sessions: int = 2000               # the audience: WHEP viewers and Q&A connections
    max_publishers: int = 200              # WHIP/console publishers and talk-back, counted apart
    connect_timeout: float = 30.0
    retry_after: int = 2
    on_demand_grace: float = 15.0          # s an on-demand source pulls on after its last viewer left
    sessions_per_token: int = 10           # live sessions one link may hold at once
    session_rate: float = 5.0              # new sessions per second per client address …
    session_burst: int = 100               # … with this burst (a hospital NAT holds many viewers)
    events: list[Event] = field(default_factory=list)
    sources: list[PullSettings] = field(default_factory=list)  # feeds pulled from IP cameras
    recording_dir: Path | None = None      # default: {data_dir}/recordings
    segment_minutes: float = 10.0
    min_free_gb: float = 1.0               # refuse to start a recording below this
    delete_after_days: float = 0.0         # retention; 0 keeps recordings until deleted
    log_format: str = "text"               # text (for people) or json (one object per line)
    metrics_token: str | None = None       # Bearer token for /metrics (else a `*` organizer link)
    metrics_port: int | None = None        # serve /metrics on its own listener instead
    metrics_host: str = "127.0.0.1"
    udp_ports: UdpPortRange | None = None  # WebRTC's UDP ports (default: any the system gives)
    questions_per_minute: int = 5          # Q&A: questions one author may ask per minute
    max_questions: int = 10_000            # Q&A: questions one event's board holds at most
    relay_send_path: str = "fast"          # "fast" (ORcast's send path) or "aiortc" (its RTCRtpSender)
    relay_udp_gso: bool = True             # the fast path sends a frame's packets with UDP GSO (Linux)
    workers: int = field(default_factory=lambda: usable_cores())  # processes holding viewers
    cluster_redis: str | None = None       # [cluster] redis: "redis://host:6379/0" (none: one node alone)
    cluster_node_url: str | None = None    # how clients and the other nodes reach this node
    cluster_node_id: str | None = None     # a name for this node (default: from node_url)

    @property
    def recordings_root(self) -> Path:
        return self.recording_dir or self.data_dir / "recordings"


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "server": {"host": str, "port": int, "data_dir": str, "log_level": str,
               "cors_origins": list, "public_url": str, "trusted_proxies": list, "workers": int},
    "tls": {"cert": str, "key": str},
    "auth": {"default_ttl": str},
    "limits": {"max_sessions": int, "max_publishers": int, "connect_timeout": (int, float), "retry_after": int,
               "on_demand_grace": (int, float),
               "sessions_per_token": int, "session_rate": (int, float), "session_burst": int},
    "ice": {"servers": list, "udp_ports": str},
    "recording": {"dir": str, "segment_minutes": (int, float), "min_free_gb": (int, float),
                  "delete_after_days": (int, float)},
    "qa": {"questions_per_minute": int, "max_questions": int},
    "relay": {"send_path": str, "udp_gso": bool},
    "metrics": {"token": str, "port": int, "host": str},
    "cluster": {"redis": str, "node_url": str, "node_id": str},
    "logging": {"format": str, "level": str},
    "events": {},  # an array of tables, checked by _apply_events
    "sources": {},  # an array of tables, checked by _apply_sources
}
_SOURCE_KEYS: dict[str, type | tuple[type, ...]] = {"path": str, "url": str, "transport": str, "on_demand": bool,
                                                    "token": str}
_EVENT_KEYS: dict[str, type | tuple[type, ...]] = {
    "slug": str, "title": str, "theatres": list, "record": bool, "public": bool,
    "adhoc_theatres": bool, "starts_at": str, "ends_at": str, "viewers_draw": bool,
    "stroke_fade_s": (int, float)}


def _check_type(key: str, value: Any, expected: type | tuple[type, ...], problems: list[str]) -> bool:
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
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
        if section == "events":
            _apply_events(cfg, values, problems)
            continue
        if section == "sources":
            _apply_sources(cfg, values, problems)
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
    if section == "ice" and key == "udp_ports":
        low, _, high = value.partition("-")
        try:
            cfg.udp_ports = UdpPortRange(int(low), int(high))
        except ValueError as exc:
            problems.append(f"ice.udp_ports: {exc} (write it like \"40000-40199\")")
    elif section == "ice":
        for i, item in enumerate(value):
            where = f"ice.servers[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("urls"), (str, list)):
                problems.append(f"{where}: needs urls = \"stun:host:port\" or a list of URLs")
                continue
            extra = set(item) - {"urls", "username", "credential", "secret", "ttl"}
            if extra:
                problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
            urls = [item["urls"]] if isinstance(item["urls"], str) else list(item["urls"])
            if not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "turn", "turns")
                       for u in urls):
                problems.append(f"{where}.urls: each URL must start with stun:, turn: or turns:")
            if item.get("secret") is not None and (item.get("username") or item.get("credential")):
                problems.append(f"{where}: give either secret (time-limited credentials) or "
                                "username and credential, not both")
            ttl = item.get("ttl", 24 * 3600)
            if not isinstance(ttl, int) or isinstance(ttl, bool) or not 60 <= ttl <= 7 * 86400:
                problems.append(f"{where}.ttl: seconds the TURN credentials stay valid, 60-604800")
                ttl = 24 * 3600
            cfg.ice_servers.append(IceServer(urls, item.get("username"), item.get("credential"),
                                             item.get("secret"), ttl))
    elif section == "logging":
        setattr(cfg, f"log_{key}", value)
    elif section == "relay":
        setattr(cfg, f"relay_{key}", value)
    elif section == "metrics":
        setattr(cfg, f"metrics_{key}", value)
    elif section == "cluster":
        setattr(cfg, f"cluster_{key}", value)
    elif key == "data_dir":
        cfg.data_dir = Path(value)
    elif section == "recording":
        if key == "dir":
            cfg.recording_dir = Path(value)
        else:
            setattr(cfg, key, float(value))
    elif section == "tls":
        setattr(cfg, f"tls_{key}", Path(value))
    elif key == "default_ttl":
        try:
            cfg.default_ttl_s = parse_ttl(value)
        except ValueError as exc:
            problems.append(f"auth.default_ttl: {exc}")
    elif key == "session_rate":
        cfg.session_rate = float(value)
    else:
        setattr(cfg, key, value)


def _tables(section: str, value: Any, keys: dict[str, type | tuple[type, ...]],
            problems: list[str]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """An array of tables ([[events]], [[sources]]): each table with its place ("events[0]")
    and whether its values have the types `keys` says; unknown keys are problems."""
    if not isinstance(value, list):
        problems.append(f"{section}: write each one as a [[{section}]] table")
        return
    for i, item in enumerate(value):
        where = f"{section}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        for key in sorted(set(item) - set(keys)):
            problems.append(f"{where}.{key}: unknown key (known: {', '.join(keys)})")
        ok = all(_check_type(f"{where}.{k}", v, keys[k], problems) for k, v in item.items() if k in keys)
        yield where, item, ok


def _apply_events(cfg: ServerConfig, value: Any, problems: list[str]) -> None:
    for where, item, ok in _tables("events", value, _EVENT_KEYS, problems):
        slug = item.get("slug")
        if not isinstance(slug, str) or not is_slug(slug):
            problems.append(f"{where}.slug: needs a slug like \"hpb-2026\" (a-z, 0-9, '-')")
            continue
        where = f"events[{slug}]"
        theatres = []
        for j, th in enumerate(item.get("theatres", []) if ok else []):
            t_slug, t_title = (th, th) if isinstance(th, str) else (
                (th.get("slug"), th.get("title", th.get("slug"))) if isinstance(th, dict) else (None, None))
            if not isinstance(t_slug, str) or not is_slug(t_slug) or not isinstance(t_title, str) or (
                    isinstance(th, dict) and set(th) - {"slug", "title"}):
                problems.append(f"{where}.theatres[{j}]: a slug like \"or1\" or {{slug = \"or1\", title = \"OR 1\"}}")
                continue
            try:
                theatres.append(Theatre(t_slug, single_line(t_title, "the title", 200)))
            except ValueError as exc:
                problems.append(f"{where}.theatres[{j}]: {exc}")
        if len({t.slug for t in theatres}) != len(theatres):
            problems.append(f"{where}.theatres: a theatre is listed twice")
        if any(e.slug == slug for e in cfg.events):
            problems.append(f"{where}: defined twice")
        title = item.get("title", slug)
        if isinstance(title, str):
            try:
                single_line(title, "the title", 200)
            except ValueError as exc:
                problems.append(f"{where}.title: {exc}")
        fade = item.get("stroke_fade_s", DEFAULT_FADE_S)
        if isinstance(fade, (int, float)) and not 1 <= fade <= 600:
            problems.append(f"{where}.stroke_fade_s: 1 to 600 seconds (pin a stroke to keep it)")
            ok = False
        if ok:
            cfg.events.append(Event(
                slug=slug, title=item.get("title", slug), theatres=tuple(theatres),
                record=item.get("record", False), public=item.get("public", False),
                adhoc_theatres=item.get("adhoc_theatres", False), starts_at=item.get("starts_at"),
                ends_at=item.get("ends_at"), source="config", viewers_draw=item.get("viewers_draw", False),
                stroke_fade_s=float(item.get("stroke_fade_s", DEFAULT_FADE_S))))


def _apply_sources(cfg: ServerConfig, value: Any, problems: list[str]) -> None:
    """[[sources]]: feeds pulled from a URL (IP cameras). A problem names the source by its
    index and path, never by its URL, which may hold a password."""
    for where, item, ok in _tables("sources", value, _SOURCE_KEYS, problems):
        if not ok:
            continue
        try:
            path = str(StreamPath.parse(item.get("path", "")))
        except ValueError:
            problems.append(f"{where}.path: needs the feed it fills, like \"hpb-2026/or3/room\" (event/theatre/feed)")
            continue
        where = f"sources[{path}]"
        try:
            check_url(item.get("url", ""))
        except InvalidSource as exc:
            problems.append(f"{where}.url: {exc}")
            continue
        transport = item.get("transport", "tcp")
        if transport not in TRANSPORTS:
            problems.append(f"{where}.transport: must be one of {', '.join(TRANSPORTS)} (tcp: RTSP interleaved, "
                            "the default, passes firewalls; udp: lower latency on a clean network)")
            continue
        if any(s.path == path for s in cfg.sources):
            problems.append(f"{where}: defined twice (one source per feed)")
            continue
        cfg.sources.append(PullSettings(path=path, url=item["url"], transport=transport,
                                        on_demand=item.get("on_demand", False), token=item.get("token")))


def _validate(cfg: ServerConfig, problems: list[str]) -> None:
    if not 0 < cfg.port < 65536:
        problems.append(f"server.port: {cfg.port} is not a TCP port (1-65535)")
    if cfg.log_level not in LOG_LEVELS:
        problems.append(f"server.log_level / logging.level: must be one of {', '.join(LOG_LEVELS)}")
    if cfg.relay_send_path not in SEND_PATHS:
        problems.append(f"relay.send_path: must be one of {', '.join(SEND_PATHS)} "
                        "(\"aiortc\" is the slower path, for comparison)")
    if not 1 <= cfg.workers <= MAX_WORKERS:
        problems.append(f"server.workers: must be 1-{MAX_WORKERS} (default: the number of CPU cores; "
                        "1 keeps every viewer in the one server process)")
    if cfg.udp_ports is not None and cfg.udp_ports.size < cfg.workers:
        problems.append(f"ice.udp_ports: {cfg.udp_ports.size} port(s) cannot be split between "
                        f"{cfg.workers} server.workers; widen the range or lower workers")
    if cfg.max_sessions < 1:
        problems.append("limits.max_sessions: must be at least 1")
    if cfg.max_publishers < 1:
        problems.append("limits.max_publishers: must be at least 1")
    if cfg.connect_timeout <= 0:
        problems.append("limits.connect_timeout: must be positive (seconds)")
    if not 0 <= cfg.on_demand_grace <= 3600:
        problems.append("limits.on_demand_grace: seconds an on-demand source pulls on after its last viewer, "
                        "0-3600")
    if cfg.sessions_per_token < 1:
        problems.append("limits.sessions_per_token: must be at least 1")
    if cfg.session_rate <= 0 or cfg.session_burst < 1:
        problems.append("limits.session_rate and limits.session_burst: must be positive")
    if not 0.05 <= cfg.segment_minutes <= 24 * 60:
        problems.append("recording.segment_minutes: must be 0.05-1440 (default 10)")
    if cfg.min_free_gb < 0:
        problems.append("recording.min_free_gb: must be 0 or more (GB)")
    if cfg.delete_after_days < 0:
        problems.append("recording.delete_after_days: must be 0 (keep) or a number of days")
    if cfg.metrics_token is not None and len(cfg.metrics_token) < 16:
        problems.append("metrics.token: use at least 16 random characters (e.g. `openssl rand -hex 16`)")
    if cfg.metrics_port is not None and not 1 <= cfg.metrics_port <= 65535:
        problems.append("metrics.port: must be 1-65535")
    if cfg.log_format not in LOG_FORMATS:
        problems.append(f"logging.format: must be one of {', '.join(LOG_FORMATS)}")
    if not 1 <= cfg.questions_per_minute <= 600:
        problems.append("qa.questions_per_minute: must be 1-600 (default 5)")
    if not 1 <= cfg.max_questions <= 1_000_000:
        problems.append("qa.max_questions: must be 1-1000000 (default 10000)")
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        problems.append("tls: give both cert and key (PEM files), or neither")
    if cfg.public_url is not None and not cfg.public_url.startswith(("http://", "https://")):
        problems.append("server.public_url: must start with http:// or https://")
    if not all(isinstance(p, str) for p in cfg.trusted_proxies):
        problems.append("server.trusted_proxies: must be a list of addresses like \"10.0.0.5\"")
    if (cfg.cluster_redis is None) != (cfg.cluster_node_url is None):
        problems.append("cluster: give both redis (\"redis://host:6379/0\") and node_url (how the other nodes "
                        "reach this one, \"https://node-b.hospital.example\"), or neither for one node alone")
    if cfg.cluster_redis is not None and not cfg.cluster_redis.startswith(("redis://", "rediss://", "unix://")):
        problems.append("cluster.redis: must start with redis://, rediss:// or unix://")
    if cfg.cluster_node_url is not None and not cfg.cluster_node_url.startswith(("http://", "https://")):
        problems.append("cluster.node_url: must start with http:// or https:// (this node's address)")
    if cfg.cluster_node_id is not None and not is_slug(cfg.cluster_node_id):
        problems.append("cluster.node_id: a name like \"node-b\" (a-z, 0-9, '-')")
    if not all(isinstance(o, str) for o in cfg.cors_origins):
        problems.append("server.cors_origins: must be a list of origins like \"https://hall.example\"")


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The file (if any) with the `ORCAST_…` environment over it (see environment.py)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"{path}: file not found"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    problems: list[str] = []
    schema = {section: keys for section, keys in _SCHEMA.items() if section not in ("events", "sources")}
    overrides = environment_overrides(os.environ if environ is None else environ, schema, problems)
    try:
        config = parse_config(merge(data, overrides))
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return config
