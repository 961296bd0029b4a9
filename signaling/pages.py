"""Static browser pages under web/: plain ES modules, no build step."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from .appstate import WEB_ROOT

PAGES = {"/": "index.html", "/publish": "publish.html", "/watch": "watch.html"}


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(request.app[WEB_ROOT] / name,
                                headers={"Cache-Control": "no-cache"})
    return handler


def routes() -> list[web.AbstractRouteDef]:
    out: list[web.AbstractRouteDef] = [web.get(url, _page(name)) for url, name in PAGES.items()]
    return out
