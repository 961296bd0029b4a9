"""On-demand sources: a camera pulled only while its feed is watched or recorded. The camera
(GStreamer's RTSP server) says when an RTSP client connects and leaves, so these tests see
what the camera sees: no connection while nobody watches."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.ondemand import OnDemandPull
from broadcast.sources.pulled import PullSettings
from signaling.keys import ACCESS, BROADCASTER
from signaling.store.eventstore import EventStore
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.camera import Camera, free_port
from tests.support.mediacheck import decode
from tests.support.peers import make_offer_sdp, post_offer, publish, wait_until, watch

PATH = "course/or3/room"
GRACE_S = 1.0


@contextlib.asynccontextmanager
async def running(sources: list[PullSettings]) -> AsyncIterator[RunningServer]:
    runner, base, app = await start_server(make_config(sources=sources, on_demand_grace=GRACE_S))
    async with organizer_session(app) as http:
        yield RunningServer(base, app, http)
    await runner.cleanup()
    shutil.rmtree(app[ACCESS].config.data_dir, ignore_errors=True)


async def feed(server: RunningServer, path: str = PATH) -> dict[str, Any]:
    async with server.http.get(f"{server.base}/api/events/course/streams") as resp:
        assert resp.status == 200
        streams = {s["path"]: s for s in (await resp.json())["streams"]}
    assert path in streams, f"{path} is not in the feed list: {sorted(streams)}"
    return streams[path]


async def record(server: RunningServer, action: str) -> None:
    async with server.http.post(f"{server.base}/api/events/course/recording",
                                json={"action": action, "theatre": "or3", "feed": "room"}) as resp:
        assert resp.status == 200, await resp.text()


async def test_an_on_demand_camera_is_pulled_only_while_watched_or_recorded(camera: Camera) -> None:
    async with running([PullSettings(PATH, camera.url(), on_demand=True)]) as server:
        source = server.app[BROADCASTER].pulled[StreamPath.parse(PATH)]
        assert isinstance(source, OnDemandPull)
        # nobody watches: the camera has no RTSP client, the feed is listed as on demand
        assert source.state == "idle" and camera.connections == 0
        listed = await feed(server)
        assert listed["on_demand"] and not listed["live"] and listed["publisher"] == "rtsp"

        # the first viewer's POST starts the pull and is answered once the camera's codecs are known
        first = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
        await first.wait_frames(30, timeout=20.0)
        assert (640, 360) in first.sizes and source.state == "live"
        second = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
        await second.wait_frames(10, timeout=20.0)
        assert camera.connections == 1 and camera.clients == 1  # one pull, however many viewers
        listed = await feed(server)
        assert listed["live"] and listed["on_demand"] and listed["viewers"] == 2

        # the last viewer leaves: after the grace period the camera is let go
        await first.close(server.http)
        await second.close(server.http)
        await wait_until(lambda: source.state == "idle" and camera.clients == 0, 5 + GRACE_S * 5,
                         lambda: f"still pulling: {source.status()}, camera clients {camera.clients}")
        listed = await feed(server)
        assert not listed["live"] and listed["on_demand"]

        # a viewer that leaves and one that comes within the grace period: the pull goes on
        third = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
        await third.wait_frames(10, timeout=20.0)
        connections = camera.connections
        await third.close(server.http)
        fourth = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
        await fourth.wait_frames(10, timeout=20.0)
        assert camera.connections == connections
        await fourth.close(server.http)
        await wait_until(lambda: source.state == "idle", 5 + GRACE_S * 5, lambda: str(source.status()))

        # recording wants the feed too: the camera is pulled with nobody watching, and recorded
        await record(server, "start")
        await wait_until(lambda: source.state == "live" and server.app[BROADCASTER].recordings.status(
            StreamPath.parse(PATH)).state == "recording", 20.0, lambda: f"not recording: {source.status()}")
        await wait_until(lambda: server.app[BROADCASTER].recordings.status(StreamPath.parse(PATH)).duration_s
                         > 2, 15.0, lambda: "the recording got no frames")
        await record(server, "stop")
        await wait_until(lambda: source.state == "idle" and camera.clients == 0, 5 + GRACE_S * 5,
                         lambda: f"still pulling after the recording stopped: {source.status()}")
        async with server.http.get(f"{server.base}/api/recordings", params={"event": "course"}) as resp:
            (rec,) = (await resp.json())["recordings"]
        root = server.app[BROADCASTER].recordings.library.root
        decoded = decode(root / rec["path"] / rec["segments"][0]["file"])
        assert len(decoded.counters) > 25 and decoded.size == (640, 360)
        assert source.periods == 3  # the first two viewers, the next two, the recording


async def test_a_viewer_of_an_on_demand_camera_that_does_not_answer_is_told_to_retry() -> None:
    nobody = PullSettings(PATH, f"rtsp://cam:pw@127.0.0.1:{free_port()}/stream1", on_demand=True)
    async with running([nobody]) as server:
        source = server.app[BROADCASTER].pulled[StreamPath.parse(PATH)]
        offer = await make_offer_sdp("recvonly")
        status, text, headers = await post_offer(server.http, f"{server.base}/whep/{PATH}", offer,
                                                 server.token(Role.VIEWER))
        assert status == 503 and headers["Retry-After"] == "2", text
        assert "on demand" in text and "connection refused" in text and ":pw@" not in text
        # nobody waits for it any more: the pull stops after the grace period
        await wait_until(lambda: source.state == "idle", 5 + GRACE_S * 5, lambda: str(source.status()))
        assert source.error and "connection refused" in source.error


async def test_a_publisher_on_an_idle_on_demand_feed_is_watched_and_the_camera_takes_over(camera: Camera) -> None:
    """A WHIP encoder may publish to the feed while its camera idles: viewers get the encoder
    at once (the camera is not pulled), and when the encoder leaves, the camera takes over
    for the viewers still there."""
    async with running([PullSettings(PATH, camera.url(), on_demand=True)]) as server:
        source = server.app[BROADCASTER].pulled[StreamPath.parse(PATH)]
        publisher = await publish(server.http, server.base, PATH, token=server.token(Role.TECHNICIAN, theatre="or3"))
        viewer = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
        await viewer.wait_frames(20, timeout=20.0)
        assert camera.connections == 0 and source.state == "idle"
        await publisher.pc.close()
        async with server.http.delete(publisher.session_url):
            pass
        await wait_until(lambda: source.state == "live" and camera.clients == 1, 20.0,
                         lambda: f"the camera did not take over: {source.status()}")
        await viewer.wait_until(lambda: (640, 360) in viewer.sizes, 20.0, "no camera picture for the viewer")
        assert viewer.pc.connectionState == "connected"
        await viewer.close(server.http)


async def test_on_demand_through_the_api_is_kept(camera: Camera) -> None:
    async with running([]) as server:
        body = {"theatre": "or3", "feed": "ceiling", "url": camera.url(), "on_demand": True}
        async with server.http.post(f"{server.base}/api/events/course/sources", json=body) as resp:
            assert resp.status == 201, await resp.text()
            added = (await resp.json())["source"]
        assert added["on_demand"] and added["state"] == "idle"
        async with server.http.post(f"{server.base}/api/events/course/sources",
                                    json={**body, "feed": "light", "on_demand": "yes"}) as resp:
            assert resp.status == 400 and "on_demand" in await resp.text()
        (stored,) = server.app[ACCESS].store.sources()
        assert stored.on_demand and camera.connections == 0


def test_an_event_store_from_before_on_demand_sources_is_migrated(tmp_path: Path) -> None:
    """A data directory written by the previous release (schema 1: no on_demand column)."""
    db = sqlite3.connect(tmp_path / "orcast.sqlite3")
    db.executescript("""
        CREATE TABLE events (slug TEXT PRIMARY KEY, title TEXT NOT NULL, record INTEGER NOT NULL,
            public INTEGER NOT NULL, adhoc_theatres INTEGER NOT NULL, starts_at TEXT, ends_at TEXT,
            token_gen INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE sources (path TEXT PRIMARY KEY, event TEXT NOT NULL REFERENCES events(slug) ON DELETE CASCADE,
            url TEXT NOT NULL, transport TEXT NOT NULL, token TEXT, added_by TEXT NOT NULL, created_at REAL NOT NULL);
        INSERT INTO events VALUES ('course', 'Course', 0, 0, 0, NULL, NULL, 0, 'api', 0);
        INSERT INTO sources VALUES ('course/or3/room', 'course', 'rtsp://cam/s', 'tcp', NULL, 'organizer', 0);
        PRAGMA user_version = 1;
    """)
    db.close()
    store = EventStore(tmp_path)
    try:
        (source,) = store.sources()
        assert source.path == "course/or3/room" and source.on_demand is False
    finally:
        store.close()
