"""The relay's send path: a viewer's RTP written, protected and sent in one synchronous call.

aiortc sends every packet through a chain of coroutines (`RTCRtpSender._run_rtp` → the DTLS
transport → ICE → the socket), one `await` each, with an `RtpPacket` object built and serialised
per packet per viewer: about 22 µs per outgoing packet. Here the producer's fan-out loop calls
`FastSender.send_frame` for each viewer of a frame, which writes the RTP header for that viewer
(its SSRC, sequence number, timestamp origin, payload type and header-extension ids, fixed at
negotiation) in front of the payloads packetized once for all viewers, SRTP-protects it with
the viewer's session and hands it to the socket of its selected ICE pair (`SendLink`) — no
coroutine, no object per packet.

What aiortc's sender did and viewers need is kept: a bounded history of what was sent, from
which a NACKed packet is sent again (as RTX where the viewer negotiated it); the counters its
RTCP sender reports are made from (lip sync, round trip); the viewer's PLI/FIR and REMB, which
aiortc's RTCP handling still reads.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

HISTORY = 512            # packets kept for retransmission: about 2 s of 2 Mbit/s video
PADDING_MAX = 255        # bytes of padding one RTP packet can carry (its last byte counts them)
# Retransmissions may take this share of what the media sends (a token bucket filled by each
# frame sent): on a link too narrow for the feed every packet is NACKed, and answering them all
# fills the link with old packets, so nothing new gets through (libwebrtc limits its own too).
RETRANSMIT_SHARE = 0.5
RETRANSMIT_BURST = 64 * 1024   # the bucket's size, bytes
RESEND_GAP_S = 0.1             # one packet is not sent again sooner than this (a NACK repeated
                               # before the first answer could arrive)
_HEADER = struct.Struct("!BBHII")
_RTX_OSN = struct.Struct("!H")
EXT_PROFILE = 0xBEDE     # RFC 8285 one-byte header extensions


@dataclass(frozen=True, slots=True)
class RtpParameters:
    """What negotiation fixed for one viewer's track."""

    ssrc: int
    payload_type: int
    mid: str | None = None
    mid_id: int | None = None
    abs_send_time_id: int | None = None
    rtx_ssrc: int | None = None
    rtx_payload_type: int | None = None


# UDP GSO (Linux UDP_SEGMENT) takes up to 64 segments of one size (the last may be shorter)
# in one system call, below the 64 KiB datagram limit.
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000


class SendLink(Protocol):
    """The wire below the sender: SRTP protect and the ICE pair's socket."""

    def ready(self) -> bool: ...

    def send(self, packet: bytes) -> None: ...

    def send_many(self, packets: list[bytes]) -> None: ...  # one frame's, in order (may be batched)

    def backlog(self) -> int: ...


def gso_runs(packets: list[bytes]) -> list[list[bytes]]:
    """`packets` cut into runs one UDP GSO send can take: every packet of a run as long as its
    first, except the last, which may be shorter; at most GSO_MAX_SEGMENTS and GSO_MAX_BYTES."""
    runs: list[list[bytes]] = []
    run: list[bytes] = []
    size = total = 0
    for packet in packets:
        n = len(packet)
        if run and not (n <= size and len(run) < GSO_MAX_SEGMENTS and total + n <= GSO_MAX_BYTES):
            runs.append(run)
            run = []
        if not run:
            size, total = n, 0
        run.append(packet)
        total += n
        if n < size:  # a shorter packet ends its run
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return runs


# what the history keeps of a sent packet (a tuple: one is made per packet per viewer):
# sequence number, timestamp, marker bit, payload (shared by all viewers), extensions
SentPacket = tuple[int, int, int, bytes, bytes]


class FastSender:
    def __init__(self, params: RtpParameters, link: SendLink, rng: random.Random | None = None,
                 ntp_clock: Callable[[], int] | None = None) -> None:
        rng = rng or random.Random()
        self.ntp_clock = ntp_clock  # for a resent packet's abs-send-time: now, as for any packet
        self.params = params
        self.link = link
        self.seq = rng.randrange(1 << 16)
        self.rtx_seq = rng.randrange(1 << 16)
        self.timestamp_origin = rng.randrange(1 << 32)
        self._history: list[SentPacket | None] = [None] * HISTORY
        self._mid_ext = b""
        if params.mid_id is not None and params.mid:
            mid = params.mid.encode()[:16]
            self._mid_ext = bytes([(params.mid_id << 4) | (len(mid) - 1)]) + mid
        has_extensions = bool(self._mid_ext) or params.abs_send_time_id is not None
        self._first_byte = 0x90 if has_extensions else 0x80  # version 2, X bit
        # counters for RTCP sender reports
        self.packets_sent = 0
        self.octets_sent = 0      # payload octets, as RFC 3550 counts them
        self.bytes_sent = 0       # what went on the wire (headers, SRTP tags)
        self.last_timestamp = 0
        self.retransmitted = 0
        self.retransmits_refused = 0  # over the budget, or asked again too soon
        self.media_bytes = 0      # sent by send_frame (headers included): what the viewer watches
        self.padding_bytes = 0    # sent only to probe the link (`pad`)
        self._resend_budget = float(RETRANSMIT_BURST)
        self._resent_at = [0.0] * HISTORY

    def _extensions(self, ntp: int) -> bytes:
        body = self._mid_ext
        if self.params.abs_send_time_id is not None:
            body += bytes([(self.params.abs_send_time_id << 4) | 2]) + ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        if not body:
            return b""
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("!HH", EXT_PROFILE, len(body) // 4) + body

    def send_frame(self, payloads: list[bytes], timestamp: int, ntp: int) -> int:
        """Send one frame's payloads; returns the bytes that went out. `timestamp` is the
        relay's (this viewer's origin is added); `ntp` is now, for abs-send-time."""
        ts = (timestamp + self.timestamp_origin) & 0xFFFFFFFF
        ext = self._extensions(ntp)
        first, pt, ssrc = self._first_byte, self.params.payload_type, self.params.ssrc
        pack, history = _HEADER.pack, self._history
        seq = self.seq
        last = len(payloads) - 1
        sent = 0
        packets = []
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == last else 0
            packet = pack(first, marker | pt, seq, ts, ssrc) + ext + payload
            history[seq % HISTORY] = (seq, ts, marker, payload, ext)
            packets.append(packet)
            sent += len(packet)
            self.octets_sent += len(payload)
            seq = (seq + 1) & 0xFFFF
        self.link.send_many(packets)
        self.packets_sent += len(payloads)
        self.seq = seq
        self.bytes_sent += sent
        self.media_bytes += sent
        self._resend_budget = min(self._resend_budget + sent * RETRANSMIT_SHARE, RETRANSMIT_BURST)
        self.last_timestamp = ts
        return sent

    def retransmit(self, seq: int) -> bool:
        """A NACK for `seq`: send it again (wrapped in RTX if negotiated). False if too old,
        sent again a moment ago, or over the retransmission budget."""
        entry = self._history[seq % HISTORY]
        if entry is None or entry[0] != seq or not self.link.ready():
            return False
        now = time.monotonic()
        size = len(entry[3]) + 40
        if now - self._resent_at[seq % HISTORY] < RESEND_GAP_S or size > self._resend_budget:
            self.retransmits_refused += 1
            return False
        self._resent_at[seq % HISTORY] = now
        packet = self._resend(entry)
        self._resend_budget -= len(packet)
        self.link.send(packet)
        self.retransmitted += 1
        self.bytes_sent += len(packet)
        return True

    def _resend(self, entry: SentPacket) -> bytes:
        seq, timestamp, marker, payload, extensions = entry
        if self.ntp_clock is not None and extensions:
            # the receiver's bandwidth estimate reads the send time of every packet: this one's is now
            extensions = self._extensions(self.ntp_clock())
        p = self.params
        if p.rtx_payload_type is not None and p.rtx_ssrc is not None:
            packet = (_HEADER.pack(self._first_byte, marker | p.rtx_payload_type, self.rtx_seq, timestamp, p.rtx_ssrc)
                      + extensions + _RTX_OSN.pack(seq) + payload)
            self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            return packet
        return _HEADER.pack(self._first_byte, marker | p.payload_type, seq, timestamp, p.ssrc) + extensions + payload

    def pad(self, budget: int, ntp: int) -> int:
        """Send about `budget` bytes that carry nothing new, to probe whether the link carries
        more (`auto` renditions); returns the bytes sent. With RTX, recent packets are sent
        again as RTX (the receiver drops what it has; its bandwidth estimate counts them), as
        libwebrtc pads; without, padding-only packets on the media stream."""
        if budget <= 0 or not self.link.ready():
            return 0
        packets: list[bytes] = []
        sent = 0
        if self.params.rtx_payload_type is not None and self.params.rtx_ssrc is not None:
            seq = self.seq
            for _ in range(HISTORY):
                if sent >= budget:
                    break
                seq = (seq - 1) & 0xFFFF
                entry = self._history[seq % HISTORY]
                if entry is None or entry[0] != seq:
                    seq = self.seq  # the history's start: again from the newest
                    if not packets:
                        break
                    continue
                packet = self._resend(entry)
                packets.append(packet)
                sent += len(packet)
        else:
            ext = self._extensions(ntp)
            first = self._first_byte | 0x20  # P: the payload is padding, its last byte says how much
            padding = b"\x00" * (PADDING_MAX - 1) + bytes([PADDING_MAX])
            while sent < budget:
                packet = _HEADER.pack(first, self.params.payload_type, self.seq, self.last_timestamp,
                                      self.params.ssrc) + ext + padding
                self.seq = (self.seq + 1) & 0xFFFF
                self.packets_sent += 1
                packets.append(packet)
                sent += len(packet)
        if packets:
            self.link.send_many(packets)
        self.padding_bytes += sent
        self.bytes_sent += sent
        return sent
