"""Fails loudly when an aiortc upgrade moves the internals the encoded relay hooks into."""

from __future__ import annotations

import queue

import aiortc
from aiortc import RTCPeerConnection
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from broadcast.relay.frame import EncodedFrame
from broadcast.webrtc.aiortchooks import (
    AIORTC_VERSION,
    EncodedFrameTap,
    SharedPacketizer,
    check_internals,
    fast_ms,
    fast_ntp_time,
    install_receiver_tap,
)
from tests.conftest import RunningServer
from tests.support.peers import publish


def test_aiortc_is_the_pinned_version() -> None:
    assert aiortc.__version__ == AIORTC_VERSION


def test_every_hook_point_exists() -> None:
    check_internals()  # raises AiortcInternalsChanged with the list of what moved


async def test_receiver_decoder_queue_is_replaceable_before_receive() -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    receiver = pc.getTransceivers()[0].receiver
    assert isinstance(receiver._RTCRtpReceiver__decoder_queue, queue.Queue)
    seen: list[object] = []
    tap = EncodedFrameTap(lambda codec, frame: seen.append(frame), lambda: seen.append("end"))
    install_receiver_tap(receiver, tap, "video")
    assert receiver._RTCRtpReceiver__decoder_queue is tap
    await pc.close()


async def test_publisher_receivers_carry_the_tap_and_never_decode(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, "course/or1/endoscope", "VP8")
    session = next(iter(server.broadcaster.sessions.values()))
    receivers: list[RTCRtpReceiver] = [t.receiver for t in session.pc.getTransceivers()]
    assert receivers and all(
        isinstance(r._RTCRtpReceiver__decoder_queue, EncodedFrameTap) for r in receivers)
    await pub.pc.close()


def test_fast_clock_matches_aiortc_clock() -> None:
    import aiortc.clock as clock
    original_ntp = clock.datetime_to_ntp(clock.current_datetime())
    fast = fast_ntp_time()
    assert abs(fast - original_ntp) < (1 << 32) // 100, "more than 10 ms apart"
    original_ms = int((clock.current_datetime() - clock.NTP_EPOCH).total_seconds() * 1000)
    assert abs(fast_ms() - original_ms) <= 10


def test_shared_packetizer_packs_once_for_every_viewer() -> None:
    frame = EncodedFrame("VP8", b"\x10" + bytes(3000), 3000, False, 90000, index=7)
    first = SharedPacketizer("VP8").pack(frame)
    second = SharedPacketizer("VP8").pack(frame)
    assert first[0] is second[0], "the second viewer must reuse the payloads"
    assert first[1] == 3000 and len(first[0]) >= 3
    # never raises into aiortc's sender (that would end the viewer's stream for good)
    assert SharedPacketizer("VP8").pack(object()) == ([], None)


async def test_sender_uses_injected_encoder_slot() -> None:
    pc = RTCPeerConnection()
    t = pc.addTransceiver("video", direction="sendonly")
    assert hasattr(t.sender, "_RTCRtpSender__encoder")
    assert t.sender._RTCRtpSender__encoder is None
    await pc.close()
