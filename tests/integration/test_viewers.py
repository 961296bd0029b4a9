"""Viewers come and go without touching the publisher or each other."""

from __future__ import annotations

import asyncio
import gc

from aiortc import RTCPeerConnection

from broadcast.webrtc.consumer import Consumer
from tests.conftest import RunningServer
from tests.support.peers import assert_consecutive, publish, watch

PATH = "course/or2/room"


def live_peer_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))


async def test_leaving_viewer_frees_its_connection_and_tasks(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    stay = await watch(server.http, server.base, PATH, audio=False)
    await stay.wait_frames(10)
    await asyncio.sleep(0.5)
    stream = server.broadcaster.streams[next(iter(server.broadcaster.streams))]
    tasks_before = len(asyncio.all_tasks())
    pcs_before = live_peer_connections()

    leaving = await watch(server.http, server.base, PATH, audio=False)
    await leaving.wait_frames(10)
    assert len(server.broadcaster.sessions) == 3
    viewers_of = lambda producer: [c for c in producer.readers if isinstance(c, Consumer)]  # noqa: E731
    assert len(viewers_of(stream.video)) == 2  # (and the thumbnailer)
    count_at_leave = len(stay.counters)
    await leaving.close(server.http)  # DELETE, then close the client side
    del leaving
    await asyncio.sleep(1.0)

    assert len(server.broadcaster.sessions) == 2
    assert len(stream.viewers) == 1
    assert len(viewers_of(stream.video)) == 1
    assert len(viewers_of(stream.audio)) == 0
    assert live_peer_connections() == pcs_before
    # aiortc's RTCP loops, the sender and the consumer tasks of the leaver are all gone
    assert len(asyncio.all_tasks()) <= tasks_before
    # the other viewer did not notice
    await stay.wait_frames(count_at_leave + 30)
    assert_consecutive(stay.counters, "remaining viewer")
    await stay.close(server.http)
    await pub.pc.close()


async def test_viewer_whose_connection_drops_is_freed(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(5)
    # no DELETE: the client just goes away (closed tab, lost network)
    await viewer.pc.close()
    for _ in range(100):
        if len(server.broadcaster.sessions) == 1:
            break
        await asyncio.sleep(0.1)
    assert len(server.broadcaster.sessions) == 1, "the server kept the dead viewer"
    await pub.pc.close()


async def test_slow_viewer_does_not_slow_others(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "H264", audio=False)
    fast = [await watch(server.http, server.base, PATH, audio=False) for _ in range(2)]
    stream = server.broadcaster.streams[next(iter(server.broadcaster.streams))]
    # A consumer whose reader has stalled completely (never calls recv), with a small queue.
    stalled = Consumer(stream.video, max_queue=10)
    start_counts = [len(v.counters) for v in fast]
    await asyncio.sleep(4.0)
    for v, start in zip(fast, start_counts, strict=True):
        got = len(v.counters) - start
        assert got >= 0.85 * 4 * 30, f"fast viewer got {got} frames in 4 s"
        assert_consecutive(v.counters, "fast viewer")
    assert stalled.queued <= 10, "a stalled viewer's queue must stay bounded"
    # everything it could not take is counted: 4 s at 30 fps, less what sits in its queue
    assert stalled.frames_dropped >= 0.85 * 4 * 30 - 10, stalled.frames_dropped
    assert stalled.overflows >= 1
    assert stream.info().frames_dropped == stalled.frames_dropped
    assert sum(getattr(r, "frames_dropped", 0) for r in stream.video.readers if r is not stalled) == 0
    # it recovers on a keyframe once it reads again: the queue restarts at a keyframe
    frame = await asyncio.wait_for(stalled.recv(), 5)
    assert frame.keyframe or not stalled.waiting_for_keyframe
    stalled.stop()
    for v in fast:
        await v.close(server.http)
    await pub.pc.close()
