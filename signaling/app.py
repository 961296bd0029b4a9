"""The aiohttp application: explicit route lists, typed state, lifecycles in cleanup_ctx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from broadcast.broadcaster import Broadcaster, BroadcastSettings

from . import api, pages, whep, whip
from .appstate import BROADCASTER, CONFIG, WEB_ROOT
from .config import ServerConfig

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
    ),
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


async def _broadcaster_ctx(app: web.Application) -> AsyncIterator[None]:
    broadcaster = app[BROADCASTER]
    broadcaster.start()
    yield
    await broadcaster.close()


def create_app(config: ServerConfig, broadcaster: Broadcaster | None = None) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[WEB_ROOT] = WEB_DIR
    app[BROADCASTER] = broadcaster or Broadcaster(BroadcastSettings(
        ice_servers=config.ice_servers,
        max_sessions=config.max_sessions,
        connect_timeout=config.connect_timeout,
        retry_after=config.retry_after,
    ))
    app.cleanup_ctx.append(_broadcaster_ctx)
    app.add_routes(whip.routes())
    app.add_routes(whep.routes())
    app.add_routes(api.routes())
    app.add_routes(pages.routes())
    app.router.add_static("/static/", WEB_DIR, show_index=False, follow_symlinks=False)
    return app
