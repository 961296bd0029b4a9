"""A light LL-HLS player for load tests: what hls.js does on the wire, without decoding.

Each client asks for the playlist with blocking reload for the next part, then fetches that part,
and so on. It records, per part, how late the part arrived after the end of the picture it holds
(its segment's PROGRAM-DATE-TIME plus the parts before it, plus its own duration): on loopback,
where the server's clock is the client's, that is the muxing, the blocking reload and the cache.
"""

from __future__ import annotations

import asyncio
import calendar
import re
import time
from dataclasses import dataclass, field

import aiohttp

HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s"')
LINE = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)|#EXT-X-PART:DURATION=([\d.]+),URI=\"part(\d+)\.(\d+)\.m4s\"")


def hinted(playlist: str) -> tuple[int, int]:
    match = HINT.search(playlist)
    if match is None:
        raise ValueError("a playlist without a preload hint")
    return int(match.group(1)), int(match.group(2))


def part_ends(playlist: str) -> dict[tuple[int, int], float]:
    """Wall-clock end of each listed part's picture: (msn, index) → seconds since the epoch."""
    out: dict[tuple[int, int], float] = {}
    at = 0.0
    for match in LINE.finditer(playlist):
        if match.group(1):
            stamp = match.group(1)
            at = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + stamp[19:-1])
        else:
            at += float(match.group(2))
            out[(int(match.group(3)), int(match.group(4)))] = at
    return out


@dataclass
class HlsClient:
    url: str                      # the playlist's (a signed prefix: no header needed)
    parts: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    late_s: list[float] = field(default_factory=list)   # per part: arrival − end of its picture
    cache: dict[str, int] = field(default_factory=dict)  # X-Cache-Status seen (HIT, MISS …)

    async def run(self, http: aiohttp.ClientSession, until: float) -> None:
        base = self.url.rsplit("/", 1)[0]
        try:
            async with http.get(self.url) as resp:
                playlist = await resp.text()
            msn, part = hinted(playlist)
            while time.monotonic() < until:
                async with http.get(f"{self.url}?_HLS_msn={msn}&_HLS_part={part}") as resp:
                    if resp.status != 200:
                        self.errors.append(f"playlist {resp.status}")
                        await asyncio.sleep(0.2)
                        continue
                    playlist = await resp.text()
                ends = part_ends(playlist)
                if (msn, part) not in ends and (msn + 1, 0) in ends:
                    msn, part = msn + 1, 0  # the segment ended before the hinted part: the next one's first
                async with http.get(f"{base}/part{msn}.{part}.m4s") as resp:
                    data = await resp.read()
                    status = resp.headers.get("X-Cache-Status", "-")
                    if resp.status != 200:
                        self.errors.append(f"part {resp.status}")
                arrived = time.time()
                self.cache[status] = self.cache.get(status, 0) + 1
                if resp.status == 200:
                    self.parts += 1
                    self.bytes += len(data)
                    if (msn, part) in ends:
                        self.late_s.append(arrived - ends[(msn, part)])
                msn, part = hinted(playlist)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
