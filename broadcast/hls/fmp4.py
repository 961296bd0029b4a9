"""Reading the few boxes of fragmented MP4 that the HLS packager needs.

FFmpeg writes the bytes (PyAV's mp4 muxer, no transcoding); this module only reads them back to
know where the init section ends and, per fragment (`moof` + `mdat`), each track's start time,
duration and whether its first sample is a sync sample (an independent part in LL-HLS terms).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf"}
NON_SYNC = 0x10000  # sample_is_non_sync_sample in the sample flags


class Mp4Error(ValueError):
    """Bytes that are not the fragmented MP4 expected."""


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int   # of the header
    body: int    # of the payload
    end: int


def boxes(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The complete boxes laid end to end in data[start:end]; stops at one cut short."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            size = struct.unpack_from(">Q", data, at + 8)[0]
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        yield Box(kind, at, at + header, at + size)
        at += size


def child(data: bytes | bytearray | memoryview, parent: Box, kind: bytes) -> Box | None:
    return next((b for b in boxes(data, parent.body, parent.end) if b.kind == kind), None)


def children(data: bytes | bytearray | memoryview, parent: Box, kind: bytes) -> list[Box]:
    return [b for b in boxes(data, parent.body, parent.end) if b.kind == kind]


@dataclass(frozen=True)
class Track:
    track_id: int
    handler: str            # "vide", "soun"
    timescale: int
    default_duration: int   # from `trex`
    default_flags: int


def init_tracks(init: bytes) -> dict[int, Track]:
    """The tracks of an init section (`ftyp` + `moov`)."""
    moov = next((b for b in boxes(init) if b.kind == b"moov"), None)
    if moov is None:
        raise Mp4Error("no moov box in the init section")
    defaults: dict[int, tuple[int, int]] = {}
    mvex = child(init, moov, b"mvex")
    if mvex is not None:
        for trex in children(init, mvex, b"trex"):
            track_id, _desc, duration, _size, flags = struct.unpack_from(">IIIII", init, trex.body + 4)
            defaults[track_id] = (duration, flags)
    tracks = {}
    for trak in children(init, moov, b"trak"):
        tkhd = child(init, trak, b"tkhd")
        mdia = child(init, trak, b"mdia")
        if tkhd is None or mdia is None:
            raise Mp4Error("a trak without tkhd or mdia")
        version = init[tkhd.body]
        track_id = struct.unpack_from(">I", init, tkhd.body + (20 if version == 1 else 12))[0]
        mdhd, hdlr = child(init, mdia, b"mdhd"), child(init, mdia, b"hdlr")
        if mdhd is None or hdlr is None:
            raise Mp4Error("a track without mdhd or hdlr")
        timescale = struct.unpack_from(">I", init, mdhd.body + (20 if init[mdhd.body] == 1 else 12))[0]
        handler = bytes(init[hdlr.body + 8:hdlr.body + 12]).decode("ascii", "replace")
        duration, flags = defaults.get(track_id, (0, 0))
        tracks[track_id] = Track(track_id, handler, timescale, duration, flags)
    return tracks


@dataclass(frozen=True)
class TrackRun:
    """One track's samples in one fragment."""
    track_id: int
    base_time: int          # tfdt, in the track's timescale
    duration: int           # of its samples, in the track's timescale
    samples: int
    starts_with_sync: bool


def fragment_runs(data: bytes | bytearray | memoryview, moof: Box, tracks: dict[int, Track]) -> dict[int, TrackRun]:
    """Each track's samples in the fragment whose `moof` is `moof`."""
    out = {}
    for traf in children(data, moof, b"traf"):
        tfhd, tfdt = child(data, traf, b"tfhd"), child(data, traf, b"tfdt")
        if tfhd is None or tfdt is None:
            raise Mp4Error("a traf without tfhd or tfdt")
        tf_flags = struct.unpack_from(">I", data, tfhd.body)[0] & 0xFFFFFF
        track_id = struct.unpack_from(">I", data, tfhd.body + 4)[0]
        track = tracks.get(track_id)
        if track is None:
            raise Mp4Error(f"a fragment of track {track_id}, which the init section does not have")
        at = tfhd.body + 8
        if tf_flags & 0x01:
            at += 8  # base data offset
        if tf_flags & 0x02:
            at += 4  # sample description index
        default_duration, default_flags = track.default_duration, track.default_flags
        if tf_flags & 0x08:
            default_duration = struct.unpack_from(">I", data, at)[0]
            at += 4
        if tf_flags & 0x10:
            at += 4  # default sample size
        if tf_flags & 0x20:
            default_flags = struct.unpack_from(">I", data, at)[0]
        version = data[tfdt.body]
        base = struct.unpack_from(">Q" if version == 1 else ">I", data, tfdt.body + 4)[0]
        duration = samples = 0
        first_flags: int | None = None
        for trun in children(data, traf, b"trun"):
            flags = struct.unpack_from(">I", data, trun.body)[0] & 0xFFFFFF
            count = struct.unpack_from(">I", data, trun.body + 4)[0]
            at = trun.body + 8
            if flags & 0x001:
                at += 4  # data offset
            run_first: int | None = None
            if flags & 0x004:
                run_first = struct.unpack_from(">I", data, at)[0]
                at += 4
            fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
            for i in range(count):
                sample_duration, sample_flags = default_duration, default_flags
                for bit in fields:
                    value = struct.unpack_from(">I", data, at)[0]
                    at += 4
                    if bit == 0x100:
                        sample_duration = value
                    elif bit == 0x400:
                        sample_flags = value
                if i == 0 and run_first is not None:
                    sample_flags = run_first
                if first_flags is None:
                    first_flags = sample_flags
                duration += sample_duration
            samples += count
        out[track_id] = TrackRun(track_id, base, duration, samples,
                                 first_flags is not None and not first_flags & NON_SYNC)
    return out
