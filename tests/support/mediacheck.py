"""Reading recordings back: decode every frame with PyAV, read the counters, measure A/V sync.

The test picture flashes a white box in its bottom-left corner for the first frames of each
second and the test tone beeps for the first 100 ms of each second, both counted from the
publisher's first frame and sample: in a recording whose audio and video are in sync, each
flash starts when a beep starts.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from broadcast.sources.testpattern import read_code


@dataclass
class Decoded:
    counters: list[int] = field(default_factory=list)
    keyframes: int = 0
    flashes: list[float] = field(default_factory=list)   # flash onsets, s
    beeps: list[float] = field(default_factory=list)     # beep onsets, s
    first_video: float | None = None
    first_audio: float | None = None
    audio_rms: float = 0.0
    size: tuple[int, int] | None = None


def decode(path: Path) -> Decoded:
    """Decode every video and audio frame of a recording (raises on a corrupt file)."""
    out = Decoded()
    with av.open(str(path)) as container:
        out.keyframes = sum(1 for p in container.demux(video=0) if p.is_keyframe)
    with av.open(str(path)) as container:
        flashing = False
        for frame in _video_frames(container, path):
            luma = frame.to_ndarray(format="gray")
            out.counters.append(read_code(luma))
            out.size = (frame.width, frame.height)
            if out.first_video is None:
                out.first_video = float(frame.time)
            h = luma.shape[0]
            box = h // 6
            corner = luma[h - box + 3:h - 3, 3:box - 3]
            # the flash is flat white; the gradient under it spans ~30 levels across the box
            lit = int(corner.min()) > 215 and int(corner.max()) - int(corner.min()) < 18
            if lit and not flashing:
                out.flashes.append(float(frame.time))
            flashing = lit
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return out
        chunks, start = [], None
        for sound in container.decode(audio=0):
            if start is None:
                start = float(sound.time or 0.0)
                out.first_audio = start
            chunks.append(sound.to_ndarray().astype(np.float64).mean(axis=0))
        if not chunks:
            return out
        samples = np.concatenate(chunks)
        rate = 48_000
        out.audio_rms = float(np.sqrt(np.mean(samples * samples)))
        window = rate // 400  # 2.5 ms
        energy = np.sqrt(np.mean(samples[: len(samples) // window * window].reshape(-1, window) ** 2, axis=1))
        loud = energy > max(energy.max() * 0.3, 1e-4)
        quiet_run = 0
        for i, is_loud in enumerate(loud):
            if is_loud and quiet_run >= 100:  # ≥ 250 ms of quiet before: a beep starts
                out.beeps.append((start or 0.0) + i * window / rate)
            quiet_run = 0 if is_loud else quiet_run + 1
    return out


def _video_frames(container: av.container.InputContainer, path: Path) -> Iterator[Any]:
    """The video frames, packet by packet: a packet the decoder refuses is named in the error
    (its place, timestamp, size and NAL unit types), so a failure says which frame was bad."""
    for index, packet in enumerate(container.demux(video=0)):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            data = bytes(packet)
            units: list[str] = []
            i = 0
            while i + 4 <= len(data) and len(units) < 12:  # MP4/MKV H.264: 4-byte lengths
                size = int.from_bytes(data[i:i + 4], "big")
                units.append(f"{data[i + 4] & 0x1F if i + 4 < len(data) else '?'}:{size}")
                i += 4 + size
            raise AssertionError(
                f"{path.name}: video packet {index} (pts {packet.pts}, keyframe {packet.is_keyframe}, "
                f"{packet.size} bytes, NAL type:size {units}, tail {len(data) - i}) does not decode: {exc}"
            ) from exc
        yield from (f for f in frames if isinstance(f, av.VideoFrame))


def av_offset(decoded: Decoded) -> float:
    """Median seconds by which beeps follow flashes (0 = in sync). Needs ≥ 2 pairs."""
    pairs = []
    for flash in decoded.flashes:
        near = [b - flash for b in decoded.beeps if abs(b - flash) < 0.45]
        if near:
            pairs.append(min(near, key=abs))
    assert len(pairs) >= 2, f"too few flash/beep pairs: flashes {decoded.flashes}, beeps {decoded.beeps}"
    return statistics.median(pairs)


def gaps(counters: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(counters) if b != a + 1]
