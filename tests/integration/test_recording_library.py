"""The recording library over HTTP: listing, Range downloads with per-file tickets, roles,
delete, retention; and control input that must be refused."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from broadcast.participant import Role
from broadcast.recording.library import SIDECAR_SUFFIX, SegmentRecord, write_sidecar
from tests.conftest import RunningServer
from tests.integration.test_recording import PATH, control, library, rec_server, stop_publisher, wait_state
from tests.support.peers import bearer, publish

__all__ = ["rec_server"]


async def record_a_while(server: RunningServer, seconds: float = 3) -> dict[str, Any]:
    pub = await publish(server.http, server.base, PATH, "H264")
    await control(server, "start", theatre="or1", feed="endoscope")
    await wait_state(server, "recording")
    await asyncio.sleep(seconds)
    await control(server, "stop", theatre="or1", feed="endoscope")
    await stop_publisher(server, pub)
    (rec,) = await library(server)
    return rec


async def test_range_downloads_and_tickets(rec_server: RunningServer) -> None:
    server = rec_server
    moderator = server.token(Role.MODERATOR)
    async with aiohttp.ClientSession(headers=bearer(moderator)) as mod:
        pub = await publish(server.http, server.base, PATH, "H264")
        await control(server, "start", moderator, theatre="or1")
        await wait_state(server, "recording")
        await asyncio.sleep(3)
        await control(server, "stop", moderator, theatre="or1")
        await stop_publisher(server, pub)
        async with mod.get(f"{server.base}/api/recordings") as r:
            (rec,) = (await r.json())["recordings"]
    seg = rec["segments"][0]
    url = server.base + seg["url"]
    assert "ticket=" in url
    data = (server.broadcaster.recordings.library.root / PATH / seg["file"]).read_bytes()
    async with aiohttp.ClientSession() as anyone:  # a <video> element: no Authorization header
        async with anyone.get(url) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
            assert r.headers["Accept-Ranges"] == "bytes" and await r.read() == data
        async with anyone.get(url, headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 206 and r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
            assert await r.read() == data[100:200]
        async with anyone.get(url, headers={"Range": "bytes=-50"}) as r:
            assert r.status == 206 and await r.read() == data[-50:]
        async with anyone.get(url, headers={"Range": f"bytes={len(data) + 10}-"}) as r:
            assert r.status == 416
        async with anyone.get(url + "&download=1") as r:
            assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        other = url.replace(seg["file"], "20200101T000000Z.mp4")
        async with anyone.get(other) as r:
            assert r.status == 401 and "another file" in (await r.json())["error"]
        async with anyone.get(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")) as r:
            assert r.status == 401
        async with anyone.get(url.split("?")[0]) as r:
            assert r.status == 401
        async with anyone.get(url.split("?")[0], headers=bearer(server.token(Role.VIEWER))) as r:
            assert r.status == 403  # viewers never get patient video files
        # revoking the link that opened the library kills its tickets
        jti = server.access.issuer.verify(moderator).jti
        async with server.http.delete(f"{server.base}/api/events/course/tokens/{jti}") as r:
            assert r.status == 200
        async with anyone.get(url) as r:
            assert r.status == 401 and "revoked" in (await r.json())["error"]


async def test_library_respects_theatres_and_roles(rec_server: RunningServer) -> None:
    server = rec_server
    rec = await record_a_while(server, 2)
    assert rec["path"] == PATH and rec["duration_s"] > 1 and rec["size_bytes"] > 0
    assert rec["segments"][0]["video_codec"] == "H264" and rec["segments"][0]["audio_codec"] == "opus"
    base = f"{server.base}/api/recordings"
    cases = [
        (server.token(Role.TECHNICIAN, theatre="or1"), {}, 200, 1),
        (server.token(Role.TECHNICIAN, theatre="or2"), {}, 200, 0),
        (server.token(Role.TECHNICIAN, theatre="or2"), {"theatre": "or1"}, 403, 0),
        (server.token(Role.MODERATOR), {"theatre": "or1", "feed": "endoscope"}, 200, 1),
        (server.token(Role.MODERATOR), {"event": "elsewhere"}, 403, 0),
        (server.token(Role.MODERATOR), {"feed": "endoscope"}, 400, 0),
        (server.token(Role.MODERATOR), {"theatre": "../x"}, 400, 0),
        (server.token(Role.VIEWER), {}, 403, 0),
        (server.token(Role.HALL), {}, 403, 0),
        (server.token(Role.FACULTY), {}, 403, 0),
    ]
    async with aiohttp.ClientSession() as http:
        for token, query, status, count in cases:
            async with http.get(base, params=query, headers=bearer(token)) as r:
                body = await r.json()
                assert r.status == status, (query, body)
                if status == 200:
                    assert len(body["recordings"]) == count, (query, body)
                else:
                    assert body["error"]
        # a file name that is not a segment never reaches the file system
        for name in ("..%2F..%2Fsecret.key", "orcast.sqlite3", "x.mp4", "20261122T080000Z.mkv"):
            async with http.get(f"{base}/course/or1/endoscope/{name}", headers=bearer(server.token())) as r:
                assert r.status == 404, name


async def test_delete_needs_an_organizer_and_a_stopped_recording(rec_server: RunningServer) -> None:
    server = rec_server
    pub = await publish(server.http, server.base, PATH, "VP8")
    await control(server, "start")
    await wait_state(server, "recording")
    (rec,) = await library(server)
    url = f"{server.base}/api/recordings/{PATH}/{rec['id']}"
    async with server.http.delete(url) as r:
        assert r.status == 409 and "stop it first" in (await r.json())["error"]
    await control(server, "stop")
    await stop_publisher(server, pub)
    async with server.http.delete(url, headers=bearer(server.token(Role.MODERATOR))) as r:
        assert r.status == 403
    async with server.http.delete(url) as r:
        assert r.status == 200 and (await r.json())["segments"] == 1
    assert await library(server) == []
    assert not (server.broadcaster.recordings.library.root / PATH).exists()
    async with server.http.delete(url) as r:
        assert r.status == 404


def _old_recording(root: Path, path: str, name: str, ended_days_ago: float) -> Path:
    directory = root / path
    directory.mkdir(parents=True, exist_ok=True)
    media = directory / name
    media.write_bytes(b"\0" * 1000)
    ended = time.time() - ended_days_ago * 86400
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ended))
    write_sidecar(media, SegmentRecord(path=path, file=name, recording=media.stem, state="complete",
                                       started_at=stamp, ended_at=stamp, duration_s=1.0))
    return media


async def test_retention_deletes_only_what_is_old_enough(rec_server: RunningServer) -> None:
    library_ = rec_server.broadcaster.recordings.library
    old = _old_recording(library_.root, "course/or1/room", "20200101T080000Z.mp4", 40)
    new = _old_recording(library_.root, "course/or1/room", "20200102T080000Z.mp4", 2)
    assert library_.expire(30, busy=set()) == 1
    assert not old.exists() and not old.with_name(old.name + SIDECAR_SUFFIX).exists()
    assert new.exists() and json.loads(new.with_name(new.name + SIDECAR_SUFFIX).read_text())["state"] == "complete"


async def test_control_input_is_checked(rec_server: RunningServer) -> None:
    server = rec_server
    technician = server.token(Role.TECHNICIAN, theatre="or1")
    bad = [
        (None, {"theatre": "or1"}, 400),                       # no action
        (None, {"action": "pause"}, 400),
        (None, {"action": "start", "feed": "endoscope"}, 400),  # a feed needs its theatre
        (None, {"action": "start", "theatre": "OR 1"}, 400),
        (None, {"action": "start", "extra": 1}, 400),
        (technician, {"action": "start"}, 403),                 # the whole event: not for an OR's link
        (technician, {"action": "start", "theatre": "or2"}, 403),
        (server.token(Role.VIEWER), {"action": "start"}, 403),
    ]
    for token, body, status in bad:
        async with server.http.post(f"{server.base}/api/events/course/recording", json=body,
                                    headers=bearer(token) if token else {}) as r:
            data = await r.json()
            assert r.status == status and data["error"], (body, data)
    async with server.http.post(f"{server.base}/api/events/course/recording", data="{",
                                headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    assert server.broadcaster.recordings.rules == {}
