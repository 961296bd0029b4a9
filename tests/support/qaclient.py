"""A real Q&A client for the tests: an aiortc peer with the `qa` data channel, over a Q&A-only
connection (`/qa/{event}`), a WHEP viewer or a WHIP publisher, keeping the board as the server
describes it (snapshot, then deltas)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from tests.support.peers import CounterTrack, bearer, post_offer, wait_until

_refs = itertools.count(1)


@dataclass
class QaClient:
    pc: RTCPeerConnection
    channel: RTCDataChannel
    session_url: str = ""
    token: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    questions: dict[int, dict[str, Any]] = field(default_factory=dict)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcome: dict[str, Any] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)
    snapshots: int = 0
    _building: dict[int, dict[str, Any]] = field(default_factory=dict)
    _waiters: dict[Any, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        self.messages.append(message)
        self.received_at.append(time.monotonic())
        kind = message.get("type")
        if kind == "welcome":
            self.welcome = message
        elif kind == "snapshot":
            if message["part"] == 1:
                self._building = {}
            self._building.update({q["id"]: q for q in message["questions"]})
            if message["part"] == message["parts"]:
                self.questions, self.slots = self._building, message["on_air"]
                self.layout = message["layout"]
                self.snapshots += 1
        elif kind == "question":
            self.questions[message["question"]["id"]] = message["question"]
        elif kind == "removed":
            self.questions.pop(message["question"], None)
        elif kind == "votes":
            for qid, count in message["votes"].items():
                if int(qid) in self.questions:
                    self.questions[int(qid)]["votes"] = count
        elif kind == "on_air":
            self.slots = message["slots"]
        elif kind == "layout":
            self.layout = message["layout"]
        if kind in ("ack", "error") and message.get("ref") in self._waiters:
            waiter = self._waiters.pop(message["ref"])
            if not waiter.done():
                waiter.set_result(message)

    def send_raw(self, data: str | bytes) -> None:
        self.channel.send(data)

    async def request(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send one message and wait for its ack or error (matched by `ref`)."""
        ref = f"r{next(_refs)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[ref] = waiter
        self.channel.send(json.dumps({"type": kind, "ref": ref, **fields}))
        return await asyncio.wait_for(waiter, timeout)

    async def ok(self, kind: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(kind, **fields)
        assert reply["type"] == "ack", f"{kind} {fields} refused: {reply}"
        return reply

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0,
                         what: str = "condition") -> None:
        await wait_until(condition, timeout,
                         lambda: f"{what} not met after {timeout} s; last messages: {self.messages[-5:]}")

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "error"]

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        if http is not None and self.session_url:
            async with http.delete(self.session_url, headers=bearer(self.token)):
                pass
        await self.pc.close()


async def connect(http: aiohttp.ClientSession, base: str, url_path: str, token: str | None,
                  media: str = "none", ordered: bool = True, label: str = "qa",
                  expect: int = 201) -> QaClient:
    """Open a connection with a `qa` data channel. `media`: "none" (POST /qa/{event}),
    "recv" (a WHEP viewer: video + audio) or "send" (a WHIP publisher of the counter video)."""
    pc = RTCPeerConnection()
    if media == "recv":
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    elif media == "send":
        pc.addTransceiver(CounterTrack(), direction="sendonly")
    channel = pc.createDataChannel(label, ordered=ordered, **({} if ordered else {"maxRetransmits": 0}))
    client = QaClient(pc, channel, token=token)
    channel.on("message", client.on_message)
    channel.on("open", client.opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    status, body, headers = await post_offer(http, f"{base}{url_path}", pc.localDescription.sdp, token)
    assert status == expect, f"POST {url_path}: {status} {body}"
    if status != 201:
        await pc.close()
        return client
    client.session_url = base + headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    await asyncio.wait_for(client.opened.wait(), 15)
    return client


async def joined(http: aiohttp.ClientSession, base: str, event: str, token: str | None,
                 seat: str | None = None, **kwargs: Any) -> QaClient:
    """A Q&A-only client that has its first snapshot (and, with `seat`, is that author again)."""
    client = await connect(http, base, f"/qa/{event}", token, **kwargs)
    await client.wait_until(lambda: client.snapshots >= 1, what="first snapshot")
    if seat is not None:
        await client.ok("hello", seat=seat)
        await client.wait_until(lambda: client.snapshots >= 2, what="snapshot after hello")
    return client
