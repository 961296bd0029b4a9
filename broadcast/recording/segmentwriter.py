"""One recording segment on disk: encoded frames muxed as they are, never transcoded.

H.264 goes into fragmented MP4, VP8 into WebM, each with the feed's Opus audio. Both
containers are written so that a killed process leaves a playable file:

* MP4: an empty `moov` up front and a fragment (`moof` + `mdat`) at least every second;
* WebM: a cluster at least every second;
* `flush_packets`: FFmpeg hands each finished fragment to the kernel at once, so what is
  lost on a crash is the fragment being filled, never more.

The size of the file after every packet that completed is remembered: if a write fails
(disk full, file too large) the file is cut back to it, which leaves whole fragments only.
"""

from __future__ import annotations

import contextlib
import fractions
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from broadcast.relay.frame import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_CLOCK_RATE)
CONTAINERS = {"H264": "mp4", "VP8": "webm"}  # video codec → container (and file suffix)
AUDIO_ONLY_CONTAINER = "mp4"
_OPTIONS = {
    "mp4": {"movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": "1000000", "flush_packets": "1", "max_interleave_delta": "500000"},
    "webm": {"cluster_time_limit": "1000", "flush_packets": "1", "max_interleave_delta": "500000"},
}
_MUX_CODECS = {"H264": "h264", "VP8": "vp8"}


@dataclass(frozen=True)
class SegmentFormat:
    video_codec: str | None  # "H264", "VP8" or None (audio only)
    width: int
    height: int
    audio: bool  # Opus

    @property
    def container(self) -> str:
        return CONTAINERS[self.video_codec] if self.video_codec else AUDIO_ONLY_CONTAINER

    @property
    def codecs(self) -> list[str]:
        return [c for c in (self.video_codec, "opus" if self.audio else None) if c]


class SegmentWriter:
    """Writes one segment file. Not thread-safe: one writer thread owns it."""

    def __init__(self, path: Path, fmt: SegmentFormat) -> None:
        self.path = path
        self.format = fmt
        self.video_frames = 0
        self.keyframes = 0
        self.audio_frames = 0
        self.video_end = 0  # last video pts + 1, 90 kHz
        self.audio_end = 0  # last audio pts + one packet, 48 kHz
        self.good_size = 0
        self._last_video_dts = -1
        self._last_audio_dts = -1
        self._closed = False
        self._container: Any = av.open(str(path), "w", format=fmt.container,
                                       options=_OPTIONS[fmt.container])
        try:
            self._video: Any = None
            self._audio: Any = None
            if fmt.video_codec:
                self._video = self._container.add_mux_stream(
                    _MUX_CODECS[fmt.video_codec], rate=30, width=fmt.width, height=fmt.height)
                self._video.time_base = VIDEO_TIME_BASE
            if fmt.audio:
                # libopus only supplies the OpusHead both containers need; nothing is encoded
                self._audio = self._container.add_stream("libopus", rate=AUDIO_CLOCK_RATE,
                                                         layout="stereo")
                self._audio.time_base = AUDIO_TIME_BASE
        except BaseException:
            self._container.close()
            raise

    @property
    def duration_s(self) -> float:
        return max(self.video_end / VIDEO_CLOCK_RATE, self.audio_end / AUDIO_CLOCK_RATE)

    def write_video(self, data: bytes, pts: int, keyframe: bool) -> None:
        # WebRTC video has no B-frames: decode order is presentation order, dts = pts
        dts = max(pts, self._last_video_dts + 1)
        self._mux(self._video, data, dts, VIDEO_TIME_BASE, keyframe)
        self._last_video_dts = dts
        self.video_frames += 1
        self.keyframes += keyframe
        self.video_end = dts + 1

    def write_audio(self, data: bytes, pts: int, samples: int) -> None:
        if self._audio is None:
            return
        dts = max(pts, self._last_audio_dts + 1)
        self._mux(self._audio, data, dts, AUDIO_TIME_BASE, True)
        self._last_audio_dts = dts
        self.audio_frames += 1
        self.audio_end = dts + samples

    def _mux(self, stream: Any, data: bytes, ts: int, time_base: fractions.Fraction,
             keyframe: bool) -> None:
        mux_encoded(self._container, stream, data, ts, time_base, keyframe)
        self.good_size = self.size

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return self.good_size

    def close(self) -> None:
        """Write the trailer (index, duration). Raises OSError if the disk refuses it."""
        if self._closed:
            return
        self._closed = True
        self._container.close()

    def abort(self) -> None:
        """After a write error: drop what is buffered, cut the file back to whole fragments."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._container.close()
        cut_to_size(self.path, self.good_size)


def mux_encoded(container: Any, stream: Any, data: bytes, ts: int, time_base: fractions.Fraction,
                keyframe: bool) -> None:
    """One encoded frame into a PyAV output container, as it came (pts = dts: WebRTC has no
    B-frames). Also the HLS muxer's."""
    packet = av.Packet(data)
    packet.stream = stream
    packet.pts = packet.dts = ts
    # a constant, not stream.time_base: the muxer changes that when it writes the header
    packet.time_base = time_base
    packet.is_keyframe = keyframe
    container.mux(packet)


def cut_to_size(path: Path, size: int) -> None:
    with contextlib.suppress(OSError):
        if size and path.stat().st_size > size:
            os.truncate(path, size)


def mp4_complete_length(path: Path) -> int:
    """Length of the file's leading run of complete top-level MP4 boxes (after a crash, the
    last fragment may be cut short; players choke on a half `mdat`)."""
    end = 0
    with path.open("rb") as fh:
        size_total = os.fstat(fh.fileno()).st_size
        while end + 8 <= size_total:
            fh.seek(end)
            header = fh.read(16)
            size = int.from_bytes(header[:4], "big")
            if size == 1 and len(header) >= 16:
                size = int.from_bytes(header[8:16], "big")
            if size < 8 or end + size > size_total:
                break
            end += size
    return end


@dataclass(frozen=True)
class Repaired:
    duration_s: float
    video_frames: int
    keyframes: int
    audio_frames: int


def finish_crashed(path: Path) -> Repaired:
    """Make a segment left open by a crash whole again: cut a half-written fragment, then
    copy its packets into a new file (no transcoding) so it gets an index and a duration.

    Raises on a file with nothing usable.
    """
    if path.suffix == ".mp4":
        cut_to_size(path, mp4_complete_length(path))
    fixed = path.with_name(f".{path.name}.fixing")
    video_frames = audio_frames = keyframes = 0
    end = 0.0
    with av.open(str(path)) as source:
        streams = [s for s in source.streams if s.type in ("video", "audio")]
        if not streams:
            raise ValueError(f"{path.name} has no audio or video")
        container = "mp4" if path.suffix == ".mp4" else "webm"
        with av.open(str(fixed), "w", format=container,
                     options={k: v for k, v in _OPTIONS[container].items()
                              if k != "flush_packets"}) as out:
            mapping = {s.index: out.add_stream_from_template(s) for s in streams}
            for packet in source.demux(streams):
                if packet.dts is None or packet.size == 0:
                    continue
                is_video = packet.stream.type == "video"
                if packet.pts is not None and packet.time_base is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
                video_frames += is_video
                keyframes += is_video and packet.is_keyframe
                audio_frames += not is_video
    os.replace(fixed, path)
    return Repaired(end, video_frames, keyframes, audio_frames)
