"""Every place where ORcast reaches into aiortc 1.16 internals, and the check that they still exist.

aiortc has no public API for taking encoded frames off a receiver or for handing
pre-packetized frames to a sender, so the relay hooks in at four private points:

* `RTCRtpReceiver.__decoder_queue`: replaced before `receive()` starts the decoder thread,
  so depacketized frames come to us instead of to FFmpeg (no decode).
* `RTCRtpReceiver.__jitter_buffer`: replaced by the buffers of `framebuffer.py`, which hand
  a video frame on as soon as its last packet is in (aiortc's waits for the next frame's
  first packet: one frame interval) and audio packet by packet (aiortc's prefetches 4: 80 ms).
* `RTCRtpSender.__encoder`: set to a packetizer that splits each shared frame into RTP
  payloads once for all viewers (no encode, no per-viewer split).
* `RTCRtpSender._send_keyframe`: a viewer's PLI/FIR is forwarded upstream instead of
  asking a (non-existent) encoder for a keyframe.
* `RTCRtpReceiver._handle_rtcp_packet`: wrapped per receiver to read the publisher's RTCP
  sender reports (NTP ↔ RTP), which recordings need for A/V sync and aiortc keeps to itself.

Plus `aiortc.clock.current_ntp_time` / `current_ms`, which aiortc calls two and one times per
RTP packet and which go through `datetime`: `install_fast_clock()` swaps in equivalents
computed from `time.time()` (same values, a fraction of the cost).

Plus two DTLS settings: ECDHE-RSA ciphers (GStreamer-based WHIP encoders use RSA
certificates) and the passive role for `actpass` offers. `check_internals()` fails loudly
when an aiortc upgrade moves any of these; tests/integration/test_aiortc_internals.py runs it.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import errno
import logging
import queue
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.clock
import aiortc.rtcrtpreceiver
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpSrPacket

from broadcast.lifecycle import call_listener
from broadcast.relay.frame import EncodedFrame
from broadcast.relay.mediaclock import NTP_UNIX_OFFSET
from broadcast.webrtc.fastsender import FastSender, RtpParameters, gso_runs
from broadcast.webrtc.framebuffer import AudioPacketBuffer, TimestampUnwrapper, VideoFrameBuffer
from broadcast.webrtc.packetizer import h264_payloads

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
_RX_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RX_JITTER = "_RTCRtpReceiver__jitter_buffer"
_RX_THREAD = "_RTCRtpReceiver__decoder_thread"
_RX_TS_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
_TX_ENCODER = "_RTCRtpSender__encoder"
_DTLS_CERT = "_RTCDtlsTransport__local_certificate"
SSL_CB_ALERT = 0x4000
UDP_SEGMENT = 103  # linux/udp.h: the segment size for UDP GSO, as a cmsg of SOL_UDP
# what a socket or device that cannot segment answers to UDP_SEGMENT
_GSO_REFUSED = frozenset((errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP))
_GSO_SIZE = struct.Struct("=H")
# asyncio's private transport classes (typeshed leaves them out): UDP GSO needs the raw socket
_SELECTOR_TRANSPORT: Any = vars(asyncio.selector_events)["_SelectorTransport"]
_DATAGRAM_TRANSPORT: type = vars(asyncio.selector_events)["_SelectorDatagramTransport"]

# aiortc offers only ECDSA suites as DTLS client and server; RSA suites are added so that
# encoders with RSA certificates (GStreamer's webrtcbin, some hardware boxes) can connect.
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)




def fast_ntp_time() -> int:
    """64-bit NTP timestamp of now, as aiortc.clock.current_ntp_time computes it."""
    now = time.time()
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return ((seconds + NTP_UNIX_OFFSET) << 32) | ((micros << 32) // 1_000_000)


def fast_ms() -> int:
    """Milliseconds since the NTP epoch, as aiortc.clock.current_ms computes it."""
    return int((time.time() + NTP_UNIX_OFFSET) * 1000)


def install_fast_clock() -> None:
    aiortc.clock.current_ntp_time = fast_ntp_time
    aiortc.clock.current_ms = fast_ms


class LazyBitrateEstimator:
    """aiortc's RemoteBitrateEstimator, built when its receiver gets its first packet.

    aiortc gives every video receiver one, holding 1000 rate buckets (about 4 ms to build here,
    and ~100 KB): a viewer's connection only sends, so its receiver never needs it, and a crowd
    joining at once pays it 20 times over before the first answer goes out."""

    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real: Any = None

    def add(self, *args: Any, **kwargs: Any) -> Any:
        if self._real is None:
            self._real = _BITRATE_ESTIMATOR()
        return self._real.add(*args, **kwargs)


_BITRATE_ESTIMATOR: Any = vars(aiortc.rtcrtpreceiver)["RemoteBitrateEstimator"]
HOST_ADDRESSES_TTL_S = 10.0


def _cached_host_addresses() -> Callable[[bool, bool], list[str]]:
    """aioice lists the machine's interfaces (ifaddr, ~2 ms) for every connection it gathers
    for; a server's addresses change rarely: keep the list HOST_ADDRESSES_TTL_S."""
    original = _HOST_ADDRESSES
    cache: dict[tuple[bool, bool], tuple[float, list[str]]] = {}

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        now = time.monotonic()
        hit = cache.get((use_ipv4, use_ipv6))
        if hit is None or now - hit[0] > HOST_ADDRESSES_TTL_S:
            hit = cache[(use_ipv4, use_ipv6)] = (now, original(use_ipv4, use_ipv6))
        return list(hit[1])

    return get_host_addresses


_HOST_ADDRESSES = aioice.ice.get_host_addresses


def install_cheap_joins() -> None:
    """What each new connection costs before its answer, made lighter (idempotent)."""
    setattr(aiortc.rtcrtpreceiver, "RemoteBitrateEstimator", LazyBitrateEstimator)  # noqa: B010 -- not exported
    if aioice.ice.get_host_addresses is _HOST_ADDRESSES:
        aioice.ice.get_host_addresses = _cached_host_addresses()  # type: ignore[assignment]


class AiortcInternalsChanged(RuntimeError):
    """The aiortc internals the encoded relay depends on are not where 1.16.0 had them."""


def check_internals() -> None:
    """Raise AiortcInternalsChanged unless every hook point looks as it did in aiortc 1.16.0."""
    problems: list[str] = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(f"aiortc {aiortc.__version__} installed, the relay is built for {AIORTC_VERSION}")
    init_names = RTCRtpReceiver.__init__.__code__.co_names
    for name in (_RX_QUEUE, _RX_JITTER, _RX_THREAD, _RX_TS_MAPPER):
        if name not in init_names:
            problems.append(f"RTCRtpReceiver no longer sets {name}")
    if _TX_ENCODER not in RTCRtpSender.__init__.__code__.co_names:
        problems.append(f"RTCRtpSender no longer sets {_TX_ENCODER}")
    for owner, attr in (
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCCertificate, "_create_ssl_context"),
        (RTCDtlsTransport, "_set_role"),
        (Vp8Encoder, "_packetize"),
    ):
        if not callable(getattr(owner, attr, None)):
            problems.append(f"{owner.__name__}.{attr} is gone")
    for name in ("current_ntp_time", "current_ms"):
        if not callable(getattr(aiortc.clock, name, None)):
            problems.append(f"aiortc.clock.{name} is gone")
    if _DTLS_CERT not in RTCDtlsTransport.__init__.__code__.co_names:
        problems.append(f"RTCDtlsTransport no longer sets {_DTLS_CERT}")
    if "RtcpSrPacket" not in RTCRtpReceiver._handle_rtcp_packet.__code__.co_names:
        problems.append("RTCRtpReceiver._handle_rtcp_packet no longer handles sender reports")
    if "_handle_rtcp_packet" not in RTCDtlsTransport._handle_rtcp_data.__code__.co_names:
        problems.append("RTCDtlsTransport no longer routes RTCP through _handle_rtcp_packet")
    send_names = RTCRtpSender._run_rtp.__code__.co_names + RTCRtpSender.__init__.__code__.co_names
    for name in _TX_REPORT:
        if name not in send_names:
            problems.append(f"RTCRtpSender no longer keeps {name} for its sender reports")
    if "_retransmit" not in RTCRtpSender._handle_rtcp_packet.__code__.co_names:
        problems.append("RTCRtpSender no longer retransmits through _retransmit")
    if "_ssrc" not in RTCRtpSender.__init__.__code__.co_names:  # the link monitor reads reports for it
        problems.append("RTCRtpSender no longer keeps its _ssrc")
    for name in ("_tx_srtp", "_state", "_srtp_profiles"):
        if name not in RTCDtlsTransport.__init__.__code__.co_names:
            problems.append(f"RTCDtlsTransport no longer sets {name}")
    if "_nominated" not in aioice.Connection.__init__.__code__.co_names:
        problems.append("aioice.Connection no longer keeps _nominated candidate pairs")
    if "_connection" not in RTCIceTransport.__init__.__code__.co_names:
        problems.append("RTCIceTransport no longer keeps its aioice _connection")
    if "put" not in RTCRtpReceiver._handle_rtp_packet.__code__.co_names:
        problems.append("RTCRtpReceiver._handle_rtp_packet no longer puts frames on a queue")
    if "RemoteBitrateEstimator" not in RTCRtpReceiver.__init__.__code__.co_names or not callable(
            getattr(_BITRATE_ESTIMATOR, "add", None)):
        problems.append("RTCRtpReceiver no longer makes its RemoteBitrateEstimator (with add) by name")
    if "get_host_addresses" not in aioice.Connection.gather_candidates.__code__.co_names:
        problems.append("aioice no longer lists host addresses through ice.get_host_addresses")
    if "_sock" not in _SELECTOR_TRANSPORT.__init__.__code__.co_names:
        problems.append("asyncio's selector transports no longer keep their socket as _sock (UDP GSO)")
    if problems:
        raise AiortcInternalsChanged("; ".join(problems))


FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class EncodedFrameTap:
    """Stands in for the receiver's decoder queue.

    `put()` is called on the event loop by `_handle_rtp_packet` with each depacketized
    frame; it goes straight to `sink`, followed by any frame the same packet completed behind
    it (a retransmission that fills a hole completes several). aiortc's decoder thread still
    starts and blocks in `get()` until the receiver stops (put(None)), then ends the remote
    track as usual.
    """

    def __init__(self, sink: FrameSink, on_end: Callable[[], None]) -> None:
        self._sink = sink
        self._on_end = on_end
        self._ended = threading.Event()
        self._buffer: VideoFrameBuffer | AudioPacketBuffer | None = None
        self._map_timestamp: Callable[[int], int] = lambda ts: ts

    def attach(self, buffer: VideoFrameBuffer | AudioPacketBuffer, map_timestamp: Callable[[int], int]) -> None:
        self._buffer = buffer
        self._map_timestamp = map_timestamp

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            if not self._ended.is_set():
                self._ended.set()
                call_listener(self._on_end, what="the encoded frame tap's end listener")
            return
        # a bad frame must never stop the publisher's receive path
        call_listener(self._sink, *item, what="the encoded frame tap (one frame dropped)")
        if self._buffer is not None and self._buffer.ready:
            codec = item[0]
            for frame in self._buffer.drain():
                frame.timestamp = self._map_timestamp(frame.timestamp)
                call_listener(self._sink, codec, frame, what="the encoded frame tap (one frame dropped)")

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        # Called from aiortc's decoder thread only; returning None ends that thread.
        self._ended.wait(None if block else 0)
        return None

    def empty(self) -> bool:  # queue.Queue compatibility
        return True


def install_receiver_tap(receiver: RTCRtpReceiver, tap: EncodedFrameTap, kind: str) -> None:
    """Route a receiver's encoded frames to `tap`. Must run before `receive()` (the track event)."""
    current = getattr(receiver, _RX_QUEUE, None)
    if not isinstance(current, queue.Queue) or getattr(receiver, _RX_THREAD, None) is not None:
        raise AiortcInternalsChanged(
            "RTCRtpReceiver decoder queue missing or decoder already started; "
            "the encoded relay cannot tap this receiver"
        )
    setattr(receiver, _RX_QUEUE, tap)
    buffer = AudioPacketBuffer() if kind == "audio" else VideoFrameBuffer()
    setattr(receiver, _RX_JITTER, buffer)
    mapper = TimestampUnwrapper()  # aiortc's takes a B-frame's step back for a wrap
    setattr(receiver, _RX_TS_MAPPER, mapper)
    tap.attach(buffer, mapper.map)


SenderReportSink = Callable[[int, int, int], None]  # ssrc, 64-bit NTP time, RTP timestamp


def install_sender_report_listener(receiver: RTCRtpReceiver, sink: SenderReportSink) -> None:
    """Call `sink` with every RTCP sender report this receiver gets, then let aiortc have it.

    aiortc hands frames on with their RTP timestamps minus the first one it saw (its
    TimestampMapper); the report's timestamp is shifted the same way, so the two match.
    """
    original = receiver._handle_rtcp_packet
    mapper = getattr(receiver, _RX_TS_MAPPER)

    async def handle_rtcp_packet(packet: Any) -> None:
        origin = getattr(mapper, "_origin", None)
        if isinstance(packet, RtcpSrPacket) and origin is not None:
            rtp = (packet.sender_info.rtp_timestamp - origin) % (1 << 32)
            call_listener(sink, packet.ssrc, packet.sender_info.ntp_timestamp, rtp, what="the sender report listener")
        await original(packet)

    # the DTLS transport looks the method up on the instance: this wins over the class's
    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


async def request_keyframe_upstream(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI for every source this receiver currently hears. Returns False if none."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await receiver._send_rtcp_pli(source.source)
    return bool(sources)


class SharedPacketizer:
    """An aiortc `Encoder` that only packetizes, and does it once per frame for all viewers.

    `EncodedFrame.payloads` caches the RTP payloads; the first sender to reach a frame
    fills it. Frames are shared read-only, so every viewer sends identical payloads
    (the VP8 picture id comes from the frame's index, identical for all).
    Never raises: an exception in `pack` would end the viewer's sender for good.
    """

    def __init__(self, codec_name: str) -> None:
        self.codec_name = codec_name
        self.target_bitrate = 0  # aiortc writes REMB estimates here

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("the encoded relay never encodes")

    def pack(self, frame: Any) -> tuple[list[bytes], int | None]:
        if not isinstance(frame, EncodedFrame):
            return [], None
        return packetize(frame), frame.timestamp


def packetize(frame: EncodedFrame) -> list[bytes]:
    """The frame's RTP payloads, made by the first viewer to need them and kept on the frame
    for the others. Never raises (a frame that cannot be packetized is dropped, and logged)."""
    payloads = frame.payloads
    if payloads is None:
        try:
            if frame.codec == "H264":
                payloads = h264_payloads(frame.data)
            elif frame.codec == "VP8":
                payloads = list(Vp8Encoder._packetize(frame.data, frame.index % (1 << 15)))
            else:
                payloads = [frame.data]
        except Exception:
            logger.exception("could not packetize a %s frame; dropped", frame.codec)
            payloads = []
        frame.payloads = payloads
    return payloads


# -- the fast send path's view of aiortc ------------------------------------------------
_TX_REPORT = ("_RTCRtpSender__ntp_timestamp", "_RTCRtpSender__rtp_timestamp",
              "_RTCRtpSender__packet_count", "_RTCRtpSender__octet_count")
_URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
_URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def rtp_parameters(sender: RTCRtpSender, parameters: RTCRtpSendParameters) -> RtpParameters:
    """What the viewer's answer fixed, in the form FastSender writes headers from."""
    codec = parameters.codecs[0]
    if codec.payloadType is None:
        raise AiortcInternalsChanged("a negotiated codec without a payload type")
    rtx = next((c.payloadType for c in parameters.codecs if is_rtx(c)
                and c.parameters.get("apt") == codec.payloadType), None)
    ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
    return RtpParameters(ssrc=sender._ssrc, payload_type=codec.payloadType, mid=parameters.muxId,
                         mid_id=ids.get(_URI_MID), abs_send_time_id=ids.get(_URI_ABS_SEND_TIME),
                         rtx_ssrc=sender._rtx_ssrc if rtx is not None else None, rtx_payload_type=rtx)


class IcePairLink:
    """A viewer's wire below aiortc: the DTLS transport's SRTP session and the socket of the
    selected ICE candidate pair (a TURN allocation's transport works the same way).

    With `gso` (Linux), a frame's packets leave in one `sendmsg` per run of equal-sized packets
    (UDP_SEGMENT: the kernel cuts them into datagrams), not one `sendto` each, when the pair is
    a plain UDP socket and nothing waits in asyncio's buffer; a socket that refuses GSO (a
    device without checksum offload answers EIO) falls back to `sendto` for good.
    """

    def __init__(self, dtls: RTCDtlsTransport, gso: bool = False) -> None:
        self._dtls = dtls
        self._gso_wanted = gso and sys.platform == "linux"
        self._gso: socket.socket | None = None
        self.gso_sends = 0  # sendmsg calls that carried more than one packet
        self._nominated: dict[int, Any] | None = None
        self._pair: Any = None
        self._protect: Callable[[bytes], bytes] = bytes
        self._sendto: Callable[[bytes, Any], None] = lambda data, addr: None
        self._addr: Any = None
        self._backlog: Callable[[], int] = lambda: 0

    def ready(self) -> bool:
        nominated = self._nominated
        if nominated is not None and nominated.get(1) is self._pair and self._dtls._state is DtlsState.CONNECTED:
            return True
        return self._resolve()

    def _resolve(self) -> bool:
        self._pair = None
        srtp = self._dtls._tx_srtp
        if self._dtls._state is not DtlsState.CONNECTED or srtp is None:
            return False
        connection = self._dtls.transport._connection
        pair = connection._nominated.get(1)
        transport = getattr(getattr(pair, "protocol", None), "transport", None)
        if pair is None or transport is None:
            return False
        self._nominated = connection._nominated
        self._pair = pair
        self._protect = srtp.protect
        self._sendto = transport.sendto
        self._addr = pair.remote_addr
        self._backlog = getattr(transport, "get_write_buffer_size", lambda: 0)
        self._gso = None
        if self._gso_wanted and isinstance(transport, _DATAGRAM_TRANSPORT):
            raw = getattr(transport, "_sock", None)  # asyncio's own socket (a TURN pair has none)
            if isinstance(raw, socket.socket) and raw.type == socket.SOCK_DGRAM:
                self._gso = raw
        return True

    def send(self, packet: bytes) -> None:
        self._sendto(self._protect(packet), self._addr)

    def send_many(self, packets: list[bytes]) -> None:
        protect = self._protect
        protected = [protect(p) for p in packets]
        raw = self._gso
        if raw is None or self._backlog():  # asyncio holds earlier packets: queue behind them
            sendto, addr = self._sendto, self._addr
            for packet in protected:
                sendto(packet, addr)
            return
        addr = self._addr
        runs = gso_runs(protected) if len(protected) > 1 else [protected]
        for i, run in enumerate(runs):
            try:
                if len(run) == 1:
                    raw.sendto(run[0], addr)  # the socket itself: asyncio's checks cost more than the call
                else:
                    raw.sendmsg([b"".join(run)], [(socket.SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(len(run[0])))],
                                0, addr)
                    self.gso_sends += 1
            except BlockingIOError:
                self._hand_to_asyncio(runs[i:])  # it buffers them and sends when the socket can
                return
            except OSError as exc:
                if len(run) > 1 and exc.errno in _GSO_REFUSED:
                    logger.info("UDP GSO refused on this socket (%s); sending packet by packet", exc)
                    self._gso = None
                    self._gso_wanted = False
                self._hand_to_asyncio([run])  # asyncio reports any other error to the connection

    def _hand_to_asyncio(self, runs: list[list[bytes]]) -> None:
        sendto, addr = self._sendto, self._addr
        for run in runs:
            for packet in run:
                sendto(packet, addr)

    def backlog(self) -> int:
        """Bytes the socket could not take yet (asyncio holds them): a viewer falling behind."""
        return int(self._backlog())


def install_fast_send(sender: RTCRtpSender, on_negotiated: Callable[[RtpParameters, IcePairLink], FastSender],
                      gso: bool = True) -> None:
    """When aiortc starts `sender` (parameters fixed), hand its RTP to a FastSender: the
    sender's NACK handling retransmits from the FastSender's history, and its RTCP sender
    reports count what the FastSender sent (`report_sent`)."""
    original_send = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        fast = on_negotiated(rtp_parameters(sender, parameters), IcePairLink(sender.transport, gso))

        async def retransmit(sequence_number: int) -> None:
            fast.retransmit(sequence_number)

        sender._retransmit = retransmit  # type: ignore[method-assign]
        await original_send(parameters)

    sender.send = send  # type: ignore[method-assign]


def report_sent(sender: RTCRtpSender, ntp: int, fast: FastSender) -> None:
    """What aiortc's RTCP loop puts in its sender reports, from the FastSender's counters."""
    ntp_name, rtp_name, packets_name, octets_name = _TX_REPORT
    setattr(sender, ntp_name, ntp)
    setattr(sender, rtp_name, fast.last_timestamp)
    setattr(sender, packets_name, fast.packets_sent)
    setattr(sender, octets_name, fast.octets_sent)


def install_sender_hooks(
    sender: RTCRtpSender, codec_name: str, on_keyframe_request: Callable[[], None]
) -> None:
    """Make `sender` send pre-packetized frames and forward its viewer's PLI/FIR upstream."""
    if not hasattr(sender, _TX_ENCODER):
        raise AiortcInternalsChanged(f"RTCRtpSender has no {_TX_ENCODER}")
    setattr(sender, _TX_ENCODER, SharedPacketizer(codec_name))

    def send_keyframe() -> None:
        call_listener(on_keyframe_request, what="the keyframe request listener")

    # aiortc calls self._send_keyframe() on PLI/FIR; the instance attribute wins.
    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


_SRTP_ORDER = (b"SRTP_AEAD_AES_128_GCM", b"SRTP_AEAD_AES_256_GCM", b"SRTP_AES128_CM_SHA1_80")


def srtp_preference(profiles: list[Any]) -> list[Any]:
    """aiortc's SRTP profiles (those libsrtp here supports) in ORcast's order of preference."""
    rank = {name: i for i, name in enumerate(_SRTP_ORDER)}
    return sorted(profiles, key=lambda p: rank.get(p.openssl_profile, len(rank)))


def configure_dtls(transport: RTCDtlsTransport, answering_actpass: bool,
                   on_alert: Callable[[int], None]) -> None:
    """Allow RSA cipher suites, report TLS alerts, and take the DTLS server role for `actpass`.

    Answering `a=setup:passive` worked with GStreamer and libwebrtc; aiortc's default
    (`active`) failed with GStreamer. The SSL context comes from the connection's
    certificate object, shared by its transports, so it is wrapped once.
    """
    certificate = getattr(transport, _DTLS_CERT, None)
    if certificate is None:
        raise AiortcInternalsChanged(f"RTCDtlsTransport has no {_DTLS_CERT}")
    if not getattr(certificate, "_orcast_configured", False):
        original = certificate._create_ssl_context

        def create_ssl_context(srtp_profiles: Any) -> Any:
            ctx = original(srtp_profiles)
            ctx.set_cipher_list(DTLS_CIPHERS)

            def info(conn: Any, where: int, ret: int) -> None:
                if where & SSL_CB_ALERT:
                    on_alert(ret & 0xFF)

            ctx.set_info_callback(info)
            return ctx

        certificate._create_ssl_context = create_ssl_context
        certificate._orcast_configured = True
    if answering_actpass and transport._role == "auto":
        transport._set_role("server")
    # SRTP: AEAD-AES-128-GCM first (browsers offer it; it protects a packet in about half the
    # time of AES-CM/HMAC-SHA1 and faster than AES-256-GCM, aiortc's first choice). As the DTLS
    # server ORcast's order decides; as the client the peer's does.
    transport._srtp_profiles = srtp_preference(transport._srtp_profiles)
