"""One config file, the ORcast_… environment over it, flags over both; every validation error
names its key; `orcast config example` passes `orcast config check`; JSON logs; TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broadcast.webrtc.session import IceServer
from signaling.cli import build_parser, resolve_config
from signaling.config.example import EXAMPLE
from signaling.config.settings import ConfigError, load_config, parse_config
from signaling.logs.format import REQUEST_ID, JsonFormatter, RequestIdFilter
from tests.conftest import RunningServer
from tests.support.demoproc import ROOT

BAD = [  # (config data, the key its error must name)
    ({"server": {"port": "80"}}, "server.port"),
    ({"server": {"colour": 1}}, "server.colour"),
    ({"servr": {}}, "servr"),
    ({"server": {"log_level": "loud"}}, "server.log_level"),
    ({"server": {"public_url": "orcast.example"}}, "server.public_url"),
    ({"server": {"cors_origins": [1]}}, "server.cors_origins"),
    ({"tls": {"cert": "/x.pem"}}, "tls"),
    ({"auth": {"default_ttl": "forever"}}, "auth.default_ttl"),
    ({"limits": {"sessions_per_token": 0}}, "limits.sessions_per_token"),
    ({"limits": {"session_rate": 0}}, "limits.session_rate"),
    ({"ice": {"servers": [{"urls": "http://x"}]}}, "ice.servers[0].urls"),
    ({"ice": {"servers": [{"urls": "turn:x", "secret": "s", "username": "u"}]}}, "ice.servers[0]"),
    ({"ice": {"servers": [{"urls": "turn:x", "secret": "s", "ttl": 5}]}}, "ice.servers[0].ttl"),
    ({"ice": {"udp_ports": "50000-40000"}}, "ice.udp_ports"),
    ({"recording": {"segment_minutes": 0}}, "recording.segment_minutes"),
    ({"recording": {"min_free_gb": -1}}, "recording.min_free_gb"),
    ({"recording": {"delete_after_days": -1}}, "recording.delete_after_days"),
    ({"qa": {"questions_per_minute": 0}}, "qa.questions_per_minute"),
    ({"qa": {"max_questions": 0}}, "qa.max_questions"),
    ({"metrics": {"token": "short"}}, "metrics.token"),
    ({"metrics": {"port": 70000}}, "metrics.port"),
    ({"logging": {"format": "xml"}}, "logging.format"),
    ({"events": [{"slug": "Bad Slug"}]}, "events[0].slug"),
    ({"sources": {"path": "a/b/c"}}, "sources"),
    ({"sources": [{"path": "a/b", "url": "rtsp://cam/s"}]}, "sources[0].path"),
    ({"sources": [{"path": "a/b/c", "url": "ftp://cam/s"}]}, "sources[a/b/c].url"),
    ({"sources": [{"path": "a/b/c", "url": "rtsp://u:secret@cam/s", "transport": "sctp"}]}, "sources[a/b/c].transport"),
    ({"sources": [{"path": "a/b/c", "url": "rtsp://cam/s", "colour": 1}]}, "sources[0].colour"),
    ({"sources": [{"path": "a/b/c", "url": "rtsp://cam/s", "on_demand": "yes"}]}, "sources[0].on_demand"),
    ({"limits": {"on_demand_grace": -1}}, "limits.on_demand_grace"),
]


@pytest.mark.parametrize(("data", "key"), BAD, ids=[key for _, key in BAD])
def test_every_validation_error_names_its_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data)  # type: ignore[arg-type]
    assert any(problem.startswith(key) for problem in error.value.problems), error.value.problems


def test_sources_are_read_and_their_passwords_never_shown() -> None:
    config = parse_config({"sources": [{"path": "hpb/or3/room", "url": "rtsp://u:pw-9f3@10.1.3.20:554/stream1"},
                                       {"path": "hpb/or3/light", "url": "rtsps://10.1.3.21/s", "transport": "udp"}]})
    assert [(s.path, s.transport) for s in config.sources] == [("hpb/or3/room", "tcp"), ("hpb/or3/light", "udp")]
    assert config.sources[0].shown_url == "rtsp://u:***@10.1.3.20:554/stream1"
    with pytest.raises(ConfigError) as error:
        parse_config({"sources": [{"path": "a/b/c", "url": "ftp://u:pw-9f3@cam/s"}]})
    assert "pw-9f3" not in str(error.value.problems)


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "orcast.toml"
    file.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[limits]\nmax_sessions = 50\n')
    for name in [n for n in __import__("os").environ if n.startswith("ORCAST_") and n != "ORCAST_SECRET"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ORCAST_SERVER_PORT", "9100")
    monkeypatch.setenv("ORCAST_QA_QUESTIONS_PER_MINUTE", "7")
    args = build_parser().parse_args(["serve", "--config", str(file), "--port", "9200"])
    config = resolve_config(args)
    assert config.port == 9200                 # flag
    assert config.questions_per_minute == 7    # environment (nothing in the file)
    assert config.host == "0.0.0.0"            # file
    assert config.max_sessions == 50           # file
    assert config.retry_after == 2             # default
    args = build_parser().parse_args(["serve", "--config", str(file)])
    assert resolve_config(args).port == 9100   # environment over file


def test_environment_values_are_checked_by_name() -> None:
    env = {"ORCAST_SERVER_PORT": "eighty", "ORCAST_LIMITS_SESSION_RATE": "fast", "ORCAST_SERVR_PORT": "1",
           "ORCAST_ICE_SERVERS": "[not json", "ORCAST_SECRET": "x" * 40}
    with pytest.raises(ConfigError) as error:
        load_config(None, env)
    problems = " | ".join(error.value.problems)
    for name in ("ORCAST_SERVER_PORT", "ORCAST_LIMITS_SESSION_RATE", "ORCAST_SERVR_PORT", "ORCAST_ICE_SERVERS"):
        assert name in problems
    assert "ORCAST_SECRET" not in problems
    config = load_config(None, {"ORCAST_SERVER_CORS_ORIGINS": "https://a.example, https://b.example",
                                "ORCAST_ICE_SERVERS": '[{"urls": "stun:stun.example:3478"}]',
                                "ORCAST_LOGGING_FORMAT": "json", "ORCAST_RECORDING_MIN_FREE_GB": "0.5"})
    assert config.cors_origins == ["https://a.example", "https://b.example"]
    assert config.ice_servers[0].urls == ["stun:stun.example:3478"]
    assert config.log_format == "json" and config.min_free_gb == 0.5


def test_the_example_passes_config_check(tmp_path: Path) -> None:
    example = subprocess.run([sys.executable, "-m", "signaling.cli", "config", "example"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert example == EXAMPLE
    sections = {line.split("]")[0].strip("[") for line in example.splitlines() if line.startswith("[")}
    assert {"server", "tls", "auth", "limits", "ice", "recording", "qa", "metrics", "logging", "events"} <= sections
    (tmp_path / "example.toml").write_text(example)
    check = subprocess.run([sys.executable, "-m", "signaling.cli", "config", "check", str(tmp_path / "example.toml")],
                           cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0 and "OK" in check.stdout, check.stderr
    (tmp_path / "bad.toml").write_text('[server]\nport = "x"\n[metrics]\ntoken = "short"\n')
    check = subprocess.run([sys.executable, "-m", "signaling.cli", "config", "check", str(tmp_path / "bad.toml")],
                           cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 2
    assert "server.port" in check.stderr and "metrics.token" in check.stderr and "2 problem(s)" in check.stderr


def test_turn_rest_credentials_follow_coturn_use_auth_secret() -> None:
    server = IceServer(["turn:turn.example:3478"], secret="shared-secret", ttl_s=3600)
    now = time.time()
    given = server.resolved(now)
    expires, _, name = (given.username or "").partition(":")
    assert name == "orcast" and int(expires) == int(now + 3600)
    expected = base64.b64encode(hmac.new(b"shared-secret", given.username.encode(), hashlib.sha1).digest()).decode()
    assert given.credential == expected and given.secret is None
    assert "shared-secret" not in repr(server)


def test_json_log_lines_carry_the_request_id(server: RunningServer) -> None:
    record = logging.LogRecord("orcast", logging.INFO, __file__, 1, "viewer %s joined", ("abc",), None)
    record.path, record.session = "course/or1/endoscope", "abc123"
    token = REQUEST_ID.set("req-12345678")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "viewer abc joined" and line["request_id"] == "req-12345678"
    assert line["path"] == "course/or1/endoscope" and line["session"] == "abc123" and line["level"] == "info"


async def test_every_response_has_a_request_id(server: RunningServer) -> None:
    async with server.http.get(f"{server.base}/api/me") as r:
        assert len(r.headers["X-Request-Id"]) == 16
    async with server.http.get(f"{server.base}/api/me", headers={"X-Request-Id": "proxy-id-42abc"}) as r:
        assert r.headers["X-Request-Id"] == "proxy-id-42abc"  # a proxy's id follows the request
    async with server.http.get(f"{server.base}/api/events/nosuch", headers={"X-Request-Id": "bad id!"}) as r:
        assert r.status == 404 and r.headers["X-Request-Id"] != "bad id!"


def test_the_readme_shows_the_example_file() -> None:
    assert EXAMPLE in (ROOT / "README.md").read_text(), "paste `orcast config example` into the README"
