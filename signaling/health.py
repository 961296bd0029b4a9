"""Health: whether the server takes new sessions (not while shutting down) and how late its
event loop runs. A service; `/healthz` and `/readyz` (signaling/http/health.py) read it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

LAG_PROBE_S = 0.5
MAX_LAG_S = 0.25   # a loop this late delays every packet the relay forwards


@dataclass
class Health:
    stopping: bool = False   # SIGTERM received: no new sessions
    loop_lag_s: float = 0.0  # the worst lateness of the last probe

    async def probe_forever(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE_S)
            self.loop_lag_s = max(0.0, time.monotonic() - started - LAG_PROBE_S)
