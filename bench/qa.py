"""Q&A delivery: time from a moderator's "on air" to its receipt by the technician, the hall and
every viewer, over real data channels.

    python bench/qa.py [--viewers 100] [--rounds 40] [--workers 2]

The server runs in its own process. Viewers (Q&A data channel connections on one shared viewer
link, as a course's emailed link is) run in worker processes; the moderator, an OR technician
console and a hall display run here. Each round the moderator puts a new approved question on
air for or1 and every client notes when that slot reached it (CLOCK_MONOTONIC is one clock for
all processes of the machine). Then the same again while one viewer floods the server with 1 000
messages per round. Results print as a table and go to bench/results/qa.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.relay import auth_headers, cpu_seconds, free_port, spawn, start_orcast, wait_http, wait_line
from tests.support.qaclient import QaClient, joined

QA_CONFIG = """
[limits]
sessions_per_token = 100000
session_rate = 100000
session_burst = 100000

[qa]
questions_per_minute = 600

[[events]]
slug = "bench"
theatres = ["or1", "or2"]
"""


async def token(http: aiohttp.ClientSession, base: str, role: str, name: str, theatre: str | None = None) -> str:
    """A link of the event, minted through the API as an organizer would."""
    async with http.post(f"{base}/api/events/bench/tokens", headers=auth_headers(),
                         json={"role": role, "name": name, "theatre": theatre}) as r:
        assert r.status == 201, await r.text()
        minted: str = (await r.json())["token"]
        return minted


def on_air_times(client: QaClient, theatre: str = "or1") -> dict[int, float]:
    """When each question first appeared in the theatre's on-air slot at this client."""
    seen: dict[int, float] = {}
    for message, at in zip(client.messages, client.received_at, strict=True):
        if message.get("type") == "on_air" and theatre in message["slots"]:
            seen.setdefault(message["slots"][theatre]["id"], at)
    return seen


async def connect_many(http: aiohttp.ClientSession, base: str, count: int, link: str) -> list[QaClient]:
    clients: list[QaClient] = []
    for start in range(0, count, 10):  # ten at a time: ICE and DTLS handshakes cost CPU
        batch = min(count, start + 10) - start
        clients += await asyncio.gather(*(joined(http, base, "bench", link) for _ in range(batch)))
    return clients


# ---------------------------------------------------------------- worker: viewers
async def run_viewers(base: str, count: int) -> None:
    async with aiohttp.ClientSession() as http:
        link = await token(http, base, "viewer", "Registered surgeon")
        clients = await connect_many(http, base, count, link)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        flooder = clients[0]
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command == "flood":  # one viewer sends 1 000 messages at once
                for n in range(1000):
                    flooder.send_raw(json.dumps({"type": "vote", "question": 1 + n % 50}))
            elif command == "report":
                print(json.dumps([on_air_times(c) for c in clients[1:]]), flush=True)
            else:
                break
        for client in clients:
            await client.close()


# ---------------------------------------------------------------- orchestration
async def measure(base: str, workers: list[subprocess.Popen[str]], rounds: int, flood: bool,
                  first: int, mod: QaClient, displays: dict[str, QaClient]) -> dict[str, Any]:
    sent: dict[int, float] = {}
    for qid in range(first, first + rounds):
        if flood:
            assert workers[0].stdin is not None
            workers[0].stdin.write("flood\n")
            workers[0].stdin.flush()
            await asyncio.sleep(0.02)  # let the flood reach the server first
        sent[qid] = time.monotonic()
        await mod.ok("on_air", question=qid, theatre="or1")
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)
    viewer_times: list[dict[int, float]] = []
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("report\n")
        worker.stdin.flush()
        for times in json.loads(wait_line(worker, 60)):
            viewer_times.append({int(k): v for k, v in times.items()})
    result: dict[str, Any] = {}
    for name, client in displays.items():
        got = on_air_times(client)
        result[name] = summary([(got[q] - t) * 1000 for q, t in sent.items() if q in got], len(sent))
    every = [(times[q] - t) * 1000 for times in viewer_times for q, t in sent.items() if q in times]
    last = [max((times[q] - t) * 1000 for times in viewer_times if q in times) for q, t in sent.items()
            if any(q in times for times in viewer_times)]
    result["viewers"] = summary(every, len(sent) * len(viewer_times))
    result["last_viewer"] = summary(last, len(sent))
    return result


def summary(values: list[float], expected: int) -> dict[str, Any]:
    if not values:
        return {"n": 0, "expected": expected}
    ordered = sorted(values)
    return {"n": len(values), "expected": expected, "p50_ms": statistics.median(ordered),
            "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max_ms": ordered[-1]}


async def orchestrate(base: str, args: argparse.Namespace, server_pid: int) -> dict[str, Any]:
    per_worker = -(-args.viewers // args.workers)
    print(f"connecting {args.viewers} viewers in {args.workers} processes …", flush=True)
    # each worker opens one extra connection, its first: the flooder (only worker 0's floods)
    workers = [spawn(__file__, "viewers", base, str(min(per_worker, args.viewers - i * per_worker) + 1))
               for i in range(args.workers)]
    try:
        for worker in workers:
            assert wait_line(worker, 300) == "ready"
        async with aiohttp.ClientSession() as http:
            mod = await joined(http, base, "bench", await token(http, base, "moderator", "Moderator"))
            asker = await joined(http, base, "bench", await token(http, base, "viewer", "Asker"))
            tech = await token(http, base, "technician", "OR 1 tech", "or1")
            displays = {"technician": await joined(http, base, "bench", tech),
                        "hall": await joined(http, base, "bench", await token(http, base, "hall", "Hall"))}
            total = 2 * args.rounds
            for n in range(total):
                qid = (await asker.ok("ask", text=f"Bench question {n + 1}: what would you do here?"))["question"]
                await mod.ok("approve", question=qid)
                await asyncio.sleep(0.12)  # within a connection's 10 messages a second
            print(f"{args.viewers} viewers, {total} approved questions; measuring …", flush=True)
            cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
            quiet = await measure(base, workers, args.rounds, False, 1, mod, displays)
            cores = (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)
            flooded = await measure(base, workers, args.rounds, True, 1 + args.rounds, mod, displays)
            for client in (mod, asker, *displays.values()):
                await client.close()
    finally:
        for worker in workers:
            if worker.stdin and worker.poll() is None:
                worker.stdin.write("quit\n")
                worker.stdin.close()
            worker.wait(60)
    return {"viewers": args.viewers, "rounds": args.rounds, "server_cores_quiet": cores,
            "quiet": quiet, "flood": flooded}


def row(name: str, s: dict[str, Any]) -> str:
    if not s.get("n"):
        return f"| {name} | – | – | – | 0 of {s.get('expected')} |"
    return (f"| {name} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['max_ms']:.1f} | "
            f"{s['n']} of {s['expected']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("ORCAST_SECRET", secrets.token_hex(32))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_orcast(QA_CONFIG, port, "orcast-bench-qa-")
    try:
        wait_http(base)
        result = asyncio.run(orchestrate(base, args, server.pid))
    finally:
        server.terminate()
        server.wait(30)
    out = Path(__file__).with_name("results") / "qa.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"{args.viewers} viewers, {args.rounds} rounds each; server {result['server_cores_quiet']:.3f} cores "
          "while quiet")
    print()
    print("| on air → received | p50 ms | p95 ms | max ms | received |")
    print("|---|---|---|---|---|")
    for label, key in (("quiet", "quiet"), ("one viewer flooding 1 000 msgs/round", "flood")):
        part = result[key]
        print(row(f"technician ({label})", part["technician"]))
        print(row(f"hall ({label})", part["hall"]))
        print(row(f"every viewer ({label})", part["viewers"]))
        print(row(f"last of {args.viewers} viewers ({label})", part["last_viewer"]))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "viewers":
        asyncio.run(run_viewers(sys.argv[2], int(sys.argv[3])))
    else:
        main()
