"""SIGTERM while a feed is recorded and watched: no new sessions, clients are told, every file
is finished and playable, the process exits 0 within 10 s. Also /healthz and /readyz."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp

from tests.conftest import RunningServer
from tests.integration.test_recording_faults import RECORD_ALL, wait_for
from tests.support.demoproc import start_demo
from tests.support.mediacheck import decode
from tests.support.peers import bearer, make_offer_sdp, post_offer, watch
from tests.support.qaclient import joined

FEED = "demo/or1/endoscope"


async def test_sigterm_while_recording_and_playing(tmp_path: Path) -> None:
    server = start_demo(tmp_path, RECORD_ALL)
    async with aiohttp.ClientSession() as http:
        await wait_for(server, http, lambda s: s["state"] == "recording" and s["duration_s"] >= 3, "recording")
        viewer = await watch(http, server.base, FEED, token=server.token("viewer"))
        await viewer.wait_frames(20)
        qa = await joined(http, server.base, "demo", server.token("viewer"))
        ws = await http.ws_connect(f"{server.base}/ws/demo")
        await ws.send_json({"type": "auth", "token": server.token("viewer")})
        assert (await ws.receive_json(timeout=10))["type"] == "hello"

        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        messages = []
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                messages.append(json.loads(message.data))
        assert any(m["type"] == "closing" for m in messages), messages
        await qa.wait_until(lambda: any(m.get("type") == "closing" and m["reconnect"] for m in qa.messages),
                            what="the Q&A channel is told")
        code = await asyncio.get_running_loop().run_in_executor(None, server.process.wait, 15)
        took = time.monotonic() - started
        print(f"\nSIGTERM → exit {code} in {took:.1f} s")
        assert code == 0 and took < 10, (code, took, server.log_path.read_text()[-2000:])
        await viewer.wait_until(lambda: viewer.pc.connectionState in ("failed", "closed")
                                or viewer.pc.connectionState == "disconnected", 40, "viewer closed")
        await viewer.close()
        await qa.close()
    log = server.log_path.read_text()
    assert "ORcast stopped in" in log
    sidecars = [json.loads(p.read_text()) for p in sorted((tmp_path / "data" / "recordings").rglob("*.json"))
                if p.name != "recording-rules.json"]
    assert sidecars and all(s["state"] == "complete" for s in sidecars), sidecars
    for media in sorted((tmp_path / "data" / "recordings").rglob("*.mp4")) + \
            sorted((tmp_path / "data" / "recordings").rglob("*.webm")):
        got = decode(media)  # finished files: index and all, no repair needed
        assert len(got.counters) > 30, media


async def test_health_and_readiness(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{server.base}/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "alive"
        async with anonymous.get(f"{server.base}/readyz") as r:
            body = await r.json()
            assert r.status == 200 and body["ready"] and all(body["checks"].values()), body
        health = server.app[__import__("signaling.keys", fromlist=["HEALTH"]).HEALTH]
        health.stopping = True
        async with anonymous.get(f"{server.base}/readyz") as r:
            body = await r.json()
            assert r.status == 503 and body["checks"]["accepting"] is False
        status, text, headers = await post_offer(server.http, f"{server.base}/whep/course/or1/endoscope",
                                                 await make_offer_sdp("recvonly"), None)
        assert status == 503 and "shutting down" in text and headers["Retry-After"] == "5"
        health.stopping = False
        config = server.access.config
        (config.data_dir / ".readyz").mkdir()  # the probe cannot write its file
        async with anonymous.get(f"{server.base}/readyz", headers=bearer(None)) as r:
            assert r.status == 503 and (await r.json())["checks"]["data_dir_writable"] is False
