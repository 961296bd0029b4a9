"""The `orcast` command: `serve` runs the server, `demo` runs it with a synthetic OR feed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from broadcast.streampath import StreamPath
from broadcast.synthetic import SyntheticFeed, encode_clip

from .app import create_app
from .appstate import BROADCASTER
from .config import LOG_LEVELS, ConfigError, ServerConfig, load_config

logger = logging.getLogger("orcast")

DEMO_FEEDS = (
    # path, codec, width, height
    ("demo/or1/endoscope", "H264", 1280, 720),
    ("demo/or1/room", "VP8", 640, 360),
)


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080)")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--data-dir", type=Path, help="where recordings and state live")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="default info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orcast", description="ORcast live surgical broadcast server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    _add_server_args(serve)
    demo = sub.add_parser("demo", help="run the server with a synthetic OR feed to watch at once")
    _add_server_args(demo)
    return parser


def resolve_config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config)
    # precedence: command-line flag > config file > default
    if args.host:
        config.host = args.host
    if args.port:
        config.port = args.port
    if args.data_dir:
        config.data_dir = args.data_dir
    if args.log_level:
        config.log_level = args.log_level
    return config


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


async def run_server(config: ServerConfig, demo: bool = False) -> None:
    app = create_app(config)
    if demo:
        feeds = []
        for path, codec, width, height in DEMO_FEEDS:
            print(f"  encoding the synthetic feed {path} ({codec} {width}x{height}) once …",
                  flush=True)
            started = time.monotonic()
            clip = await asyncio.to_thread(encode_clip, codec, width, height)
            print(f"    done in {time.monotonic() - started:.1f} s", flush=True)
            feeds.append((StreamPath.parse(path), SyntheticFeed(clip, "synthetic")))
        app.cleanup_ctx.append(_demo_ctx(feeds))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(
            f"orcast: cannot listen on {config.host}:{config.port} ({exc.strerror}); "
            "is another server running? Choose another port with --port"
        ) from None
    base = f"http://{'localhost' if config.host in ('127.0.0.1', '0.0.0.0') else config.host}:{config.port}"
    print(f"ORcast is listening on {base}", flush=True)
    if demo:
        print(f"  Live streams:       {base}/", flush=True)
        for path, *_ in DEMO_FEEDS:
            print(f"  Watch {path:<20} {base}/watch?path={path}", flush=True)
        print(f"  Publish your camera: {base}/publish?path=demo/or2/endoscope", flush=True)
        print("  Press Ctrl+C to stop.", flush=True)
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s without access control: anyone who can reach this "
                       "address can watch and publish", config.host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("ORcast is stopping …", flush=True)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"orcast: config error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiortc/aioice are chatty at INFO; their warnings still show
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    asyncio.run(run_server(config, demo=args.command == "demo"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
