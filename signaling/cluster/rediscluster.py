"""RedisCluster: the cluster's directory and message bus in one shared Redis.

Each node writes one key, `orcast:node:{id}`, every HEARTBEAT_S: its address, its load and the
feeds whose source it holds, with a time to live of TTL_S, so a node that dies (kill -9, a
pulled cable) drops out of the directory by itself within TTL_S. Each node reads every node's
key on the same beat, so the directory a request consults is in memory (no Redis round trip on
a WHEP POST) and at most HEARTBEAT_S old.

Messages between nodes go over one Redis pub/sub channel. Those that must not be missed by a
node that was away — revocations — are also kept in a hash and given again to every node when
its subscription (re)starts. Redis itself is the only shared part: no consensus or mesh of our
own. When Redis is unreachable a node keeps serving what it has (its feeds, its viewers, the
pulls it runs), says so once, and re-registers when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import urllib.parse
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signaling.cluster.directory import (
    BusHandler,
    ClusterUnavailable,
    FeedHolder,
    NodeEntry,
    NodeReport,
    Report,
    pick_holder,
)

logger = logging.getLogger(__name__)

PREFIX = "orcast:"
NODE_KEY = PREFIX + "node:{}"
BUS = PREFIX + "bus"
KEPT = PREFIX + "kept"          # hash: announcements given again to a (re)joining node
SHARED = PREFIX + "shared:{}"   # numbers every node agrees on (an event's link generation)
_RAISE = ("local v = redis.call('GET', KEYS[1]) "
          "if (not v) or tonumber(v) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 1")
HEARTBEAT_S = 1.0
TTL_S = 5.0                     # a silent node is gone after this
MAX_MESSAGE_BYTES = 64 * 1024
RETRY_S = 1.0
# a command on a connection Redis dropped (it restarted) is tried again on a new one at once
RECONNECTING: dict[str, Any] = {"retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                                "retry_on_error": [RedisConnectionError, RedisTimeoutError]}


def node_id_of(node_url: str) -> str:
    """A node's name when the config gives none: its address ("node-b-hospital-example-443")."""
    split = urllib.parse.urlsplit(node_url)
    port = split.port or (443 if split.scheme == "https" else 80)
    return re.sub(r"[^a-z0-9]+", "-", f"{split.hostname or 'node'}-{port}".lower()).strip("-")[:63]


def redacted(url: str) -> str:
    """A Redis URL for logs: its password (redis://:secret@host) never shows."""
    head, sep, tail = url.partition("@")
    return f"{head.split('//', 1)[0]}//***@{tail}" if sep else url


class RedisCluster:
    enabled = True

    def __init__(self, redis_url: str, node_id: str, node_url: str) -> None:
        self.node_id = node_id
        self.node_url: str | None = node_url
        self.shown_url = redacted(redis_url)
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0,
                                              decode_responses=True, **RECONNECTING)
        self._nodes: dict[str, NodeEntry] = {}
        self._report: Report | None = None
        self._on_message: BusHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._down: bool | None = None  # None until the first heartbeat
        self._unsent: list[tuple[dict[str, Any], str]] = []  # kept messages Redis did not take
        self.heartbeats = 0
        self.messages_in = 0

    @property
    def reachable(self) -> bool:
        return self._down is False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, report: Report, on_message: BusHandler) -> None:
        self._report, self._on_message = report, on_message
        await self._beat()  # the directory is filled before the first request (if Redis is up)
        with contextlib.suppress(RedisError, OSError):
            await self._replay()  # and revocations made while this node was away are known
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat(), name="cluster heartbeat"),
                       loop.create_task(self._listen(), name="cluster bus")]

    async def close(self) -> None:
        """Idempotent: leaves the directory at once (others need not wait TTL_S)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if tasks:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(NODE_KEY.format(self.node_id))
        await self._redis.aclose()

    # -- the directory ---------------------------------------------------------------------
    def nodes(self) -> list[NodeEntry]:
        return sorted(self._nodes.values(), key=lambda n: n.node_id)

    def holder(self, path: str) -> FeedHolder | None:
        return pick_holder([h for h in self._holders() if h.info.get("path") == path])

    def remote_feeds(self) -> list[FeedHolder]:
        by_path: dict[str, list[FeedHolder]] = {}
        for h in self._holders():
            by_path.setdefault(str(h.info.get("path")), []).append(h)
        picked = (pick_holder(hs) for hs in by_path.values())
        return [h for h in picked if h is not None]

    def _holders(self) -> list[FeedHolder]:
        return [FeedHolder(n.node_id, n.url, f) for n in self._nodes.values()
                if n.node_id != self.node_id for f in n.report.feeds if isinstance(f, dict)]

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self._beat()

    async def _beat(self) -> None:
        assert self._report is not None
        try:
            report = self._report()
        except Exception:
            logger.exception("cluster: this node's report failed; the directory keeps its last one")
            return
        entry = {"node": self.node_id, "url": self.node_url or "", "at": time.time(), "sessions": report.sessions,
                 "cpu_cores": report.cpu_cores, "bitrate_out_bps": report.bitrate_out_bps,
                 "feeds": report.feeds, "pulls": report.pulls, "links": report.link_sessions}
        try:
            await self._redis.set(NODE_KEY.format(self.node_id), json.dumps(entry), px=int(TTL_S * 1000))
            keys = [k async for k in self._redis.scan_iter(match=NODE_KEY.format("*"), count=500)]
            values = await self._redis.mget(keys) if keys else []
        except (RedisError, OSError) as exc:
            if self._down is not True:
                logger.warning("cluster: Redis at %s is unreachable (%s): this node keeps serving its own feeds, "
                               "viewers and pulls, and re-registers when Redis is back", self.shown_url,
                               type(exc).__name__)
            self._down = True
            cutoff = time.time() - TTL_S  # without Redis, what was last seen expires as it would there
            self._nodes = {k: n for k, n in self._nodes.items() if n.seen_at >= cutoff}
            return
        if self._down is True:
            logger.info("cluster: Redis at %s is back; this node is registered again", self.shown_url)
        elif self._down is None:
            logger.info("cluster: node %s (%s) joined through Redis at %s", self.node_id, self.node_url,
                        self.shown_url)
        self._down = False
        self.heartbeats += 1
        self._nodes = {e.node_id: e for e in (_entry(str(v)) for v in values if v) if e is not None}

    # -- shared numbers ------------------------------------------------------------------------
    async def agree(self, key: str, value: int) -> int:
        try:
            await self._redis.set(SHARED.format(key), str(value), nx=True)
            shared = await self._redis.get(SHARED.format(key))
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"Redis at {self.shown_url}: {type(exc).__name__}") from None
        return int(shared) if shared is not None and str(shared).lstrip("-").isdigit() else value

    async def raise_to(self, key: str, value: int) -> None:
        try:
            await self._redis.eval(_RAISE, 1, SHARED.format(key), str(value))
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"Redis at {self.shown_url}: {type(exc).__name__}") from None

    # -- the bus -------------------------------------------------------------------------------
    async def announce(self, message: dict[str, Any], keep: bool = False) -> None:
        data = json.dumps({**message, "from": self.node_id})
        try:
            if keep:
                await self._redis.hset(KEPT, _kept_field(message), data)
            await self._redis.publish(BUS, data)
        except (RedisError, OSError) as exc:
            # this node has applied it; the others get a kept one when Redis is back
            logger.error("cluster: could not tell the other nodes %s (Redis: %s)%s", message.get("type"),
                         type(exc).__name__, "" if not keep else "; it is sent again once Redis is back")
            if keep:
                self._unsent.append((message, data))

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(BUS)
                await self._resend_unsent()
                await self._replay()  # after subscribing: nothing falls between the two
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._dispatch(message.get("data"))
            except (RedisError, OSError):
                await asyncio.sleep(RETRY_S)  # the heartbeat says that Redis is away
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resend_unsent(self) -> None:
        unsent, self._unsent = self._unsent, []
        for message, data in unsent:
            await self._redis.hset(KEPT, _kept_field(message), data)
            await self._redis.publish(BUS, data)

    async def _replay(self) -> None:
        kept = await self._redis.hgetall(KEPT)
        now = time.time()
        stale = []
        # events before what names them (a link, a revocation of one of its links)
        for key, data in sorted(kept.items(), key=lambda kv: not str(kv[0]).startswith("event:")):
            message = _message(data)
            if message is None or float(message.get("expires_at") or now + 1) < now:
                stale.append(key)  # a revocation outlives its link only until the link expires
                continue
            await self._dispatch(data, replay=True)
        if stale:
            await self._redis.hdel(KEPT, *stale)

    async def _dispatch(self, data: Any, replay: bool = False) -> None:
        message = _message(data)
        if message is None:
            logger.warning("cluster: a bus message that is not a JSON object with a type was ignored")
            return
        if message.get("from") == self.node_id and not replay:
            return
        self.messages_in += 1
        assert self._on_message is not None
        try:
            await self._on_message(message)
        except Exception:  # one bad message must not stop the bus
            logger.exception("cluster: the %r message from %s failed here", message.get("type"), message.get("from"))


async def read_directory(redis_url: str) -> list[NodeEntry]:
    """Every node's entry, for `orcast cluster status` (raises RedisError, OSError)."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=3.0, socket_connect_timeout=3.0,
                                     decode_responses=True, **RECONNECTING)
    try:
        keys = [k async for k in client.scan_iter(match=NODE_KEY.format("*"), count=500)]
        values = await client.mget(keys) if keys else []
    finally:
        await client.aclose()
    entries = (_entry(str(v)) for v in values if v)
    return sorted((e for e in entries if e is not None), key=lambda e: e.node_id)


def _kept_field(message: dict[str, Any]) -> str:
    return ":".join(str(message.get(k, "")) for k in ("type", "event", "jti"))


def _message(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, str) or len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("type"), str) else None


def _entry(data: str) -> NodeEntry | None:
    try:
        raw = json.loads(data)
        report = NodeReport(sessions=int(raw["sessions"]), cpu_cores=float(raw["cpu_cores"]),
                            bitrate_out_bps=int(raw["bitrate_out_bps"]), feeds=list(raw["feeds"]),
                            pulls=[str(p) for p in raw.get("pulls", [])],
                            link_sessions={str(k): int(v) for k, v in dict(raw.get("links") or {}).items()})
        return NodeEntry(str(raw["node"]), str(raw["url"]), float(raw["at"]), report)
    except (ValueError, KeyError, TypeError):
        logger.warning("cluster: a node entry in Redis could not be read; ignored")
        return None
