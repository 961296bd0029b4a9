"""ViewerSession: a WebRTC connection that receives one feed (WHEP, browser viewer)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from broadcast.participant import Participant
from broadcast.relay.stream import Stream
from broadcast.webrtc.aiortchooks import fast_ntp_time, install_fast_send, install_sender_hooks
from broadcast.webrtc.autorendition import AutoMeter, AutoRendition, AutoState
from broadcast.webrtc.consumer import Consumer
from broadcast.webrtc.linkmonitor import LinkMonitor, install_link_monitor
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import PeerSession, SessionSettings

logger = logging.getLogger(__name__)


class ViewerSession(PeerSession):
    role = "viewer"

    def __init__(self, stream: Stream, settings: SessionSettings, protocol: str = "whep",
                 participant: Participant | None = None, quality: str = "auto") -> None:
        super().__init__(stream.path, settings, participant)
        self.stream = stream
        self.protocol = protocol
        self.quality = quality  # what the viewer asked for: auto, high, low or audio
        self.consumers: list[Consumer] = []
        self.link = LinkMonitor(fast_ntp_time)  # what the viewer's RTCP says of its link (video)
        self.auto: AutoRendition | None = None  # quality "auto": what moves it between renditions
        self.on_joined: Callable[[float], None] | None = None  # seconds to the first video frame

    async def start(self, shaped: ShapedOffer) -> str:
        return await self._negotiate(shaped, self._attach_consumers)

    def _attach_consumers(self) -> None:
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            if kind not in ("audio", "video"):
                continue
            producer = self.stream.renditions.producer(self.quality) if kind == "video" else self.stream.audio
            consumer = Consumer(producer)
            if kind == "video" and self.quality == "audio":
                consumer.set_muted(True)
            consumer.on_first_frame = self.on_joined
            consumer.on("ended", self._on_consumer_ended)
            self.consumers.append(consumer)
            sender = self.pc.addTrack(consumer)
            install_sender_hooks(sender, producer.codec or "", consumer.request_keyframe)
            if kind == "video":
                install_link_monitor(sender, self.link)
            if self.settings.fast_send:
                install_fast_send(sender, functools.partial(consumer.use_fast_sender, sender), self.settings.udp_gso)
        self._follow_link()

    def _follow_link(self) -> None:
        """Quality "auto" on the fast path (the only one that switches): start its policy."""
        if self.auto is not None:
            self.auto.stop()
            self.auto = None
        video = self.video
        if self.quality != "auto" or video is None or not self.settings.fast_send:
            return

        def sent(attr: str) -> int:
            fast = video.fast
            return 0 if fast is None else int(getattr(fast, attr))

        meter = AutoMeter(high_bytes=lambda: self.stream.video.bytes_in,
                          sent_bytes=lambda: sent("bytes_sent") - sent("padding_bytes"),
                          sent_packets=lambda: sent("packets_sent"), nacked=lambda: self.link.nacked_total)

        def sample_link(now: float) -> tuple[float | None, int | None, int | None, float | None, float | None]:
            loss, lowest_remb = self.link.take()
            return loss, self.link.fresh_remb(now), lowest_remb, self.link.take_rtt(), self.link.base_rtt_s

        def pad(budget: int) -> int:
            fast = video.fast
            return 0 if fast is None else fast.pad(budget, fast_ntp_time())

        self.auto = AutoRendition(self.log_name(), meter, sample_link, self._auto_switch, pad)
        self.auto.start()

    def _auto_switch(self, rendition: str) -> None:
        video = self.video
        if video is not None and self.quality == "auto":
            video.switch_to(self.stream.renditions.producer(rendition))

    @property
    def video(self) -> Consumer | None:
        return next((c for c in self.consumers if c.kind == "video"), None)

    @property
    def rendition(self) -> str:
        """What the viewer gets now: "high", "low" or "audio" (a switch may be on its way)."""
        video = self.video
        if video is None or video.muted:
            return "audio"
        return "low" if video.producer is self.stream.renditions.low else "high"

    @property
    def why(self) -> str:
        """Why the viewer gets what it gets, in words."""
        if self.quality != "auto":
            return "as asked"
        if self.auto is not None and self.auto.policy.state is not AutoState.HIGH:
            return f"the connection is slow: {self.auto.policy.reason}"
        return "the connection carries the feed as published"

    def set_quality(self, quality: str) -> None:
        """Change the rendition without a new connection: on the target's next keyframe
        ("auto" starts from the feed as published and follows the link from there)."""
        if quality == self.quality:
            return
        self.quality = quality
        video = self.video
        if video is None:
            return
        video.set_muted(quality == "audio")
        if quality != "audio":
            video.switch_to(self.stream.renditions.producer(quality))
        self._follow_link()

    def quality_status(self) -> dict[str, object]:
        fast = self.video.fast if self.video is not None else None
        sent = None if fast is None else {
            "media_kB": fast.media_bytes // 1000, "retransmitted": fast.retransmitted,
            "retransmits_refused": fast.retransmits_refused, "padding_kB": fast.padding_bytes // 1000}
        return {"quality": self.quality, "rendition": self.rendition, "why": self.why,
                "auto": self.auto.status() if self.auto is not None else None, "link": self.link.status(),
                "video_sent": sent}

    def _on_consumer_ended(self) -> None:
        # The producer closed it (codec change, stream closed): this viewer must renegotiate.
        if not self.closed:
            self.close_soon()

    @property
    def frames_dropped(self) -> int:
        return sum(c.frames_dropped for c in self.consumers)

    def _release(self) -> None:
        if self.auto is not None:
            self.auto.stop()
        for consumer in self.consumers:
            consumer.stop()
