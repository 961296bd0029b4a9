"""WhepPull: a feed pulled from another server's WHEP endpoint (another ORcast, MediaMTX,
Janus's WHEP front …), relayed as encoded frames like a publisher's.

ORcast is the WHEP client here: a receive-only peer connection whose offer goes out through
`signal` (HTTP lives in the control plane, which gives it). Frames go through the same
receive path as a publisher's (frame on its marker, no decode); keyframe requests go upstream
as PLI. When the connection fails, ends, or brings nothing for SILENT_AFTER_S, the session is
hung up (WHEP DELETE) and made again with a backoff (1 s doubling to 30 s) while the feed
stays attached: its viewers resume on the first keyframe of the new connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.sdp import SessionDescription

from broadcast.errors import BroadcastError
from broadcast.relay.producer import Producer
from broadcast.sources.pulled import BACKOFF_FIRST_S, BACKOFF_MAX_S, Attach, PullSettings, PullState
from broadcast.webrtc.aiortchooks import EncodedFrameTap, install_receiver_tap, request_keyframe_upstream
from broadcast.webrtc.sdpoffer import SUPPORTED_VIDEO
from broadcast.webrtc.session import codec_name

logger = logging.getLogger(__name__)

SILENT_AFTER_S = 10.0
CONNECT_TIMEOUT_S = 15.0

# offer SDP → (answer SDP, the session's URL for the DELETE, if the server gave one);
# raises PullRefused with a message a person can act on
Signal = Callable[[str], Awaitable[tuple[str, str | None]]]
Hangup = Callable[[str], Awaitable[None]]


class PullRefused(Exception):
    """The other server refused the WHEP offer (its words, without the token)."""


class WhepPull(PullState):
    def __init__(self, settings: PullSettings, attach: Attach, signal: Signal, hangup: Hangup) -> None:
        super().__init__(settings)
        self._attach = attach
        self._signal = signal
        self._hangup = hangup
        self._video: Producer | None = None
        self._audio: Producer | None = None
        self._receiver: RTCRtpReceiver | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_frame = 0.0
        self._ended = asyncio.Event()  # this connection is over
        self._wake = asyncio.Event()   # close() was called: stop waiting
        self._now = False              # reconnect_now(): the next attempt without a wait
        self._session_url: str | None = None  # the current session's (a signal may pick the server)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closed = True
        self._ended.set()
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=CONNECT_TIMEOUT_S + 5)
            if not task.done():
                task.cancel()
        self.state = "stopped"

    async def request_keyframe(self) -> bool:
        receiver = self._receiver
        return receiver is not None and await request_keyframe_upstream(receiver)

    # -- one connection after another ---------------------------------------------------
    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while not self._closed:
            flowed = False
            try:
                flowed = await self._pull_once()
            except PullRefused as exc:
                self.error = str(exc)
            except (TimeoutError, OSError) as exc:
                self.error = f"{self.settings.shown_url} did not answer ({type(exc).__name__}); is that server up?"
            except BroadcastError as exc:
                self.error = f"the feed cannot take this source: {exc}"
            except Exception as exc:  # a remote that sends what aiortc cannot take: a state, never a crash
                logger.exception("%s: pulling %s failed", self.settings.path, self.settings.shown_url)
                self.error = f"the connection to {self.settings.shown_url} failed ({type(exc).__name__})"
            if self._closed:
                break
            if flowed:
                backoff = BACKOFF_FIRST_S
                self.error = self.error or "the other server stopped sending; reconnecting"
            self.state = "reconnecting" if self.connects else "connecting"
            logger.info("%s: %s; trying again in %.0f s", self.settings.path, self.error, backoff)
            if self._now:
                self._now = False
                continue  # told where the feed is now: no backoff
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def reconnect_now(self, why: str) -> None:
        """End this connection and make a new one at once (the feed moved to another server:
        its viewers here resume on the new connection's first keyframe)."""
        if self._closed:
            return
        logger.info("%s: %s; pulling again now", self.settings.path, why)
        self.error = why
        self._now = True
        self._ended.set()

    async def _pull_once(self) -> bool:
        pc = RTCPeerConnection()
        self._ended = asyncio.Event()  # for this connection (close() also sets it)
        session_url: str | None = None
        audio_seen = False
        taps: list[tuple[RTCRtpReceiver, str]] = []

        @pc.on("track")
        def on_track(track: Any) -> None:
            nonlocal audio_seen
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            install_receiver_tap(receiver, EncodedFrameTap(self._frame_sink(track.kind), self._ended.set), track.kind)
            taps.append((receiver, track.kind))
            audio_seen = audio_seen or track.kind == "audio"

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._ended.set()

        try:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            answer, session_url = await asyncio.wait_for(self._signal(pc.localDescription.sdp), CONNECT_TIMEOUT_S)
            self._session_url = session_url
            codec, profile = answer_video_codec(answer)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            self._receiver = next((r for r, kind in taps if kind == "video"), None)
            self._connected(codec, audio_seen, profile)
            return await self._watch()
        finally:
            self._receiver = None
            await pc.close()
            if session_url is not None:
                try:
                    await asyncio.wait_for(self._hangup(session_url), 5)
                except Exception as exc:  # the other server is gone: its session ends by itself
                    logger.debug("%s: WHEP DELETE failed (%s)", self.settings.path, type(exc).__name__)

    def _where(self) -> str:
        """What is pulled: the configured URL, or the server the signal went to when that is
        another (a cluster's pull goes to whichever node holds the feed now)."""
        shown, session = self.settings.shown_url, self._session_url
        if session is None:
            return shown
        at, went = urllib.parse.urlsplit(shown), urllib.parse.urlsplit(session)
        if (at.scheme, at.netloc) == (went.scheme, went.netloc):
            return shown
        return f"{went.scheme}://{went.netloc}{at.path}"

    async def _watch(self) -> bool:
        """Until the connection ends or goes silent; True if frames came."""
        started = time.monotonic()
        flowed = False
        while not self._ended.is_set():
            try:
                await asyncio.wait_for(self._ended.wait(), 1.0)
            except TimeoutError:
                pass
            now = time.monotonic()
            if self._last_frame > started:
                if not flowed:
                    flowed = True
                    self.state, self.error = "live", None
                    logger.info("%s: pulling %s (%s)", self.settings.path, self._where(), self.codec)
                if now - self._last_frame > SILENT_AFTER_S:
                    self.error = f"nothing came from {self.settings.shown_url} for {SILENT_AFTER_S:.0f} s"
                    break
            elif now - started > CONNECT_TIMEOUT_S + SILENT_AFTER_S:
                self.error = f"{self.settings.shown_url} answered but sent no media; is its feed live?"
                break
        return flowed

    def _connected(self, codec: str, has_audio: bool, h264_profile: str | None) -> None:
        self.codec = codec
        if self._video is None or self._audio is None:
            self._video, self._audio = self._attach(self, codec, has_audio, h264_profile)
        else:
            self._video.attach(self, codec)  # rebased; viewers wait for the new connection's keyframe
            if has_audio:
                self._audio.attach(self, "opus")
        if self.connects:
            self.reconnects += 1
        self.connects += 1

    def _frame_sink(self, kind: str) -> Callable[[RTCRtpCodecParameters, JitterFrame], None]:
        def sink(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            producer = self._video if kind == "video" else self._audio
            if producer is None or self._closed:
                return
            if kind == "video":
                if codec_name(codec) != self.codec:
                    return
                self._last_frame = time.monotonic()
            producer.push(self, frame.data, frame.timestamp, after_loss=getattr(frame, "after_loss", False))
        return sink


def answer_video_codec(answer: str) -> tuple[str, str | None]:
    """The video codec the other server answered with (and its H.264 profile-level-id);
    PullRefused if none ORcast relays."""
    try:
        description = SessionDescription.parse(answer)
    except Exception:
        raise PullRefused("the other server's answer is not valid SDP") from None
    for media in description.media:
        if media.kind == "video" and media.port != 0:
            for codec in media.rtp.codecs:
                name = codec_name(codec)
                if name in SUPPORTED_VIDEO:
                    profile = codec.parameters.get("profile-level-id") if name == "H264" else None
                    return name, str(profile).lower() if profile else None
    raise PullRefused("the other server offers no H.264 or VP8 video for this feed")
