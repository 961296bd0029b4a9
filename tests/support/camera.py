"""An IP camera for tests: tests/support/rtspcamera.py (GStreamer's RTSP server) in its own
process, under Debian's python3 with GStreamer's bindings."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "cam-" + secrets.token_hex(6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Camera:
    """The RTSP camera in its own process (Debian's python3 with GStreamer's bindings)."""

    def __init__(self, port: int, video: str = "h264", tls_pem: Path | None = None) -> None:
        self.port = port
        self.video = video
        self.tls_pem = tls_pem  # serve rtsps:// with this certificate and key
        self.proc: subprocess.Popen[str] | None = None
        self.clients = 0         # RTSP connections open now
        self.connections = 0     # RTSP connections ever made
        self.transports: list[str] = []  # each track's SETUP: RTP/AVP/TCP (interleaved) or RTP/AVP/UDP

    def start(self) -> None:
        options = [f"tls={self.tls_pem}"] if self.tls_pem is not None else []
        self.proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests/support/rtspcamera.py"),
                                      str(self.port), "cam", PASSWORD, "640x360", self.video, *options],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", "the RTSP camera did not start"
        self.clients = 0
        threading.Thread(target=self._follow, args=(self.proc,), daemon=True).start()

    def _follow(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "client connected":
                self.clients += 1
                self.connections += 1
            elif line.strip() == "client closed":
                self.clients -= 1
            elif line.startswith("transport "):
                self.transports.append(line.split(" ", 1)[1].strip())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def url(self, password: str = PASSWORD) -> str:
        scheme = "rtsps" if self.tls_pem is not None else "rtsp"
        return f"{scheme}://cam:{password}@127.0.0.1:{self.port}/stream1"

