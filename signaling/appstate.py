"""Typed application state shared by the protocol adapters (no module-level globals)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from broadcast.broadcaster import Broadcaster

from .config import ServerConfig

BROADCASTER = web.AppKey("broadcaster", Broadcaster)
CONFIG = web.AppKey("config", ServerConfig)
WEB_ROOT = web.AppKey("web_root", Path)
