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

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .frame import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE
from .testpattern import make_frame, tone

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
    def duration_video(self) -> int:
        return len(self.video) * VIDEO_CLOCK_RATE // self.fps

    @property
    def duration_audio(self) -> int:
        return len(self.audio) * OPUS_FRAME

    @property
    def h264_profile(self) -> str | None:
        """profile-level-id for SDP (level 3.1)."""
        if self.codec != "H264":
            return None
        return {"baseline": "42e01f", "main": "4d001f", "high": "64001f"}[self.profile]


def _video_encoder(codec: str, width: int, height: int, fps: int, bitrate: int,
                   profile: str) -> av.CodecContext:
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

    def collect(packets: list[av.Packet]) -> None:
        for p in packets:
            clip.video.append(ClipPacket(bytes(p), int(p.pts) * ticks, bool(p.is_keyframe)))

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

    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate = AUDIO_CLOCK_RATE
    opus.layout = "stereo"
    opus.format = "s16"
    opus.bit_rate = 64_000
    opus.time_base = fractions.Fraction(1, AUDIO_CLOCK_RATE)
    samples = AUDIO_CLOCK_RATE * seconds
    first_pts: int | None = None
    for start in range(0, samples, OPUS_FRAME):
        mono = tone(start, OPUS_FRAME)
        stereo = np.repeat(mono, 2).reshape(1, -1)
        af = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        af.sample_rate = AUDIO_CLOCK_RATE
        af.pts = start
        af.time_base = opus.time_base
        for p in opus.encode(af):
            first_pts = int(p.pts) if first_pts is None else first_pts
            clip.audio.append(ClipPacket(bytes(p), len(clip.audio) * OPUS_FRAME, True))
    for _ in opus.encode(None):
        pass
    return clip


class _ClipCursor:
    """Walks a looped packet list on a continuous timeline, paced by the wall clock."""

    def __init__(self, packets: list[ClipPacket], loop_ticks: int, clock_rate: int) -> None:
        self.packets = packets
        self.loop_ticks = loop_ticks
        self.clock_rate = clock_rate
        self.position = 0
        self.start: float | None = None

    def next(self) -> tuple[ClipPacket, int, float]:
        """The next packet, its continuous pts, and the monotonic time it is due."""
        loops, idx = divmod(self.position, len(self.packets))
        packet = self.packets[idx]
        pts = loops * self.loop_ticks + packet.pts
        if self.start is None:
            self.start = time.monotonic()
        self.position += 1
        return packet, pts, self.start + pts / self.clock_rate


class SyntheticFeed:
    """Pushes a looped clip into a stream's producers in real time (in-process source)."""

    def __init__(self, clip: EncodedClip, name: str = "synthetic") -> None:
        self.clip = clip
        self.name = name
        self._tasks: list[asyncio.Task[None]] = []

    async def request_keyframe(self) -> bool:
        return True  # the clip has a keyframe every second

    def start(self, video_producer: object, audio_producer: object) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(video_producer, _ClipCursor(
                self.clip.video, self.clip.duration_video, VIDEO_CLOCK_RATE))),
            loop.create_task(self._run(audio_producer, _ClipCursor(
                self.clip.audio, self.clip.duration_audio, AUDIO_CLOCK_RATE))),
        ]

    async def _run(self, producer: object, cursor: _ClipCursor) -> None:
        push = producer.push  # type: ignore[attr-defined]
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
            self._cursor = _ClipCursor(clip.video, clip.duration_video, VIDEO_CLOCK_RATE)
            self._time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        else:
            self._cursor = _ClipCursor(clip.audio, clip.duration_audio, AUDIO_CLOCK_RATE)
            self._time_base = fractions.Fraction(1, AUDIO_CLOCK_RATE)

    async def recv(self) -> av.Packet:  # type: ignore[override]
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
