"""`[server] workers`: viewers held by worker processes, everything else as before.

Real worker processes (`python -m signaling.worker`), real aiortc publishers and viewers over
real sockets; a worker is killed with SIGKILL, as a crash would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import encode_clip
from broadcast.workers.pool import WorkerProcess
from broadcast.workers.remotesession import RemoteViewerSession
from signaling.keys import ACCESS
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.peers import Viewer, assert_consecutive, publish, publish_clip, wait_until, watch

PATH = "course/or1/endoscope"


async def start_with_workers(count: int) -> tuple[RunningServer, web.AppRunner]:
    runner, base, app = await start_server(make_config(workers=count))
    http = organizer_session(app)
    server = RunningServer(base, app, http)
    pool = server.broadcaster.workers
    assert pool is not None and len(pool.workers) == count - 1
    await wait_until(lambda: all(w.ready for w in pool.workers), 30, lambda: "the workers did not start")
    return server, runner


@pytest.fixture
async def three_processes() -> AsyncIterator[RunningServer]:
    server, runner = await start_with_workers(3)  # the front and two workers
    yield server
    await server.http.close()
    await runner.cleanup()
    shutil.rmtree(server.app[ACCESS].config.data_dir, ignore_errors=True)


def remote_sessions(server: RunningServer) -> list[RemoteViewerSession]:
    return [s for s in server.broadcaster.sessions.values() if isinstance(s, RemoteViewerSession)]


def worker(server: RunningServer, index: int) -> WorkerProcess:
    pool = server.broadcaster.workers
    assert pool is not None
    return pool.workers[index - 1]


async def test_viewers_on_workers_see_every_frame_and_show_in_the_api(three_processes: RunningServer) -> None:
    server = three_processes
    pub = await publish(server.http, server.base, PATH, "VP8")
    viewers = [await watch(server.http, server.base, PATH) for _ in range(4)]
    for viewer in viewers:
        await viewer.wait_frames(40)
    # the front holds the publisher (it counts as several viewers): the four go to the workers
    remote = remote_sessions(server)
    assert sorted(s.worker_index for s in remote) == [1, 1, 2, 2]
    for viewer in viewers:
        assert_consecutive(viewer.counters, "a worker's viewer")
        assert viewer.audio_frames > 20
    # each feed reaches each worker once per frame, whatever its number of viewers there
    sent = [worker(server, i).channel.frames_sent for i in (1, 2)]  # type: ignore[union-attr]
    frames_in = sum(p.frames_in for p in server.broadcaster.streams[next(iter(server.broadcaster.streams))].producers)
    assert all(abs(frames_in - n) <= 12 for n in sent), (sent, frames_in)

    await wait_until(lambda: all(s.connection_state == "connected" for s in remote), 5, lambda: "states")
    await asyncio.sleep(2.2)  # two stats reports and a rate sample
    info = server.broadcaster.stream_infos()[0]
    assert info.viewers == 4 and info.bitrate_out_bps > 3 * info.bitrate_in_bps // 2
    async with server.http.get(f"{server.base}/api/events/course/sessions") as resp:
        rows = (await resp.json())["sessions"]
    assert sorted(r["worker"] for r in rows if r["kind"] == "viewer") == [1, 1, 2, 2]
    assert all(r["state"] == "connected" for r in rows if r["kind"] == "viewer")
    async with server.http.get(f"{server.base}/metrics") as resp:
        metrics = await resp.text()
    assert 'orcast_worker_viewer_sessions{worker="1"} 2.0' in metrics
    assert 'orcast_worker_viewer_sessions{worker="0"} 0.0' in metrics
    async with server.http.get(f"{server.base}/readyz") as resp:
        ready = await resp.json()
    assert [w["viewers"] for w in ready["workers"]] == [0, 2, 2]

    # trickle and DELETE go to the worker that holds the session
    fragment = "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.99 50000 typ host\r\na=end-of-candidates\r\n"
    async with server.http.patch(viewers[0].session_url, data=fragment,
                                 headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as resp:
        assert resp.status == 204, await resp.text()
    async with server.http.patch(viewers[0].session_url, data="a=candidate:bad\r\n",
                                 headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as resp:
        assert resp.status == 400 and "bad ICE candidate" in await resp.text()
    await viewers[0].close(server.http)
    await wait_until(lambda: len(remote_sessions(server)) == 3, 5, lambda: "the DELETE did not end the session")
    assert worker(server, 1).load + worker(server, 2).load == 3
    # an organizer's kick ends a worker's viewer too
    kicked = viewers[1].session_url.rsplit("/", 1)[1]
    async with server.http.delete(f"{server.base}/api/events/course/sessions/{kicked}") as resp:
        assert resp.status == 200
    assert kicked not in server.broadcaster.sessions
    # the others never noticed
    counts = [len(v.counters) for v in viewers[2:]]
    for viewer, count in zip(viewers[2:], counts, strict=True):
        await viewer.wait_frames(count + 20)
    for viewer in viewers:
        await viewer.close()
    await pub.pc.close()


async def test_viewer_whose_worker_is_killed_reconnects(three_processes: RunningServer) -> None:
    server = three_processes
    pub = await publish(server.http, server.base, PATH, "H264")
    first = await watch(server.http, server.base, PATH, audio=False)
    other = await watch(server.http, server.base, PATH, audio=False)
    await first.wait_frames(20)
    await other.wait_frames(20)
    held = {s.worker_index: s for s in remote_sessions(server)}
    assert sorted(held) == [1, 2]
    victim = worker(server, 1)
    old_pid = victim.pid
    assert old_pid is not None
    lost = next(v for v in (first, other) if v.session_url.endswith(held[1].id))
    stays = other if lost is first else first
    os.kill(old_pid, signal.SIGKILL)

    # the front sees its sessions end at once, and restarts the worker
    await wait_until(lambda: held[1].id not in server.broadcaster.sessions, 5, lambda: "the session stayed")
    assert server.broadcaster.streams[next(iter(server.broadcaster.streams))].info().viewers == 1
    await wait_until(lambda: victim.ready and victim.pid != old_pid, 20, lambda: "the worker was not restarted")
    assert victim.restarts == 1
    # the viewer's client does what the page does: its session is gone (404), it starts a new one
    async with server.http.delete(lost.session_url) as resp:
        assert resp.status == 404
    await lost.close()
    again: Viewer = await watch(server.http, server.base, PATH, audio=False)
    await again.wait_frames(30)
    assert_consecutive(again.counters, "the reconnected viewer")
    # the other worker's viewer went on through it all
    count = len(stays.counters)
    await stays.wait_frames(count + 30)
    assert_consecutive(stays.counters, "the other worker's viewer")
    assert {s.worker_index for s in remote_sessions(server)} == {1, 2}
    for viewer in (stays, again):
        await viewer.close()
    await pub.pc.close()


async def test_a_returning_publisher_reaches_the_workers_viewers(three_processes: RunningServer) -> None:
    server = three_processes
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(15)
    assert remote_sessions(server)
    await pub.pc.close()
    await wait_until(lambda: not server.broadcaster.streams[next(iter(server.broadcaster.streams))].live, 10,
                     lambda: "the publisher did not leave")
    back = await publish(server.http, server.base, PATH, "VP8", audio=False, start=5000)
    await viewer.wait_until(lambda: viewer.counters[-1] >= 5020, 15, "the worker's viewer did not resume")
    assert_consecutive([c for c in viewer.counters if c >= 5000], "after the publisher's return")
    await viewer.close()
    await back.pc.close()


async def test_shutdown_ends_the_workers() -> None:
    server, runner = await start_with_workers(2)
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(10)
    process = worker(server, 1).process
    assert process is not None and remote_sessions(server)
    await server.http.close()
    await runner.cleanup()
    shutil.rmtree(server.app[ACCESS].config.data_dir, ignore_errors=True)
    assert process.returncode is not None  # exited, not orphaned
    assert not server.broadcaster.sessions
    await viewer.close()
    await pub.pc.close()


async def test_a_hung_worker_is_replaced_and_its_viewer_goes_to_the_front() -> None:
    server, runner = await start_with_workers(2)
    pool = server.broadcaster.workers
    assert pool is not None
    pool.settings.request_timeout_s = 1.0  # 5 s in service; the test need not wait that long
    hung = worker(server, 1)
    old_pid = hung.pid
    assert old_pid is not None
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    os.kill(old_pid, signal.SIGSTOP)  # alive, its socket open, answering nothing
    try:
        viewer = await watch(server.http, server.base, PATH, audio=False)
        await viewer.wait_frames(20)
        assert_consecutive(viewer.counters, "the viewer the hung worker could not take")
        assert not remote_sessions(server)  # the front holds it
        await wait_until(lambda: hung.ready and hung.pid != old_pid, 20, lambda: "the hung worker was not replaced")
        other = await watch(server.http, server.base, PATH, audio=False)  # the new worker takes the next one
        await other.wait_frames(20)
        assert [s.worker_index for s in remote_sessions(server)] == [1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_pid, signal.SIGCONT)
    for v in (viewer, other):
        await v.close()
    await pub.pc.close()
    await server.http.close()
    await runner.cleanup()
    shutil.rmtree(server.app[ACCESS].config.data_dir, ignore_errors=True)


async def test_a_worker_s_viewers_get_the_low_rendition_made_once_in_the_front_and_switch_in_place(
        three_processes: RunningServer) -> None:
    server = three_processes
    clip = encode_clip("H264", 1280, 720, 30, 4, 2_500_000)
    publisher = await publish_clip(server.http, server.base, PATH, clip, server.token(Role.TECHNICIAN, theatre="or1"))
    token = server.token(Role.VIEWER)
    low = [await watch(server.http, server.base, PATH + "?quality=low", token=token) for _ in range(2)]
    switching = await watch(server.http, server.base, PATH, token=token)
    for viewer in (*low, switching):
        await viewer.wait_frames(20, timeout=20.0)
    sessions = [server.broadcaster.get_session(v.session_url.rsplit("/", 1)[1]) for v in (*low, switching)]
    assert all(isinstance(s, RemoteViewerSession) for s in sessions)
    assert {s.worker_index for s in sessions if isinstance(s, RemoteViewerSession)} == {1, 2}
    assert all(v.sizes == {(640, 360)} for v in low), [v.sizes for v in low]
    assert switching.sizes == {(1280, 720)}
    renditions = server.broadcaster.streams[StreamPath.parse(PATH)].renditions
    # one encode in the front for both workers, followed once per worker
    assert renditions.maker is not None and len(renditions.low.readers) == 2

    # a worker's viewer switches on the same connection: the worker's session is asked
    headers = {"Authorization": f"Bearer {switching.token}"}
    for quality, size in (("low", (640, 360)), ("high", (1280, 720))):
        before = len(switching.frame_times)
        async with server.http.post(f"{switching.session_url}/quality", json={"quality": quality},
                                    headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            answer = await resp.json()
        assert answer["quality"] == quality and "reconnect" not in answer
        await switching.wait_until(lambda s=size: switching.last_size == s, 10.0, f"no {size} picture")  # type: ignore[misc]
        await switching.wait_frames(len(switching.counters) + 20, timeout=10.0)
        gaps = [b - a for a, b in itertools.pairwise(switching.frame_times[before:])]
        assert max(gaps, default=0.0) < 1.0, f"a gap of {max(gaps):.2f} s at the switch"
    async with server.http.get(f"{switching.session_url}/quality", headers=headers) as resp:
        state = await resp.json()
    assert state["quality"] == "high" and state["rendition"] == "high" and state["link"]["receiver_reports"] > 0
    assert switching.pc.connectionState == "connected"
    await asyncio.sleep(2.2)  # the workers' figures reach the front's feed
    assert renditions.low.bytes_out > 0

    for viewer in low:
        await viewer.close(server.http)
    await wait_until(lambda: not renditions.low.readers, 10.0, lambda: "a worker still follows the low rendition")
    await wait_until(lambda: renditions.maker is None, 15.0, lambda: "the low rendition is still made")
    await switching.close(server.http)
    await publisher.close()


async def test_a_worker_s_low_viewers_get_the_publisher_s_own_low_rendition(three_processes: RunningServer) -> None:
    server = three_processes
    clip = encode_clip("H264", 1280, 720, 30, 2, 2_500_000)
    low_clip = encode_clip("H264", 480, 270, 30, 2, 400_000)  # its size says whose it is
    publisher = await publish_clip(server.http, server.base, PATH, clip,
                                   server.token(Role.TECHNICIAN, theatre="or1"), low_clip=low_clip)
    token = server.token(Role.VIEWER)
    low = [await watch(server.http, server.base, PATH + "?quality=low", token=token) for _ in range(2)]
    for viewer in low:
        await viewer.wait_frames(20, timeout=20.0)
    sessions = [server.broadcaster.get_session(v.session_url.rsplit("/", 1)[1]) for v in low]
    assert {s.worker_index for s in sessions if isinstance(s, RemoteViewerSession)} == {1, 2}
    assert all(v.sizes == {(480, 270)} for v in low), [v.sizes for v in low]
    renditions = server.broadcaster.streams[StreamPath.parse(PATH)].renditions
    assert renditions.made_by == "publisher" and renditions.maker is None  # nothing encoded anywhere
    for viewer in low:
        await viewer.close(server.http)
    await publisher.close()
