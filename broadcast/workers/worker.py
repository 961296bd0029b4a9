"""A worker process: it holds viewers' WebRTC sessions (their peer connections and UDP
sockets) for the front process, which keeps everything else (publishers, recordings, Q&A,
thumbnails, the API).

Each feed a worker's viewers watch is mirrored here as a `Stream` whose producers are fed by
the front, one message per encoded frame; the viewers' consumers read those producers exactly
as in the front, so the send path is the same code. A keyframe a viewer needs is asked of the
front, which asks the publisher. When the front goes away (its socket closes), the worker ends
every session and exits: a worker never outlives its front.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from broadcast.errors import BroadcastError, SessionNotFound
from broadcast.lifecycle import CloseReason, start_every, stop_task
from broadcast.relay.renditions import QUALITIES
from broadcast.relay.stream import Stream
from broadcast.relay.streampath import StreamPath
from broadcast.webrtc.aiortchooks import check_internals, install_cheap_joins, install_fast_clock
from broadcast.webrtc.session import PeerSession, SessionSettings
from broadcast.webrtc.udpports import UdpPortRange, restrict_udp_ports
from broadcast.webrtc.viewer import ViewerSession
from broadcast.workers.messages import (
    decode_ice_servers,
    decode_participant,
    decode_shaped_offer,
    feed_figures,
)
from broadcast.workers.wire import KEYFRAME_FLAG, LOW_FLAG, VIDEO_FLAG, Channel

logger = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0


class FrontSource:
    """The source of a mirrored producer: the front's producer of the same feed."""

    def __init__(self, channel: Channel, feed: int, name: str, rendition: str = "high") -> None:
        self.channel = channel
        self.feed = feed
        self.name = name
        self.rendition = rendition

    async def request_keyframe(self) -> bool:
        self.channel.send({"type": "keyframe", "feed": self.feed, "rendition": self.rendition})
        return True


class FrontLow:
    """The low rendition's maker in a worker: the front makes it (once for every process) or
    its publisher sends it; this tells the front while the worker's viewers want it."""

    def __init__(self, channel: Channel, feed: int) -> None:
        self.channel = channel
        self.feed = feed

    def start(self) -> None:
        self.channel.send({"type": "low", "feed": self.feed, "wanted": True})

    def stop(self) -> None:
        if not self.channel.closed:
            self.channel.send({"type": "low", "feed": self.feed, "wanted": False})


class MirrorFeed:
    def __init__(self, channel: Channel, feed: int, path: StreamPath) -> None:
        self.feed = feed
        self.stream = Stream(path, make_low=lambda: FrontLow(channel, feed))
        # the front has its own grace before it stops an encode: none on top of it here
        self.stream.renditions.grace_s = 0.0
        self.video_source = FrontSource(channel, feed, f"the front's {path} video")
        self.audio_source = FrontSource(channel, feed, f"the front's {path} audio")
        self.low_source = FrontSource(channel, feed, f"the front's {path} low rendition", "low")

    def reset(self, kind: str, codec: str | None, rendition: str = "high") -> None:
        if kind == "video" and rendition == "low":
            producer, source = self.stream.renditions.low, self.low_source
        elif kind == "video":
            producer, source = self.stream.video, self.video_source
        else:
            producer, source = self.stream.audio, self.audio_source
        if codec is None:
            producer.detach(source)
        else:
            producer.attach(source, codec)


class WorkerServer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.channel = Channel(self._on_control, self._on_frame, self._on_lost, name="front")
        self.settings = SessionSettings()
        self.feeds: dict[int, MirrorFeed] = {}
        self.sessions: dict[str, ViewerSession] = {}
        self.done = asyncio.Event()
        self._stats: asyncio.Task[None] | None = None
        self._handlers = {
            "hello": self._hello, "subscribe": self._subscribe, "reset": self._reset,
            "unsubscribe": self._unsubscribe, "play": self._play, "ice": self._ice,
            "close": self._close_session, "shutdown": self._shutdown, "quality": self._quality,
        }

    # -- from the front -----------------------------------------------------------------
    def _on_control(self, message: dict[str, Any]) -> None:
        handler = self._handlers.get(str(message.get("type")))
        if handler is None:
            logger.warning("worker %d: unknown message %r from the front", self.index, message.get("type"))
            return
        result = handler(message)
        if asyncio.iscoroutine(result):
            asyncio.get_running_loop().create_task(self._answer(message, result))

    async def _answer(self, request: dict[str, Any], work: Any) -> None:
        try:
            fields = await work
        except Exception as exc:
            if not isinstance(exc, BroadcastError):
                logger.exception("worker %d: %s failed", self.index, request.get("type"))
            self.channel.reply_error(request, exc)
            return
        self.channel.reply(request, **(fields or {}))

    def _on_frame(self, feed: int, flags: int, timestamp: int, data: bytes) -> None:
        mirror = self.feeds.get(feed)
        if mirror is None:
            return  # unsubscribed while the frame was on its way
        keyframe = bool(flags & KEYFRAME_FLAG)  # the front read it once, for every worker
        if flags & LOW_FLAG:
            mirror.stream.renditions.low.push(mirror.low_source, data, timestamp, keyframe=keyframe)
        elif flags & VIDEO_FLAG:
            mirror.stream.video.push(mirror.video_source, data, timestamp, keyframe=keyframe)
        else:
            mirror.stream.audio.push(mirror.audio_source, data, timestamp, keyframe=True)

    def _on_lost(self) -> None:
        if not self.done.is_set():
            logger.info("worker %d: the front is gone; ending %d session(s)", self.index, len(self.sessions))
            asyncio.get_running_loop().create_task(self._end(CloseReason.SHUTDOWN))

    def _hello(self, message: dict[str, Any]) -> None:
        self.settings = SessionSettings(decode_ice_servers(message.get("ice_servers", [])),
                                        float(message["connect_timeout"]), bool(message["fast_send"]),
                                        bool(message.get("udp_gso", True)))
        ports = message.get("udp_ports")
        if ports is not None:
            restrict_udp_ports(asyncio.get_running_loop(), UdpPortRange(int(ports[0]), int(ports[1])))
        self._stats = start_every(STATS_INTERVAL_S, self._send_stats, "reporting to the front")
        self.channel.send({"type": "ready", "index": self.index})

    def _subscribe(self, message: dict[str, Any]) -> None:
        feed = int(message["feed"])
        mirror = MirrorFeed(self.channel, feed, StreamPath.parse(str(message["path"])))
        self.feeds[feed] = mirror
        mirror.reset("video", message.get("video_codec"))
        mirror.reset("audio", message.get("audio_codec"))

    def _reset(self, message: dict[str, Any]) -> None:
        mirror = self.feeds.get(int(message["feed"]))
        if mirror is not None:
            mirror.reset(str(message["kind"]), message.get("codec"), str(message.get("rendition", "high")))

    def _unsubscribe(self, message: dict[str, Any]) -> None:
        mirror = self.feeds.pop(int(message["feed"]), None)
        if mirror is not None:
            mirror.stream.close()  # ends any consumer left (its session closes)

    async def _play(self, message: dict[str, Any]) -> dict[str, Any]:
        mirror = self.feeds.get(int(message["feed"]))
        if mirror is None:
            raise BroadcastError("the feed is not followed by this worker; try again")
        shaped = decode_shaped_offer(message["offer"])
        quality = str(message.get("quality", "auto"))
        if quality not in QUALITIES:
            raise BroadcastError(f"quality must be one of {', '.join(QUALITIES)}")
        session = ViewerSession(mirror.stream, self.settings, str(message.get("protocol", "whep")),
                                decode_participant(message.get("participant")), quality=quality)
        sid = session.id
        session.on_joined = lambda seconds: self.channel.send({"type": "joined", "session": sid, "seconds": seconds})
        session.on_closed.append(self._on_session_closed)
        session.pc.on("connectionstatechange", lambda: self._report_state(session))
        self.sessions[sid] = session
        mirror.stream.viewers.add(session)
        try:
            await session.start(shaped)
        except BaseException:
            await session.close(CloseReason.FAILED)
            raise
        return {"session": sid, "answer": session.answer_sdp}

    async def _quality(self, message: dict[str, Any]) -> dict[str, Any]:
        """What a viewer gets and why (GET {session}/quality), or a change of it (POST)."""
        session = self.sessions.get(str(message["session"]))
        if session is None:
            raise SessionNotFound("no such session (it may have ended); start a new one")
        quality = message.get("quality")
        if quality is not None:
            if quality not in QUALITIES:
                raise BroadcastError(f"quality must be one of {', '.join(QUALITIES)}")
            session.set_quality(str(quality))
        return {"status": session.quality_status()}

    async def _ice(self, message: dict[str, Any]) -> dict[str, Any]:
        session = self.sessions.get(str(message["session"]))
        if session is None:
            raise BroadcastError("no such session (it may have ended); start a new one")
        await session.add_ice_fragment(str(message["fragment"]))
        return {}

    def _close_session(self, message: dict[str, Any]) -> None:
        session = self.sessions.get(str(message["session"]))
        if session is not None:
            reason = CloseReason.__members__.get(str(message.get("reason")), CloseReason.OTHER)
            asyncio.get_running_loop().create_task(session.close(reason, str(message.get("detail", ""))))

    async def _shutdown(self, message: dict[str, Any]) -> dict[str, Any]:
        await self._end(CloseReason.SHUTDOWN)
        return {}

    # -- to the front -------------------------------------------------------------------
    def _report_state(self, session: ViewerSession) -> None:
        self.channel.send({"type": "state", "session": session.id, "state": session.connection_state})

    def _on_session_closed(self, session: PeerSession) -> None:
        self.sessions.pop(session.id, None)
        if isinstance(session, ViewerSession):
            session.stream.viewers.discard(session)
        self.channel.send({"type": "closed", "session": session.id, "reason": session.close_reason.name,
                           "detail": session.close_detail})

    def _send_stats(self) -> None:
        self.channel.send({
            "type": "stats",
            "feeds": {str(feed): feed_figures(m.stream) for feed, m in self.feeds.items()},
            "sessions": {sid: s.connection_state for sid, s in self.sessions.items()},
        })

    async def _end(self, reason: CloseReason) -> None:
        if self.done.is_set():
            return
        await stop_task(self._stats)
        await asyncio.gather(*(s.close(reason) for s in list(self.sessions.values())), return_exceptions=True)
        for mirror in self.feeds.values():
            mirror.stream.close()
        self.feeds.clear()
        self.done.set()


async def serve(sock: socket.socket, index: int) -> None:
    """Run a worker on `sock` (its end of the socket pair) until the front says stop or goes."""
    check_internals()
    install_fast_clock()
    install_cheap_joins()
    server = WorkerServer(index)
    loop = asyncio.get_running_loop()
    await loop.create_unix_connection(lambda: server.channel, sock=sock)
    await server.done.wait()
    await asyncio.sleep(0.05)  # let the last replies leave
    server.channel.close()
