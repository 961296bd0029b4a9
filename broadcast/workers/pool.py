"""The front's worker processes: started with the media plane, handed viewers, fed frames,
restarted when they die.

`[server] workers = N` means N processes hold viewers: the front (which also holds the
publishers, recordings, Q&A and thumbnails) and N-1 workers. A new viewer goes to the least
loaded of them, the front's load counting each publisher as PUBLISHER_LOAD viewers. Each feed
reaches a worker once per frame, and only while that worker has a viewer of it. A worker that
dies takes its viewers' connections with it; their pages reconnect by themselves (to another
process, or to this one once it is back), and it is restarted with a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcast.lifecycle import CloseReason, stop_task
from broadcast.relay.frame import EncodedFrame
from broadcast.relay.producer import Producer
from broadcast.relay.stream import Stream
from broadcast.relay.streampath import StreamPath
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import SessionSettings
from broadcast.webrtc.udpports import UdpPortRange
from broadcast.workers.messages import encode_ice_servers, encode_participant, encode_shaped_offer
from broadcast.workers.remotesession import RemoteViewerSession, local_error
from broadcast.workers.wire import KEYFRAME_FLAG, LOW_FLAG, VIDEO_FLAG, Channel, ChannelClosed, RemoteError

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

PUBLISHER_LOAD = 5  # a publisher's receive, recording and fan-out cost about five viewers
MAX_LINK_BACKLOG = 2 * 1024 * 1024  # a worker this far behind gets a feed's next keyframe, not the rest
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)
STABLE_AFTER_S = 30.0  # a worker that ran this long starts its backoff again from the first delay
START_TIMEOUT_S = 20.0


@dataclass
class WorkerSettings:
    count: int = 1  # processes holding viewers, the front included: 1 = the front alone
    argv: list[str] = field(default_factory=list)  # the worker program; the pool adds --fd and --index
    udp_ports: UdpPortRange | None = None  # split between the front and the workers
    # a worker that leaves a request unanswered this long is hung: it is killed and restarted
    # (its viewers' pages reconnect) and the viewer it was asked to take goes to the front
    request_timeout_s: float = 5.0


def split_ports(ports: UdpPortRange, parts: int) -> list[UdpPortRange]:
    """`ports` cut into `parts` ranges as equal as they can be (the front's first)."""
    if parts <= 1:
        return [ports]
    if ports.size < parts:
        raise ValueError(f"ice.udp_ports {ports.low}-{ports.high} has {ports.size} port(s), fewer than the "
                         f"{parts} processes of server.workers = {parts}; widen it or lower workers")
    ranges, low = [], ports.low
    for i in range(parts):
        size = ports.size // parts + (1 if i < ports.size % parts else 0)
        ranges.append(UdpPortRange(low, low + size - 1))
        low += size
    return ranges


class FeedTap:
    """A reader of one front producer that forwards its frames to one worker."""

    def __init__(self, link: FeedLink, producer: Producer, low: bool = False) -> None:
        self.link = link
        self.producer = producer
        self.low = low  # the feed's low rendition (made or published in the front)
        self.flags = (VIDEO_FLAG | (LOW_FLAG if low else 0)) if producer.kind == "video" else 0
        self.waiting_for_keyframe = False  # the worker's own producer asks while its viewers wait
        self.bytes_sent = 0      # the worker's viewers' figures for this producer, as last reported
        self.frames_dropped = 0
        self.link_drops = 0      # frames not sent because the worker link was backed up
        self._skipping = False

    def deliver(self, frame: EncodedFrame) -> None:
        channel = self.link.worker.channel
        if channel is None:
            return
        if self.flags and self._skipping and not frame.keyframe:
            self.link_drops += 1
            return
        if channel.backlog() > MAX_LINK_BACKLOG:
            self.link_drops += 1
            if self.flags:
                if not self._skipping:
                    logger.warning("worker %d is behind on %s; its viewers resume on the next keyframe",
                                   self.link.worker.index, self.link.path)
                self._skipping = True
                self.producer.request_keyframe()
            return
        self._skipping = False
        channel.send_frame(self.link.feed, self.flags | (KEYFRAME_FLAG if frame.keyframe else 0),
                           frame.timestamp, frame.data)

    def producer_reset(self, codec_changed: bool) -> None:
        self.link.worker.send({"type": "reset", "feed": self.link.feed, "kind": self.producer.kind,
                               "codec": self.producer.codec, "rendition": "low" if self.low else "high"})

    def stop(self) -> None:
        self.producer.remove_reader(self)


class FeedLink:
    """One feed followed by one worker: subscribed with its first viewer there, dropped with its last."""

    def __init__(self, worker: WorkerProcess, feed: int, stream: Stream) -> None:
        self.worker = worker
        self.feed = feed
        self.path = stream.path
        self.stream = stream
        self.viewers = 0
        worker.send({"type": "subscribe", "feed": feed, "path": str(stream.path),
                     "video_codec": stream.video.codec, "audio_codec": stream.audio.codec})
        self.taps = (FeedTap(self, stream.video), FeedTap(self, stream.audio))
        for tap in self.taps:
            tap.producer.add_reader(tap)
        self.low: FeedTap | None = None  # while the worker has viewers of the low rendition

    def want_low(self, wanted: bool) -> None:
        """The worker's viewers of the low rendition came (or all left): follow the front's low
        producer for it (its first reader here starts the encode, unless the publisher sends it)."""
        if wanted and self.low is None:
            self.low = FeedTap(self, self.stream.renditions.low, low=True)
            if self.low.producer.codec is not None:
                self.low.producer_reset(False)  # the worker's low producer takes the codec it has
            self.low.producer.add_reader(self.low)
        elif not wanted and self.low is not None:
            self.low.stop()
            self.low = None

    def request_keyframe(self, rendition: str) -> None:
        producer = self.stream.renditions.low if rendition == "low" else self.stream.video
        producer.request_keyframe()

    def report(self, figures: list[int]) -> None:
        video, audio = self.taps
        video.bytes_sent, video.frames_dropped, audio.bytes_sent, audio.frames_dropped = (int(f) for f in figures[:4])
        if self.low is not None and len(figures) >= 6:
            self.low.bytes_sent, self.low.frames_dropped = int(figures[4]), int(figures[5])

    def close(self, tell_worker: bool = True) -> None:
        for tap in self.taps:
            tap.stop()
        self.want_low(False)
        if tell_worker:
            self.worker.send({"type": "unsubscribe", "feed": self.feed})


class WorkerProcess:
    """One worker: its process, its link, the sessions it holds and the feeds it follows."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self.ready = False
        self.sessions: dict[str, RemoteViewerSession] = {}
        self.feeds: dict[StreamPath, FeedLink] = {}
        self._feed_ids = itertools.count(1)
        self.started_at = 0.0
        self.restarts = 0
        self._ready_event = asyncio.Event()

    @property
    def alive(self) -> bool:
        return self.channel is not None and not self.channel.closed

    @property
    def load(self) -> int:
        return len(self.sessions)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def send(self, message: dict[str, Any]) -> None:
        if self.channel is not None:
            self.channel.send(message)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.channel is None:
            raise ChannelClosed(f"worker {self.index} is not running")
        wait_s = self.pool.settings.request_timeout_s
        try:
            return await self.channel.request(message, wait_s)
        except TimeoutError:
            logger.warning("worker %d (pid %s) left a %s request unanswered for %.0f s; it is hung: "
                           "killing and restarting it", self.index, self.pid, message.get("type"), wait_s)
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the process (a hung worker): its link closes, which ends its sessions."""
        self.ready = False
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    # -- the process --------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.pool.settings
        front_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fd = worker_end.fileno()
            self.process = await asyncio.create_subprocess_exec(
                *settings.argv, "--fd", str(fd), "--index", str(self.index), pass_fds=(fd,))
        except BaseException:
            front_end.close()
            raise
        finally:
            worker_end.close()
        self.started_at = time.monotonic()
        self._ready_event = asyncio.Event()
        channel = Channel(self._on_control, _no_frames, self._on_lost, name=f"worker {self.index}")
        self.channel = channel
        await asyncio.get_running_loop().create_unix_connection(lambda: channel, sock=front_end)
        ports = self.pool.port_ranges[self.index] if self.pool.port_ranges else None
        session = self.pool.session_settings
        channel.send({"type": "hello", "ice_servers": encode_ice_servers(session.ice_servers),
                      "connect_timeout": session.connect_timeout, "fast_send": session.fast_send,
                      "udp_gso": session.udp_gso,
                      "udp_ports": [ports.low, ports.high] if ports else None})
        await asyncio.wait_for(self._ready_event.wait(), START_TIMEOUT_S)
        logger.info("worker %d (pid %s) is ready", self.index, self.pid)

    def _on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ready":
            self.ready = True
            self._ready_event.set()
        elif kind in ("keyframe", "low"):
            link = next((f for f in self.feeds.values() if f.feed == message.get("feed")), None)
            if link is None:
                return  # unsubscribed meanwhile
            if kind == "keyframe":
                link.request_keyframe(str(message.get("rendition", "high")))
            else:
                link.want_low(bool(message.get("wanted")))
        elif kind == "stats":
            self._take_stats(message)
        else:
            session = self.sessions.get(str(message.get("session")))
            if session is None:
                return
            if kind == "state":
                session.state_changed(str(message.get("state")))
            elif kind == "joined" and session.on_joined is not None:
                session.on_joined(float(message.get("seconds", 0.0)))
            elif kind == "closed":
                reason = CloseReason.__members__.get(str(message.get("reason")), CloseReason.OTHER)
                session.ended(reason, str(message.get("detail", "")))

    def _take_stats(self, message: dict[str, Any]) -> None:
        by_feed = message.get("feeds", {})
        for link in self.feeds.values():
            figures = by_feed.get(str(link.feed))
            if figures is not None:
                link.report(figures)
        for sid, state in message.get("sessions", {}).items():
            session = self.sessions.get(sid)
            if session is not None:
                session.state_changed(str(state))

    def _on_lost(self) -> None:
        """The link closed: the process exited or was killed. Its sessions are gone with it."""
        self.ready = False
        for link in list(self.feeds.values()):
            link.close(tell_worker=False)
        self.feeds.clear()
        if self.sessions:
            logger.warning("worker %d (pid %s) is gone with %d viewer session(s); their pages reconnect",
                           self.index, self.pid, len(self.sessions))
        lost = list(self.sessions.values())
        for session in lost:
            session.ended(CloseReason.CONNECTION_LOST, f"worker {self.index} ended")
        self.sessions.clear()
        if lost and self.pool.on_lost is not None:
            self.pool.on_lost(lost)
        if not self.pool.closing:
            self.pool.restart_later(self)

    # -- viewers ------------------------------------------------------------------------
    async def play(self, session: RemoteViewerSession, shaped: ShapedOffer) -> None:
        stream = session.stream
        link = self.feeds.get(stream.path)
        if link is None:
            link = self.feeds[stream.path] = FeedLink(self, next(self._feed_ids), stream)
        link.viewers += 1
        try:
            reply = await self.request({"type": "play", "feed": link.feed, "offer": encode_shaped_offer(shaped),
                                        "protocol": session.protocol, "quality": session.quality,
                                        "participant": encode_participant(session.participant)})
        except RemoteError as exc:
            self._viewer_left(stream.path)
            raise local_error(exc) from None
        except BaseException:
            self._viewer_left(stream.path)
            raise
        session.id = str(reply["session"])
        session.answer_sdp = str(reply["answer"])
        self.sessions[session.id] = session
        session.on_closed.append(self._forget)

    def _forget(self, session: RemoteViewerSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self._viewer_left(session.path)

    def _viewer_left(self, path: StreamPath) -> None:
        link = self.feeds.get(path)
        if link is not None:
            link.viewers -= 1
            if link.viewers <= 0:
                del self.feeds[path]
                link.close()

    async def stop(self) -> None:
        """Ask the worker to end its sessions and exit; kill it if it does not."""
        if self.alive and self.channel is not None:
            with contextlib.suppress(Exception):
                await self.channel.request({"type": "shutdown"}, 3.0)
        if self.channel is not None:
            self.channel.close()
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), 2.0)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _no_frames(feed: int, flags: int, timestamp: int, data: bytes) -> None:
    """Frames go to workers, never from them."""


class WorkerPool:
    def __init__(self, settings: WorkerSettings, session_settings: Callable[[], SessionSettings],
                 on_lost: Callable[[list[RemoteViewerSession]], None] | None = None) -> None:
        self.settings = settings
        self.on_lost = on_lost
        self._session_settings = session_settings
        self.workers = [WorkerProcess(self, i) for i in range(1, max(1, settings.count))]
        self.port_ranges: list[UdpPortRange] = (
            split_ports(settings.udp_ports, settings.count) if settings.udp_ports is not None else [])
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session_settings(self) -> SessionSettings:
        return self._session_settings()

    @property
    def front_ports(self) -> UdpPortRange | None:
        return self.port_ranges[0] if self.port_ranges else self.settings.udp_ports

    def start(self) -> None:
        """Start every worker in the background: until one is ready, the front takes its viewers."""
        for worker in self.workers:
            self._spawn(self._run(worker))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, worker: WorkerProcess) -> None:
        try:
            await worker.start()
        except Exception as exc:
            logger.error("worker %d did not start (%s); the front takes its viewers meanwhile",
                         worker.index, exc or type(exc).__name__)
            if worker.process is not None and worker.process.returncode is None:
                worker.process.kill()
            if worker.channel is not None and not worker.channel.closed:
                worker.channel.close()  # its loss schedules the next try
            else:
                self.restart_later(worker)

    def restart_later(self, worker: WorkerProcess) -> None:
        if self.closing:
            return
        if time.monotonic() - worker.started_at > STABLE_AFTER_S:
            worker.restarts = 0
        delay = RESTART_DELAYS_S[min(worker.restarts, len(RESTART_DELAYS_S) - 1)]
        worker.restarts += 1
        self._spawn(self._restart(worker, delay))

    async def _restart(self, worker: WorkerProcess, delay: float) -> None:
        if worker.process is not None:
            code = await worker.process.wait()
            logger.warning("worker %d (pid %s) exited with %s; restarting it in %.1f s",
                           worker.index, worker.pid, code, delay)
        await asyncio.sleep(delay)
        if not self.closing:
            await self._run(worker)

    def choose(self, front_load: int) -> WorkerProcess | None:
        """The least loaded ready worker, or None when the front is (ties go to a worker)."""
        best: WorkerProcess | None = None
        best_load = front_load
        for worker in self.workers:
            if worker.ready and worker.alive and worker.load <= best_load:
                best, best_load = worker, worker.load
        return best

    async def close(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            await stop_task(task)
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
