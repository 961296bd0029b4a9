"""MediaClock: where a producer's timestamps sit on a wall clock, so audio meets video.

Audio and video of one feed run on separate RTP clocks with random origins. Two ways to
put them on one wall clock:

* RTCP sender reports pair the sender's NTP time with an RTP timestamp (RFC 3550 6.4.1).
  This is what lip sync is built on. aiortc stamps a report with the send time of its last
  packet, libwebrtc extrapolates to "now": either way NTP - RTP/rate is never below the
  true offset, so the minimum over the last few reports is the best estimate.
* Arrival time, when a sender sends no reports (the in-process synthetic feed) or has not
  sent one yet: the minimum of arrival - RTP/rate over a few seconds (the frames that were
  delayed least).

Offsets are plain floats replaced in one assignment, so the recorder's writer thread can
read them without a lock.
"""

from __future__ import annotations

import math
from collections import deque

SENDER_REPORT_WINDOW = 8  # reports (one every ~1 s): follows a drifting sender
ARRIVAL_WINDOW_S = 2.0    # each half of the arrival minimum's two-bucket window


NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP epoch) to 1970-01-01


def ntp_to_unix(ntp: int) -> float:
    """64-bit NTP timestamp → seconds since 1970."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFF_FFFF) / 2**32


class MediaClock:
    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.sender_offset: float | None = None   # sender's wall clock - ts/rate
        self.arrival_offset: float | None = None  # our wall clock - ts/rate
        self._reports: deque[float] = deque(maxlen=SENDER_REPORT_WINDOW)
        self._bucket_start = -math.inf
        self._bucket_min = math.inf
        self._previous_min = math.inf

    def reset(self) -> None:
        """A new source (or a jump in its timeline): what was known no longer holds."""
        self._reports.clear()
        self.sender_offset = None
        self.arrival_offset = None
        self._bucket_start = -math.inf
        self._bucket_min = self._previous_min = math.inf

    def on_frame(self, timestamp: int, arrival: float) -> None:
        offset = arrival - timestamp / self.clock_rate
        if arrival - self._bucket_start >= ARRIVAL_WINDOW_S:
            self._previous_min, self._bucket_min = self._bucket_min, math.inf
            self._bucket_start = arrival
        if offset < self._bucket_min:
            self._bucket_min = offset
        self.arrival_offset = min(self._bucket_min, self._previous_min)

    def on_sender_report(self, wall: float, timestamp: int) -> None:
        self._reports.append(wall - timestamp / self.clock_rate)
        self.sender_offset = min(self._reports)
