"""REST API: what is live."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from .appstate import BROADCASTER


async def list_streams(request: web.Request) -> web.Response:
    live_only = request.query.get("all") not in ("1", "true")
    streams = [dataclasses.asdict(info) for info in request.app[BROADCASTER].stream_infos()
               if info.live or not live_only]
    return web.json_response({"streams": streams})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/streams", list_streams)]
