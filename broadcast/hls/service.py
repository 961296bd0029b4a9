"""HlsService: each feed's LL-HLS playlists and muxers, made on demand.

A feed has two variants: `high` (the feed as published) and `low` (its low rendition: the
publisher's own, or the one the server makes while someone watches it). The first HLS request
for a variant of a live feed starts its muxer (one per variant, whatever the number of players
or caches); IDLE_S after the last request it stops and its memory is freed. While it runs, a
muxer follows the feed as the recorder does: a publisher that reconnects gets a new init
section and a discontinuity, not a new playlist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broadcast.hls.muxer import HlsMuxer, NotMuxable
from broadcast.hls.playlist import MediaPlaylist, PlaylistSettings
from broadcast.lifecycle import notify, start_every, stop_task
from broadcast.relay.streampath import StreamPath

if TYPE_CHECKING:
    from broadcast.relay.stream import Stream

logger = logging.getLogger(__name__)

PART_SERVES_KEPT = 200  # recent parts whose serves are counted
IDLE_S = 30.0      # a variant's muxer stops this long after its last HLS request
VARIANTS = ("high", "low")
SWEEP_S = 5.0


@dataclass(frozen=True)
class HlsSettings:
    playlist: PlaylistSettings = field(default_factory=PlaylistSettings)
    idle_s: float = IDLE_S


class FeedHls:
    """One variant of a feed: its playlist and the muxer that fills it."""

    def __init__(self, path: StreamPath, variant: str, settings: HlsSettings) -> None:
        self.path = path
        self.variant = variant
        self.playlist = MediaPlaylist(settings.playlist)
        s = settings.playlist
        self.muxer = HlsMuxer(f"{path} ({variant})", s.part_s, s.target_s, self.playlist.add_init,
                              self.playlist.add_part, variant)
        self.last_request = time.monotonic()
        self.responses: Counter[str] = Counter()  # by kind: playlist, blocking, part, segment, init
        self._part_serves: Counter[str] = Counter()  # per part file, while it is listed

    def served(self, kind: str, name: str | None = None) -> None:
        """One answer given (for the metrics: how often a cache in front let a part through)."""
        self.responses[kind] += 1
        if name is not None:
            self._part_serves[name] += 1
            if len(self._part_serves) > 4 * PART_SERVES_KEPT:
                for old, _ in sorted(self._part_serves.items(), key=lambda kv: _part_order(kv[0]))[
                        :len(self._part_serves) - PART_SERVES_KEPT]:
                    del self._part_serves[old]

    @property
    def most_serves_of_a_part(self) -> int:
        """The most times one of the recent parts was sent (≈ the number of players without a
        shared cache, ≈ 1–2 with one)."""
        return max(self._part_serves.values(), default=0)


def _part_order(name: str) -> tuple[int, int]:
    msn, _, index = name.removeprefix("part").removesuffix(".m4s").partition(".")
    return int(msn), int(index or 0)


class HlsService:
    def __init__(self, settings: HlsSettings, streams: dict[StreamPath, Stream]) -> None:
        self.settings = settings
        self._streams = streams
        self.feeds: dict[tuple[StreamPath, str], FeedHls] = {}  # (path, variant) → its HLS
        self._waiting: dict[StreamPath, int] = {}  # requests waiting for a feed to go live
        self._sweeper: asyncio.Task[None] | None = None
        self.demand_listeners: list[Callable[[StreamPath], None]] = []  # an on-demand camera is wanted

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = start_every(SWEEP_S, self._sweep, "stopping idle HLS muxers")

    async def close(self) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None
        for key in list(self.feeds):
            await self._stop(key)

    def wants(self, path: StreamPath) -> bool:
        """HLS players are watching (an on-demand camera is pulled for them)."""
        return any(p == path for p, _ in self.feeds) or path in self._waiting

    def running(self, path: StreamPath, variant: str) -> FeedHls | None:
        return self.feeds.get((path, variant))

    def feed(self, path: StreamPath, variant: str = "high") -> FeedHls | None:
        """The variant's HLS, started by this request if the feed is live. Raises NotMuxable."""
        hls = self.feeds.get((path, variant))
        if hls is not None:
            hls.last_request = time.monotonic()
            return hls
        stream = self._streams.get(path)
        if stream is None or not stream.live:
            return None
        hls = FeedHls(path, variant, self.settings)
        try:
            hls.muxer.attach(stream)
        except NotMuxable:
            asyncio.get_running_loop().create_task(hls.muxer.stop())
            raise
        self.feeds[(path, variant)] = hls
        logger.info("%s: HLS %s on (the first HLS request)", path, variant)
        return hls

    async def when_live(self, path: StreamPath, variant: str, within: float) -> FeedHls | None:
        """A feed that is not live yet but may come (an on-demand camera, a feed another node
        holds, pulled for this request): its HLS once it is live, or None after `within` seconds."""
        self._waiting[path] = self._waiting.get(path, 0) + 1
        try:
            notify(self.demand_listeners, path, what="an HLS demand listener")
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                stream = self._streams.get(path)
                if stream is not None and stream.live:
                    return self.feed(path, variant)
                await asyncio.sleep(0.1)
            return None
        finally:
            self._waiting[path] -= 1
            if not self._waiting[path]:
                del self._waiting[path]

    # -- the feed going live and offline (called by the Broadcaster) -------------------
    def on_live(self, stream: Stream) -> None:
        for variant in VARIANTS:
            hls = self.feeds.get((stream.path, variant))
            if hls is not None and not hls.muxer.reads(stream):
                hls.playlist.ended = False
                try:
                    hls.muxer.attach(stream)
                except NotMuxable as exc:
                    logger.warning("%s: HLS stops: %s", stream.path, exc)

    def on_offline(self, stream: Stream) -> None:
        for variant in VARIANTS:
            hls = self.feeds.get((stream.path, variant))
            if hls is not None:
                hls.muxer.detach()
                hls.muxer.restart("feed offline")
                hls.playlist.end()

    async def _sweep(self) -> None:
        now = time.monotonic()
        for key, hls in list(self.feeds.items()):
            if now - hls.last_request > self.settings.idle_s:
                await self._stop(key)
                logger.info("%s: HLS %s off (no HLS request for %.0f s)", key[0], key[1], self.settings.idle_s)

    async def _stop(self, key: tuple[StreamPath, str]) -> None:
        hls = self.feeds.pop(key, None)
        if hls is not None:
            await hls.muxer.stop()
