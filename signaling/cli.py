"""The `orcast` command: `serve` runs the server, `demo` runs it with a synthetic OR feed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from broadcast.participant import ALL_EVENTS, Role
from signaling.app import open_store
from signaling.auth.links import mint_link, server_base
from signaling.auth.tokens import TokenIssuer, load_secret, parse_ttl
from signaling.config.example import EXAMPLE
from signaling.config.settings import LOG_LEVELS, ConfigError, ServerConfig, load_config
from signaling.logs.format import configure_logging
from signaling.logs.safety import install_log_safety
from signaling.server import run_server

logger = logging.getLogger("orcast")

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
    cluster = sub.add_parser("cluster", help="the cluster's nodes, feeds and pulls, as Redis holds them")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    status = cluster_sub.add_parser("status", help="nodes (load), feeds (which node holds each), pulls")
    status.add_argument("--config", type=Path, help="TOML configuration file with the [cluster] section")
    status.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
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


def cluster_command(args: argparse.Namespace, config: ServerConfig) -> int:
    if config.cluster_redis is None:
        print("orcast: this configuration has no [cluster] section (redis = \"redis://…\"); give the cluster's "
              "config with --config, or set ORCAST_CLUSTER_REDIS", file=sys.stderr)
        return 2
    from signaling.cluster.rediscluster import redacted
    from signaling.cluster.status import status_command
    return status_command(config.cluster_redis, redacted(config.cluster_redis), args.json)


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
    if args.command == "cluster":
        return cluster_command(args, config)
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
