"""H.264 RTP payloads (RFC 6184, packetization mode 1) cut so that UDP GSO can send them.

aiortc's packetizer spreads a large NAL unit's bytes evenly over its FU-A fragments, the
longer fragments first (1210, 1209, 1209 …). One UDP GSO send takes datagrams of one size
with only the last one shorter, so that order cuts a NAL unit into two or three sends per
viewer. Here every fragment but the last has the same length (the last one takes what is
left, never more), so a NAL unit is one send, and sizes stay as even as aiortc's. Small
NAL units are aggregated into STAP-A packets as aiortc does.
"""

from __future__ import annotations

from broadcast.relay.frame import h264_nal_units

PACKET_MAX = 1300  # payload bytes per RTP packet, as aiortc's packetizers (room for SRTP and headers)
NAL_TYPE_FU_A = 28
NAL_TYPE_STAP_A = 24
STAP_A_MAX_UNITS = 9


def fu_a_fragments(nal: bytes, packet_max: int = PACKET_MAX) -> list[bytes]:
    """`nal` (longer than a packet) as FU-A payloads: all as long as the first but the last."""
    payload = memoryview(nal)[1:]
    available = packet_max - 2  # FU indicator + FU header
    count = -(-len(payload) // available)
    size = -(-len(payload) // count)  # the even share, rounded up: the last fragment is the shorter
    indicator = (nal[0] & 0xE0) | NAL_TYPE_FU_A
    nal_type = nal[0] & 0x1F
    fragments = []
    for offset in range(0, len(payload), size):
        start = offset == 0
        end = offset + size >= len(payload)
        header = nal_type | (0x80 if start else 0) | (0x40 if end else 0)
        fragments.append(bytes((indicator, header)) + payload[offset:offset + size])
    return fragments


def stap_a(units: list[bytes]) -> bytes:
    """Several small NAL units in one STAP-A payload (F: any unit's, NRI: the highest)."""
    forbidden = 0
    nri = 0
    body = bytearray()
    for unit in units:
        forbidden |= unit[0] & 0x80
        nri = max(nri, unit[0] & 0x60)
        body += len(unit).to_bytes(2, "big") + unit
    return bytes((forbidden | nri | NAL_TYPE_STAP_A,)) + bytes(body)


def h264_payloads(access_unit: bytes, packet_max: int = PACKET_MAX) -> list[bytes]:
    """An Annex B access unit as RTP payloads, in decoding order."""
    payloads: list[bytes] = []
    pending: list[bytes] = []  # small units waiting to be aggregated
    room = 0

    def flush() -> None:
        if len(pending) == 1:
            payloads.append(pending[0])
        elif pending:
            payloads.append(stap_a(pending))
        pending.clear()

    for unit in h264_nal_units(access_unit):
        if len(unit) > packet_max:
            flush()
            payloads.extend(fu_a_fragments(unit, packet_max))
            continue
        need = 2 + len(unit)  # a STAP-A length field and the unit
        if pending and (need > room or len(pending) == STAP_A_MAX_UNITS):
            flush()
        if not pending:
            room = packet_max - 1  # the STAP-A header
        pending.append(unit)
        room -= need
    flush()
    return payloads
