"""A publisher's track of pre-encoded H.264 (what a hardware encoder or OBS sends): with
B-frames (pts ≠ dts), or with a clock that jumps; for tests and bench/bframes.py."""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from broadcast.relay.frame import VIDEO_CLOCK_RATE
from broadcast.sources.testpattern import make_frame

FPS = 30
TICKS = VIDEO_CLOCK_RATE // FPS


@dataclass
class Coded:
    data: bytes
    pts: int    # in frames
    dts: int


def encode(width: int, height: int, frames: int, bframes: int, first: int = 0,
           bit_rate: int = 800_000) -> list[Coded]:
    """H.264 in decode order, as an encoder sends it (with `bframes` B-frames: pts ≠ dts)."""
    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.framerate = fractions.Fraction(FPS, 1)
    enc.bit_rate = bit_rate
    enc.max_b_frames = bframes
    enc.gop_size = FPS
    enc.profile = "main" if bframes else "baseline"
    enc.options = {"preset": "veryfast", "x264-params": "repeat-headers=1:b-adapt=0:scenecut=0"}
    out: list[Coded] = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(make_frame(first + i, width, height, FPS), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out += [Coded(bytes(p), int(p.pts), int(p.dts)) for p in enc.encode(frame)]
    out += [Coded(bytes(p), int(p.pts), int(p.dts)) for p in enc.encode(None)]
    return out


class CodedTrack(MediaStreamTrack):
    """Sends pre-encoded packets in their order, each at its decode time, with its own
    presentation timestamp (what a B-frame encoder puts in RTP); loops with `jump` added to
    the timestamps of each new lap (negative: the clock goes back)."""

    kind = "video"

    def __init__(self, laps: list[list[Coded]], jump: int = 0) -> None:
        super().__init__()
        self.laps = laps
        self.jump = jump
        self._i = 0
        self._lap = 0
        self._origin = 0
        self._start: float | None = None
        self._sent = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        packets = self.laps[self._lap % len(self.laps)]
        if self._i >= len(packets):
            self._i = 0
            self._lap += 1
            self._origin += len(packets) + self.jump
            packets = self.laps[self._lap % len(self.laps)]
        coded = packets[self._i]
        self._i += 1
        self._sent += 1
        delay = self._start + self._sent / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(coded.data)
        packet.pts = (self._origin + coded.pts + 2) * TICKS  # +2: never below 0 with the jump
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return packet
