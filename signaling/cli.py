"""The `orcast` command: `serve` runs the server, `demo` runs it with a synthetic OR feed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from broadcast.participant import ALL_EVENTS, Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.clipcache import cached_clip
from broadcast.sources.synthetic import SyntheticFeed
from signaling.app import create_app, open_store
from signaling.auth.links import mint_link, server_base
from signaling.auth.tokens import TokenIssuer, load_secret, parse_ttl
from signaling.config.example import EXAMPLE
from signaling.config.settings import LOG_LEVELS, ConfigError, ServerConfig, load_config
from signaling.http.metrics import metrics_app
from signaling.keys import ACCESS, BROADCASTER, HEALTH
from signaling.logs.format import configure_logging
from signaling.logs.safety import install_log_safety
from signaling.store.eventstore import Event, Theatre

logger = logging.getLogger("orcast")

SHUTDOWN_LIMIT_S = 8.0  # orchestrators kill after 10 s: be done before

DEMO_FEEDS = (
    # path, codec, width, height
    ("demo/or1/endoscope", "H264", 1280, 720),
    ("demo/or1/room", "VP8", 640, 360),
)
DEMO_EVENT = Event(
    slug="demo", title="ORcast demo course",
    theatres=(Theatre("or1", "OR 1"), Theatre("or2", "OR 2"), Theatre("podium", "Podium")),
    source="demo",
)
DEMO_LINKS: tuple[tuple[Role, str, str | None], ...] = (
    (Role.VIEWER, "Demo viewer", None),
    (Role.TECHNICIAN, "OR 2 technician", "or2"),
    (Role.FACULTY, "Demo faculty", None),
    (Role.MODERATOR, "Demo moderator", None),
    (Role.HALL, "Hall display", None),
    (Role.ORGANIZER, "Demo organizer", None),
)


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080)")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--data-dir", type=Path, help="where recordings and state live")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM); serve HTTPS")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orcast", description="ORcast live surgical broadcast server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    _add_server_args(serve)
    demo = sub.add_parser("demo", help="run the server with a synthetic OR feed to watch at once")
    _add_server_args(demo)
    token = sub.add_parser("token", help="mint a link for one role of an event")
    token.add_argument("--event", required=True, help="event slug, or '*' for a server-wide organizer")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--theatre", help="limit a technician or faculty link to one theatre")
    token.add_argument("--name", help="display name shown to others (default: the role)")
    token.add_argument("--ttl", default=None, help="lifetime like 90m, 12h, 7d (default auth.default_ttl)")
    token.add_argument("--max-sessions", type=int,
                       help="live sessions this link may hold at once (default limits.sessions_per_token)")
    token.add_argument("--config", type=Path, help="TOML configuration file")
    token.add_argument("--data-dir", type=Path, help="where the server keeps its state")
    config = sub.add_parser("config", help="check a configuration file, or print a complete example")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate FILE (and the ORCAST_… environment)")
    check.add_argument("file", type=Path)
    config_sub.add_parser("example", help="print a complete, commented configuration file")
    return parser


def config_command(args: argparse.Namespace) -> int:
    if args.config_command == "example":
        print(EXAMPLE, end="")
        return 0
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was started", file=sys.stderr)
        return 2
    events = ", ".join(e.slug for e in config.events) or "none (create them in /admin)"
    print(f"{args.file}: OK — listens on {config.host}:{config.port}, data in {config.data_dir}, "
          f"events: {events}")
    return 0


def resolve_config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config)
    # precedence: command-line flag > config file > default
    if getattr(args, "host", None):
        config.host = args.host
    if getattr(args, "port", None):
        config.port = args.port
    if args.data_dir:
        config.data_dir = args.data_dir
    if getattr(args, "log_level", None):
        config.log_level = args.log_level
    if getattr(args, "cert", None) or getattr(args, "key", None):
        if not (args.cert and args.key):
            raise ConfigError(["--cert and --key go together"])
        config.tls_cert, config.tls_key = args.cert, args.key
    return config


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


def token_command(args: argparse.Namespace, config: ServerConfig) -> int:
    role = Role(args.role)
    if args.event == ALL_EVENTS and role is not Role.ORGANIZER:
        print("orcast: only an organizer link can cover every event (--event '*')", file=sys.stderr)
        return 2
    store = open_store(config)
    try:
        ttl_s = parse_ttl(args.ttl) if args.ttl else config.default_ttl_s
        token, link, _ = mint_link(store, TokenIssuer(load_secret(config.data_dir)), server_base(config),
                                   args.event, role, args.name or role.value, ttl_s, args.theatre,
                                   args.max_sessions, minted_by="orcast token (command line)")
    except ValueError as exc:
        print(f"orcast: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"token: {token}")
    print(f"link:  {link}")
    print("Send the link only to its holder: anyone with it can do what a "
          f"{role.value} can until it expires or is revoked.", file=sys.stderr)
    return 0


def _demo_ctx(feeds: list[tuple[StreamPath, SyntheticFeed]]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        broadcaster = app[BROADCASTER]
        for path, feed in feeds:
            stream = broadcaster.attach_source(path, (feed, feed.clip.codec), feed,
                                               h264_profile=feed.clip.h264_profile)
            feed.start(stream.video, stream.audio)
        yield
        for path, feed in feeds:
            await feed.stop()
            broadcaster.detach_source(path)

    return ctx


def print_demo_links(app: web.Application, config: ServerConfig) -> None:
    access = app[ACCESS]
    base = server_base(config)
    print("  Links (each opens that role's page; they stay valid for 12 h):", flush=True)
    organizer_token = ""
    for role, name, theatre in DEMO_LINKS:
        event = ALL_EVENTS if role is Role.ORGANIZER else DEMO_EVENT.slug
        token, link, _ = mint_link(access.store, access.issuer, base, event, role, name,
                                   config.default_ttl_s, theatre, minted_by="orcast demo")
        organizer_token = token if role is Role.ORGANIZER else organizer_token
        print(f"  {role.value:<11} {link}", flush=True)
    print(f"  {'recordings':<11} {base}/recordings/{DEMO_EVENT.slug}#token={organizer_token}", flush=True)
    print(f"  Watch the synthetic OR feed with the viewer link. Base: {base}", flush=True)


async def run_server(config: ServerConfig, demo: bool = False) -> None:
    app = create_app(config)
    if demo:
        if app[ACCESS].store.get(DEMO_EVENT.slug) is None:
            app[ACCESS].store.put_event(DEMO_EVENT)
        feeds = []
        for path, codec, width, height in DEMO_FEEDS:
            started = time.monotonic()
            clip, cached = await asyncio.to_thread(cached_clip, config.data_dir / "cache", codec, width, height)
            how = "from the cache" if cached else "encoded once, kept for the next start"
            print(f"  synthetic feed {path} ({codec} {width}x{height}) {how} "
                  f"in {time.monotonic() - started:.1f} s", flush=True)
            feeds.append((StreamPath.parse(path), SyntheticFeed(clip, "synthetic")))
        app.cleanup_ctx.append(_demo_ctx(feeds))
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config":
        return config_command(args)
    try:
        config = resolve_config(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"orcast: config error: {problem}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    install_log_safety()
    if hasattr(signal, "SIGXFSZ"):
        # past a file size limit, a write must fail (the recorder closes its file and says
        # so) instead of the kernel killing the whole server and every live stream with it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if args.command == "token":
        return token_command(args, config)
    # aiortc/aioice are chatty at INFO; their warnings still show
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        asyncio.run(run_server(config, demo=args.command == "demo"))
    except (ValueError, OSError) as exc:  # the secret, the data dir, the event store
        print(f"orcast: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
