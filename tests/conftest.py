"""A real ORcast server on a real TCP port, per test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from broadcast.broadcaster import Broadcaster
from signaling.app import create_app
from signaling.appstate import BROADCASTER
from signaling.config import ServerConfig


@dataclass
class RunningServer:
    base: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def broadcaster(self) -> Broadcaster:
        return self.app[BROADCASTER]


async def start_server(config: ServerConfig | None = None) -> tuple[web.AppRunner, str, web.Application]:
    app = create_app(config or ServerConfig())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", app


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    logging.getLogger("aioice").setLevel(logging.WARNING)
    runner, base, app = await start_server()
    async with aiohttp.ClientSession() as http:
        yield RunningServer(base, app, http)
    await runner.cleanup()
