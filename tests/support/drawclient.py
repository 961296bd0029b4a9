"""A page's event WebSocket as a test (or the bench) drives it: authenticates, says which feeds
it shows, draws, and keeps every message it gets with the time it got it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp


class DrawSocket:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                 hello: dict[str, Any]) -> None:
        self.http = http
        self.ws = ws
        self.hello = hello
        self.messages: list[tuple[float, dict[str, Any]]] = []  # (time.monotonic(), message)
        self._arrived = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.count = 0

    @classmethod
    async def open(cls, base: str, event: str, token: str) -> DrawSocket:
        """A session of its own, as a browser page has (no Authorization header: the token goes
        in the first message)."""
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(f"{base}/ws/{event}", max_msg_size=0)
            await ws.send_json({"type": "auth", "token": token})
            hello = await ws.receive_json(timeout=10)
        except BaseException:
            await http.close()
            raise
        assert hello["type"] == "hello", hello
        return cls(http, ws, hello)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append((time.monotonic(), msg.json()))
                self._arrived.set()

    async def watch(self, *feeds: str) -> None:
        await self.ws.send_json({"type": "watch", "feeds": list(feeds)})

    async def send(self, feed: str, op: str, **fields: Any) -> None:
        await self.ws.send_json({"type": "draw", "feed": feed, "op": op, **fields})

    async def stroke(self, feed: str, points: list[list[float]], kind: str = "free", color: str = "#ffd400",
                     **fields: Any) -> str:
        """A whole stroke: begun with its first point, the rest in one message that ends it."""
        self.count += 1
        sid = f"s{self.count}"
        await self.send(feed, "begin", id=sid, kind=kind, color=color, width=2, points=points[:1], **fields)
        await self.send(feed, "add", id=sid, points=points[1:], end=True)
        return sid

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("type") == kind and all(m.get(k) == v for k, v in match.items())]

    async def wait_for(self, test: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                       since: int = 0) -> tuple[float, dict[str, Any]]:
        """The first message from index `since` on that passes `test` (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for at, message in self.messages[seen:]:
                if test(message):
                    return at, message
            seen = len(self.messages)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such message within {timeout} s; got {[m for _, m in self.messages[-5:]]}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.http.close()
