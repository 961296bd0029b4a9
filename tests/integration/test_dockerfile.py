"""The Dockerfile's contract, checked without a Docker engine (none runs here): the server starts
with exactly the image's environment, its HEALTHCHECK command passes against it, it logs JSON,
its UDP range is the one the image exposes, it runs as a non-root user with /data as a volume."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tests.support.demoproc import ROOT, free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in instructions("ENV"):
        for item in shlex.split(line):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_the_image_runs_unprivileged_with_data_as_a_volume_and_the_udp_range_exposed() -> None:
    assert instructions("FROM")[-1].startswith("python:3.11-slim")  # the image (hls.js comes from a node stage)
    user = instructions("USER")
    assert user and user[-1] not in ("root", "0")
    assert '"/data"' in instructions("VOLUME")[0]
    env = image_environment()
    low, high = env["ORCAST_ICE_UDP_PORTS"].split("-")
    assert f"{low}-{high}/udp" in instructions("EXPOSE")[0] and "8080/tcp" in instructions("EXPOSE")[0]
    copied = " ".join(instructions("COPY"))
    for part in ("broadcast", "signaling", "web", "pyproject.toml"):
        assert part in copied, f"the image lacks {part}"
    assert instructions("STOPSIGNAL") == ["SIGTERM"]


def test_the_server_starts_with_the_image_environment_and_passes_its_healthcheck(tmp_path: Path) -> None:
    env = {**os.environ, **image_environment(), "ORCAST_SERVER_DATA_DIR": str(tmp_path / "data"),
           "ORCAST_SECRET": "x" * 64}
    port = free_port()
    env["ORCAST_SERVER_PORT"] = str(port)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "signaling.cli", *json.loads(instructions("CMD")[0])],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        check = json.loads(instructions("HEALTHCHECK")[0].split("CMD", 1)[1])
        check = [sys.executable if part == "python" else part.replace("8080", str(port)) for part in check]
        deadline = time.monotonic() + 60
        while True:
            if subprocess.run(check, capture_output=True).returncode == 0:
                break
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed:\n" + log.read_text()
            time.sleep(0.3)
    finally:
        server.terminate()
        assert server.wait(15) == 0
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, "the image asks for JSON logs"
    assert all(json.loads(line)["level"] for line in lines)
    assert re.search(r"listening on http://\S+:" + str(port), log.read_text())
