"""The synthetic OR feed: a test picture and tone, encoded once and looped.

Encoding happens once at start-up; playing it costs almost nothing, so the demo and the
benchmarks measure the relay and not an encoder. The clip can be pushed into a producer
in-process (`SyntheticFeed`) or sent by an aiortc publisher (`ClipTrack`, whose `recv()`
returns `av.Packet`s that aiortc packetizes without encoding).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from broadcast.relay.frame import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE
from broadcast.relay.producer import Producer
from broadcast.sources.testpattern import make_frame, tone

logger = logging.getLogger(__name__)

OPUS_FRAME = 960  # 20 ms at 48 kHz


@dataclass
class ClipPacket:
    data: bytes
    pts: int  # in the clip's clock (90 kHz video, 48 kHz audio)
    keyframe: bool = False


@dataclass
class EncodedClip:
    codec: str  # "H264" or "VP8"
    width: int
    height: int
    fps: int
    profile: str = "baseline"  # H.264 profile
    video: list[ClipPacket] = field(default_factory=list)
    audio: list[ClipPacket] = field(default_factory=list)

    @property
    def h264_profile(self) -> str | None:
        """profile-level-id for SDP (level 3.1)."""
        if self.codec != "H264":
            return None
        return {"baseline": "42e01f", "main": "4d001f", "high": "64001f"}[self.profile]


def _video_encoder(codec: str, width: int, height: int, fps: int, bitrate: int,
                   profile: str) -> Any:
    if codec == "H264":
        ctx = av.CodecContext.create("libx264", "w")
        ctx.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            # SPS/PPS before every IDR and a keyframe every second: a viewer joins fast
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1",
        }
        ctx.profile = profile
    elif codec == "VP8":
        ctx = av.CodecContext.create("libvpx", "w")
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        ctx.gop_size = fps
    else:
        raise ValueError(f"unsupported codec {codec}")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.bit_rate = bitrate
    return ctx


def encode_clip(codec: str = "H264", width: int = 1280, height: int = 720, fps: int = 30,
                seconds: int = 4, bitrate: int = 2_000_000, profile: str = "baseline") -> EncodedClip:
    """Encode `seconds` of test picture and tone. Takes a few seconds for 720p."""
    clip = EncodedClip(codec, width, height, fps, profile)
    enc = _video_encoder(codec, width, height, fps, bitrate, profile)
    frames = fps * seconds
    ticks = VIDEO_CLOCK_RATE // fps

    def collect(packets: list[Any]) -> None:
        for p in packets:
            clip.video.append(ClipPacket(bytes(p), int(p.pts or 0) * ticks, bool(p.is_keyframe)))

    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(make_frame(i, width, height, fps), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = enc.time_base
        if i % fps == 0:
            frame.pict_type = av.video.frame.PictureType.I
        collect(enc.encode(frame))
    collect(enc.encode(None))
    clip.video.sort(key=lambda p: p.pts)

    opus: Any = av.CodecContext.create("libopus", "w")
    opus.sample_rate = AUDIO_CLOCK_RATE
    opus.layout = "stereo"
    opus.format = "s16"
    opus.bit_rate = 64_000
    opus.time_base = fractions.Fraction(1, AUDIO_CLOCK_RATE)
    samples = AUDIO_CLOCK_RATE * seconds
    for start in range(0, samples, OPUS_FRAME):
        mono = tone(start, OPUS_FRAME)
        stereo = np.repeat(mono, 2).reshape(1, -1)
        af = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        af.sample_rate = AUDIO_CLOCK_RATE
        af.pts = start
        af.time_base = opus.time_base
        for p in opus.encode(af):
            clip.audio.append(ClipPacket(bytes(p), len(clip.audio) * OPUS_FRAME, True))
    for _ in opus.encode(None):
        pass
    return clip


class _ClipCursor:
    """Walks a looped packet list on a continuous timeline, paced by the wall clock.

    `jump_to_keyframe()` answers a keyframe request the only way a pre-encoded clip can:
    the next packet sent is the clip's next keyframe (the picture skips ahead, the timeline
    does not), so a joining viewer starts within a frame instead of waiting up to a GOP.
    """

    def __init__(self, packets: list[ClipPacket], ticks_per_packet: int, clock_rate: int) -> None:
        self.packets = packets
        self.ticks = ticks_per_packet
        self.clock_rate = clock_rate
        self.index = 0  # next packet in the clip
        self.sent = 0  # packets sent: the continuous timeline
        self.start: float | None = None
        self._jump = False

    def jump_to_keyframe(self) -> None:
        self._jump = True

    def next(self) -> tuple[ClipPacket, int, float]:
        """The next packet, its continuous pts, and the monotonic time it is due."""
        if self._jump:
            self._jump = False
            n = len(self.packets)
            for step in range(n):
                if self.packets[(self.index + step) % n].keyframe:
                    self.index = (self.index + step) % n
                    break
        packet = self.packets[self.index % len(self.packets)]
        self.index = (self.index + 1) % len(self.packets)
        pts = self.sent * self.ticks
        if self.start is None:
            self.start = time.monotonic()
        self.sent += 1
        return packet, pts, self.start + pts / self.clock_rate


class SyntheticFeed:
    """Pushes a looped clip into a stream's producers in real time (in-process source)."""

    def __init__(self, clip: EncodedClip, name: str = "synthetic") -> None:
        self.clip = clip
        self.name = name
        self._tasks: list[asyncio.Task[None]] = []

        self._video = _ClipCursor(clip.video, VIDEO_CLOCK_RATE // clip.fps, VIDEO_CLOCK_RATE)
        self._audio = _ClipCursor(clip.audio, OPUS_FRAME, AUDIO_CLOCK_RATE)

    async def request_keyframe(self) -> bool:
        self._video.jump_to_keyframe()
        return True

    def start(self, video_producer: Producer, audio_producer: Producer) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(video_producer, self._video)),
            loop.create_task(self._run(audio_producer, self._audio)),
        ]

    async def _run(self, producer: Producer, cursor: _ClipCursor) -> None:
        push = producer.push
        while True:
            packet, pts, due = cursor.next()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            push(self, packet.data, pts)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


class ClipTrack(MediaStreamTrack):
    """An aiortc track that sends a pre-encoded clip (av.Packet: packetized, not encoded)."""

    def __init__(self, clip: EncodedClip, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "video":
            self._cursor = _ClipCursor(clip.video, VIDEO_CLOCK_RATE // clip.fps, VIDEO_CLOCK_RATE)
            self._time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        else:
            self._cursor = _ClipCursor(clip.audio, OPUS_FRAME, AUDIO_CLOCK_RATE)
            self._time_base = fractions.Fraction(1, AUDIO_CLOCK_RATE)

    def request_keyframe(self) -> None:
        """Hook this to the sender's PLI handling (aiortc only forwards PLI to encoders)."""
        self._cursor.jump_to_keyframe()

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        packet, pts, due = self._cursor.next()
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        out = av.Packet(packet.data)
        out.pts = pts
        out.time_base = self._time_base
        return out
