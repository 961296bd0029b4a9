"""Session URLs that name their node, so that a load balancer needs no stickiness.

In a cluster a session's URL (WHIP/WHEP `Location`, Q&A) ends in `{session id}~{node id}`.
A request for it that reaches another node (round-robin balancing, a page whose node is in a
list) is passed on to that node as it came — method, body, the caller's own Authorization —
and its answer given back; the node that holds the session checks the link as always. A
passed-on request is never passed on again. A session whose node is gone gets a 404 that
says so: the page starts a new session (on any node).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from signaling.cluster.directory import FORWARDED
from signaling.keys import CLUSTER

logger = logging.getLogger(__name__)

NODE_MARK = "~"
PASSED_HEADERS = ("Authorization", "Content-Type", "If-Match", "Accept")
RETURNED_HEADERS = ("Content-Type", "ETag", "Location", "Retry-After", "Link")
TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_BODY = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tagged(session_id: str, node_id: str | None) -> str:
    return f"{session_id}{NODE_MARK}{node_id}" if node_id else session_id


@web.middleware
async def session_forwarding(request: web.Request, handler: Handler) -> web.StreamResponse:
    sid = request.match_info.get("session")
    if not sid or NODE_MARK not in sid:
        return await handler(request)
    local, _, node_id = sid.rpartition(NODE_MARK)
    node = request.app[CLUSTER]
    if node_id == node.cluster.node_id or not node.cluster.enabled:
        request.match_info["session"] = local
        return await handler(request)
    if request.headers.get(FORWARDED):
        raise web.HTTPNotFound(text="no such session here (a forwarded request is not forwarded again)\n")
    target = next((n for n in node.cluster.nodes() if n.node_id == node_id), None)
    if target is None:
        raise web.HTTPNotFound(text=f"this session was on node {node_id}, which is gone; start a new session "
                                    "(the page does so by itself)\n")
    return await _forward(request, target.url)


async def _forward(request: web.Request, node_url: str) -> web.Response:
    body = await request.read() if request.can_read_body else b""
    if len(body) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))
    headers = {k: request.headers[k] for k in PASSED_HEADERS if k in request.headers}
    headers[FORWARDED] = request.app[CLUSTER].cluster.node_id
    url = f"{node_url.rstrip('/')}{request.rel_url}"
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.request(
                request.method, url, data=body or None, headers=headers, allow_redirects=False) as resp:
            data = await resp.read()
            out = {k: resp.headers[k] for k in RETURNED_HEADERS if k in resp.headers}
            return web.Response(status=resp.status, body=data, headers=out)
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("cluster: passing %s %s on to its node failed: %s", request.method, request.path,
                       type(exc).__name__)
        # a 404, not a 502: a balancer would take a 502 for this node failing, and the session
        # is gone for the client either way
        raise web.HTTPNotFound(text="the node that held this session does not answer (it may have died); start a "
                                    "new session (the page does so by itself)\n") from None
