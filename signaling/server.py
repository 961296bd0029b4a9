"""Running the server: listen (HTTP or HTTPS, and /metrics on its own port if configured),
print the links of the demo, and on SIGINT/SIGTERM stop taking sessions, finish recordings,
tell pages and Q&A clients to come back, and exit within SHUTDOWN_LIMIT_S."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time

from aiohttp import web

from signaling.app import create_app
from signaling.auth.links import server_base
from signaling.config.settings import ServerConfig
from signaling.demo import add_demo, print_demo_links
from signaling.http.metrics import metrics_app
from signaling.keys import HEALTH

logger = logging.getLogger("orcast")

SHUTDOWN_LIMIT_S = 8.0  # orchestrators kill after 10 s: be done before


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"orcast: cannot use the TLS certificate {config.tls_cert} and key "
                         f"{config.tls_key}: {exc}; both must be PEM files and match") from None
    return context


async def run_server(config: ServerConfig, demo: bool = False) -> None:
    """Serve until SIGINT/SIGTERM, then stop taking sessions and close within SHUTDOWN_LIMIT_S."""
    app = create_app(config)
    if demo:
        await add_demo(app, config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context(config))
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(
            f"orcast: cannot listen on {config.host}:{config.port} ({exc.strerror}); "
            "is another server running? Choose another port with --port"
        ) from None
    print(f"ORcast is listening on {server_base(config)}", flush=True)
    metrics_runner = await start_metrics_listener(app, config)
    if demo:
        print_demo_links(app, config)
        print("  Press Ctrl+C to stop.", flush=True)
    if config.tls_cert is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("serving plain HTTP on %s: links and pictures cross the network "
                       "unencrypted, and browsers grant cameras only on HTTPS; use --cert/--key",
                       config.host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("ORcast is stopping: no new sessions; closing recordings and telling clients …", flush=True)
    app[HEALTH].stopping = True  # /readyz turns 503, new sessions get 503
    started = time.monotonic()
    try:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await asyncio.wait_for(runner.cleanup(), SHUTDOWN_LIMIT_S)
    except TimeoutError:
        logger.warning("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_LIMIT_S)
    print(f"ORcast stopped in {time.monotonic() - started:.1f} s.", flush=True)


async def start_metrics_listener(app: web.Application, config: ServerConfig) -> web.AppRunner | None:
    """`[metrics] port`: /metrics on its own listener (e.g. only on the monitoring network)."""
    if config.metrics_port is None:
        return None
    runner = web.AppRunner(metrics_app(app), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.metrics_host, config.metrics_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"orcast: cannot serve metrics on {config.metrics_host}:{config.metrics_port} "
                         f"({exc.strerror}); choose another metrics.port") from None
    print(f"  metrics on http://{config.metrics_host}:{config.metrics_port}/metrics", flush=True)
    return runner
