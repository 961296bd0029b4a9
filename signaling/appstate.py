"""Typed application state shared by the protocol adapters (no module-level globals)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from broadcast.broadcaster import Broadcaster

from .config import ServerConfig
from .tickets import MediaTickets

if TYPE_CHECKING:
    from .access import Access
    from .health import Health
    from .wsapi import WsHub

BROADCASTER = web.AppKey("broadcaster", Broadcaster)
CONFIG = web.AppKey("config", ServerConfig)
WEB_ROOT = web.AppKey("web_root", Path)
TICKETS = web.AppKey("tickets", MediaTickets)
ACCESS: web.AppKey[Access] = web.AppKey("access")
WS_HUB: web.AppKey[WsHub] = web.AppKey("ws_hub")
HEALTH: web.AppKey[Health] = web.AppKey("health")
METRICS = web.AppKey("metrics", CollectorRegistry)
