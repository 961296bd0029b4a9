"""LinkMonitor: what a viewer's RTCP says about its link, shown by `GET {session}/quality`;
the input that `auto` (not built yet: it plays `high`) is to move viewers between renditions on.

Read from the RTCP the viewer's browser sends to the video sender: receiver reports (the
fraction of packets lost since the last report, interarrival jitter), NACKs (packets the viewer
asked for again) and REMB (the viewer's estimate of the bitrate its link carries; Chrome sends
it because ORcast negotiates abs-send-time, not transport-cc). A REMB estimate follows what is
sent (libwebrtc caps it at 1.5× the incoming rate), so it says when a link is too slow for a
rendition, not how much more it could carry.
"""

from __future__ import annotations

import logging
import time
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


class LinkMonitor:
    def __init__(self) -> None:
        self.remb_bps: int | None = None
        self.remb_at: float | None = None
        self.loss = 0.0           # the last report's fraction lost
        self.jitter = 0           # the last report's interarrival jitter (clock units)
        self.nacked_total = 0
        self.reports_total = 0

    def on_rtcp(self, packet: Any, ssrc: int) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    self.loss = report.fraction_lost / 256
                    self.jitter = report.jitter
                    self.reports_total += 1
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

    def status(self) -> dict[str, Any]:
        return {"remb_kbps": None if self.remb_bps is None else round(self.remb_bps / 1000),
                "loss_percent": round(100 * self.loss, 1), "nacked": self.nacked_total,
                "receiver_reports": self.reports_total}


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
