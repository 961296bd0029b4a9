"""Recording faults in a real server process: kill -9 mid-recording, a disk that refuses
to grow (RLIMIT_FSIZE), and repairing on the next start what a crash left open."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.demoproc import DemoProcess, start_demo
from tests.support.mediacheck import decode, gaps
from tests.support.peers import bearer, watch

FEED = "demo/or1/endoscope"
RECORD_ALL = """[recording]
min_free_gb = 0

[[events]]
slug = "demo"
title = "ORcast demo course"
theatres = ["or1", "or2", "podium"]
record = true
"""


async def feed_status(server: DemoProcess, http: aiohttp.ClientSession, path: str = FEED) -> dict[str, Any]:
    async with http.get(f"{server.base}/api/events/demo/recording",
                        headers=bearer(server.token("organizer"))) as r:
        assert r.status == 200, await r.text()
        feeds = {f["path"]: f for f in (await r.json())["feeds"]}
    return feeds.get(path, {"state": "absent", "duration_s": 0})


async def wait_for(server: DemoProcess, http: aiohttp.ClientSession, check: Any, what: str,
                   timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await feed_status(server, http)
        if check(status):
            return status
        assert time.monotonic() < deadline, f"{what}: {status}\n{server.log_path.read_text()[-3000:]}"
        await asyncio.sleep(0.2)


def sidecars(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.mp4.json"))]


async def test_kill_9_leaves_a_playable_file_then_it_is_repaired(tmp_path: Path) -> None:
    server = start_demo(tmp_path, RECORD_ALL)
    async with aiohttp.ClientSession() as http:
        status = await wait_for(server, http, lambda s: s["state"] == "recording" and s["duration_s"] >= 6,
                                "the demo feed was not recorded")
        recorded = status["duration_s"]
        server.kill()
        killed_at = time.time()
    (media,) = sorted((tmp_path / "data" / "recordings" / FEED).glob("*.mp4"))
    got = decode(media)  # plays as it is, before any repair
    lost = recorded - len(got.counters) / 30
    print(f"\nkill -9 after {recorded:.2f} s recorded: the file holds {len(got.counters) / 30:.2f} s "
          f"({lost:.2f} s lost)")
    assert lost <= 2.0, f"{lost:.2f} s lost"
    assert got.keyframes >= 1 and got.audio_rms > 0
    (left,) = sidecars(tmp_path / "data" / "recordings")
    assert left["state"] == "recording"

    # the next start repairs it (index, duration) and lists it as incomplete
    again = start_demo(tmp_path, "[recording]\nmin_free_gb = 0\n", secret=server.secret, name="again")
    try:
        async with aiohttp.ClientSession() as http, http.get(
                f"{again.base}/api/recordings", params={"event": "demo", "theatre": "or1", "feed": "endoscope"},
                headers=bearer(again.token("organizer"))) as r:
            (rec,) = (await r.json())["recordings"]
        assert rec["state"] == "incomplete", rec
        (seg,) = rec["segments"]
        assert seg["state"] == "recovered" and seg["end_reason"] == "crash"
        assert abs(seg["duration_s"] - len(got.counters) / 30) < 0.5, seg
        # when the media ended (the kill), not when the next start repaired it
        started, ended = (datetime.fromisoformat(seg[k].replace("Z", "+00:00")).timestamp()
                          for k in ("started_at", "ended_at"))
        assert abs(ended - started - seg["duration_s"]) < 0.01, seg
        assert ended < killed_at + 1.0, (seg, killed_at)
        assert seg["keyframes"] >= 1 and abs(seg["keyframes"] - got.keyframes) <= 1, (seg, got.keyframes)
        repaired = decode(media)
        assert len(repaired.counters) >= len(got.counters) - 1
    finally:
        log = again.stop()
    assert "left open by a crash" in log and "repaired" in log


def _limit_file_size() -> None:
    limit = 1_500_000  # bytes per file: a recording hits it in seconds
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


async def test_full_disk_closes_the_file_and_the_stream_goes_on(tmp_path: Path) -> None:
    server = start_demo(tmp_path, "[recording]\nmin_free_gb = 0\n", preexec=_limit_file_size)
    try:
        async with aiohttp.ClientSession() as http:
            organizer = bearer(server.token("organizer"))
            viewer = await watch(http, server.base, FEED, token=server.token("viewer"))
            await viewer.wait_frames(30)
            async with http.post(f"{server.base}/api/events/demo/recording", headers=organizer,
                                 json={"action": "start", "theatre": "or1", "feed": "endoscope"}) as r:
                assert r.status == 200, await r.text()
            failed = await wait_for(server, http, lambda s: s["state"] == "failed",
                                    "the recording never hit the file size limit")
            assert "file size limit" in failed["error"] and "plays" in failed["error"], failed
            before = len(viewer.counters)
            await asyncio.sleep(2)
            assert len(viewer.counters) - before > 40, "the live stream stalled with the disk"
            await viewer.close(http)
            async with http.get(f"{server.base}/api/recordings", headers=organizer,
                                params={"event": "demo"}) as r:
                (rec,) = (await r.json())["recordings"]
            assert rec["state"] == "incomplete" and rec["segments"][0]["state"] == "cut"
    finally:
        log = server.stop()
    assert "recording stopped: the file system refused a larger file" in log
    (media,) = sorted((tmp_path / "data" / "recordings" / FEED).glob("*.mp4"))
    got = decode(media)
    assert got.counters and got.keyframes >= 1
    assert media.stat().st_size <= 1_500_000
    # the synthetic clip loops every 120 frames and jumps to a keyframe for a new reader
    assert len(gaps([c % 120 for c in got.counters])) <= 2
