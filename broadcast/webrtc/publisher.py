"""PublisherSession: a WebRTC connection that sends one feed (WHIP, browser console)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from broadcast.participant import Participant
from broadcast.relay.frame import is_keyframe
from broadcast.relay.mediaclock import ntp_to_unix
from broadcast.relay.producer import Producer
from broadcast.relay.stream import Stream
from broadcast.sources.mediaconvert import ThreadedVideoTranscoder
from broadcast.webrtc.aiortchooks import (
    EncodedFrameTap,
    install_receiver_tap,
    install_sender_report_listener,
    request_keyframe_upstream,
)
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import PeerSession, SessionSettings, codec_name

logger = logging.getLogger(__name__)


B_FRAMES_ADVICE = ("set the encoder's B-frames to 0 (OBS: x264 options bframes=0, or a hardware encoder's "
                   "\"B-frames\" or \"baseline\" profile; FFmpeg: -bf 0; GStreamer x264enc: bframes=0)")


class ReceiverSource:
    """A producer's source backed by a publisher's RTCRtpReceiver (encoded frames, no decode).

    An H.264 encoder that sends B-frames (frames whose timestamp goes back: they come in decode
    order, shown later) cannot be relayed as is: WebRTC viewers drop them, and the feed's
    timeline would stutter. From its next keyframe on, such a feed is transcoded once, in a
    thread, to H.264 without B-frames, and the log and the feed list say so."""

    def __init__(self, session: PublisherSession, receiver: RTCRtpReceiver, producer: Producer,
                 codec: str, detach: Callable[[ReceiverSource], None] | None = None) -> None:
        self.name = f"{session.protocol} {session.id[:6]}"
        self.log_name = session.log_name()
        self.receiver = receiver
        self.producer = producer
        self.codec = codec
        self.tap = EncodedFrameTap(self._on_frame, self._on_end)
        self.transcoding: str | None = None
        self._reorder: ThreadedVideoTranscoder | None = None
        self._waiting_keyframe = False
        self._last_ts: int | None = None
        self._detach = detach or producer.detach
        self._released = False

    def _on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        if codec_name(codec) != self.codec:
            return
        after_loss = getattr(frame, "after_loss", False)
        if self.codec == "H264" and self.producer.kind == "video":
            last, self._last_ts = self._last_ts, frame.timestamp
            if self._reorder is None and last is not None and 0 < last - frame.timestamp < 1 << 30:
                self._start_transcoding()
            if self._reorder is not None:
                self._transcode(frame, after_loss)
                return
        self.producer.push(self, frame.data, frame.timestamp, after_loss=after_loss)

    def _start_transcoding(self) -> None:
        logger.warning("%s: the encoder sends B-frames, which WebRTC viewers cannot play; ORcast transcodes "
                       "this feed from its next keyframe (CPU on the server). To relay it as is, %s",
                       self.log_name, B_FRAMES_ADVICE)
        self.transcoding = "video H.264 with B-frames → H.264"
        self._reorder = ThreadedVideoTranscoder("h264", self._transcoded, self.log_name)
        self._waiting_keyframe = True
        self.producer.request_keyframe()

    def _transcode(self, frame: JitterFrame, after_loss: bool) -> None:
        assert self._reorder is not None
        if self._waiting_keyframe or after_loss:
            if not is_keyframe("H264", frame.data):
                if not self._waiting_keyframe:
                    self._waiting_keyframe = True
                    self.producer.request_keyframe()
                return
            self._waiting_keyframe = False
        if not self._reorder.put(frame.data, frame.timestamp):
            logger.warning("%s: the transcoder cannot keep up; frames dropped until a keyframe", self.log_name)
            self._waiting_keyframe = True
            self.producer.request_keyframe()

    def _transcoded(self, data: bytes, timestamp: int) -> None:
        self.producer.push(self, data, timestamp)

    def close(self) -> None:
        if self._reorder is not None:
            self._reorder.close()

    def on_sender_report(self, ssrc: int, ntp: int, rtp_timestamp: int) -> None:
        self.producer.sender_report(self, ntp_to_unix(ntp), rtp_timestamp)

    def _on_end(self) -> None:
        # RTCP BYE or transport loss: viewers wait for the next source on this path.
        self.release()

    def release(self) -> None:
        """Idempotent: the producer lets go of this source."""
        if self._released:
            return
        self._released = True
        self.close()
        self._detach(self)

    async def request_keyframe(self) -> bool:
        if self._reorder is not None and not self._waiting_keyframe:
            self._reorder.request_keyframe()  # ours makes one at once
            return True
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
        if shaped.simulcast_dropped:
            logger.warning("%s: the encoder offered simulcast (RID), which the server cannot receive (aiortc has "
                           "no RTP simulcast); answered with one encoding. To send a low rendition, send it as a "
                           "second video track", self.log_name())
        answer = await self._negotiate(shaped, lambda: None)
        if not self.sources:
            raise RuntimeError("offer negotiated but no track arrived")
        return answer

    def _on_track(self, track: Any) -> None:
        # Runs inside setRemoteDescription, before receive() starts aiortc's decoder thread.
        assert self.shaped is not None
        transceivers = [t for t in self.pc.getTransceivers() if t.kind == track.kind]
        receiver = next(t.receiver for t in transceivers if t.receiver.track is track)
        if track.kind == "video" and self.shaped.has_low_video and receiver is not transceivers[0].receiver:
            self._on_low_track(receiver, self.shaped.video_codec or "")
            return
        if track.kind == "video":
            producer, codec = self.stream.video, self.shaped.video_codec or ""
            self.stream.h264_profile = self.shaped.h264_profile
        else:
            producer, codec = self.stream.audio, "opus"
        source = self._source(receiver, producer, codec, track.kind)
        if producer.attach(source, codec):
            logger.info("%s: codec changed to %s; viewers of the old codec were closed",
                        self.log_name(), codec)

    def _on_low_track(self, receiver: RTCRtpReceiver, codec: str) -> None:
        """The second video track: the publisher's own low rendition of the same camera
        (the console sends one): low viewers read it and the server encodes nothing."""
        renditions = self.stream.renditions
        source = self._source(receiver, renditions.low, codec, "video", detach=renditions.unpublish)
        renditions.publish(source, codec)
        logger.info("%s: the publisher sends its own low rendition (a second %s track)", self.log_name(), codec)

    def _source(self, receiver: RTCRtpReceiver, producer: Producer, codec: str, kind: str,
                detach: Callable[[ReceiverSource], None] | None = None) -> ReceiverSource:
        source = ReceiverSource(self, receiver, producer, codec, detach)
        install_receiver_tap(receiver, source.tap, kind)
        install_sender_report_listener(receiver, source.on_sender_report)
        self.sources.append(source)
        return source

    def _release(self) -> None:
        for source in self.sources:
            source.release()
