"""The media plane's one entry point: publish and play stream paths, list them, close.

Protocol adapters (WHIP, WHEP, WebSocket, the REST API) call this and nothing below it;
SDP crosses in and out as strings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCDataChannel

from broadcast.errors import InvalidSource, Overloaded, SessionNotFound, StreamBusy, StreamNotLive
from broadcast.hls.service import HlsService, HlsSettings
from broadcast.lifecycle import CloseReason, notify, start_every, stop_task
from broadcast.participant import Participant
from broadcast.qa.boards import QaBoards, QaSettings
from broadcast.recording.manager import RecordingManager, RecordingSettings
from broadcast.relay.connection import Connection
from broadcast.relay.producer import Producer, Source
from broadcast.relay.stream import STALLED_AFTER_S, PrivacyPause, Stream, StreamInfo
from broadcast.relay.streampath import StreamPath
from broadcast.relay.thumbnailer import Thumbnails
from broadcast.sources.ondemand import GRACE_S, OnDemandPull
from broadcast.sources.pulled import Attach, PulledSource, PullSettings, check_url
from broadcast.webrtc.aiortchooks import check_internals, install_cheap_joins, install_fast_clock
from broadcast.webrtc.datasession import QaSession
from broadcast.webrtc.publisher import PublisherSession
from broadcast.webrtc.sdpoffer import (
    SUPPORTED_VIDEO,
    ShapedOffer,
    shape_data_offer,
    shape_play_offer,
    shape_publish_offer,
)
from broadcast.webrtc.session import IceServer, PeerSession, SessionSettings
from broadcast.webrtc.udpports import UdpPortRange, restrict_udp_ports
from broadcast.webrtc.viewer import ViewerSession
from broadcast.webrtc.wheppull import Hangup, Signal, WhepPull
from broadcast.workers.pool import PUBLISHER_LOAD, WorkerPool, WorkerProcess, WorkerSettings
from broadcast.workers.remotesession import RemoteViewerSession
from broadcast.workers.wire import ChannelClosed

logger = logging.getLogger(__name__)

# a viewer session held here or in a worker process; publishers and Q&A are always here
Session = PeerSession | RemoteViewerSession


@dataclass
class BroadcastSettings:
    ice_servers: list[IceServer] = field(default_factory=list)
    max_sessions: int = 2000  # the audience: viewers and Q&A connections
    max_publishers: int = 200  # counted apart, so that the audience never locks out an OR
    connect_timeout: float = 30.0
    video_codecs: tuple[str, ...] = SUPPORTED_VIDEO  # preference when a publisher offers several
    retry_after: int = 2  # seconds a viewer of a feed that is not live should wait
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    qa: QaSettings = field(default_factory=QaSettings)
    udp_ports: UdpPortRange | None = None  # bind WebRTC's UDP sockets in this range
    fast_send: bool = True  # viewers' RTP through the relay's own send path (False: aiortc's sender)
    udp_gso: bool = True    # the fast path batches a frame's packets with UDP GSO where it can
    workers: WorkerSettings = field(default_factory=WorkerSettings)  # processes that hold viewers
    on_demand_grace_s: float = GRACE_S  # an on-demand source pulls on this long after its last viewer
    hls: HlsSettings = field(default_factory=HlsSettings)


class Broadcaster:
    def __init__(self, settings: BroadcastSettings | None = None) -> None:
        check_internals()
        install_fast_clock()
        install_cheap_joins()
        self.settings = settings or BroadcastSettings()
        self.streams: dict[StreamPath, Stream] = {}
        # feeds ORcast fetches (cameras, servers)
        self.pulled: dict[StreamPath, PulledSource | WhepPull | OnDemandPull] = {}
        # the control plane's WHEP client, for pulls from another server: settings → (signal, hangup)
        self.whep_client: Callable[[PullSettings], tuple[Signal, Hangup]] | None = None
        self.sessions: dict[str, Session] = {}
        self.recordings = RecordingManager(self.settings.recording, self.streams)
        self.thumbnails = Thumbnails()
        self.privacy: dict[StreamPath, PrivacyPause] = {}  # feeds paused for privacy
        self.hls = HlsService(self.settings.hls, self.streams)  # LL-HLS, made while someone asks for it
        self.hls.demand_listeners.append(self._review_demand)
        # told each viewer's join time (WHEP answer → first video frame sent), e.g. for metrics
        self.join_listeners: list[Callable[[float], None]] = []
        # told the sessions a dead worker process took with it, so their pages can come back at once
        self.lost_listeners: list[Callable[[list[RemoteViewerSession]], None]] = []
        self.qa = QaBoards(self.settings.qa)
        self._sampler: asyncio.Task[None] | None = None
        self._publish_locks: dict[StreamPath, asyncio.Lock] = {}
        self._demand_tasks: set[asyncio.Task[None]] = set()
        self.recordings.rules_listeners.append(self._review_all_demand)
        self._closed = False
        self.workers: WorkerPool | None = (
            WorkerPool(self.settings.workers, lambda: self.session_settings,
                       lambda lost: notify(self.lost_listeners, lost, what="a lost-sessions listener"))
            if self.settings.workers.count > 1 else None)

    @property
    def session_settings(self) -> SessionSettings:
        return SessionSettings(self.settings.ice_servers, self.settings.connect_timeout, self.settings.fast_send,
                               self.settings.udp_gso)

    def start(self) -> None:
        """Start the once-a-second rate sampler (call from a running loop)."""
        if self._sampler is None:
            ports = self.workers.front_ports if self.workers is not None else self.settings.udp_ports
            if ports is not None:
                restrict_udp_ports(asyncio.get_running_loop(), ports)
            self._sampler = start_every(1.0, self._sample_rates, "sampling the feeds' rates", first_after=0.0)
            self.hls.start()

    async def open(self, record_policy: Callable[[str], bool] | None = None,
                   accepts_theatre: Callable[[str, str], bool] | None = None) -> None:
        """Start everything the media plane owns, before anyone connects: the sampler, the
        recordings (repairing what a crash left open, then recording what the rules say) and
        the Q&A store (a broken file stops the start, not a question). `close()` ends them."""
        self.start()
        if record_policy is not None:
            self.recordings.policy = record_policy
        if accepts_theatre is not None:
            self.qa.accepts_theatre = accepts_theatre
        self.qa.store  # noqa: B018 -- opens the database now
        await self.recordings.start()
        if self.workers is not None:
            self.workers.start()

    def _sample_rates(self) -> None:
        for stream in list(self.streams.values()):
            stream.sample_rates()

    def _check_capacity(self) -> None:
        """The audience's limit: viewers and Q&A connections (publishers are counted apart)."""
        audience = len(self.sessions) - len(self.publishers)
        if audience >= self.settings.max_sessions:
            raise Overloaded(
                f"the server is at its limit of {self.settings.max_sessions} sessions; "
                "try again shortly or ask the operator to raise limits.max_sessions"
            )

    def _check_publisher_capacity(self) -> None:
        # apart from the audience's limit: viewers retrying for a slot never lock out an OR
        if len(self.publishers) >= self.settings.max_publishers:
            raise Overloaded(
                f"the server already takes {self.settings.max_publishers} publishers, its limit; "
                "stop a feed that is not needed or ask the operator to raise limits.max_publishers"
            )

    @property
    def publishers(self) -> list[PublisherSession]:
        return [s for s in self.sessions.values() if isinstance(s, PublisherSession)]

    # -- publishing ---------------------------------------------------------------------
    async def publish(self, path: StreamPath, offer_sdp: str, protocol: str = "whip",
                      participant: Participant | None = None) -> PublisherSession:
        """Start a publisher session on `path`. Raises BroadcastError subclasses.

        A feed that is live already is taken over at once by a new session of the same link
        (an encoder or page that came back before its old session timed out) or when its
        publisher has been silent for STALLED_AFTER_S; otherwise the new one is refused.
        Viewers stay connected through the change and resume on the new publisher's first
        keyframe.
        """
        lock = self._publish_locks.setdefault(path, asyncio.Lock())
        try:
            async with lock:  # two encoders racing for one feed: one after the other
                return await self._publish(path, offer_sdp, protocol, participant)
        finally:
            if not lock.locked() and self._publish_locks.get(path) is lock:
                del self._publish_locks[path]

    async def _publish(self, path: StreamPath, offer_sdp: str, protocol: str,
                       participant: Participant | None) -> PublisherSession:
        self._check_publisher_capacity()
        existing = self.streams.get(path)
        replacing = self._publisher_to_replace(existing, participant) if existing is not None else None
        keep = existing.video.codec if existing is not None and existing.viewers else None
        shaped = shape_publish_offer(offer_sdp, self.settings.video_codecs, keep)
        if replacing is not None:
            old, why = replacing
            logger.warning("%s: %s is replaced by a new %s session%s (%s)", path, old.log_name(), protocol,
                           f" of {participant.describe()}" if participant else "", why)
            await old.close(CloseReason.REPLACED, why)
        stream = self.streams.get(path) or self._new_stream(path)
        session = PublisherSession(stream, self.session_settings, protocol, participant)
        stream.publisher = session
        await self._start(session, shaped)
        stream.mark_live(protocol)
        logger.info("%s: live (%s%s)", path, shaped.video_codec or "no video",
                    ", opus" if shaped.has_audio else "")
        self._went_live(stream)
        return session

    def _publisher_to_replace(self, stream: Stream, participant: Participant | None,
                              ) -> tuple[Connection, str] | None:
        """The live publisher a new session takes over, with why; raises StreamBusy if it may not."""
        if not stream.live:
            return None
        current = stream.publisher
        if current is None:  # an in-process source (the demo feed) is never replaced
            raise StreamBusy(f"{stream.path} is live from the server's own {stream.publisher_kind} source; "
                             "publish to another feed name")
        owner = current.participant
        if (participant is not None and owner is not None and not participant.guest
                and owner.token_id == participant.token_id):
            return current, "same link"
        silent = stream.silent_for()
        if silent >= STALLED_AFTER_S:
            return current, f"it sent no media for {silent:.0f} s"
        who = owner.describe_public() if owner is not None else "another publisher"
        since = time.strftime("%H:%M:%S", time.localtime(time.time() - (time.monotonic() - current.created_at)))
        raise StreamBusy(
            f"{stream.path} is live from {who} (since {since}, sending media); only that link may "
            f"take it over, or anyone once it has been silent for {STALLED_AFTER_S:.0f} s. "
            "Publish to another feed name, or stop the other publisher first",
            retry_after=math.ceil(STALLED_AFTER_S),
        )

    def attach_source(self, path: StreamPath, video: tuple[Source, str] | None,
                      audio: Source | None, kind: str = "synthetic",
                      h264_profile: str | None = None) -> Stream:
        """Publish from an in-process source (the demo's synthetic OR feed, files).

        The source pushes frames into `stream.video` / `stream.audio` itself.
        """
        stream = self.streams.get(path) or self._new_stream(path)
        if stream.live or stream.publisher is not None:
            raise StreamBusy(f"{path} is already live; stop its publisher first")
        if video is not None:
            stream.video.attach(video[0], video[1])
            stream.local_source = video[0]
            stream.h264_profile = h264_profile
        if audio is not None:
            stream.audio.attach(audio, "opus")
            stream.local_source = stream.local_source or audio
        stream.mark_live(kind)
        self._went_live(stream)
        return stream

    def detach_source(self, path: StreamPath) -> None:
        stream = self.streams.get(path)
        if stream is not None and stream.local_source is not None:
            stream.local_source = None
            stream.mark_offline()
            self._went_offline(stream)
            self._forget_if_idle(stream)

    # -- pulled sources (IP cameras) ---------------------------------------------------
    def add_pulled_source(self, settings: PullSettings) -> PulledSource | WhepPull | OnDemandPull:
        """Start pulling `settings.url` into its feed; the feed goes live with the camera's
        first frames and stays attached through reconnections. An on-demand source starts
        with its first viewer instead (or when the recording rules want its feed). Raises
        StreamBusy, InvalidSource."""
        try:
            path = StreamPath.parse(settings.path)
        except ValueError as exc:
            raise InvalidSource(str(exc)) from None
        check_url(settings.url)
        if path in self.pulled:
            raise StreamBusy(f"{path} is already pulled from {self.pulled[path].settings.shown_url}; "
                             "remove that source first")
        stream = self.streams.get(path)
        if stream is not None and (stream.live or stream.publisher is not None):
            raise StreamBusy(f"{path} is live from a publisher; stop it or pull into another feed name")
        if settings.kind == "whep" and self.whep_client is None:
            raise InvalidSource("this server cannot pull WHEP urls (no HTTP client was given to the media plane)")

        def attach(source: Any, codec: str, has_audio: bool, h264_profile: str | None) -> tuple[Producer, Producer]:
            stream = self.attach_source(path, (source, codec), source if has_audio else None, kind=settings.kind,
                                        h264_profile=h264_profile)
            return stream.video, stream.audio

        source: PulledSource | WhepPull | OnDemandPull
        if settings.on_demand:
            source = OnDemandPull(settings, attach, self._make_pull, self._pull_stopped(path),
                                  lambda: self._wanted(path), self.settings.on_demand_grace_s)
            self.pulled[path] = source
            self._review_demand(path)  # a feed the recording rules want is pulled at once
            return source
        source = self._make_pull(settings, attach)
        self.pulled[path] = source
        source.start()
        return source

    def _make_pull(self, settings: PullSettings, attach: Attach) -> PulledSource | WhepPull:
        if settings.kind == "whep":
            assert self.whep_client is not None  # checked by add_pulled_source
            signal, hangup = self.whep_client(settings)
            return WhepPull(settings, attach, signal, hangup)
        return PulledSource(settings, attach)

    def _pull_stopped(self, path: StreamPath) -> Callable[[Any], None]:
        def stopped(pull: Any) -> None:
            stream = self.streams.get(path)
            if stream is not None and stream.local_source is pull:
                self.detach_source(path)
        return stopped

    async def remove_pulled_source(self, path: StreamPath) -> bool:
        source = self.pulled.pop(path, None)
        if source is None:
            return False
        await source.close()
        self._pull_stopped(path)(source)
        return True

    def _published(self, path: StreamPath) -> bool:
        stream = self.streams.get(path)
        return stream is not None and stream.publisher is not None

    def _wanted(self, path: StreamPath) -> bool:
        """Someone watches the feed (or is joining), or the recording rules want it, and no
        publisher feeds it instead (a WHIP encoder may take an idle on-demand feed)."""
        if self._published(path):
            return False
        stream = self.streams.get(path)
        return (stream is not None and bool(stream.viewers)) or self.recordings.wants(path) or self.hls.wants(path)

    def _review_demand(self, path: StreamPath) -> None:
        """Start or let go of an on-demand source after its feed's viewers or rules changed."""
        source = self.pulled.get(path)
        if not isinstance(source, OnDemandPull) or self._closed:
            return
        if not self._wanted(path):
            source.release()
        elif not source.running or source.letting_go:
            task = asyncio.get_running_loop().create_task(source.want(wait=False))
            self._demand_tasks.add(task)
            task.add_done_callback(self._demand_started)

    def _demand_started(self, task: asyncio.Task[None]) -> None:
        self._demand_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("an on-demand source could not start", exc_info=task.exception())

    def _review_all_demand(self) -> None:
        for path in list(self.pulled):
            self._review_demand(path)

    # -- playing ------------------------------------------------------------------------
    async def play(self, path: StreamPath, offer_sdp: str, protocol: str = "whep",
                   participant: Participant | None = None, quality: str = "auto",
                   ) -> ViewerSession | RemoteViewerSession:
        """Start a viewer session on `path`.

        A feed whose publisher is reconnecting (the stream still has viewers or was live
        with a known codec) accepts new viewers, who start with the publisher's return.
        """
        self._check_capacity()
        on_demand = self.pulled.get(path)
        if isinstance(on_demand, OnDemandPull) and not self._published(path):
            try:
                await on_demand.want()  # the first viewer starts the pull; the answer needs its codecs
            except BaseException:
                self._review_demand(path)
                raise
        try:
            return await self._play(path, offer_sdp, protocol, participant, quality)
        finally:
            if on_demand is not None:
                self._review_demand(path)  # a viewer that did not get in leaves nobody wanting it

    async def _play(self, path: StreamPath, offer_sdp: str, protocol: str, participant: Participant | None,
                    quality: str) -> ViewerSession | RemoteViewerSession:
        stream = self.streams.get(path)
        if stream is None or (stream.video.codec is None and stream.audio.codec is None):
            raise StreamNotLive(
                f"{path} is not live yet; retry in {self.settings.retry_after} s",
                self.settings.retry_after,
            )
        shaped = shape_play_offer(offer_sdp, stream.video.codec, stream.h264_profile)
        # an offer with a data channel stays here, with the Q&A board it talks to
        worker = (self.workers.choose(self._front_load())
                  if self.workers is not None and "m=application" not in shaped.sdp else None)
        if worker is not None:
            try:
                return await self._play_in_worker(worker, stream, shaped, protocol, participant, quality)
            except (ChannelClosed, TimeoutError) as exc:
                logger.warning("%s: worker %d could not take a viewer (%s); the front takes it",
                               path, worker.index, exc or type(exc).__name__)
        session = ViewerSession(stream, self.session_settings, protocol, participant, quality)
        session.on_joined = self._joined
        stream.viewers.add(session)
        await self._start(session, shaped)
        return session

    def _front_load(self) -> int:
        viewers = sum(isinstance(s, ViewerSession) for s in self.sessions.values())
        return viewers + PUBLISHER_LOAD * len(self.publishers)

    async def _play_in_worker(self, worker: WorkerProcess, stream: Stream, shaped: ShapedOffer,
                              protocol: str, participant: Participant | None, quality: str) -> RemoteViewerSession:
        session = RemoteViewerSession(worker, stream, protocol, participant, quality)
        stream.viewers.add(session)  # the feed's viewer while it negotiates: the stream stays
        try:
            await worker.play(session, shaped)
        except BaseException as exc:
            stream.viewers.discard(session)
            if not isinstance(exc, (ChannelClosed, TimeoutError)):  # those: the front takes the viewer
                self._forget_if_idle(stream)
            raise
        session.on_joined = self._joined
        self.sessions[session.id] = session
        session.on_closed.append(self._on_session_closed)
        if session.closed:  # it ended before it was registered
            self._on_session_closed(session)
        return session

    def _joined(self, seconds: float) -> None:
        notify(self.join_listeners, seconds, what="a join time listener")

    def _went_live(self, stream: Stream) -> None:
        """The readers that follow every live feed: its recorder (if wanted), its HLS muxer (if
        asked for) and thumbnailer."""
        self.recordings.on_live(stream)
        self.hls.on_live(stream)
        self.thumbnails.on_live(stream)

    def _went_offline(self, stream: Stream) -> None:
        self.recordings.on_offline(stream)
        self.hls.on_offline(stream)
        self.thumbnails.on_offline(stream)

    # -- the Q&A ------------------------------------------------------------------------
    async def join_qa(self, event: str, offer_sdp: str, participant: Participant | None = None) -> QaSession:
        """A connection carrying only the `qa` data channel (every media session may carry one too)."""
        self._check_capacity()
        shaped = shape_data_offer(offer_sdp)
        session = QaSession(event, self.session_settings, participant)
        await self._start(session, shaped)
        return session

    def _on_datachannel(self, session: PeerSession, channel: RTCDataChannel) -> None:
        client = self.qa.attach(channel, session.participant, session.event)
        if client is not None:
            session.on_closed.append(lambda _: client.close())

    # -- sessions -----------------------------------------------------------------------
    def _new_stream(self, path: StreamPath) -> Stream:
        stream = Stream(path)
        self.streams[path] = stream
        pause = self.privacy.get(path)
        if pause is not None:
            stream.set_privacy(pause)  # a pause outlives the publisher's reconnect
        return stream

    # -- the privacy pause ---------------------------------------------------------------
    def set_privacy(self, path: StreamPath, pause: PrivacyPause | None) -> Stream:
        """Pause a feed's pictures at once (the patient's face in the room camera), or resume
        them on the next keyframe. Nothing the source sends while paused leaves the server:
        viewers, workers, the recorder (a gap in the file) and HLS get nothing, and the feed's
        last still is forgotten."""
        if pause is not None:
            self.privacy[path] = pause
        else:
            self.privacy.pop(path, None)
        stream = self.streams.get(path) or self._new_stream(path)
        stream.set_privacy(pause)
        if pause is not None:
            self.thumbnails.forget(path)
        return stream

    async def _start(self, session: PublisherSession | ViewerSession | QaSession, shaped: ShapedOffer) -> None:
        """Register and negotiate; a session that fails to start is closed before the error leaves."""
        self._register(session)
        try:
            await session.start(shaped)
        except BaseException:
            await session.close()
            raise

    def _register(self, session: PeerSession) -> None:
        self.sessions[session.id] = session
        session.on_closed.append(self._on_session_closed)
        session.on_datachannel = self._on_datachannel

    def _on_session_closed(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        stream = self.streams.get(session.path) if session.path is not None else None
        if stream is None:
            return
        if stream.publisher is session:
            stream.publisher = None
            stream.mark_offline()
            self._went_offline(stream)
            logger.info("%s: publisher left; %d viewer(s) wait for it to return",
                        stream.path, len(stream.viewers))
        stream.viewers.discard(session)
        self._forget_if_idle(stream)
        if stream.path in self.pulled:
            self._review_demand(stream.path)

    def _forget_if_idle(self, stream: Stream) -> None:
        if stream.idle and self.streams.get(stream.path) is stream:
            del self.streams[stream.path]
            stream.close()

    def get_session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise SessionNotFound("no such session (it may have ended); start a new one")
        return session

    def worker_rows(self) -> list[dict[str, Any]]:
        """Each process that holds viewers, the front (index 0) first: for /readyz and metrics."""
        rows: list[dict[str, Any]] = [{"index": 0, "pid": os.getpid(), "ready": True, "restarts": 0,
                                       "viewers": sum(isinstance(s, ViewerSession) for s in self.sessions.values())}]
        for worker in self.workers.workers if self.workers is not None else []:
            rows.append({"index": worker.index, "pid": worker.pid, "ready": worker.ready and worker.alive,
                         "restarts": worker.restarts, "viewers": worker.load})
        return rows

    def stream_infos(self) -> list[StreamInfo]:
        """Every feed that has a stream, and every on-demand source that is not pulling (not
        live, but a viewer may start it)."""
        infos = []
        on_demand = {p: s for p, s in self.pulled.items() if isinstance(s, OnDemandPull)}
        for stream in self.streams.values():
            info = stream.info()
            if self.recordings.recorders or self.recordings.ended:
                info = dataclasses.replace(info, recording=self.recordings.status(stream.path).state)
            if stream.path in on_demand:
                info = dataclasses.replace(info, on_demand=True)
            infos.append(info)
        for path, source in on_demand.items():
            if path not in self.streams:
                infos.append(StreamInfo(
                    path=str(path), live=False, video_codec=None, h264_profile=None, audio_codec=None, width=None,
                    height=None, publisher=source.settings.kind, uptime_s=None, viewers=0, bitrate_in_bps=0,
                    bitrate_out_bps=0, frames_in=0, frames_dropped=0, keyframe_requests=0,
                    source_error=source.error, on_demand=True))
        return sorted(infos, key=lambda info: info.path)

    async def close(self) -> None:
        """Idempotent: closes every session and stream."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(self.remove_pulled_source(p) for p in list(self.pulled)), return_exceptions=True)
        self.qa.say_goodbye("the server is restarting; the Q&A comes back by itself")
        await self.recordings.close()
        await self.hls.close()
        self.thumbnails.close()
        await stop_task(self._sampler)
        await asyncio.gather(*(s.close(CloseReason.SHUTDOWN) for s in list(self.sessions.values())),
                             return_exceptions=True)
        if self.workers is not None:
            await self.workers.close()
        for stream in list(self.streams.values()):
            stream.close()
        self.streams.clear()
        self.qa.close()
