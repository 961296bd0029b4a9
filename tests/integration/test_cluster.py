"""A cluster on loopback: Debian's redis-server and three `orcast serve` processes (node-a,
node-b, node-c) that share it. A publisher on node A, decoding viewers on B and C, one pull per
node; the feed list of every node shows every node's feeds; a link revoked on B is refused on
C within 2 s."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from broadcast.participant import Role
from tests.support.clusternodes import Cluster, Node, RedisProcess, start_redis
from tests.support.demoproc import ROOT, server_environment
from tests.support.drawclient import DrawSocket
from tests.support.peers import bearer, publish, watch
from tests.support.qaclient import connect, joined

PATH = "course/or1/endoscope"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisProcess]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisProcess) -> Iterator[Cluster]:
    nodes = Cluster(Path(tmp_path_factory.mktemp("cluster")), redis_server)
    nodes.start("node-a", "node-b", "node-c")
    yield nodes
    nodes.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def streams(http: aiohttp.ClientSession, base: str, token: str) -> list[dict[str, object]]:
    async with http.get(f"{base}/api/events/course/streams", headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["streams"])


async def viewer_sessions(http: aiohttp.ClientSession, base: str, token: str) -> list[dict[str, object]]:
    async with http.get(f"{base}/api/events/course/sessions", headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()
        return [s for s in (await resp.json())["sessions"] if s.get("kind") == "viewer"]


async def cluster_status(cluster: Cluster) -> str:
    """`orcast cluster status` as an operator runs it, once the nodes' next heartbeats are in."""
    await asyncio.sleep(1.5)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling.cli", "cluster", "status", "--config", str(cluster.tmp / "node-a.toml"),
        cwd=ROOT, env=server_environment(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_viewers_on_other_nodes_are_served_by_one_pull_per_node(cluster: Cluster,
                                                                       http: aiohttp.ClientSession) -> None:
    a, b, c = (cluster.nodes[n] for n in ("node-a", "node-b", "node-c"))
    organizer = cluster.organizer()
    technician, _ = await cluster.mint(http, a, Role.TECHNICIAN, theatre="or1")
    publisher = await publish(http, a.base, PATH, token=technician)
    try:
        # the feed lists on B and C show the feed, held by node A, once their directories have it
        # (each node reads it on its own heartbeat)
        deadline = time.monotonic() + 5
        for node in (c, b):
            while not [s for s in await streams(http, node.base, organizer) if s["path"] == PATH and s["live"]]:
                assert time.monotonic() < deadline, f"{node.name}'s feed list never showed node A's feed"
                await asyncio.sleep(0.2)
        listed = [s for s in await streams(http, c.base, organizer) if s["path"] == PATH]
        assert listed[0]["node"] == "node-a", listed
        # and its thumbnail, which node A makes (C has no viewer of the feed, so no copy of it)
        thumbnail = f"{c.base}/api/events/course/thumbnails/or1/endoscope"
        deadline = time.monotonic() + 15
        while True:
            async with http.get(thumbnail, headers=bearer(organizer)) as resp:
                if resp.status == 200:
                    assert resp.content_type == "image/jpeg" and (await resp.read())[:2] == b"\xff\xd8"
                    break
                assert resp.status == 204, await resp.text()  # A's first still is on its way
            assert time.monotonic() < deadline, "node C never showed node A's thumbnail"
            await asyncio.sleep(0.5)

        viewer, _ = await cluster.mint(http, c, Role.VIEWER, name="Dr Remote")  # minted on C, used on B too
        on_b = [await watch(http, b.base, PATH, token=viewer) for _ in range(2)]
        on_c = await watch(http, c.base, PATH, token=viewer)
        for v in (*on_b, on_c):
            await v.wait_frames(20, timeout=20.0)
            assert v.counters == sorted(v.counters), "frames out of order"
        # node A serves one pull per node, whatever their viewers
        pulls = [s for s in await viewer_sessions(http, a.base, organizer) if s["node"] == "node-a"]
        assert sorted(str(s["name"]) for s in pulls) == ["ORcast node node-b", "ORcast node node-c"], pulls
        here = next(s for s in await streams(http, b.base, organizer) if s["path"] == PATH)
        assert here["viewers"] == 2 and here["node"] == "node-a", here
        # HLS on a node that does not hold the feed: made there from its pull
        async with http.get(f"{c.base}/hls/{PATH}/high/index.m3u8", headers=bearer(viewer)) as resp:
            assert resp.status == 200, await resp.text()
            assert "#EXT-X-PART:" in await resp.text()
        # and the operator's view of it
        status = await cluster_status(cluster)
        for line in ("node-a", "node-b", "node-c", f"{PATH}", "on node-a", f"node-b           pulls {PATH}",
                     f"node-c           pulls {PATH}"):
            assert line in status, status
        async with http.get(f"{b.base}/metrics", headers=bearer(organizer)) as resp:
            metrics = await resp.text()
        for line in ("orcast_cluster_nodes 3.0", f'orcast_cluster_pulls{{path="{PATH}"}} 1.0',
                     "orcast_cluster_redis_up 1.0", "orcast_cluster_remote_feeds 1.0"):
            assert line in metrics, metrics
        # a session URL names its node: asked on another node (a balancer without stickiness),
        # the request is passed on to it
        assert on_b[0].session_url.endswith("~node-b"), on_b[0].session_url
        elsewhere = on_b[0].session_url.replace(b.base, c.base)
        async with http.get(f"{elsewhere}/quality", headers=bearer(viewer)) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["rendition"] == "high"
        async with http.delete(elsewhere, headers=bearer(viewer)) as resp:
            assert resp.status == 200, await resp.text()
        for v in on_b[1:]:
            await v.close(http)
        await on_c.close(http)
    finally:
        await publisher.pc.close()


async def eventually(what: str, check: Callable[[], Awaitable[bool]], within: float = 2.0) -> float:
    """Seconds until `check` holds; fails after `within`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"{what} not within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_what_an_organizer_does_on_one_node_holds_on_every_node(cluster: Cluster,
                                                                       http: aiohttp.ClientSession) -> None:
    a, b, c = (cluster.nodes[n] for n in ("node-a", "node-b", "node-c"))
    organizer = cluster.organizer()
    ward = "ward/or1/cam"

    async def status_of(url: str, token: str) -> int:
        async with http.get(url, headers=bearer(token)) as resp:
            return resp.status

    # an event created on the organizer page of node A is on every node
    async with http.post(f"{a.base}/api/events", headers=bearer(organizer),
                         json={"slug": "ward", "title": "Ward round", "theatres": ["or1"]}) as resp:
        assert resp.status == 201, await resp.text()
    for node in (b, c):
        took = await eventually(f"event ward on {node.name}",
                                lambda n=node: _is(status_of(f"{n.base}/api/events/ward", organizer), 200))
        print(f"\nevent created on node A, known on {node.name} after {took:.2f} s")
    # a theatre added on B reaches A
    async with http.post(f"{b.base}/api/events/ward/theatres", headers=bearer(organizer), json={"slug": "or2"}) as resp:
        assert resp.status == 201, await resp.text()

    async def a_has_or2() -> bool:
        async with http.get(f"{a.base}/api/events/ward", headers=bearer(organizer)) as resp:
            return any(t["slug"] == "or2" for t in (await resp.json())["event"]["theatres"])
    await eventually("theatre or2 on node A", a_has_or2)

    # its links work on every node and every node lists them, with their live connections
    technician, _ = await cluster.mint(http, a, Role.TECHNICIAN, theatre="or1", event="ward")
    viewer, jti = await cluster.mint(http, c, Role.VIEWER, name="Dr One Device", event="ward", max_sessions=1)
    publisher = await publish(http, a.base, ward, token=technician)
    try:
        async def live_on_b() -> bool:
            async with http.get(f"{b.base}/api/events/ward/streams", headers=bearer(organizer)) as resp:
                return any(s["path"] == ward and s["live"] for s in (await resp.json())["streams"])
        await eventually("the feed in node B's directory", live_on_b, within=5.0)
        on_b = await watch(http, b.base, ward, token=viewer)
        await on_b.wait_frames(5, timeout=20.0)

        async def listed_on(node: Node) -> bool:
            async with http.get(f"{node.base}/api/events/ward/tokens", headers=bearer(organizer)) as resp:
                rows = [t for t in (await resp.json())["tokens"] if t["jti"] == jti]
            return bool(rows) and rows[0]["name"] == "Dr One Device" and rows[0]["live_sessions"] == 1
        await eventually("C's link listed on A with its session on B", lambda: listed_on(a), within=3.0)
        # a link's session limit holds across the nodes once they have B's heartbeat (each node
        # reads the directory once a second): its one session is on B, C refuses another
        await eventually("B's session of the link counted on C", lambda: listed_on(c), within=3.0)
        await watch(http, c.base, ward, token=viewer, expect=429)

        # the sessions of every node are listed on any node, and kicked from there
        async with http.get(f"{c.base}/api/events/ward/sessions", headers=bearer(organizer)) as resp:
            listing = await resp.json()
        assert listing["nodes_unreachable"] == []
        row = next(s for s in listing["sessions"] if s["jti"] == jti and s["kind"] == "viewer")
        assert row["node"] == "node-b" and str(row["id"]).endswith("~node-b"), row
        assert any(s["kind"] == "publisher" and s["node"] == "node-a" for s in listing["sessions"]), listing
        async with http.delete(f"{c.base}/api/events/ward/sessions/{row['id']}", headers=bearer(organizer)) as resp:
            assert resp.status == 200, await resp.text()

        async def gone_from_b() -> bool:
            async with http.get(f"{b.base}/api/events/ward/sessions", headers=bearer(organizer)) as resp:
                return not [s for s in (await resp.json())["sessions"] if s["jti"] == jti]
        await eventually("the kicked session gone from node B", gone_from_b)
        await on_b.close(http)
    finally:
        await publisher.pc.close()

    # deleted on C: gone on every node, its links refused
    async with http.delete(f"{c.base}/api/events/ward", headers=bearer(organizer)) as resp:
        assert resp.status == 200, await resp.text()
    for node in (a, b):
        await eventually(f"event ward deleted on {node.name}",
                         lambda n=node: _is(status_of(f"{n.base}/api/events/ward", organizer), 404))
    assert await status_of(f"{a.base}/api/events/ward", technician) in (401, 404)


async def _is(status: Awaitable[int], wanted: int) -> bool:
    return await status == wanted


async def test_a_link_revoked_on_one_node_is_refused_on_another_within_two_seconds(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    b, c = cluster.nodes["node-b"], cluster.nodes["node-c"]
    organizer = cluster.organizer()
    token, jti = await cluster.mint(http, c, Role.VIEWER, name="Dr Leaver")
    async with http.get(f"{c.base}/api/events/course", headers=bearer(token)) as resp:
        assert resp.status == 200
    async with http.delete(f"{b.base}/api/events/course/tokens/{jti}", headers=bearer(organizer)) as resp:
        assert resp.status == 200, await resp.text()
    revoked_at = time.monotonic()

    async def refused() -> bool:
        async with http.get(f"{c.base}/api/events/course", headers=bearer(token)) as resp:
            return resp.status == 401

    while not await refused():
        assert time.monotonic() - revoked_at < 2.0, "node C still lets the revoked link in after 2 s"
        await asyncio.sleep(0.05)
    print(f"\nrevoked on node B, refused on node C after {time.monotonic() - revoked_at:.2f} s")
    # a node that joins later learns it too (the revocation is kept in Redis)
    (late,) = cluster.start("node-d")
    async with http.get(f"{late.base}/api/events/course", headers=bearer(token)) as resp:
        assert resp.status == 401, "a node that joined after the revocation let the link in"


async def test_a_stroke_drawn_through_one_node_shows_on_another_and_is_kept_where_the_feed_is(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b, c = (cluster.nodes[n] for n in ("node-a", "node-b", "node-c"))
    organizer = cluster.organizer()
    technician, _ = await cluster.mint(http, a, Role.TECHNICIAN, theatre="or1")
    faculty_token, _ = await cluster.mint(http, b, Role.FACULTY, name="Prof. Weber")
    viewer_token, _ = await cluster.mint(http, c, Role.VIEWER)
    publisher = await publish(http, a.base, PATH, token=technician)
    faculty = viewer = None
    try:
        deadline = time.monotonic() + 15
        while not any(s["path"] == PATH and s["live"] for s in await streams(http, b.base, organizer)):
            assert time.monotonic() < deadline, "node B does not see the feed of node A"
            await asyncio.sleep(0.1)
        faculty = await DrawSocket.open(b.base, "course", faculty_token)
        viewer = await DrawSocket.open(c.base, "course", viewer_token)
        await viewer.watch("or1/endoscope")
        await viewer.wait_for(lambda m: m.get("type") == "drawing")
        drawn = time.monotonic()
        await faculty.stroke("or1/endoscope", [[0.2, 0.2], [0.4, 0.4]], kind="arrow")
        at, begun = await viewer.wait_for(lambda m: m.get("type") == "draw" and m["op"] == "begin")
        await viewer.wait_for(lambda m: m.get("op") == "add" and m["end"])
        assert begun["stroke"]["by"] == "Prof. Weber" and begun["stroke"]["kind"] == "arrow"
        print(f"\ndrawn through node B, on a viewer of node C after {at - drawn:.3f} s")
        await asyncio.sleep(1.0)  # written twice a second

        async def kept(node: Node) -> list[dict[str, object]]:
            async with http.get(f"{node.base}/api/events/course/annotations", headers=bearer(organizer)) as resp:
                assert resp.status == 200, await resp.text()
                return list((await resp.json())["feeds"].get("or1/endoscope", []))

        assert [r["kind"] for r in await kept(a)] == ["arrow"], "the node that holds the feed keeps the stroke"
        assert await kept(b) == [] and await kept(c) == []  # once, with the feed's recordings
    finally:
        for sock in (faculty, viewer):
            if sock is not None:
                await sock.close()
        await publisher.pc.close()


async def test_one_board_across_the_cluster_and_nothing_lost_when_a_node_dies(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b, c = (cluster.nodes[n] for n in ("node-a", "node-b", "node-c"))
    technician, _ = await cluster.mint(http, a, Role.TECHNICIAN, theatre="or1", name="OR 1 tech")
    console = await connect(http, a.base, "/whip/course/or1/endoscope", technician, media="send")
    ana = await joined(http, c.base, "course", (await cluster.mint(http, c, Role.VIEWER, name="Dr Ana Lima"))[0])
    ben = await joined(http, b.base, "course", (await cluster.mint(http, b, Role.VIEWER, name="Dr Ben Okafor"))[0])
    moderator = await joined(http, b.base, "course", (await cluster.mint(http, b, Role.MODERATOR, name="Kim"))[0])
    clients = [console, ana, ben, moderator]
    try:
        # asked on C, approved on B, on air on A's console
        asked_at = time.monotonic()
        qid = (await ana.ok("ask", text="How do you control the middle hepatic vein?", theatre="or1"))["question"]
        await moderator.wait_until(lambda: qid in moderator.questions, what="node B's moderator sees C's question")
        await moderator.ok("approve", question=qid)
        await moderator.ok("on_air", question=qid)
        await console.wait_until(lambda: console.slots.get("or1", {}).get("id") == qid,
                                 what="the question on air on node A's console")
        print(f"\nasked on C, approved and put on air on B, on A's console after {time.monotonic() - asked_at:.2f} s")
        # a vote on B reaches C (votes are not checked against the board: they commute)
        vote = await ben.ok("vote", question=qid)
        assert vote["votes"] == 1 and vote["voted"] is True
        await ana.wait_until(lambda: ana.questions[qid]["votes"] == 1, what="the vote reaches node C")
        # a question asked on B just before B dies is not lost
        last = (await ben.ok("ask", text="Pringle manoeuvre: how long per cycle?"))["question"]
        b.kill()
        late_moderator = await joined(http, c.base, "course",
                                      (await cluster.mint(http, c, Role.MODERATOR, name="Lee"))[0])
        clients.append(late_moderator)
        assert {qid, last} <= set(late_moderator.questions), late_moderator.questions
        assert late_moderator.questions[qid]["state"] == "on_air"
        # and a node that joins later has the whole board
        (e,) = cluster.start("node-e")
        on_e = await joined(http, e.base, "course", (await cluster.mint(http, e, Role.MODERATOR, name="Eve"))[0])
        clients.append(on_e)
        assert {qid, last} <= set(on_e.questions) and on_e.questions[qid]["votes"] == 1, on_e.questions
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


async def test_nodes_keep_serving_while_redis_is_away_and_register_again(
        cluster: Cluster, redis_server: RedisProcess, http: aiohttp.ClientSession) -> None:
    a, c = cluster.nodes["node-a"], cluster.nodes["node-c"]
    organizer = cluster.organizer()
    technician, _ = await cluster.mint(http, a, Role.TECHNICIAN, theatre="or2")
    publisher = await publish(http, a.base, "course/or2/room", token=technician)
    viewer_token, _ = await cluster.mint(http, a, Role.VIEWER)
    viewer = await watch(http, a.base, "course/or2/room", token=viewer_token)
    moderator = await joined(http, a.base, "course", (await cluster.mint(http, a, Role.MODERATOR, name="Kim"))[0])
    try:
        await viewer.wait_frames(10, timeout=20.0)
        before = set(moderator.questions)
        redis_server.stop()
        await asyncio.sleep(2.5)
        # the node's own feed and viewer go on; the board stays as it is and refuses changes
        frames = len(viewer.counters)
        await viewer.wait_frames(frames + 20, timeout=10.0)
        async with http.get(f"{a.base}/api/events/course/streams", headers=bearer(organizer)) as resp:
            assert resp.status == 200
        refused = await moderator.request("ask", text="Is anyone there?")
        assert refused["type"] == "error" and refused["code"] in ("storage", "forbidden"), refused
        assert "Redis" in a.log() and "keeps serving" in a.log()

        # Redis comes back empty: the nodes register again, and the board is given back to it
        restarted = start_redis(redis_server.port)
        redis_server.process = restarted.process
        status = ""
        deadline = time.monotonic() + 10
        while "node-a" not in status or "node-c" not in status:
            assert time.monotonic() < deadline, f"the nodes did not register again:\n{status}"
            status = await cluster_status(cluster)
        assert "Redis at" in a.log() and "is back" in a.log()
        viewer_c, _ = await cluster.mint(http, c, Role.VIEWER, name="Dr Back")
        on_c = await joined(http, c.base, "course", viewer_c)
        await on_c.ok("ask", text="After the restart: is the board still one?")
        await moderator.wait_until(lambda: len(set(moderator.questions) - before) >= 1, timeout=15.0,
                                   what="a question asked on C after the restart reaches A")
        assert before <= set(moderator.questions), "questions from before Redis restarted were lost"
        await on_c.close()
    finally:
        await moderator.close()
        await viewer.close(http)
        await publisher.pc.close()


async def test_viewers_resume_when_the_encoder_republishes_to_another_node_after_its_node_died(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    c, d, e = (cluster.nodes[n] for n in ("node-c", "node-d", "node-e"))
    path = "course/or2/overhead"
    technician, _ = await cluster.mint(http, e, Role.TECHNICIAN, theatre="or2")
    first = await publish(http, c.base, path, token=technician)
    viewer_token, _ = await cluster.mint(http, d, Role.VIEWER, name="Dr Far")
    deadline = time.monotonic() + 5
    while not [s for s in await streams(http, d.base, cluster.organizer()) if s["path"] == path and s["live"]]:
        assert time.monotonic() < deadline, "node D never saw the feed"
        await asyncio.sleep(0.2)
    viewer = await watch(http, d.base, path, token=viewer_token)  # pulled by D from C
    try:
        await viewer.wait_frames(10, timeout=20.0)
        c.kill()  # the publisher's node dies
        await first.pc.close()
        await asyncio.sleep(1.0)
        republished_at = time.monotonic()
        second = await publish(http, e.base, path, start=40_000, token=technician)  # the encoder comes back on E
        before = len(viewer.counters)
        await viewer.wait_until(lambda: bool(viewer.counters) and viewer.counters[-1] >= 40_000, 20.0,
                                f"the viewer on D never got the feed from node E (after {before} frames)")
        print(f"\nthe encoder republished to node E: the viewer on node D plays it again after "
              f"{time.monotonic() - republished_at:.1f} s")
        await second.pc.close()
    finally:
        await viewer.close(http)
