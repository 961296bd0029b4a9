"""Static browser pages under web/: plain ES modules, no build step.

A page is an empty shell: it shows nothing about an event until its script has the token
from the link (`#token=…`) and the API has accepted it. Role pages that later issues
make their own (hall, moderator desk) open the viewer page until then.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from signaling.keys import WEB_ROOT

PAGES: dict[str, str] = {
    "/": "index.html",
    "/watch/{event}": "watch.html",
    "/hall/{event}": "hall.html",
    "/moderate/{event}": "moderate.html",
    "/console/{event}": "console.html",
    "/console/{event}/{theatre}": "console.html",
    "/admin": "admin.html",
    "/recordings": "recordings.html",
    "/recordings/{event}": "recordings.html",
}


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(request.app[WEB_ROOT] / name, headers={"Cache-Control": "no-cache"})
    return handler


def routes() -> list[web.AbstractRouteDef]:
    out: list[web.AbstractRouteDef] = [web.get(url, _page(name)) for url, name in PAGES.items()]
    return out
