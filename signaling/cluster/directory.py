"""The cluster behind one interface: which nodes are up, which node holds each feed's source,
and one message bus between them (revocations, kicks).

`LocalCluster` is the default (one node alone: nothing to share, nothing needs Redis);
`RedisCluster` (rediscluster.py) is the same interface over one shared Redis, as LiveKit does
it. Everything else (WHEP pulls between nodes, the feed list, revocations) talks to this
interface only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# on a request one node passes on to (or asks of) another: answered by that node alone
FORWARDED = "X-ORcast-Forwarded-By"

# what a node says of itself on each heartbeat
Report = Callable[[], "NodeReport"]
# a message from another node (its "type" says what: "revoke", "revoke_all", "kick")
BusHandler = Callable[[dict[str, Any]], Awaitable[None]]


class ClusterUnavailable(Exception):
    """The shared store cannot be reached now."""


@dataclass
class NodeReport:
    sessions: int = 0           # WebRTC sessions held (viewers, publishers, Q&A)
    cpu_cores: float = 0.0      # the node's processes' CPU, in cores, over the last seconds
    bitrate_out_bps: int = 0
    feeds: list[dict[str, Any]] = field(default_factory=list)  # StreamInfo dicts of the feeds whose source is here
    pulls: list[str] = field(default_factory=list)  # feeds this node pulls from other nodes
    # live connections per link (jti) here: a link's session limit holds across the cluster
    link_sessions: dict[str, int] = field(default_factory=dict)


@dataclass
class NodeEntry:
    """Another node (or this one) as the directory last saw it."""
    node_id: str
    url: str
    seen_at: float              # wall clock of its last heartbeat
    report: NodeReport

    @property
    def load(self) -> float:
        """For picking the less loaded node: sessions first, CPU to break ties."""
        return self.report.sessions + self.report.cpu_cores

    def to_json(self) -> dict[str, Any]:
        r = self.report
        return {"node": self.node_id, "url": self.url, "seen_at": self.seen_at, "sessions": r.sessions,
                "cpu_cores": round(r.cpu_cores, 3), "bitrate_out_bps": r.bitrate_out_bps,
                "feeds": [f.get("path") for f in r.feeds], "pulls": r.pulls}


@dataclass(frozen=True)
class FeedHolder:
    node_id: str
    url: str
    info: dict[str, Any]        # its StreamInfo, as that node sent it


class Cluster(Protocol):
    node_id: str
    node_url: str | None

    @property
    def enabled(self) -> bool: ...
    @property
    def reachable(self) -> bool:
        """The shared store answered the last heartbeat."""
        ...
    async def start(self, report: Report, on_message: BusHandler) -> None: ...
    async def close(self) -> None: ...
    def nodes(self) -> list[NodeEntry]: ...
    def holder(self, path: str) -> FeedHolder | None:
        """Another node that holds `path`'s source (a publisher or a camera), if any."""
        ...
    def remote_feeds(self) -> list[FeedHolder]:
        """Every feed whose source is on another node (one entry per feed)."""
        ...
    async def announce(self, message: dict[str, Any], keep: bool = False) -> None:
        """Tell every other node. `keep`: also kept, and given again to a node that (re)joins
        (revocations: a node that was away must not let a revoked link in)."""
        ...
    async def agree(self, key: str, value: int) -> int:
        """One number every node shares (an event's link generation): the cluster's, or
        `value` if this node is the first to say one. Raises ClusterUnavailable."""
        ...
    async def raise_to(self, key: str, value: int) -> None:
        """The shared number becomes `value` if that is higher. Raises ClusterUnavailable."""
        ...


class LocalCluster:
    """One node alone: no other nodes, no remote feeds, nothing to announce."""

    enabled = False
    reachable = True

    def __init__(self, node_id: str = "local", node_url: str | None = None) -> None:
        self.node_id = node_id
        self.node_url = node_url

    async def start(self, report: Report, on_message: BusHandler) -> None:
        return None

    async def close(self) -> None:
        return None

    def nodes(self) -> list[NodeEntry]:
        return []

    def holder(self, path: str) -> FeedHolder | None:
        return None

    def remote_feeds(self) -> list[FeedHolder]:
        return []

    async def announce(self, message: dict[str, Any], keep: bool = False) -> None:
        return None

    async def agree(self, key: str, value: int) -> int:
        return value

    async def raise_to(self, key: str, value: int) -> None:
        return None


def pick_holder(candidates: list[FeedHolder]) -> FeedHolder | None:
    """A feed held by two nodes for a moment (the encoder moved to another node and the old
    node's entry has not expired): the one that is live and not stalled, newest source first."""
    def rank(h: FeedHolder) -> tuple[int, int, float]:
        info = h.info
        return (0 if info.get("live") else 1, 1 if info.get("stalled") else 0, float(info.get("uptime_s") or 0.0))
    return min(candidates, key=rank, default=None)
