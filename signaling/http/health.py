"""Health for load balancers and orchestrators (no token: they reveal nothing about events).

- `GET /healthz`: the process answers (liveness).
- `GET /readyz`: it can take sessions now (readiness): the data dir is writable, the event loop
  is not lagging, the server is not at its session limit and not shutting down. 503 with the
  failing checks otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from aiohttp import web

from signaling.health import MAX_LAG_S
from signaling.keys import BROADCASTER, CONFIG, HEALTH


def _writable(path: os.PathLike[str]) -> bool:
    probe = os.path.join(path, ".readyz")
    try:
        with open(probe, "w") as fh:
            fh.write("ok")
        os.unlink(probe)
        return True
    except OSError:
        return False


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    health, config = request.app[HEALTH], request.app[CONFIG]
    broadcaster = request.app[BROADCASTER]
    checks = {
        "accepting": not health.stopping,
        "data_dir_writable": _writable(config.data_dir),
        "event_loop_lag_ok": health.loop_lag_s < MAX_LAG_S,
        "below_session_limit": (len(broadcaster.sessions) - len(broadcaster.publishers)
                                < broadcaster.settings.max_sessions),
    }
    ready = all(checks.values())
    return web.json_response(
        {"ready": ready, "checks": checks, "event_loop_lag_ms": round(health.loop_lag_s * 1000, 1),
         "sessions": len(broadcaster.sessions), "workers": broadcaster.worker_rows()},
        status=200 if ready else 503, headers={"Cache-Control": "no-store"})


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(app[HEALTH].probe_forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
