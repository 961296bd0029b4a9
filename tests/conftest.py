"""A real ORcast server on a real TCP port, per test, with its own data dir and links."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from broadcast.broadcaster import Broadcaster
from broadcast.participant import ALL_EVENTS, Role
from signaling.app import create_app
from signaling.auth.access import Access
from signaling.auth.links import mint_link
from signaling.config.settings import ServerConfig
from signaling.keys import ACCESS, BROADCASTER
from signaling.store.eventstore import Event, Theatre
from tests.support.camera import Camera, free_port
from tests.support.logcheck import LogCapture

TEST_EVENT = Event("course", "Test course", (Theatre("or1", "OR 1"), Theatre("or2", "OR 2")),
                   adhoc_theatres=True, source="config")


@dataclass
class RunningServer:
    base: str
    app: web.Application
    http: aiohttp.ClientSession  # sends a server-wide organizer token (every capability)
    tokens: list[str] = field(default_factory=list)

    @property
    def broadcaster(self) -> Broadcaster:
        return self.app[BROADCASTER]

    @property
    def access(self) -> Access:
        return self.app[ACCESS]

    def token(self, role: Role | str = Role.ORGANIZER, event: str = "course", theatre: str | None = None,
              name: str | None = None, ttl_s: int = 3600, max_sessions: int | None = None) -> str:
        return mint(self.app, role, event, theatre, name, ttl_s, max_sessions, self.tokens)

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def mint(app: web.Application, role: Role | str, event: str, theatre: str | None = None,
         name: str | None = None, ttl_s: int = 3600, max_sessions: int | None = None,
         minted: list[str] | None = None) -> str:
    access = app[ACCESS]
    role = Role(role)
    token, _, _ = mint_link(access.store, access.issuer, "", event, role, name or f"test {role}", ttl_s,
                            theatre, max_sessions, minted_by="tests")
    if minted is not None:
        minted.append(token)
    LogCapture.secrets.add(token)
    return token


def make_config(**overrides: object) -> ServerConfig:
    data_dir = Path(tempfile.mkdtemp(prefix="orcast-test-"))
    # one process unless a test asks for workers (tests/integration/test_workers.py does)
    config = ServerConfig(data_dir=data_dir, events=[TEST_EVENT], workers=1)
    return replace(config, **overrides)  # type: ignore[arg-type]


async def start_server(config: ServerConfig | None = None) -> tuple[web.AppRunner, str, web.Application]:
    config = config or make_config()
    if config.data_dir == ServerConfig().data_dir:  # never write into the working tree
        config = replace(config, data_dir=Path(tempfile.mkdtemp(prefix="orcast-test-")))
    if not config.events:
        config = replace(config, events=[TEST_EVENT])
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", app


def organizer_session(app: web.Application) -> aiohttp.ClientSession:
    token = mint(app, Role.ORGANIZER, ALL_EVENTS, name="test organizer")
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    logging.getLogger("aioice").setLevel(logging.WARNING)
    runner, base, app = await start_server()
    async with organizer_session(app) as http:
        yield RunningServer(base, app, http)
    await runner.cleanup()
    shutil.rmtree(app[ACCESS].config.data_dir, ignore_errors=True)


@pytest.fixture
def camera() -> Iterator[Camera]:
    """An IP camera (GStreamer's RTSP server: live H.264 + AAC behind a password), killed after."""
    cam = Camera(free_port())
    cam.start()
    yield cam
    cam.kill()


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[None]:
    """Every test: nothing logged (at INFO and above) contains a token or an SDP password."""
    with LogCapture(logging.INFO) as capture:
        yield
    capture.assert_clean()
