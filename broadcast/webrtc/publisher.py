"""PublisherSession: a WebRTC connection that sends one feed (WHIP, browser console)."""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from broadcast.participant import Participant
from broadcast.relay.mediaclock import ntp_to_unix
from broadcast.relay.producer import Producer
from broadcast.relay.stream import Stream
from broadcast.webrtc.aiortchooks import (
    EncodedFrameTap,
    install_receiver_tap,
    install_sender_report_listener,
    request_keyframe_upstream,
)
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import PeerSession, SessionSettings, codec_name

logger = logging.getLogger(__name__)


class ReceiverSource:
    """A producer's source backed by a publisher's RTCRtpReceiver (encoded frames, no decode)."""

    def __init__(self, session: PublisherSession, receiver: RTCRtpReceiver, producer: Producer,
                 codec: str) -> None:
        self.name = f"{session.protocol} {session.id[:6]}"
        self.receiver = receiver
        self.producer = producer
        self.codec = codec
        self.tap = EncodedFrameTap(self._on_frame, self._on_end)

    def _on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        if codec_name(codec) == self.codec:
            self.producer.push(self, frame.data, frame.timestamp, after_loss=getattr(frame, "after_loss", False))

    def on_sender_report(self, ssrc: int, ntp: int, rtp_timestamp: int) -> None:
        self.producer.sender_report(self, ntp_to_unix(ntp), rtp_timestamp)

    def _on_end(self) -> None:
        # RTCP BYE or transport loss: viewers wait for the next source on this path.
        self.producer.detach(self)

    async def request_keyframe(self) -> bool:
        return await request_keyframe_upstream(self.receiver)


class PublisherSession(PeerSession):
    role = "publisher"

    def __init__(self, stream: Stream, settings: SessionSettings, protocol: str = "whip",
                 participant: Participant | None = None) -> None:
        super().__init__(stream.path, settings, participant)
        self.stream = stream
        self.protocol = protocol
        self.sources: list[ReceiverSource] = []

    async def start(self, shaped: ShapedOffer) -> str:
        self.pc.on("track", self._on_track)
        answer = await self._negotiate(shaped, lambda: None)
        if not self.sources:
            raise RuntimeError("offer negotiated but no track arrived")
        return answer

    def _on_track(self, track: Any) -> None:
        # Runs inside setRemoteDescription, before receive() starts aiortc's decoder thread.
        assert self.shaped is not None
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        if track.kind == "video":
            producer, codec = self.stream.video, self.shaped.video_codec or ""
            self.stream.h264_profile = self.shaped.h264_profile
        else:
            producer, codec = self.stream.audio, "opus"
        source = ReceiverSource(self, receiver, producer, codec)
        install_receiver_tap(receiver, source.tap, track.kind)
        install_sender_report_listener(receiver, source.on_sender_report)
        if producer.attach(source, codec):
            logger.info("%s: codec changed to %s; viewers of the old codec were closed",
                        self.log_name(), codec)
        self.sources.append(source)

    def _release(self) -> None:
        for source in self.sources:
            source.producer.detach(source)
