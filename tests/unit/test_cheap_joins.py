"""What a new connection costs before its answer: the receiver's bitrate estimator is built on
its first packet, and the interface list is read once per HOST_ADDRESSES_TTL_S."""

from __future__ import annotations

import aioice.ice

from broadcast.webrtc import aiortchooks
from broadcast.webrtc.aiortchooks import LazyBitrateEstimator, install_cheap_joins


def test_the_lazy_estimator_estimates_exactly_as_aiortcs() -> None:
    real, lazy = aiortchooks._BITRATE_ESTIMATOR(), LazyBitrateEstimator()
    assert lazy._real is None  # nothing built for a receiver that never receives
    ssrc = 0x1234
    estimates = []
    for i in range(400):  # 4 s of 100 packets/s, abs-send-time in 6.18 fixed point
        arrival_ms = 1000 + 10 * i + (i % 7)  # some jitter
        abs_send = ((1000 + 10 * i) * (1 << 18) // 1000) & 0xFFFFFF
        got = lazy.add(arrival_ms, abs_send, 1100, ssrc)
        assert got == real.add(arrival_ms, abs_send, 1100, ssrc)
        estimates.append(got)
    assert lazy._real is not None
    assert any(e is not None for e in estimates), "the sequence never made an estimate: it tests nothing"


def test_host_addresses_are_read_once_per_ttl() -> None:
    install_cheap_joins()
    install_cheap_joins()  # idempotent: not wrapped twice
    cached = aioice.ice.get_host_addresses
    assert cached is not aiortchooks._HOST_ADDRESSES
    first = cached(True, False)
    assert first == aiortchooks._HOST_ADDRESSES(True, False)
    first.append("192.0.2.250")  # a caller's change stays its own
    assert "192.0.2.250" not in cached(True, False)
