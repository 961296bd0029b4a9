"""Strokes to 100 viewers while a moderator floods, and how fast a privacy pause takes hold.

    python bench/telestration.py [--viewers 100] [--strokes 30]

`orcast demo` in its own process (its synthetic OR 1 feed is the picture drawn on). The
viewers are light pages: the event WebSocket alone (tests/support/drawclient.py), watching
or1/endoscope, as a viewer page does. Each phase, faculty draws `--strokes` strokes the way
the page does (begin, then a batch of points every 40 ms, then the end) and every message's
delivery to every viewer is timed (sent → received, one clock: the same process):
1. quiet: nobody else draws (the baseline);
2. flood: a moderator's page sends 190 drawing messages a second (all read by the server, all
   but 40 a second dropped by the drawing rate);
3. abuse: a page sends as fast as its socket takes them: dropped unread, then closed.
The flood's figure against the quiet one is the point: the target is p95 ≤ 150 ms with the
flood. Then the privacy pause, five times: from the request to the last video packet that
reaches a WebRTC viewer (aiortc; packets counted as they arrive, before any decoding), the
target ≤ 100 ms. ORcast's CPU is read from /proc in each phase. Results go to
bench/results/telestration.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.relay import cpu_seconds  # noqa: E402
from tests.support.demoproc import start_demo  # noqa: E402
from tests.support.drawclient import DrawSocket  # noqa: E402
from tests.support.hlsclient import percentile  # noqa: E402
from tests.support.peers import watch  # noqa: E402

FEED = "or1/endoscope"
PATH = f"demo/{FEED}"
CONFIG = "[limits]\nsessions_per_token = 1000\nsession_rate = 1000\nsession_burst = 1000\n"
BATCH_MS = 40
ADDS = 6


async def draw_strokes(faculty: DrawSocket, count: int, sent: dict[tuple[str, int], float], name: str) -> None:
    """As the page draws: a begin, ADDS batches of 4 points 40 ms apart, the last one ends it."""
    for n in range(count):
        sid = f"{name}{n}"
        x = 0.1 + 0.8 * n / max(1, count)
        sent[(sid, 0)] = time.monotonic()
        await faculty.send(FEED, "begin", id=sid, kind="free", color="#ffd400", width=2, points=[[x, 0.2]])
        for i in range(1, ADDS + 1):
            await asyncio.sleep(BATCH_MS / 1000)
            sent[(sid, i)] = time.monotonic()
            await faculty.send(FEED, "add", id=sid, points=[[x, 0.2 + 0.1 * i + 0.01 * k] for k in range(4)],
                               end=i == ADDS)
        await asyncio.sleep(0.1)


async def flood(moderator: DrawSocket, stop: asyncio.Event, rate: float | None) -> int:
    """Laser points from a moderator's page: `rate` messages a second (just under the socket's
    limit: all of them read, most dropped by the drawing rate), or None: as fast as the socket
    takes them (a page gone wrong: the server closes it)."""
    sent, n, started = 0, 0, time.monotonic()
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not stop.is_set() and not moderator.ws.closed:
            n += 1
            await moderator.send(FEED, "begin", id=f"f{n}", kind="laser", color="#ff4081", width=2,
                                 points=[[0.5, 0.5]])
            for _ in range(30):
                await moderator.send(FEED, "add", id=f"f{n}", points=[[0.5, 0.5]] * 32)
                sent += 1
                if rate is not None:
                    await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
                elif sent % 50 == 0:
                    await asyncio.sleep(0)  # the other sockets of this process read too
    return sent


def latencies(viewers: list[DrawSocket], faculty_conn: str, sent: dict[tuple[str, int], float],
              since: int) -> tuple[list[float], int]:
    """Per viewer, faculty's messages in order (its stroke ids start with its connection)."""
    out, missing = [], 0
    for v in viewers:
        index: dict[str, int] = {}
        for at, m in v.messages[since:]:
            if m.get("type") != "draw" or m.get("op") not in ("begin", "add"):
                continue
            sid = m["stroke"]["id"] if m["op"] == "begin" else m["id"]
            if not sid.startswith(faculty_conn + "."):
                continue
            client = sid.split(".", 1)[1]
            i = index[client] = index.get(client, -1) + 1
            if (client, i) in sent:
                out.append(at - sent[(client, i)])
        missing += len(sent) - sum(index.get(c, -1) + 1 for c in {c for c, _ in sent})
    return out, missing


async def phase(name: str, pid: int, viewers: list[DrawSocket], faculty: DrawSocket, strokes: int,
                flooder: DrawSocket | None, rate: float | None = None) -> dict[str, Any]:
    since = [len(v.messages) for v in viewers]
    sent: dict[tuple[str, int], float] = {}
    stop = asyncio.Event()
    flooding = asyncio.get_running_loop().create_task(flood(flooder, stop, rate)) if flooder else None
    if flooder is not None and rate is None:
        await asyncio.sleep(0.2)  # the flood under way before faculty draws
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await draw_strokes(faculty, strokes, sent, name)
    await asyncio.sleep(0.5)
    cores = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    stop.set()
    flood_sent = await flooding if flooding else 0
    values: list[float] = []
    missing = 0
    for v, s in zip(viewers, since, strict=True):
        got, lost = latencies([v], faculty.hello["connection"], sent, s)
        values += got
        missing += lost
    row = {"phase": name, "viewers": len(viewers), "messages": len(sent), "deliveries": len(values),
           "missing": missing, "p50_ms": round(percentile(values, 0.5) * 1000, 1),
           "p95_ms": round(percentile(values, 0.95) * 1000, 1), "max_ms": round(max(values) * 1000, 1),
           "flood_messages_sent": flood_sent, "server_cores": round(cores, 3),
           "flooder_closed": bool(flooder and flooder.of("error", status=429))}
    print(f"  {name:<8} {row['deliveries']} deliveries, p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
          f"max {row['max_ms']} ms, {missing} missing; flood sent {flood_sent}; ORcast {cores:.3f} cores", flush=True)
    return row


async def privacy_pause(http: aiohttp.ClientSession, base: str, organizer: str, viewer_token: str,
                        times: int) -> list[tuple[float, float]]:
    """Request → its answer (the pause is in force), and → the last video packet at a WebRTC
    viewer; `times` pauses."""
    viewer = await watch(http, base, PATH, audio=False, token=viewer_token)
    arrivals: list[float] = []
    receiver = viewer.pc.getTransceivers()[0].receiver
    handle = receiver._handle_rtp_packet

    async def counted(packet: Any, arrival_time_ms: int) -> None:
        if packet.payload:  # padding-only probes carry no picture
            arrivals.append(time.monotonic())
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = counted
    headers = {"Authorization": f"Bearer {organizer}"}
    url = f"{base}/api/events/demo/privacy/{FEED}"
    out = []
    try:
        while not arrivals:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        for _ in range(times):
            window = len([a for a in arrivals if a >= time.monotonic() - 1.0])
            assert window > 20, f"the viewer got {window} video packets in the last second: not playing"
            clicked = time.monotonic()
            async with http.post(url, json={"paused": True}, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            answered = time.monotonic() - clicked
            await asyncio.sleep(2.0)
            last = max((a for a in arrivals if a >= clicked), default=clicked)
            out.append((answered, last - clicked))
            async with http.post(url, json={"paused": False}, headers=headers) as resp:
                assert resp.status == 200
            await asyncio.sleep(2.0)
    finally:
        await viewer.close(http)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--strokes", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orcast-bench-draw-"))
    print("starting orcast demo …", flush=True)
    demo = start_demo(tmp, config=CONFIG)
    sockets: list[DrawSocket] = []
    try:
        from broadcast.participant import ALL_EVENTS, Role
        from signaling.auth.tokens import TokenIssuer
        organizer, _ = TokenIssuer(demo.secret.encode()).mint(ALL_EVENTS, Role.ORGANIZER, "bench", 3600)
        await asyncio.sleep(2)  # the demo's feeds are live
        faculty = await DrawSocket.open(demo.base, "demo", demo.token("faculty"))
        moderator = await DrawSocket.open(demo.base, "demo", demo.token("moderator"))
        viewers = [await DrawSocket.open(demo.base, "demo", demo.token("viewer")) for _ in range(args.viewers)]
        sockets = [faculty, moderator, *viewers]
        for sock in sockets:
            await sock.watch(FEED)
        for sock in sockets:
            await sock.wait_for(lambda m: m.get("type") == "drawing")
        print(f"{args.viewers} viewers on {FEED}; faculty draws {args.strokes} strokes per phase "
              f"({ADDS + 1} messages each, {BATCH_MS} ms apart):", flush=True)
        rows = [await phase("quiet", demo.process.pid, viewers, faculty, args.strokes, None)]
        rows.append(await phase("flood", demo.process.pid, viewers, faculty, args.strokes, moderator, 190.0))
        abuser = await DrawSocket.open(demo.base, "demo", demo.token("moderator"))
        sockets.append(abuser)
        rows.append(await phase("abuse", demo.process.pid, viewers, faculty, args.strokes, abuser))
        print(f"  (abuse: {'the server closed the flooding page' if rows[-1]['flooder_closed'] else 'NOT closed'})")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{demo.base}/metrics", headers={"Authorization": f"Bearer {organizer}"}) as resp:
                metrics = {ln.split()[0]: float(ln.split()[1]) for ln in (await resp.text()).splitlines()
                           if ln.startswith("orcast_draw_") and " " in ln}
            print("  server: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(metrics.items())), flush=True)
            pauses = await privacy_pause(http, demo.base, organizer, demo.token("viewer"), 5)
    finally:
        for sock in sockets:
            with contextlib.suppress(Exception):
                await sock.close()
        demo.stop()
    quiet, flooded, _ = rows
    print(f"\nstroke delivery p95 with the flood: {flooded['p95_ms']} ms (target ≤ 150), "
          f"{flooded['p95_ms'] / max(0.1, quiet['p95_ms']):.2f}× the quiet p95 of {quiet['p95_ms']} ms")
    print("privacy pause, request → in force (answered) / → last video packet at the viewer: "
          + ", ".join(f"{a * 1000:.0f}/{p * 1000:.0f} ms" for a, p in pauses)
          + f" (max {max(max(x) for x in pauses) * 1000:.0f} ms, target ≤ 100)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    pause_ms = [{"answered": round(a * 1000, 1), "last_packet": round(p * 1000, 1)} for a, p in pauses]
    (out / "telestration.json").write_text(json.dumps(
        {"phases": rows, "server_metrics": metrics, "privacy_pause_ms": pause_ms}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
