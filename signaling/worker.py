"""The worker program (`python -m signaling.worker`): started by the front process, one per
extra core, to hold viewers' WebRTC sessions (broadcast/workers/). Not for people to run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from broadcast.workers.worker import serve
from signaling.logs.format import configure_logging
from signaling.logs.safety import install_log_safety


class WorkerTag(logging.Filter):
    """Lines from a worker say which one wrote them (the logger name: `worker1:aiortc…`)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"worker{index}:"

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            record.name = self.prefix + record.name
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orcast-worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="this worker's end of the socket pair")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default="text")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    install_log_safety()
    tag = WorkerTag(args.index)
    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Ctrl+C in the server's terminal reaches the whole process group: the front decides when
    # its workers stop (it tells them, or its socket closes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sock = socket.socket(fileno=args.fd)
    except OSError as exc:
        print(f"orcast-worker: no socket on fd {args.fd} ({exc}); the front process starts workers",
              file=sys.stderr)
        return 2
    asyncio.run(serve(sock, args.index))
    return 0


if __name__ == "__main__":
    sys.exit(main())
