"""One feed's LL-HLS media playlist: its segments and parts in memory, the playlist text, and
blocking playlist reload (RFC 8216bis §6.2.5.2).

Lives on the event loop; the muxer thread hands it finished parts. Segment numbers (MSN) only
grow, also across a reconnect of the publisher (a new init section and a discontinuity), so a
player and a cache never see one URL mean two things.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

KEPT_SEGMENTS = 7          # listed (≈ 14 s at 2 s): more than the 3 target durations of hold-back
PARTS_LISTED_SEGMENTS = 3  # the last segments whose parts are listed (complete ones and the one being made)


def utc_iso_ms(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"


@dataclass
class Part:
    data: bytes
    duration: float
    independent: bool


@dataclass
class Segment:
    msn: int
    init: int                    # the number of its init section (EXT-X-MAP)
    discontinuity: bool          # the first after a new init section
    started_at: float            # wall clock of its first frame's arrival (PROGRAM-DATE-TIME)
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    _data: bytes | None = None

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)

    @property
    def data(self) -> bytes:
        if self._data is None or not self.complete:
            self._data = b"".join(p.data for p in self.parts)
        return self._data


@dataclass(frozen=True)
class PlaylistSettings:
    target_s: float = 2.0        # segments are cut on the first keyframe after this
    part_s: float = 0.25         # FFmpeg cuts a fragment (a part) once it holds this much
    part_target_s: float = 0.334  # no part is longer: part_s and at most one more frame (at 15 fps and up)


class MediaPlaylist:
    def __init__(self, settings: PlaylistSettings, codecs: str = "") -> None:
        self.settings = settings
        self.codecs = codecs               # RFC 6381 ("avc1.42e01f,opus") for a multivariant playlist
        self.resolution: tuple[int, int] | None = None
        self.segments: deque[Segment] = deque()
        self.inits: dict[int, bytes] = {}
        self.discontinuities = 0           # EXT-X-DISCONTINUITY-SEQUENCE: those that left the window
        self.longest_s = settings.target_s  # EXT-X-TARGETDURATION may only grow (a 4 s GOP makes 4 s segments)
        self.ended = False
        self._next_msn = 0
        self._changed = asyncio.Event()

    # -- what the muxer hands in (on the loop) -------------------------------------------
    def add_init(self, number: int, data: bytes, codecs: str, resolution: tuple[int, int] | None) -> None:
        self.inits[number] = data
        self.codecs, self.resolution = codecs, resolution
        if self.segments and not self.segments[-1].complete:
            self._finish()  # the old init's segment ends with it
        self._drop_unused_inits()

    def _drop_unused_inits(self) -> None:
        newest = max(self.inits, default=0)
        for old in [n for n in self.inits if n < newest and not any(s.init == n for s in self.segments)]:
            del self.inits[old]

    def add_part(self, init: int, data: bytes, duration: float, independent: bool, arrived_at: float) -> None:
        current = self.segments[-1] if self.segments else None
        if current is not None and not current.complete and current.init != init:
            self._finish()
            current = None
        if current is not None and not current.complete and independent and current.duration >= \
                self.settings.target_s - 0.01:
            self._finish()
            current = None
        if current is None or current.complete:
            if not independent:
                return  # a segment starts on a keyframe; a muxer always opens one with it
            previous = self.segments[-1] if self.segments else None
            current = Segment(self._next_msn, init, previous is not None and previous.init != init, arrived_at)
            self._next_msn += 1
            self.segments.append(current)
            while len(self.segments) > KEPT_SEGMENTS:
                self.segments.popleft()
                if self.segments[0].discontinuity:
                    # the head's tag is not written: it counts as one that left
                    self.discontinuities += 1
            self._drop_unused_inits()
        current.parts.append(Part(data, duration, independent))
        self._pulse()

    def end(self) -> None:
        """The feed stopped: the segment being made is complete, and no part is hinted until the
        feed is back (players wait, or give up)."""
        self.ended = True
        if self.segments and not self.segments[-1].complete:
            self._finish()
        self._pulse()

    def _finish(self) -> None:
        segment = self.segments[-1]
        segment.complete = True
        self.longest_s = max(self.longest_s, segment.duration)

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- what players ask ------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """A player can start: a segment with a part, and its init section."""
        return bool(self.segments) and self.segments[-1].init in self.inits

    def has(self, msn: int, part: int | None) -> bool:
        """The playlist holds part `part` of segment `msn` (or the whole segment). A part past
        the end of a segment that ended (on a keyframe, before the part a hint named) is
        taken as the next segment's first (RFC 8216bis §6.2.5.2)."""
        last = self.segments[-1] if self.segments else None
        if last is None:
            return False
        segment = self.segment(msn)
        if segment is not None and segment.complete and part is not None and part >= len(segment.parts):
            return self.has(msn + 1, 0)
        if msn < last.msn:
            return True
        if msn > last.msn:
            return False
        return last.complete if part is None else len(last.parts) > part

    @property
    def next_msn(self) -> int:
        return self._next_msn

    async def wait_for(self, msn: int, part: int | None, within: float) -> bool:
        deadline = time.monotonic() + within
        while not self.has(msn, part):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                return False
        return True

    async def wait_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return False
        return True

    def segment(self, msn: int) -> Segment | None:
        return next((s for s in self.segments if s.msn == msn), None)

    def part(self, msn: int, index: int) -> Part | None:
        segment = self.segment(msn)
        if segment is None or index >= len(segment.parts):
            return None
        return segment.parts[index]

    def hinted(self) -> tuple[int, int]:
        """The part a preload hint names now: the next of the segment being made."""
        last = self.segments[-1]
        return (last.msn + 1, 0) if last.complete else (last.msn, len(last.parts))

    def render(self) -> str:
        s = self.settings
        lines = ["#EXTM3U", "#EXT-X-VERSION:9", f"#EXT-X-TARGETDURATION:{math.ceil(self.longest_s - 0.001)}",
                 f"#EXT-X-PART-INF:PART-TARGET={s.part_target_s:.3f}",
                 f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * s.part_target_s:.3f}",
                 f"#EXT-X-MEDIA-SEQUENCE:{self.segments[0].msn}",
                 f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuities}"]
        with_parts = {seg.msn for seg in list(self.segments)[-PARTS_LISTED_SEGMENTS:]}
        mapped: int | None = None
        for seg in self.segments:
            if seg.discontinuity and mapped is not None:
                lines.append("#EXT-X-DISCONTINUITY")
            if seg.init != mapped:
                lines.append(f'#EXT-X-MAP:URI="init{seg.init}.mp4"')
                mapped = seg.init
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{utc_iso_ms(seg.started_at)}")
            if seg.msn in with_parts:
                for i, part in enumerate(seg.parts):
                    lines.append(f'#EXT-X-PART:DURATION={part.duration:.3f},URI="part{seg.msn}.{i}.m4s"'
                                 + (",INDEPENDENT=YES" if part.independent else ""))
            if seg.complete:
                lines += [f"#EXTINF:{seg.duration:.3f},", f"seg{seg.msn}.m4s"]
        if not self.ended:
            msn, index = self.hinted()
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part{msn}.{index}.m4s"')
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int                        # bits per second, peak, as EXT-X-STREAM-INF wants it
    codecs: str
    resolution: tuple[int, int] | None


def multivariant(variants: list[Variant]) -> str:
    """The feed's multivariant playlist: a player picks a variant by its bandwidth."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        size = f",RESOLUTION={v.resolution[0]}x{v.resolution[1]}" if v.resolution else ""
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},CODECS="{v.codecs}"{size}', v.uri]
    return "\n".join(lines) + "\n"
