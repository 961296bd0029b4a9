"""Encoded media frames as they travel through the relay, and what can be read from them.

The relay never decodes: everything it needs to know about a frame (is it a keyframe,
what resolution does the stream have) is read from the bitstream headers here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VIDEO_CLOCK_RATE = 90_000
AUDIO_CLOCK_RATE = 48_000

H264_NAL_IDR = 5
H264_NAL_SPS = 7
H264_NAL_PPS = 8
ANNEXB_START = b"\x00\x00\x00\x01"


@dataclass(eq=False, slots=True)
class EncodedFrame:
    """One encoded frame: a VP8 frame, an H.264 access unit (Annex B) or one Opus packet.

    `timestamp` is on the producer's continuous timeline in `clock_rate` units; it keeps
    increasing when a publisher leaves and comes back, so viewers see one stream.
    One instance is shared by every consumer: never mutate it after it is published.
    """

    codec: str  # "H264", "VP8" or "opus"
    data: bytes
    timestamp: int
    keyframe: bool
    clock_rate: int
    index: int = 0  # position in the producer's output, for packetizer state (VP8 picture id)
    # RTP payloads, filled once by the first consumer that sends the frame and then shared.
    payloads: list[bytes] | None = field(default=None)


def h264_nal_units(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units (without start codes)."""
    units: list[bytes] = []
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < n:
        start = i + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = n if nxt < 0 else nxt
        # a 4-byte start code leaves a trailing zero on the previous unit
        unit = data[start:end]
        if nxt >= 0 and unit.endswith(b"\x00"):
            unit = unit.rstrip(b"\x00")
        if unit:
            units.append(unit)
        i = nxt
    return units


def h264_nal_types(data: bytes) -> set[int]:
    return {u[0] & 0x1F for u in h264_nal_units(data)}


def is_keyframe(codec: str, data: bytes) -> bool:
    if not data:
        return False
    if codec == "VP8":
        # RFC 6386 9.1: the inverse key frame flag is bit 0 of the first byte
        return (data[0] & 0x01) == 0
    if codec == "H264":
        return H264_NAL_IDR in h264_nal_types(data)
    return True  # audio: every packet stands alone


def vp8_resolution(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS truncated")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        v = self.ue()
        return (v + 1) // 2 if v & 1 else -(v // 2)


def _unescape_rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(r: _BitReader, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = last if nxt == 0 else nxt


def h264_sps_resolution(sps: bytes) -> tuple[int, int] | None:
    """Width and height from an H.264 SPS NAL unit (ITU-T H.264 7.3.2.1.1)."""
    try:
        r = _BitReader(_unescape_rbsp(sps[1:]))
        profile_idc = r.bits(8)
        r.bits(16)  # constraint flags, level_idc
        r.ue()  # seq_parameter_set_id
        chroma_format_idc = 1
        if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma_format_idc = r.ue()
            if chroma_format_idc == 3:
                r.bit()
            r.ue()
            r.ue()
            r.bit()
            if r.bit():  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma_format_idc != 3 else 12):
                    if r.bit():
                        _skip_scaling_list(r, 16 if i < 6 else 64)
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()
        width_mbs = r.ue() + 1
        height_map_units = r.ue() + 1
        frame_mbs_only = r.bit()
        if not frame_mbs_only:
            r.bit()
        r.bit()  # direct_8x8_inference_flag
        width = width_mbs * 16
        height = height_map_units * 16 * (2 - frame_mbs_only)
        if r.bit():  # frame_cropping_flag
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            crop_x = 1 if chroma_format_idc in (0, 3) else 2
            crop_y = (1 if chroma_format_idc in (0, 2) else 2) * (2 - frame_mbs_only)
            width -= (left + right) * crop_x
            height -= (top + bottom) * crop_y
        if width <= 0 or height <= 0:
            return None
        return width, height
    except ValueError:
        return None


class H264ParameterSets:
    """Remembers the latest SPS/PPS so every IDR handed to a viewer can be decoded.

    Encoders that send SPS/PPS only once (or out of band) would otherwise leave a viewer
    that joined later with an IDR it cannot decode.
    """

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.resolution: tuple[int, int] | None = None

    def complete(self, data: bytes) -> bytes:
        units = h264_nal_units(data)
        types = {u[0] & 0x1F for u in units}
        for unit in units:
            kind = unit[0] & 0x1F
            if kind == H264_NAL_SPS and unit != self.sps:
                self.sps = unit
                self.resolution = h264_sps_resolution(unit) or self.resolution
            elif kind == H264_NAL_PPS:
                self.pps = unit
        if H264_NAL_IDR in types and H264_NAL_SPS not in types and self.sps and self.pps:
            return ANNEXB_START + self.sps + ANNEXB_START + self.pps + data
        return data


def keyframe_resolution(codec: str, data: bytes) -> tuple[int, int] | None:
    """Picture size from a keyframe's own headers (VP8 frame header, H.264 SPS)."""
    if codec == "VP8":
        return vp8_resolution(data)
    if codec == "H264":
        for unit in h264_nal_units(data):
            if unit[0] & 0x1F == H264_NAL_SPS:
                return h264_sps_resolution(unit)
    return None
