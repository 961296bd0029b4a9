"""A packet lost on the way in, for good: the incomplete frame is dropped, a keyframe is asked
for, viewers hold their last clean picture meanwhile (never a smeared one) and recover on the
keyframe. A packet that the NACK brings back costs nothing."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any

from tests.conftest import RunningServer
from tests.support.peers import Publisher, publish, wait_until, watch

PATH = "course/or1/endoscope"


class PacketLoss:
    """Drops one video packet at the publisher (mid-frame), and its retransmissions if `for_good`."""

    def __init__(self, publisher: Publisher, for_good: bool) -> None:
        sender = next(t.sender for t in publisher.pc.getTransceivers() if t.kind == "video")
        self.ssrc, self.rtx_ssrc = sender._ssrc, sender._rtx_ssrc
        self.for_good = for_good
        self.armed = False
        self.dropped_seq: int | None = None
        self.drops = 0
        transport = sender.transport
        original = transport._send_rtp

        async def send_rtp(data: bytes) -> None:
            if self.filter(data):
                await original(data)

        transport._send_rtp = send_rtp  # the instance attribute wins over the class's

    def filter(self, data: bytes) -> bool:
        if len(data) < 12 or 192 <= data[1] <= 223:  # RTCP passes
            return True
        marker, seq, ssrc = data[1] >> 7, struct.unpack_from("!H", data, 2)[0], struct.unpack_from("!I", data, 8)[0]
        if ssrc == self.ssrc and self.armed and self.dropped_seq is None and not marker:
            self.dropped_seq, self.armed = seq, False
            self.drops += 1
            return False
        if self.for_good and self.dropped_seq is not None:
            if ssrc == self.ssrc and seq == self.dropped_seq:
                self.drops += 1
                return False
            if ssrc == self.rtx_ssrc:  # an RTX packet carrying it (or any other, for the test's length)
                self.drops += 1
                return False
        return True


def jumps(counters: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(counters) if b != a + 1]


async def lose_one_packet(server: RunningServer, codec: str, for_good: bool) -> tuple[Any, Any, PacketLoss]:
    pub = await publish(server.http, server.base, PATH, codec, audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(30)
    loss = PacketLoss(pub, for_good)
    loss.armed = True
    await wait_until(lambda: loss.dropped_seq is not None, 5, lambda: "no packet dropped")
    return pub, viewer, loss


async def test_a_packet_lost_for_good_holds_the_picture_until_a_keyframe(server: RunningServer) -> None:
    pub, viewer, _ = await lose_one_packet(server, "VP8", for_good=True)
    stream = server.broadcaster.streams[next(iter(server.broadcaster.streams))]
    asked = stream.video.keyframe_requests_sent
    at_loss = len(viewer.counters)
    await wait_until(lambda: stream.video.frames_held > 0, 5, lambda: "no frame held after the loss")
    # recovers: the keyframe asked for arrives, and the picture moves on
    await viewer.wait_until(lambda: len(viewer.counters) >= at_loss + 45, 10, "viewer did not recover")
    assert stream.video.keyframe_requests_sent > asked or stream.video.keyframes_in > 1
    # what the viewer saw: a clean freeze (one jump forward over the held frames), never a
    # smeared frame (whose code would read as garbage: a jump back or a wild value)
    after = viewer.counters[at_loss - 5:]
    gaps = jumps(after)
    assert len(gaps) == 1, gaps
    (before, resumed), = gaps
    assert 1 < resumed - before < 90, gaps  # the held frames, under 3 s of them
    print(f"held {stream.video.frames_held} frames; the viewer's picture went from {before} to {resumed}")
    await viewer.close(server.http)
    await pub.pc.close()


async def test_a_packet_brought_back_by_nack_costs_no_frame(server: RunningServer) -> None:
    pub, viewer, loss = await lose_one_packet(server, "VP8", for_good=False)
    stream = server.broadcaster.streams[next(iter(server.broadcaster.streams))]
    at_loss = len(viewer.counters)
    await viewer.wait_until(lambda: len(viewer.counters) >= at_loss + 30, 10, "viewer stopped")
    await asyncio.sleep(0.2)
    assert loss.drops == 1
    assert stream.video.frames_held == 0
    assert jumps(viewer.counters[at_loss - 5:]) == []
    await viewer.close(server.http)
    await pub.pc.close()
