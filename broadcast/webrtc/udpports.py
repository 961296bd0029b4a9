"""A fixed UDP port range for WebRTC, so a firewall or a container can open exactly that range.

aioice binds each host candidate's socket to port 0 (any port). With a range configured, those
binds go to the first free port of the range instead (searched from a rotating start, so a port
just freed is not reused at once). When every port is taken the bind fails, aioice logs it and
that connection has no candidate on that address: size the range for the sessions expected
(one port per session per server address).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UdpPortRange:
    low: int
    high: int  # inclusive

    def __post_init__(self) -> None:
        if not 1024 <= self.low <= self.high <= 65535:
            raise ValueError("a UDP port range is two ports 1024-65535, the first not above the second")

    @property
    def size(self) -> int:
        return self.high - self.low + 1


def restrict_udp_ports(loop: asyncio.AbstractEventLoop, ports: UdpPortRange) -> None:
    """Make this loop's `create_datagram_endpoint(local_addr=(host, 0))` bind inside `ports`."""
    original: Callable[..., Any] = loop.create_datagram_endpoint
    next_offset = 0

    async def create_datagram_endpoint(protocol_factory: Callable[[], Any], local_addr: Any = None,
                                       **kwargs: Any) -> Any:
        nonlocal next_offset
        if local_addr is None or local_addr[1] != 0:
            return await original(protocol_factory, local_addr=local_addr, **kwargs)
        host = local_addr[0]
        for attempt in range(ports.size):
            port = ports.low + (next_offset + attempt) % ports.size
            try:
                result = await original(protocol_factory, local_addr=(host, port), **kwargs)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            next_offset = (port - ports.low + 1) % ports.size
            return result
        logger.warning("no free UDP port in %d-%d on %s: a WebRTC connection cannot be made there; "
                       "widen ice.udp_ports", ports.low, ports.high, host)
        raise OSError(errno.EADDRINUSE, f"no free UDP port in {ports.low}-{ports.high}")

    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign,assignment]
