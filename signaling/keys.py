"""Typed application state shared by the protocol adapters (no module-level globals)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from broadcast.broadcaster import Broadcaster
from signaling.auth.hlsprefix import HlsPrefixes
from signaling.auth.tickets import MediaTickets
from signaling.config.settings import ServerConfig
from signaling.health import Health
from signaling.livehub import WsHub

if TYPE_CHECKING:
    from signaling.auth.access import Access
    from signaling.cluster.node import ClusterNode
    from signaling.telestration import Telestration

BROADCASTER = web.AppKey("broadcaster", Broadcaster)
CONFIG = web.AppKey("config", ServerConfig)
WEB_ROOT = web.AppKey("web_root", Path)
TICKETS = web.AppKey("tickets", MediaTickets)
HLS_PREFIXES = web.AppKey("hls_prefixes", HlsPrefixes)
ACCESS: web.AppKey[Access] = web.AppKey("access")
CLUSTER: web.AppKey[ClusterNode] = web.AppKey("cluster")
WS_HUB = web.AppKey("ws_hub", WsHub)
TELESTRATION: web.AppKey[Telestration] = web.AppKey("telestration")
HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", CollectorRegistry)
