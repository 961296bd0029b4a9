"""OnDemandPull: a pulled source (an IP camera, another server's WHEP feed) that runs only
while it is wanted, i.e. while its feed has viewers or the recording rules want it.

Cameras on a hospital network often allow few RTSP sessions, and a pull from another server
costs that server a viewer: a feed nobody watches should cost neither. The first viewer's
WHEP POST starts the pull and waits (up to START_WAIT_S) until the source's codecs are known,
so that the answer can name them; the viewer then starts on the source's first keyframe like
any other. The pull goes on for `grace_s` after the last viewer left (a page that reloads, a
viewer switching cameras and back) and then stops; the feed shows "idle" meanwhile.

The pull itself is an ordinary PulledSource or WhepPull, made anew for each period of demand
by `make`: reconnection, transcoding and redaction are theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from broadcast.errors import SourceStarting
from broadcast.relay.producer import Producer
from broadcast.sources.pulled import Attach, PullSettings, PullState

logger = logging.getLogger(__name__)

START_WAIT_S = 8.0      # a WHEP POST waits this long for a starting source before a 503
GRACE_S = 15.0          # pulling goes on this long after the last viewer left


class Pull(Protocol):
    """What OnDemandPull needs of the pull it runs (PulledSource, WhepPull)."""
    settings: PullSettings
    state: str
    error: str | None
    codec: str | None
    reconnects: int

    @property
    def transcoding(self) -> str | None: ...
    def status(self) -> dict[str, Any]: ...
    def start(self) -> None: ...
    async def close(self) -> None: ...


# (settings, attach) → a pull that has not started
MakePull = Callable[[PullSettings, Attach], Pull]
# the pull ended: its feed goes offline (unless something else feeds it by then)
Stopped = Callable[[Any], None]


class OnDemandPull:
    def __init__(self, settings: PullSettings, attach: Attach, make: MakePull, stopped: Stopped,
                 wanted: Callable[[], bool], grace_s: float = GRACE_S) -> None:
        self.settings = settings
        self.name = f"on-demand pull {settings.shown_url}"
        self.grace_s = grace_s
        self.pull: Pull | None = None   # while wanted (and for grace_s after)
        self.periods = 0                # how many times it was started
        self._attach = attach
        self._make = make
        self._stopped = stopped
        self._wanted = wanted  # asked again when the grace period ends
        self._attached = asyncio.Event()  # the running pull's codecs are known, its feed is live
        self._grace: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._reconnects_before = 0     # of the pulls that ended
        self._last_error: str | None = None
        self._closed = False

    # -- what the feed list, metrics and the API read -----------------------------------
    @property
    def state(self) -> str:
        if self._closed:
            return "stopped"
        return self.pull.state if self.pull is not None else "idle"

    @property
    def error(self) -> str | None:
        return self.pull.error if self.pull is not None else self._last_error

    @property
    def codec(self) -> str | None:
        return self.pull.codec if self.pull is not None else None

    @property
    def transcoding(self) -> str | None:
        return self.pull.transcoding if self.pull is not None else None

    @property
    def video_transcoded_from(self) -> str | None:
        return getattr(self.pull, "video_transcoded_from", None)

    @property
    def audio_transcoded_from(self) -> str | None:
        return getattr(self.pull, "audio_transcoded_from", None)

    @property
    def reconnects(self) -> int:
        return self._reconnects_before + (self.pull.reconnects if self.pull is not None else 0)

    @property
    def running(self) -> bool:
        return self.pull is not None

    @property
    def letting_go(self) -> bool:
        """Nobody wants it: the grace period runs, or the pull is stopping."""
        return self._grace is not None or self._stopping is not None

    def status(self) -> dict[str, Any]:
        status = self.pull.status() if self.pull is not None else PullState(self.settings).status()
        status.update(state=self.state, error=self.error, reconnects=self.reconnects,
                      stops_in_s=self._stops_in())
        return status

    def _stops_in(self) -> float | None:
        if self._grace is None:
            return None
        return round(max(0.0, self._grace.when() - asyncio.get_running_loop().time()), 1)

    # -- demand -------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing to do: an on-demand pull starts when it is wanted."""

    async def want(self, wait: bool = True) -> None:
        """Someone wants the feed: pull it (again) and, with `wait`, return once its codecs are
        known. Raises SourceStarting if that takes longer than START_WAIT_S (the pull goes on,
        so that the viewer's retry finds it live)."""
        if self._closed:
            return
        self._cancel_grace()
        if self._stopping is not None:  # a pull that was just let go: let it finish first
            await asyncio.shield(self._stopping)
            if self._closed:
                return
        if self.pull is None:
            self._attached = asyncio.Event()
            self.pull = self._make(self.settings, self._attach_once)
            self.periods += 1
            logger.info("%s: wanted, pulling %s", self.settings.path, self.settings.shown_url)
            self.pull.start()
        if not wait or self._attached.is_set():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._attached.wait()), START_WAIT_S)
        except TimeoutError:
            why = f" ({self.error})" if self.error else ""
            raise SourceStarting(f"{self.settings.path} is pulled from {self.settings.shown_url} on demand and is "
                                 f"still connecting{why}; retrying shortly", retry_after=2) from None

    def release(self) -> None:
        """Nobody wants the feed any more: stop pulling after the grace period."""
        if self._closed or self.pull is None or self._grace is not None or self._stopping is not None:
            return
        self._grace = asyncio.get_running_loop().call_later(self.grace_s, self._let_go)
        logger.info("%s: no viewer; pulling stops in %.0f s unless one comes", self.settings.path, self.grace_s)

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _let_go(self) -> None:
        self._grace = None
        try:
            if self._wanted():  # a viewer came in the meantime
                return
        except Exception:
            logger.exception("%s: could not tell whether the feed is still wanted; pulling on", self.settings.path)
            return
        if self.pull is not None and self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop_pull())

    async def _stop_pull(self) -> None:
        pull, self.pull = self.pull, None
        try:
            if pull is not None:
                self._reconnects_before += pull.reconnects
                self._last_error = pull.error
                logger.info("%s: nobody watches; stopped pulling %s", self.settings.path, self.settings.shown_url)
                try:
                    await pull.close()
                finally:
                    self._stopped(pull)
        finally:
            self._stopping = None

    def _attach_once(self, source: Any, codec: str, has_audio: bool,
                     h264_profile: str | None) -> tuple[Producer, Producer]:
        producers = self._attach(source, codec, has_audio, h264_profile)
        self._attached.set()
        return producers

    async def close(self) -> None:
        """Idempotent: stops the pull (at once, no grace)."""
        if self._closed:
            return
        self._cancel_grace()
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
        self._closed = True
        if self.pull is not None:
            await self._stop_pull()

