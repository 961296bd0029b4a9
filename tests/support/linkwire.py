"""A shaped network link for tests: a viewer's host in a network namespace of its own, joined
to this machine by a "wire" that has a rate, a delay, loss and a router's queue.

This kernel has no `netem` queueing discipline (nor tc classifiers), so the link is emulated in
user space, between two TUN devices: one moved into the namespace (the viewer's side), one
left here (the server's side). Every IP packet either side sends is read by this process,
delayed, dropped or queued as the link says, and written to the other side: both ends are
real kernel network stacks with real sockets, only the wire is emulated.

    python -m tests.support.linkwire NAME [--down-kbps 1000] [--delay-ms 50] [--loss 0.01]
                                     [--queue-ms 300] [--seed 1] [--block-udp]

Makes namespace NAME with address 10.78.0.2, this side 10.78.0.1, prints "ready", and forwards
until its standard input closes; then the namespace is removed. `--down-kbps` limits what
flows to the viewer (the server's media); the way back has the same delay and loss. A line
"rate KBPS" on standard input changes the rate to the viewer (0: no limit); "ok" answers it.
`--block-udp`: no UDP passes either way (a hospital or hotel network whose firewall lets only
TCP out, and no TURN).
Root is needed (ip netns, /dev/net/tun).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, replace

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SERVER_ADDR = "10.78.0.1"
VIEWER_ADDR = "10.78.0.2"


def require_namespaces(what: str) -> None:
    """A test on a link of its own needs root, /dev/net/tun and iproute2. In CI (`.ci/run` sets
    CI) their absence is a failure, never a skip: a skipped network test proves nothing."""
    missing = [name for name, ok in (("root", os.geteuid() == 0), ("/dev/net/tun", os.path.exists("/dev/net/tun")),
                                     ("iproute2 (ip)", shutil.which("ip") is not None)) if not ok]
    if not missing:
        return
    import pytest  # only the tests call this
    message = f"{what} needs {', '.join(missing)}: run ./scripts/test.sh as root"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Wire:
    """This module in a subprocess, for a test: `with Wire(name, "--down-kbps", "1000"): …`."""

    def __init__(self, name: str, *args: str) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.linkwire", name, *args], cwd=root,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready", "the shaped link did not start"

    def close(self) -> str:
        """Ends the link (the namespace goes); returns what it counted."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        said = (self.process.stdout.read() or "").strip()
        self.process.wait(15)
        return said

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        print("\n" + self.close())


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@dataclass
class Shape:
    rate_bps: float | None    # None: as fast as it comes
    delay_s: float
    loss: float
    queue_s: float            # the router's buffer: a packet that would wait longer is dropped
    block_udp: bool = False   # a firewall that lets no UDP through


class Direction:
    """One way of the wire: a rate (serialised packets), a drop-tail queue, a delay, loss."""

    def __init__(self, loop: asyncio.AbstractEventLoop, shape: Shape, out_fd: int, rng: random.Random) -> None:
        self.loop, self.shape, self.out_fd, self.rng = loop, shape, out_fd, rng
        self.free_at = 0.0        # when the link has sent everything queued
        self.passed = self.lost = self.dropped = self.blocked = 0

    def take(self, packet: bytes) -> None:
        if self.shape.block_udp and is_udp(packet):
            self.blocked += 1
            return
        now = self.loop.time()
        if self.rng.random() < self.shape.loss:
            self.lost += 1
            return
        start = max(now, self.free_at)
        if self.shape.rate_bps:
            if start - now > self.shape.queue_s:
                self.dropped += 1  # the queue is full: tail drop
                return
            self.free_at = start + len(packet) * 8 / self.shape.rate_bps
        else:
            self.free_at = start
        self.loop.call_at(self.free_at + self.shape.delay_s, self._out, packet)

    def _out(self, packet: bytes) -> None:
        try:
            os.write(self.out_fd, packet)
            self.passed += 1
        except OSError:
            self.dropped += 1


async def forward(name: str, down: Shape, up: Shape, seed: int) -> None:
    viewer_side, server_side = f"{name[:9]}v", f"{name[:9]}s"
    loop = asyncio.get_running_loop()
    viewer_fd, server_fd = open_tun(viewer_side), open_tun(server_side)
    try:
        run("ip", "netns", "add", name)
        run("ip", "link", "set", viewer_side, "netns", name)
        ns = ("ip", "netns", "exec", name)
        run(*ns, "ip", "addr", "add", f"{VIEWER_ADDR}/32", "peer", SERVER_ADDR, "dev", viewer_side)
        run(*ns, "ip", "link", "set", viewer_side, "up")
        run(*ns, "ip", "link", "set", "lo", "up")
        run(*ns, "ip", "route", "add", "default", "via", SERVER_ADDR, "dev", viewer_side)
        run("ip", "addr", "add", f"{SERVER_ADDR}/32", "peer", VIEWER_ADDR, "dev", server_side)
        run("ip", "link", "set", server_side, "up")
        rng = random.Random(seed)
        to_viewer = Direction(loop, down, viewer_fd, rng)
        to_server = Direction(loop, up, server_fd, rng)
        for fd, direction in ((server_fd, to_viewer), (viewer_fd, to_server)):
            loop.add_reader(fd, drain, fd, direction)
        print("ready", flush=True)
        started = time.monotonic()
        while line := await loop.run_in_executor(None, sys.stdin.readline):  # until the test closes it
            command = line.split()
            if len(command) == 2 and command[0] == "rate":
                kbps = float(command[1])
                to_viewer.shape = replace(to_viewer.shape, rate_bps=kbps * 1000 if kbps > 0 else None)
                print("ok", flush=True)
        seconds = time.monotonic() - started
        print(f"to the viewer: {to_viewer.passed} passed, {to_viewer.lost} lost, {to_viewer.dropped} dropped by "
              f"the queue; to the server: {to_server.passed} passed, {to_server.lost} lost, in {seconds:.0f} s"
              + (f"; UDP blocked: {to_viewer.blocked} to the viewer, {to_server.blocked} to the server"
                 if down.block_udp else ""), flush=True)
    finally:
        for fd in (viewer_fd, server_fd):
            loop.remove_reader(fd)
            os.close(fd)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def is_udp(packet: bytes) -> bool:
    version = packet[0] >> 4 if packet else 0
    protocol_at = {4: 9, 6: 6}.get(version)  # IPv4 protocol, IPv6 next header
    return protocol_at is not None and len(packet) > protocol_at and packet[protocol_at] == 17


def drain(fd: int, direction: Direction) -> None:
    while True:
        try:
            packet = os.read(fd, 65535)
        except BlockingIOError:
            return
        except OSError:
            return
        direction.take(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--down-kbps", type=float, default=1000.0)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--queue-ms", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-udp", action="store_true")
    args = parser.parse_args()
    down = Shape(args.down_kbps * 1000 if args.down_kbps > 0 else None, args.delay_ms / 1000, args.loss,
                 args.queue_ms / 1000, args.block_udp)
    up = Shape(None, args.delay_ms / 1000, args.loss, args.queue_ms / 1000, args.block_udp)
    asyncio.run(forward(args.name, down, up, args.seed))


if __name__ == "__main__":
    main()
