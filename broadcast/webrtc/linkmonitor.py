"""LinkMonitor: what a viewer's RTCP says about its link, shown by `GET {session}/quality`;
what `auto` (autorendition.py) moves viewers between renditions on.

Read from the RTCP the viewer's browser sends to the video sender: receiver reports (their
cumulative loss counts, interarrival jitter, and the round trip from their LSR/DLSR against
our clock), NACKs (packets the viewer asked for again) and REMB (the viewer's estimate of the
bitrate its link carries; Chrome sends it because ORcast negotiates abs-send-time, not
transport-cc). A REMB estimate follows what is sent (libwebrtc caps it at 1.5× the incoming
rate), so it says when a link is too slow for a rendition, not how much more it could carry.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

logger = logging.getLogger(__name__)

BASE_RTT_WINDOW_S = 30.0   # the link's own round trip: the lowest seen this long


class LinkMonitor:
    def __init__(self, ntp_clock: Callable[[], int] | None = None) -> None:
        self.ntp_clock = ntp_clock  # the clock our sender reports' NTP times come from
        self.rtt_s: float | None = None
        self._rtts: deque[tuple[float, float]] = deque()  # (when, round trip) for the base
        self._highest_rtt: float | None = None             # since the last take()
        self.remb_bps: int | None = None
        self.remb_at: float | None = None
        self.loss: float | None = None  # the share lost over the last `take()`'s interval
        self.jitter = 0           # the last report's interarrival jitter (clock units)
        self.nacked_total = 0
        self.reports_total = 0
        # the latest report's cumulative counts (extended highest sequence number, packets lost)
        # and those at the last `take()`; the lowest REMB since then
        self._counts: tuple[int, int] | None = None
        self._taken_counts: tuple[int, int] | None = None
        self._lowest_remb: int | None = None

    def on_rtcp(self, packet: Any, ssrc: int) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    self.jitter = report.jitter
                    self.reports_total += 1
                    self._counts = (report.highest_sequence, report.packets_lost)
                    if report.lsr and self.ntp_clock is not None:
                        self._round_trip(report.lsr, report.dlsr)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacked_total += len(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return  # an APP message that is not REMB
            if ssrc in ssrcs or not ssrcs:
                self.remb_bps = bitrate
                self.remb_at = time.monotonic()
                self._lowest_remb = bitrate if self._lowest_remb is None else min(bitrate, self._lowest_remb)

    def _round_trip(self, lsr: int, dlsr: int) -> None:
        now_mid = (self.ntp_clock() >> 16) & 0xFFFFFFFF if self.ntp_clock else 0
        rtt = ((now_mid - lsr - dlsr) & 0xFFFFFFFF) / 65536
        if rtt > 10.0:
            return  # a report about a sender report of another clock (or a broken one)
        now = time.monotonic()
        self.rtt_s = rtt
        self._highest_rtt = rtt if self._highest_rtt is None else max(rtt, self._highest_rtt)
        # a sliding minimum: the oldest sample goes with the window; a newer, lower one makes
        # every higher one before it irrelevant
        while self._rtts and now - self._rtts[0][0] > BASE_RTT_WINDOW_S:
            self._rtts.popleft()
        while self._rtts and self._rtts[-1][1] >= rtt:
            self._rtts.pop()
        self._rtts.append((now, rtt))

    @property
    def base_rtt_s(self) -> float | None:
        """The lowest round trip of the last BASE_RTT_WINDOW_S: the link with an empty queue."""
        return self._rtts[0][1] if self._rtts else None

    def take_rtt(self) -> float | None:
        """The highest round trip since the last call (None: no report with one came)."""
        rtt, self._highest_rtt = self._highest_rtt, None
        return rtt

    def take(self) -> tuple[float | None, int | None]:
        """Since the last call: the share of packets lost and the lowest REMB (None: no report
        came). The loss is read from the reports' cumulative counts: Chrome sends a report
        with every NACK, so one report's own fraction may cover a few packets."""
        loss = None
        if self._counts is not None and self._taken_counts is not None:
            expected = self._counts[0] - self._taken_counts[0]
            if expected > 0:
                loss = min(1.0, max(0.0, (self._counts[1] - self._taken_counts[1]) / expected))
            self.loss = loss
        self._taken_counts = self._counts
        remb, self._lowest_remb = self._lowest_remb, None
        return loss, remb

    def fresh_remb(self, now: float, max_age_s: float = 3.0) -> int | None:
        """The viewer's latest estimate, if it is recent (Chrome repeats it at least each second)."""
        if self.remb_at is None or now - self.remb_at > max_age_s:
            return None
        return self.remb_bps

    def status(self) -> dict[str, Any]:
        return {"remb_kbps": None if self.remb_bps is None else round(self.remb_bps / 1000),
                "loss_percent": None if self.loss is None else round(100 * self.loss, 1),
                "lost": self._counts[1] if self._counts is not None else 0, "nacked": self.nacked_total,
                "receiver_reports": self.reports_total,
                "rtt_ms": None if self.rtt_s is None else round(self.rtt_s * 1000),
                "base_rtt_ms": None if self.base_rtt_s is None else round(self.base_rtt_s * 1000)}


def install_link_monitor(sender: RTCRtpSender, monitor: LinkMonitor) -> None:
    """Show `monitor` every RTCP packet the viewer sends to `sender`, before aiortc handles it."""
    original: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        try:
            monitor.on_rtcp(packet, sender._ssrc)
        except Exception:  # a monitor that fails must not stop the viewer's RTCP
            logger.exception("the link monitor failed on an RTCP packet")
        await original(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
