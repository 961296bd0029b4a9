"""A configured UDP port range: the server's ICE candidates use only ports inside it."""

from __future__ import annotations

import re

import pytest

from broadcast.webrtc.udpports import UdpPortRange
from signaling.config.settings import ConfigError, parse_config
from tests.conftest import make_config, organizer_session, start_server
from tests.support.peers import publish, watch


async def test_candidates_use_only_the_configured_range() -> None:
    ports = UdpPortRange(41000, 41009)
    runner, base, app = await start_server(make_config(udp_ports=ports))
    try:
        async with organizer_session(app) as http:
            publisher = await publish(http, base, "course/or1/endoscope", codec="VP8", audio=False)
            viewers = [await watch(http, base, "course/or1/endoscope", audio=False) for _ in range(3)]
            for viewer in viewers:
                await viewer.wait_frames(5)
            answers = [publisher.answer] + [v.answer for v in viewers]
            host_port = re.compile(r"a=candidate:\S+ \d \S+ \d+ \S+ (\d+) typ host")
            used = {int(m) for sdp in answers for m in host_port.findall(sdp)}
            assert used and all(ports.low <= p <= ports.high for p in used), used
            assert len(used) >= 4, "each session gets its own port"
            for viewer in viewers:
                await viewer.close(http)
            await publisher.pc.close()
    finally:
        await runner.cleanup()


def test_the_range_is_checked_in_the_config() -> None:
    assert parse_config({"ice": {"udp_ports": "40000-40199"}}).udp_ports == UdpPortRange(40000, 40199)
    for bad in ("40000", "40199-40000", "80-90", "a-b", "40000-70000"):
        with pytest.raises(ConfigError) as error:
            parse_config({"ice": {"udp_ports": bad}})
        assert "ice.udp_ports" in str(error.value.problems)
