"""A pulled source: a feed that ORcast fetches from a URL (an IP camera over RTSP) instead of
one a publisher pushes.

FFmpeg's demuxer (PyAV) runs in a thread of its own, never on the event loop: opening a
camera that does not answer, or a read that blocks, holds only that thread. Encoded video
goes to the relay as it comes (H.264, VP8: no decode); audio that is not Opus (IP cameras
send AAC) is transcoded once per feed to Opus in the same thread. When the camera drops, the
thread reconnects with a backoff (1 s doubling to 30 s) while the feed stays attached: its
viewers stay connected and resume on the camera's first keyframe.

The URL's password never leaves this module: every state, log line and error shows the URL
through `redact_url`, and FFmpeg's error texts (which quote the URL) go through `scrub`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broadcast.errors import BroadcastError, InvalidSource
from broadcast.relay.frame import VIDEO_CLOCK_RATE
from broadcast.relay.producer import Producer
from broadcast.sources.mediaconvert import (
    AnnexB,
    AudioTranscoder,
    PictureAssembler,
    VideoTranscoder,
    h264_profile_level_id,
)

logger = logging.getLogger(__name__)

RTSP_SCHEMES = ("rtsp", "rtsps")
WHEP_SCHEMES = ("http", "https")  # another server's WHEP endpoint (ORcast, MediaMTX, Janus …)
SCHEMES = RTSP_SCHEMES + WHEP_SCHEMES
TRANSPORTS = ("tcp", "udp")
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0
PASSTHROUGH_VIDEO = {"h264": "H264", "vp8": "VP8"}


def redact_url(url: str) -> str:
    """`url` with its password (and any query string, which may carry a token) masked."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<an unreadable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrub(text: str, url: str) -> str:
    """`text` (an FFmpeg error, which quotes the URL) without the URL's secrets."""
    text = text.replace(url, redact_url(url))
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***").replace(urllib.parse.quote(password, safe=""), "***")
    return text


def check_url(url: str) -> str:
    """The URL, or InvalidSource saying what is wrong with it (without echoing a password)."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise InvalidSource("a source needs a url: rtsp://[user:password@]host[:port]/path, or another server's "
                            "WHEP url https://host/whep/… (at most 2048 characters)")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidSource(f"the source url {redact_url(url)} has spaces or control characters; percent-encode them")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (reading it checks it)
    except ValueError:
        raise InvalidSource(f"the source url {redact_url(url)} is not a valid URL (check its port)") from None
    if parts.scheme not in SCHEMES:
        raise InvalidSource(f"the source url {redact_url(url)} has scheme {parts.scheme or 'none'!r}; "
                             f"pulled sources take {', '.join(s + '://' for s in SCHEMES)} (an IP camera's RTSP url, "
                             "or another server's WHEP url)")
    if not parts.hostname:
        raise InvalidSource(f"the source url {redact_url(url)} names no host")
    return url


@dataclass(frozen=True)
class PullSettings:
    path: str          # event/theatre/feed
    url: str
    transport: str = "tcp"   # RTSP over TCP (interleaved) or UDP
    on_demand: bool = False
    token: str | None = field(default=None, repr=False)  # a WHEP url's bearer token (never shown)

    @property
    def shown_url(self) -> str:
        return redact_url(self.url)

    @property
    def kind(self) -> str:
        """"rtsp" (an IP camera) or "whep" (another server)."""
        return "whep" if urllib.parse.urlsplit(self.url).scheme in WHEP_SCHEMES else "rtsp"


# attaches a pulled source to its feed once its codecs are known: (source, video codec, has
# audio, H.264 profile-level-id if known) → the feed's video and audio producers
Attach = Callable[[Any, str, bool, str | None], tuple[Producer, Producer]]


class PullState:
    """What every pulled source shows: "connecting", "live", "reconnecting" or "stopped", and
    `error`, what went wrong last (a person can act on it), None once frames flow."""

    def __init__(self, settings: PullSettings) -> None:
        self.settings = settings
        self.name = f"pull {settings.shown_url}"
        self.state = "connecting"
        self.error: str | None = None
        self.codec: str | None = None
        self.audio_transcoded_from: str | None = None
        self.video_transcoded_from: str | None = None
        self.connects = 0
        self.reconnects = 0

    @property
    def reconnecting(self) -> bool:
        return self.state == "reconnecting"

    @property
    def transcoding(self) -> str | None:
        """What is transcoded, e.g. "video HEVC → H.264, audio AAC → Opus"; None: nothing."""
        parts = []
        if self.video_transcoded_from:
            parts.append(f"video {self.video_transcoded_from.upper()} → H.264")
        if self.audio_transcoded_from and self.audio_transcoded_from != "opus":
            parts.append(f"audio {self.audio_transcoded_from.upper()} → Opus")
        return ", ".join(parts) or None

    def status(self) -> dict[str, Any]:
        s = self.settings
        return {"path": s.path, "url": s.shown_url, "kind": s.kind,
                "transport": s.transport if s.kind == "rtsp" else None,
                "token": "***" if s.token else None, "on_demand": s.on_demand, "state": self.state,
                "error": self.error, "video_codec": self.codec, "transcoding": self.transcoding,
                "reconnects": self.reconnects}


class PulledSource(PullState):
    """One IP camera over RTSP. `start()` begins pulling into the stream `attach` gives it;
    `close()` stops it (idempotent)."""

    def __init__(self, settings: PullSettings, attach: Attach) -> None:
        super().__init__(settings)
        self._attach = attach
        self._video: Producer | None = None
        self._audio: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._drop = threading.Event()  # the loop could not attach the camera: hang up, retry later
        self._thread: threading.Thread | None = None
        self._video_tx: VideoTranscoder | None = None
        self._transcode_h264 = False  # the camera's H.264 turned out to hold B-frames

    async def request_keyframe(self) -> bool:
        transcoder = self._video_tx
        if transcoder is None:
            return False  # RTSP has no way to ask; cameras send one every GOP
        transcoder.request_keyframe()  # ours encodes one at once
        return True

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"pull {self.settings.path}", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            # a blocked read ends within READ_TIMEOUT_S
            await asyncio.to_thread(thread.join, OPEN_TIMEOUT_S + READ_TIMEOUT_S)
        self.state = "stopped"

    # -- the pulling thread --------------------------------------------------------------
    def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while not self._stop.is_set():
            flowed = False
            error = "the camera stopped sending; reconnecting"
            try:
                flowed = self._pull_once()
            except Exception as exc:  # anything FFmpeg or a camera does: a state, never a crash
                error = self._describe(exc)
            if self._stop.is_set():
                break
            if flowed:
                backoff = BACKOFF_FIRST_S
            # state and error belong to the loop (the API reads them there): posted, not set here
            self._call(self._lost, error)
            logger.info("%s: %s; trying again in %.0f s", self.settings.path, error, backoff)
            self._stop.wait(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def _describe(self, exc: Exception) -> str:
        import av
        if isinstance(exc, SourceProblem):
            return str(exc)
        text = scrub(str(exc), self.settings.url)
        # the status as FFmpeg words it ("Server returned 401 Unauthorized"), not digits of the url's port
        said = text.replace(self.settings.shown_url, "")

        def status(code: int) -> bool:
            return re.search(rf"(?<![\d:]){code}(?!\d)", said) is not None

        if isinstance(exc, av.error.HTTPUnauthorizedError) or status(401):
            return "the camera refused the user name or password in the source url (401); correct them"
        if isinstance(exc, av.error.HTTPForbiddenError) or status(403):
            return "the camera refused access to this stream (403); check the account's rights on the camera"
        if isinstance(exc, av.error.HTTPNotFoundError) or status(404):
            return "the camera has no stream at this url's path (404); check the path in its settings"
        if isinstance(exc, ConnectionRefusedError | av.error.ConnectionRefusedError):
            return f"nothing answers at {self.settings.shown_url} (connection refused); is the camera on?"
        if isinstance(exc, TimeoutError | av.error.TimeoutError) or "timed out" in text.lower():
            return f"the camera did not answer in time at {self.settings.shown_url}; check the address and network"
        if isinstance(exc, av.error.InvalidDataError):
            return (f"what answers at {self.settings.shown_url} sends nothing that reads as an RTSP stream "
                    f"({text}); check the port and path in the url: they must be the camera's RTSP stream")
        return f"the camera's stream could not be read ({type(exc).__name__}: {text})"

    def _pull_once(self) -> bool:
        import av
        options = {"rtsp_transport": self.settings.transport, "rtsp_flags": "prefer_tcp"}
        if self.settings.transport == "udp":
            options.pop("rtsp_flags")
        container = av.open(self.settings.url, options=options, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        flowed = False
        try:
            video = next((s for s in container.streams if s.type == "video"), None)
            audio = next((s for s in container.streams if s.type == "audio"), None)
            if video is None:
                raise SourceProblem("the camera's stream has no video track")
            name = video.codec_context.name
            codec = PASSTHROUGH_VIDEO.get(name)
            video_tx: VideoTranscoder | None = None
            reorders = bool(getattr(video.codec_context, "has_b_frames", 0))  # what the SPS says
            if codec is None or self._transcode_h264 or reorders:
                video_tx = self._video_transcoder(video)
                codec = "H264"
            self._video_tx = video_tx
            audio_tx = self._audio_transcoder(audio) if audio is not None else None
            annexb = AnnexB(video.codec_context.extradata)
            profile = None
            if video_tx is None and codec == "H264":
                profile = h264_profile_level_id(annexb.parameter_sets or video.codec_context.extradata or b"")
            self._call(self._connected, codec, audio_tx is not None,
                       audio.codec_context.name if audio_tx is not None and audio is not None else None,
                       name if video_tx is not None else None, profile)
            wanted = [s for s in (video, audio) if s is not None]
            pictures = PictureAssembler() if codec == "H264" and video_tx is None else None
            for packet in container.demux(*wanted):
                if self._stop.is_set():
                    break
                if self._drop.is_set():
                    self._drop.clear()
                    raise SourceProblem("the feed is live from another publisher; the camera waits for it to stop")
                if packet.size == 0 or packet.time_base is None:
                    continue
                if packet.stream is video:
                    if video_tx is not None:
                        frames = video_tx.encode(packet)  # its decoder joins a picture's parts itself
                    elif packet.dts is not None and packet.pts is not None and packet.dts != packet.pts:
                        self._transcode_h264 = True  # from the next connection on, at once
                        raise SourceProblem("the camera sends B-frames, which WebRTC viewers cannot play: ORcast "
                                            "transcodes its video from now on (set the camera's B-frames to 0, "
                                            "or its H.264 profile to baseline, to save that CPU)")
                    else:
                        ts = int(packet.pts * packet.time_base * VIDEO_CLOCK_RATE) if packet.pts is not None else None
                        data = annexb.convert(bytes(packet))
                        if pictures is not None:
                            frames = pictures.push(data, ts, packet.is_keyframe)
                        else:  # VP8: a packet is a frame; the relay starts viewers on a keyframe
                            frames = [(data, ts)] if ts is not None else []
                    for data, ts in frames:
                        self._call(self._push_video, data, ts)
                    if frames and not flowed:
                        flowed = True
                        self._call(self._flowing)
                elif audio_tx is not None and packet.pts is not None:
                    for data, ts in audio_tx.encode(packet):
                        self._call(self._push_audio, data, ts)
        finally:
            self._video_tx = None
            container.close()
        return flowed

    def _video_transcoder(self, stream: Any) -> VideoTranscoder:
        try:
            rate = stream.average_rate or stream.guessed_rate
            return VideoTranscoder(stream.codec_context.name, stream.codec_context.extradata,
                                   float(rate) if rate else None)
        except Exception as exc:
            raise SourceProblem(f"the camera sends {stream.codec_context.name.upper()} video, which this server "
                                f"cannot decode ({type(exc).__name__}); set the camera's encoder to H.264") from None

    def _audio_transcoder(self, stream: Any) -> AudioTranscoder | None:
        try:
            return AudioTranscoder(stream)
        except Exception as exc:  # a codec FFmpeg cannot decode here: the picture matters more
            logger.warning("%s: the camera's %s audio cannot be decoded (%s); the feed goes on without sound",
                           self.settings.path, stream.codec_context.name.upper(), type(exc).__name__)
            return None

    # -- on the event loop ---------------------------------------------------------------
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _lost(self, error: str) -> None:
        if not self._stop.is_set():
            self.error = error
            self.state = "reconnecting" if self.connects else "connecting"

    def _connected(self, codec: str, has_audio: bool, audio_codec: str | None, video_codec: str | None,
                   h264_profile: str | None) -> None:
        if self._stop.is_set():
            return
        self.codec = codec
        self.audio_transcoded_from = audio_codec
        self.video_transcoded_from = video_codec
        if self._video is None or self._audio is None:
            try:
                self._video, self._audio = self._attach(self, codec, has_audio, h264_profile)
            except BroadcastError as exc:  # a publisher took the feed meanwhile: try again later
                self.error = f"the feed cannot take the camera: {exc}"
                self._drop.set()
                return
        else:
            self._video.attach(self, codec)  # a new timeline from the camera: rebased, viewers wait for a keyframe
            if has_audio:
                self._audio.attach(self, "opus")
        if self.connects:
            self.reconnects += 1
        self.connects += 1
        if self.transcoding:
            logger.info("%s: transcoding %s (once for the feed; the rest is relayed as the camera sent it)",
                        self.settings.path, self.transcoding)

    def _flowing(self) -> None:
        if self._stop.is_set():
            return
        self.state = "live"
        self.error = None
        logger.info("%s: pulling %s (%s)", self.settings.path, self.settings.shown_url, self.codec)

    def _push_video(self, data: bytes, ts: int) -> None:
        if self._video is not None:
            self._video.push(self, data, ts)

    def _push_audio(self, data: bytes, ts: int) -> None:
        if self._audio is not None:
            self._audio.push(self, data, ts)


class SourceProblem(Exception):
    """What a camera sends that ORcast cannot relay, said so that its settings can be changed."""
