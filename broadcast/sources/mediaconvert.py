"""What a pulled source's media goes through on its way to the relay, in the source's thread:
H.264 made Annex B, and transcoding where the relay cannot take the camera's codecs as they
are — audio to Opus (IP cameras send AAC), video to H.264 (H.265 and MJPEG cameras, or H.264
with B-frames, which WebRTC viewers cannot play). Each runs once per feed, never per viewer.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broadcast.relay.frame import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE, h264_nal_units

logger = logging.getLogger(__name__)

OPUS_FRAME = 960  # 20 ms at 48 kHz
# H.264 for the relay: what any WebRTC viewer decodes (constrained baseline), no B-frames,
# a keyframe at least every 2 s, and one at once when a viewer asks
X264_OPTIONS = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline"}
# VP8 for a VP8 feed's low rendition: libvpx's realtime mode, no frame lag, its fastest setting
VP8_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1"}
KEYFRAME_EVERY_S = 2.0
BITS_PER_PIXEL = 0.09  # per frame: 1280×720 at 30 fps ≈ 2.5 Mbit/s


def h264_profile_level_id(data: bytes) -> str | None:
    """profile-level-id (RFC 6184) from the first SPS in Annex B `data`, e.g. "42c01e"."""
    for unit in h264_nal_units(data):
        if unit[0] & 0x1F == 7 and len(unit) >= 4:
            return unit[1:4].hex()
    return None


class AnnexB:
    """H.264 packets as Annex B: FFmpeg's RTSP demuxer gives Annex B already; an AVCC stream
    (length-prefixed, its parameter sets in the extradata) is converted."""

    def __init__(self, extradata: bytes | None) -> None:
        self.length_size = 0
        self.parameter_sets = b""
        if extradata and extradata[0] == 1 and len(extradata) >= 7:  # avcC
            self.length_size = (extradata[4] & 0x03) + 1
            self.parameter_sets = avcc_parameter_sets(extradata)

    def convert(self, data: bytes) -> bytes:
        if not self.length_size:
            return data
        out = bytearray()
        i, n = 0, self.length_size
        keyframe = False
        while i + n <= len(data):
            size = int.from_bytes(data[i:i + n], "big")
            unit = data[i + n:i + n + size]
            keyframe = keyframe or (bool(unit) and unit[0] & 0x1F == 5)
            out += b"\x00\x00\x00\x01" + unit
            i += n + size
        return (self.parameter_sets + bytes(out)) if keyframe else bytes(out)


VCL_TYPES = frozenset(range(1, 6))  # coded slices


def first_slice(data: bytes) -> bytes | None:
    """The first two bytes of the first slice NAL unit in Annex B `data` (its header and the
    start of first_mb_in_slice), found without splitting the whole frame: per packet, cheap."""
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < len(data) - 4:
        if data[i + 3] & 0x1F in VCL_TYPES:
            return data[i + 3:i + 5]
        i = data.find(b"\x00\x00\x01", i + 3)
    return None


def starts_picture(unit: bytes) -> bool:
    """A slice NAL unit whose first_mb_in_slice is 0 (ue(v) "1"): the top of a picture."""
    return len(unit) > 1 and bool(unit[1] & 0x80)


class PictureAssembler:
    """Whole H.264 pictures out of a demuxer's packets. FFmpeg's RTSP demuxer gives an IDR
    picture whose slices are separated by repeated parameter sets (IP cameras and GStreamer
    send SPS/PPS with every keyframe) as two packets, the first of a connection without a
    timestamp; and a connection may begin in the middle of a picture. Sent as they come, a
    viewer would show half of every keyframe and the rest green or stale until the next one.

    So a keyframe is held until the next packet shows whether it continues it (its first slice
    does not start at the top of the picture: joined) or starts the next picture (the keyframe
    goes out, then it): one frame interval of delay, on keyframes only. Nothing goes out
    before a keyframe that starts at the top of the picture."""

    def __init__(self) -> None:
        self._held: list[bytes] = []   # parts of the picture being held
        self._held_ts: int | None = None
        self._held_key = False
        self.synced = False            # a whole keyframe went out since the (re)connection
        self.dropped = 0

    def push(self, data: bytes, ts: int | None, keyframe: bool) -> list[tuple[bytes, int]]:
        """A packet's Annex B data and timestamp (None: not known): the whole pictures ready."""
        first = first_slice(data)
        continues = first is not None and not starts_picture(first)
        out: list[tuple[bytes, int]] = []
        if self._held:
            if continues:
                self._held.append(data)
                self._held_ts = self._held_ts if self._held_ts is not None else ts
                self._held_key = self._held_key or keyframe
                return out
            out += self._release()
        if keyframe or ts is None:  # may go on in the next packet
            self._held, self._held_ts, self._held_key = [data], ts, keyframe
        elif self.synced and ts is not None:
            out.append((data, ts))  # (a continuation of a picture already sent goes as it is)
        else:
            self.dropped += 1
        return out

    def _release(self) -> list[tuple[bytes, int]]:
        parts, ts, keyframe = self._held, self._held_ts, self._held_key
        self._held, self._held_ts, self._held_key = [], None, False
        data = parts[0] if len(parts) == 1 else _join(parts)
        if not self.synced:
            first = first_slice(parts[0])
            if keyframe and first is not None and starts_picture(first):
                self.synced = True
        if not self.synced or ts is None:
            self.dropped += 1
            return []
        return [(data, ts)]


def _join(parts: list[bytes]) -> bytes:
    """Parts of one picture as one access unit: the first part's leading NAL units (AUD, SPS,
    PPS, SEI), then every part's slices (a later part's repeated parameter sets dropped)."""
    out = bytearray()
    seen_slice = False
    for part in parts:
        for unit in h264_nal_units(part):
            if not unit:
                continue
            is_slice = unit[0] & 0x1F in VCL_TYPES
            if seen_slice and not is_slice:
                continue
            seen_slice = seen_slice or is_slice
            out += b"\x00\x00\x00\x01" + unit
    return bytes(out)


def avcc_parameter_sets(extradata: bytes) -> bytes:
    """SPS and PPS of an avcC record, as Annex B."""
    out = bytearray()
    i = 5
    try:
        for count_mask in (0x1F, 0xFF):
            count = extradata[i] & count_mask
            i += 1
            for _ in range(count):
                size = int.from_bytes(extradata[i:i + 2], "big")
                out += b"\x00\x00\x00\x01" + extradata[i + 2:i + 2 + size]
                i += 2 + size
    except IndexError:
        pass  # a truncated record: what was read
    return bytes(out)


class AudioTranscoder:
    """A camera's audio (AAC, G.711 …) decoded and encoded once to 20 ms Opus packets at 48 kHz."""

    def __init__(self, stream: Any) -> None:
        import av
        self.decoder = av.CodecContext.create(stream.codec_context.name, "r")
        if stream.codec_context.extradata:
            self.decoder.extradata = stream.codec_context.extradata
        self.encoder: Any = av.CodecContext.create("libopus", "w")
        self.encoder.sample_rate = AUDIO_CLOCK_RATE
        self.encoder.layout = "stereo"
        self.encoder.format = "s16"
        self.encoder.bit_rate = 64_000
        self.encoder.time_base = fractions.Fraction(1, AUDIO_CLOCK_RATE)
        self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_CLOCK_RATE)
        self.fifo = av.AudioFifo()
        self.samples_out = 0

    def encode(self, packet: Any) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        for frame in self.decoder.decode(packet):
            frame.pts = None
            for resampled in self.resampler.resample(frame):
                self.fifo.write(resampled)
        while self.fifo.samples >= OPUS_FRAME:
            chunk = self.fifo.read(OPUS_FRAME)
            if chunk is None:
                break
            chunk.pts = self.samples_out
            chunk.time_base = self.encoder.time_base
            for encoded in self.encoder.encode(chunk):
                out.append((bytes(encoded), self.samples_out))
            self.samples_out += OPUS_FRAME
        return out


@dataclass(frozen=True)
class EncodeTarget:
    """What a VideoTranscoder makes: the codec the relay sends ("H264": constrained baseline,
    "VP8"), at most `max_size` (the aspect kept; None: the source's size), at `bit_rate` (None:
    by the picture's size, BITS_PER_PIXEL)."""

    codec: str = "H264"
    max_size: tuple[int, int] | None = None
    bit_rate: int | None = None


def fit(width: int, height: int, box: tuple[int, int] | None) -> tuple[int, int]:
    """`width`×`height` scaled down (never up) to fit `box`, even (4:2:0 needs it)."""
    if box is not None:
        scale = min(1.0, box[0] / width, box[1] / height)
        width, height = round(width * scale), round(height * scale)
    return max(2, width - width % 2), max(2, height - height % 2)


class VideoTranscoder:
    """A camera's video (H.265, MJPEG, H.264 with B-frames …) decoded and encoded once to
    H.264 constrained baseline, or a feed made smaller (a low rendition) in its own codec.
    `request_keyframe()` may be called from any thread."""

    def __init__(self, codec: str, extradata: bytes | None = None, fps: float | None = None,
                 target: EncodeTarget | None = None) -> None:
        """`codec`: FFmpeg's decoder name ("hevc", "mjpeg", "h264", "vp8")."""
        import av
        self.source_codec = codec
        self.target = target or EncodeTarget()
        self.decoder: Any = av.CodecContext.create(codec, "r")
        self.decoder.thread_count = 1
        if extradata:
            self.decoder.extradata = extradata
        self.fps = fps or 30.0
        self.encoder: Any = None
        self._source_size: tuple[int, int] | None = None
        self._size: tuple[int, int] | None = None
        self._keyframe = threading.Event()
        self._last_ts: int | None = None

    def request_keyframe(self) -> None:
        self._keyframe.set()

    def _open_encoder(self, width: int, height: int) -> None:
        import av
        self._source_size = (width, height)
        width, height = fit(width, height, self.target.max_size)
        vp8 = self.target.codec == "VP8"
        encoder: Any = av.CodecContext.create("libvpx" if vp8 else "libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        encoder.framerate = fractions.Fraction(round(self.fps * 1000), 1000)
        encoder.gop_size = max(1, round(self.fps * KEYFRAME_EVERY_S))
        encoder.max_b_frames = 0
        encoder.bit_rate = self.target.bit_rate or int(width * height * self.fps * BITS_PER_PIXEL)
        encoder.options = dict(VP8_OPTIONS if vp8 else X264_OPTIONS)
        encoder.thread_count = 1  # this thread is the transcode's own; helper threads only add hand-offs
        encoder.open()
        self.encoder = encoder
        self._size = (width, height)

    def encode(self, packet: Any) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        for frame in self.decoder.decode(packet):
            if frame.pts is not None and frame.time_base is not None:
                ts = int(frame.pts * frame.time_base * VIDEO_CLOCK_RATE)
            else:
                ts = (self._last_ts or 0) + round(VIDEO_CLOCK_RATE / self.fps)
            if self._last_ts is not None and ts <= self._last_ts:
                ts = self._last_ts + 1  # the encoder needs increasing timestamps
            self._last_ts = ts
            if self.encoder is None or self._source_size != (frame.width, frame.height):
                self._open_encoder(frame.width, frame.height)  # a new size starts with a keyframe
            assert self._size is not None
            # AREA: the best downscale in swscale, and its cheapest (1.2 ms at 720p → 360p, bicubic 2.5)
            picture = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p",
                                     interpolation="AREA")
            picture.pts = ts
            picture.time_base = self.encoder.time_base
            if self._keyframe.is_set():
                self._keyframe.clear()
                import av
                picture.pict_type = av.video.frame.PictureType.I
            for encoded in self.encoder.encode(picture):
                out.append((bytes(encoded), int(encoded.pts if encoded.pts is not None else ts)))
        return out


class ThreadedVideoTranscoder:
    """A VideoTranscoder in a thread of its own, for frames that arrive on the event loop (a
    WHIP publisher's H.264 with B-frames): `put()` never blocks the loop; the transcoded frames
    come back through `deliver` on the loop. A full queue (the CPU cannot keep up) drops the
    frame and says so: the caller asks for a keyframe and starts again from it."""

    QUEUE = 30  # one second of frames

    def __init__(self, codec: str, deliver: Callable[[bytes, int], None], name: str,
                 target: EncodeTarget | None = None) -> None:
        self._deliver = deliver
        self._loop = asyncio.get_running_loop()
        self.transcoder = VideoTranscoder(codec, target=target)
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue(self.QUEUE)
        self._name = name
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name=f"transcode {name}", daemon=True)
        self._thread.start()

    def put(self, data: bytes, timestamp: int) -> bool:
        try:
            self._queue.put_nowait((data, timestamp))
            return True
        except queue.Full:
            return False

    def request_keyframe(self) -> None:
        self.transcoder.request_keyframe()

    def close(self) -> None:
        """Idempotent; the thread ends after the frame it is on."""
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def _run(self) -> None:
        import av
        while (item := self._queue.get()) is not None:
            packet = av.Packet(item[0])
            packet.pts = item[1]
            packet.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
            try:
                out = self.transcoder.encode(packet)
            except Exception as exc:  # a frame the decoder refuses: skipped, the stream goes on
                self._failures += 1
                if self._failures == 1 or self._failures % 100 == 0:
                    logger.warning("%s: the transcoder skipped a frame it could not decode (%s; %d so far)",
                                   self._name, type(exc).__name__, self._failures)
                continue
            for data, ts in out:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, data, ts)
                except RuntimeError:  # the loop is closed: the server is stopping
                    return
