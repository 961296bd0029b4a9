"""An IP camera for tests: tests/support/rtspcamera.py (GStreamer's RTSP server) in its own
process, under Debian's python3 with GStreamer's bindings."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "cam-" + secrets.token_hex(6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Camera:
    """The RTSP camera in its own process (Debian's python3 with GStreamer's bindings)."""

    def __init__(self, port: int, video: str = "h264") -> None:
        self.port = port
        self.video = video
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests/support/rtspcamera.py"),
                                      str(self.port), "cam", PASSWORD, "640x360", self.video],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", "the RTSP camera did not start"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def url(self, password: str = PASSWORD) -> str:
        return f"rtsp://cam:{password}@127.0.0.1:{self.port}/stream1"


