"""ViewerSession: a WebRTC connection that receives one feed (WHEP, browser viewer)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from broadcast.participant import Participant
from broadcast.relay.stream import Stream
from broadcast.webrtc.aiortchooks import install_fast_send, install_sender_hooks
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
        self.link = LinkMonitor()  # what the viewer's RTCP says of its link (video)
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

    def set_quality(self, quality: str) -> None:
        """Change the rendition without a new connection: on the target's next keyframe."""
        self.quality = quality
        video = self.video
        if video is None:
            return
        video.set_muted(quality == "audio")
        if quality != "audio":
            video.switch_to(self.stream.renditions.producer(quality))

    def _on_consumer_ended(self) -> None:
        # The producer closed it (codec change, stream closed): this viewer must renegotiate.
        if not self.closed:
            self.close_soon()

    @property
    def frames_dropped(self) -> int:
        return sum(c.frames_dropped for c in self.consumers)

    def _release(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
