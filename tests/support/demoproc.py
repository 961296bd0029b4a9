"""`orcast demo` in a subprocess (a real server process to fuzz, kill -9 or starve of disk).

Its output goes to a file: a pipe nobody reads would fill up and stall the server.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broadcast.participant import Role
from tests.support.logcheck import LogCapture

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DemoProcess:
    process: subprocess.Popen[str]
    port: int
    log_path: Path
    links: dict[str, str]      # role (and "recordings") → link
    secret: str
    startup_text: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, role: str) -> str:
        return self.links[role].split("#token=")[1]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> str:
        """SIGTERM and wait; returns what it logged."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        return self.log_path.read_text()


def server_environment() -> dict[str, str]:
    """This environment without ORCAST_ settings (the server refuses ones it does not know,
    such as the tests' own ORCAST_FUZZ_EXAMPLES)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCAST_")}


def start_demo(tmp: Path, config: str = "", data_dir: Path | None = None, secret: str | None = None,
               preexec: Callable[[], None] | None = None, name: str = "server",
               port: int | None = None) -> DemoProcess:
    (tmp / f"{name}.toml").write_text(config)
    secret = secret or secrets.token_hex(32)
    port = port or free_port()
    log_path = tmp / f"{name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "signaling.cli", "demo", "--port", str(port),
             "--config", str(tmp / f"{name}.toml"), "--data-dir", str(data_dir or tmp / "data")],
            cwd=ROOT, env={**server_environment(), "ORCAST_SECRET": secret}, stdout=log,
            stderr=subprocess.STDOUT, text=True, preexec_fn=preexec)
    deadline = time.monotonic() + 120
    text = ""
    while time.monotonic() < deadline and process.poll() is None and "Press Ctrl+C" not in text:
        time.sleep(0.2)
        text = log_path.read_text()
    if "Press Ctrl+C" not in text:
        process.kill()
        raise AssertionError(f"the demo did not start:\n{text}")
    links = {ln.split()[0]: ln.split()[1] for ln in text.splitlines() if "#token=" in ln}
    assert {r.value for r in Role} <= set(links), text
    LogCapture.secrets.update(link.split("#token=")[1] for link in links.values())
    return DemoProcess(process, port, log_path, links, secret, text)
