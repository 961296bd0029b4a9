"""A cluster on loopback: Debian's redis-server and `orcast serve` processes that share it (and
one signing secret), each with its own data directory, port and log file."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from broadcast.participant import ALL_EVENTS, Role
from signaling.auth.tokens import TokenIssuer
from tests.support.demoproc import ROOT, free_port, server_environment
from tests.support.logcheck import LogCapture


@dataclass
class RedisProcess:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_redis(port: int | None = None) -> RedisProcess:
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: ./scripts/test.sh installs it (apt install redis-server)"
    port = port or free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--loglevel", "warning"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
            time.sleep(0.1)
    client.close()
    return RedisProcess(process, port)


@dataclass
class Node:
    name: str
    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.log_path.read_text()

    def log(self) -> str:
        return self.log_path.read_text()


class Cluster:
    """Nodes named node-a, node-b … with the `course` event (theatres or1, or2)."""

    def __init__(self, tmp: Path, redis: RedisProcess) -> None:
        self.tmp = tmp
        self.redis = redis
        self.secret = secrets.token_hex(32)
        self.issuer = TokenIssuer(self.secret.encode())
        self.nodes: dict[str, Node] = {}

    def organizer(self) -> str:
        """A server-wide organizer link (valid on every node: the shared secret)."""
        token, _ = self.issuer.mint(ALL_EVENTS, Role.ORGANIZER, "organizer", 3600)
        LogCapture.secrets.add(token)
        return token

    async def mint(self, http: aiohttp.ClientSession, node: Node, role: Role, theatre: str | None = None,
                   name: str = "test", event: str = "course", max_sessions: int | None = None) -> tuple[str, str]:
        """A link of an event (`course`) minted on `node` (as the organizer page does): (token, jti)."""
        body: dict[str, object] = {"role": str(role), "name": name, **({"theatre": theatre} if theatre else {})}
        if max_sessions is not None:
            body["max_sessions"] = max_sessions
        async with http.post(f"{node.base}/api/events/{event}/tokens", json=body,
                             headers={"Authorization": f"Bearer {self.organizer()}"}) as resp:
            assert resp.status == 201, await resp.text()
            data = await resp.json()
        LogCapture.secrets.add(data["token"])
        return data["token"], data["jti"]

    def start(self, *names: str) -> list[Node]:
        started = [self._spawn(name) for name in names]
        for node in started:
            self._wait_ready(node)
        return started

    def _spawn(self, name: str) -> Node:
        port = free_port()
        config = self.tmp / f"{name}.toml"
        config.write_text(f"""
[server]
workers = 1
[cluster]
redis = "{self.redis.url}"
node_url = "http://127.0.0.1:{port}"
node_id = "{name}"
[[events]]
slug = "course"
theatres = ["or1", "or2"]
""")
        log_path = self.tmp / f"{name}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "signaling.cli", "serve", "--port", str(port), "--config", str(config),
                 "--data-dir", str(self.tmp / f"{name}-data")],
                cwd=ROOT, env={**server_environment(), "ORCAST_SECRET": self.secret}, stdout=log,
                stderr=subprocess.STDOUT, text=True)
        node = Node(name, process, port, log_path)
        self.nodes[name] = node
        return node

    def _wait_ready(self, node: Node) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert node.process.poll() is None, f"{node.name} exited:\n{node.log()}"
            try:
                with urllib.request.urlopen(f"{node.base}/readyz", timeout=2) as resp:
                    if resp.status == 200 and "joined through Redis" in node.log():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{node.name} did not start:\n{node.log()}")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
