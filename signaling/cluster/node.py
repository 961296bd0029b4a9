"""ClusterNode: this node's part in the cluster, over the Cluster interface.

* What it tells the directory: its load and the feeds whose source it holds (a publisher or a
  camera; never a feed it pulls from another node, so pulls cannot loop).
* Viewers on any node: a WHEP POST for a feed another node holds makes an on-demand WHEP pull
  from that node (once per feed and node, started by the first viewer, stopped the
  on-demand grace after the last), and the viewers are served from it here. Each pull's offer
  goes to the node that holds the feed *now*, with a short-lived viewer link this node mints
  (all nodes share the signing secret): when the encoder moves to another node, the pull's
  next attempt finds it there and the viewers resume.
* What the other nodes announce: revocations (kept in Redis, for nodes that were away), event
  revocations, kicks.
* The feed list of every page: this node's feeds and every other node's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from broadcast.broadcaster import Broadcaster
from broadcast.lifecycle import CloseReason
from broadcast.participant import Participant, Role
from broadcast.relay.stream import PrivacyPause, StreamInfo
from broadcast.relay.streampath import StreamPath
from broadcast.sources.pulled import PullSettings
from broadcast.webrtc.wheppull import Hangup, PullRefused, Signal, WhepPull
from signaling.auth.access import GUEST_PREFIX
from signaling.auth.tokens import TokenIssuer
from signaling.cluster.directory import FORWARDED, Cluster, ClusterUnavailable, FeedHolder, NodeEntry, NodeReport
from signaling.whepclient import whep_client

logger = logging.getLogger(__name__)

NODE_LINK_NAME = "ORcast node "  # + node id: the name in the links nodes mint for their pulls
NODE_LINK_TTL_S = 3600
THUMBNAIL_TTL_S = 3.0       # a still of another node's feed is fetched at most this often
THUMBNAIL_TIMEOUT = aiohttp.ClientTimeout(total=3)
MAX_THUMBNAIL_BYTES = 512 * 1024
ASK_TIMEOUT = aiohttp.ClientTimeout(total=3)
COUNTED_FOR_S = 2.0         # another node's per-link counts hold this long after its heartbeat
_INFO_FIELDS = {f.name for f in dataclasses.fields(StreamInfo)}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def is_node(who: Participant | None) -> bool:
    return who is not None and who.name.startswith(NODE_LINK_NAME)


class ProcessCpu:
    """CPU of the node's processes (the front and its workers), in cores since the last call."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def sample(self, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
            except (OSError, IndexError, ValueError):
                continue  # a worker that is restarting
        now = time.monotonic()
        last, self._last = self._last, (now, total)
        if last is None or now <= last[0]:
            return 0.0
        return max(0.0, (total - last[1]) / (now - last[0]))


class ClusterNode:
    def __init__(self, cluster: Cluster, broadcaster: Broadcaster, issuer: TokenIssuer,
                 token_gen: Callable[[str], int], live_counts: Callable[[], Counter[str]] | None = None) -> None:
        self.cluster = cluster
        self.live_counts = live_counts  # live connections per link on this node
        # a privacy pause set on another node, applied here (set by the app)
        self.on_privacy: Callable[[StreamPath, PrivacyPause | None], Awaitable[None]] | None = None
        self.on_draw: Callable[[dict[str, Any]], Awaitable[None]] | None = None  # a stroke drawn on another node
        self.broadcaster = broadcaster
        self.issuer = issuer
        self.token_gen = token_gen  # an event's link generation (links of older ones are revoked)
        self.pulls: set[str] = set()  # feeds this node pulls from other nodes
        self._tokens: dict[str, str] = {}  # the link each pull's current session was made with
        self._cpu = ProcessCpu()
        self._tasks: set[asyncio.Task[None]] = set()
        self._agreed: set[str] = set()  # events whose generation was taken from the cluster
        self._pulled_from: dict[str, str] = {}  # feed → the node its pull's current session is with
        self._thumbnails: dict[str, tuple[float, bytes, str]] = {}  # path → (fetched at, JPEG, captured at)
        self._thumbnail_fetches: dict[str, asyncio.Task[tuple[bytes, str] | None]] = {}

    # -- what this node tells the directory ---------------------------------------------------
    def report(self) -> NodeReport:
        b = self.broadcaster
        infos = b.stream_infos()
        own = [dataclasses.asdict(i) for i in infos if i.live and i.path not in self.pulls]
        pids = [row["pid"] for row in b.worker_rows() if row.get("pid")]
        self._forget_idle_pulls()
        self._follow_moved_feeds()
        links = {jti: n for jti, n in (self.live_counts() if self.live_counts else {}).items()
                 if n > 0 and not jti.startswith(GUEST_PREFIX)}
        return NodeReport(sessions=len(b.sessions), cpu_cores=self._cpu.sample(pids),
                          bitrate_out_bps=sum(i.bitrate_out_bps for i in infos), feeds=own,
                          pulls=sorted(p for p in self.pulls if self.pull_running(p)), link_sessions=links)

    def sessions_elsewhere(self, jti: str) -> int:
        """A link's live connections on the other nodes (as of their last heartbeat). A node
        silent for COUNTED_FOR_S is not counted: it may have died, and its viewers, now coming
        here, must not be refused for the connections they had there."""
        me, cutoff = self.cluster.node_id, time.time() - COUNTED_FOR_S
        return sum(n.report.link_sessions.get(jti, 0) for n in self.cluster.nodes()
                   if n.node_id != me and n.seen_at >= cutoff)

    def pull_running(self, path: str) -> bool:
        source = self.broadcaster.pulled.get(StreamPath.parse(path))
        return source is not None and getattr(source, "running", False)

    def _forget_idle_pulls(self) -> None:
        """A pull that is idle and whose feed no other node holds (any more) is dropped; the
        next viewer makes a new one towards wherever the feed is then."""
        for path in list(self.pulls):
            source = self.broadcaster.pulled.get(StreamPath.parse(path))
            if source is None:
                self.pulls.discard(path)
            elif source.state == "idle" and self.cluster.holder(path) is None:
                self.pulls.discard(path)
                # off the list at once (a viewer that comes now makes a new pull), closed after;
                # idle, it feeds no stream: nothing to detach
                del self.broadcaster.pulled[StreamPath.parse(path)]
                task = asyncio.get_running_loop().create_task(source.close())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                logger.info("cluster: %s is held by no other node now; its pull is forgotten", path)

    def _follow_moved_feeds(self) -> None:
        """A feed whose source moved to another node (its encoder republished there after its
        node died): the pull goes there now, not after it has heard nothing for seconds."""
        for path in list(self.pulls):
            holder = self.cluster.holder(path)
            was = self._pulled_from.get(path)
            if holder is None or was is None or holder.node_id == was:
                continue
            source = self.broadcaster.pulled.get(StreamPath.parse(path))
            pull = getattr(source, "pull", None)
            if isinstance(pull, WhepPull):
                self._pulled_from[path] = holder.node_id  # asked once
                pull.reconnect_now(f"the feed moved from node {was} to node {holder.node_id}")

    # -- viewers on any node ---------------------------------------------------------------------
    def prepare_play(self, path: StreamPath, who: Participant | None) -> None:
        """Before a WHEP viewer is played here: a feed that another node holds gets its pull
        (the broadcaster's on-demand source starts it, and the viewer waits for its codecs)."""
        if not self.cluster.enabled or is_node(who) or str(path) in self.pulls:
            return
        b = self.broadcaster
        stream = b.streams.get(path)
        if path in b.pulled or (stream is not None and (stream.live or stream.publisher is not None)):
            return  # the feed's source is here
        holder = self.cluster.holder(str(path))
        if holder is None:
            return  # nobody has it: the viewer gets the usual 409 (not live yet)
        b.add_pulled_source(PullSettings(str(path), f"{holder.url}/whep/{path}", on_demand=True))
        self.pulls.add(str(path))
        logger.info("cluster: %s is on node %s; this node pulls it for its viewers", path, holder.node_id)

    def whep_client(self, settings: PullSettings) -> tuple[Signal, Hangup]:
        """The broadcaster's WHEP client: pulls between nodes go to the feed's holder of the
        moment with a link of their own; every other WHEP url as configured."""
        if settings.path not in self.pulls:
            return whep_client(settings)
        path = settings.path

        async def signal(offer: str) -> tuple[str, str | None]:
            holder = self.cluster.holder(path)
            if holder is None:
                raise PullRefused(f"no node holds {path} now (its publisher may be reconnecting); the pull retries")
            token = self._mint(StreamPath.parse(path).event)
            self._tokens[path] = token
            if self._pulled_from.get(path) != holder.node_id:
                logger.info("cluster: %s: pulling from node %s (%s)", path, holder.node_id, holder.url)
            self._pulled_from[path] = holder.node_id
            send, _ = whep_client(PullSettings(path, f"{holder.url}/whep/{path}", token=token))
            return await send(offer)

        async def hangup(session_url: str) -> None:
            token = self._tokens.get(path)
            _, stop = whep_client(PullSettings(path, session_url, token=token))
            await stop(session_url)

        return signal, hangup

    def _mint(self, event: str) -> str:
        token, _ = self.issuer.mint(event, Role.VIEWER, NODE_LINK_NAME + self.cluster.node_id, NODE_LINK_TTL_S,
                                    gen=self.token_gen(event))
        return token

    # -- thumbnails of feeds held elsewhere ---------------------------------------------------------
    async def remote_thumbnail(self, path: StreamPath) -> tuple[bytes, str] | None:
        """The latest still of a feed another node holds (JPEG, its capture time), fetched from
        that node at most once per THUMBNAIL_TTL_S for all of this node's pages."""
        holder = self.cluster.holder(str(path)) if self.cluster.enabled else None
        if holder is None:
            return None
        key = str(path)
        cached = self._thumbnails.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < THUMBNAIL_TTL_S:
            return cached[1], cached[2]
        fetching = self._thumbnail_fetches.get(key)
        if fetching is None:
            fetching = asyncio.get_running_loop().create_task(self._fetch_thumbnail(holder.url, path))
            self._thumbnail_fetches[key] = fetching
            fetching.add_done_callback(lambda _t: self._thumbnail_fetches.pop(key, None))
        return await asyncio.shield(fetching)

    async def _fetch_thumbnail(self, node_url: str, path: StreamPath) -> tuple[bytes, str] | None:
        url = f"{node_url}/api/events/{path.event}/thumbnails/{path.theatre}/{path.feed}"
        headers = {"Authorization": f"Bearer {self._mint(path.event)}"}
        try:
            async with aiohttp.ClientSession(timeout=THUMBNAIL_TIMEOUT) as http, http.get(url, headers=headers) as resp:
                if resp.status != 200 or resp.content_type != "image/jpeg":
                    return None
                picture = (await resp.content.read(MAX_THUMBNAIL_BYTES), resp.headers.get("X-Captured-At", ""))
        except (aiohttp.ClientError, TimeoutError):
            return None
        self._thumbnails[str(path)] = (time.monotonic(), *picture)
        return picture

    # -- asking every other node -------------------------------------------------------------------
    async def ask_others(self, path: str, authorization: str | None) -> list[tuple[NodeEntry, Any]]:
        """GET `path` of every other node at once, with the caller's own link (each node checks
        it as always); an answer is the JSON it sent, or None if it failed or sent no JSON."""
        others = [n for n in self.cluster.nodes() if n.node_id != self.cluster.node_id]
        if not others:
            return []
        headers = {FORWARDED: self.cluster.node_id}  # answered from that node alone
        if authorization:
            headers["Authorization"] = authorization

        async def ask(http: aiohttp.ClientSession, entry: NodeEntry) -> Any:
            try:
                async with http.get(f"{entry.url.rstrip('/')}{path}", headers=headers) as resp:
                    if resp.status != 200 or resp.content_type != "application/json":
                        logger.warning("cluster: node %s answered %d to %s", entry.node_id, resp.status, path)
                        return None
                    return await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                logger.warning("cluster: node %s did not answer %s (%s)", entry.node_id, path, type(exc).__name__)
                return None

        async with aiohttp.ClientSession(timeout=ASK_TIMEOUT) as http:
            answers = await asyncio.gather(*(ask(http, n) for n in others))
        return list(zip(others, answers, strict=True))

    # -- the feed list ---------------------------------------------------------------------------
    def stream_infos(self) -> list[StreamInfo]:
        """This node's feeds and every other node's: a feed pulled here shows as here (its
        viewers, its state), naming the node that holds it."""
        local = self.broadcaster.stream_infos()
        if not self.cluster.enabled:
            return local
        me = self.cluster.node_id
        out: dict[str, StreamInfo] = {}
        for info in local:
            holder = self.cluster.holder(info.path) if info.path in self.pulls else None
            out[info.path] = dataclasses.replace(info, node=holder.node_id if holder else me)
        for holder in self.cluster.remote_feeds():
            path = str(holder.info.get("path"))
            if path not in out or not out[path].live:
                remote = _remote_info(holder)
                if remote is not None:
                    out[path] = remote
        return sorted(out.values(), key=lambda i: i.path)

    # -- one set of links for every node ----------------------------------------------------------
    async def agree_generations(self, store: Any) -> None:
        """Every node must accept the same links, so an event's link generation (links minted
        before it are revoked) is the cluster's: the first node's, taken by each node when it
        joins, raised by "revoke all" on any node."""
        for event in store.events():
            key = f"gen:{event.slug}"
            try:
                gen = await self.cluster.agree(key, store.token_gen(event.slug))
            except ClusterUnavailable as exc:
                logger.warning("cluster: cannot agree on event %s's links now (%s); retrying", event.slug, exc)
                return
            if event.slug not in self._agreed:
                if store.adopt_token_gen(event.slug, gen):
                    logger.info("cluster: event %s takes the cluster's link generation", event.slug)
                self._agreed.add(event.slug)
                if store.token_gen(event.slug) > gen:  # a floor of this node's: the cluster follows
                    await self.cluster.raise_to(key, store.token_gen(event.slug))
            elif gen > store.token_gen(event.slug):
                store.raise_token_gen(event.slug, gen)  # only ever up once joined

    async def new_event_generation(self, slug: str, gen: int) -> None:
        """An event created here: its link generation becomes the cluster's (higher than that
        of any earlier event of this name, which another node may have had)."""
        if not self.cluster.enabled:
            return
        try:
            await self.cluster.raise_to(f"gen:{slug}", gen)
        except ClusterUnavailable as exc:
            logger.error("cluster: event %s's link generation could not be stored (%s); the other nodes take it "
                         "from the announcement", slug, exc)

    async def announce(self, message: dict[str, Any], keep: bool) -> None:
        """Access's announcements; a new link generation is also the cluster's from now on."""
        if message.get("type") == "revoke_all":
            try:
                await self.cluster.raise_to(f"gen:{message['event']}", int(message["gen"]))
            except ClusterUnavailable as exc:
                logger.error("cluster: the new link generation of %s could not be stored (%s); the other nodes "
                             "get it with the announcement", message["event"], exc)
        await self.cluster.announce(message, keep)

    # -- what the other nodes announce ------------------------------------------------------------
    async def on_message(self, message: dict[str, Any], access: Any) -> None:
        kind, event = message.get("type"), message.get("event")
        if not isinstance(event, str) or access.store.get(event) is None:
            return  # an event this node does not have (a mistake in the nodes' configs)
        if kind == "revoke" and isinstance(message.get("jti"), str):
            await access.revoke(event, message["jti"], expires_at=message.get("expires_at"), announce=False)
        elif kind == "revoke_all" and isinstance(message.get("gen"), int):
            await access.revoke_all(event, gen=message["gen"], announce=False)
        elif kind == "privacy" and isinstance(message.get("path"), str) and self.on_privacy is not None:
            try:
                path = StreamPath.parse(message["path"])
            except ValueError:
                return
            pause = PrivacyPause(str(message.get("by", "another node"))[:120], time.time(),
                                 bool(message.get("audio"))) if message.get("paused") else None
            await self.on_privacy(path, pause)
        elif kind == "draw" and self.on_draw is not None:
            await self.on_draw(message)
        elif kind == "kick" and isinstance(message.get("jti"), str):
            jti, by = message["jti"], str(message.get("by", "an organizer"))[:80]
            await access.close_where(lambda p: p.event == event and p.token_id == jti,
                                     lambda p: CloseReason.KICKED, by)


def _remote_info(holder: FeedHolder) -> StreamInfo | None:
    try:
        fields = {k: v for k, v in holder.info.items() if k in _INFO_FIELDS}
        return StreamInfo(**{**fields, "node": holder.node_id})
    except TypeError:
        logger.warning("cluster: node %s described feed %r in a way this node cannot read; is it another "
                       "ORcast version?", holder.node_id, holder.info.get("path"))
        return None
