"""The relay core's rules with a fake source and readers (no aiortc): timestamps rebased to one
timeline across publishers, keyframe gating, keyframe requests asked until answered; the media
clock; the rate limiter."""

from __future__ import annotations

import asyncio
import math

from broadcast.ratelimiter import RateLimiter
from broadcast.relay.frame import EncodedFrame
from broadcast.relay.mediaclock import MediaClock, ntp_to_unix
from broadcast.relay.producer import KEYFRAME_MIN_INTERVAL, Producer
from broadcast.relay.stream import Stream
from broadcast.relay.streampath import StreamPath

KEY, DELTA = b"\x00" * 60, b"\x01" * 40  # VP8: bit 0 of the first byte clear = keyframe


class FakeSource:
    """A publisher that answers each keyframe request after `deaf` unheard and `lost` lost ones."""

    def __init__(self, producer: Producer, deaf: int = 0, lost: int = 0, answer: bool = True) -> None:
        self.name = "fake source"
        self.producer = producer
        self.deaf, self.lost, self.answer = deaf, lost, answer
        self.requests = 0

    async def request_keyframe(self) -> bool:
        self.requests += 1
        if self.requests <= self.deaf:
            return False  # no SSRC heard yet: the PLI went nowhere
        if self.answer and self.requests > self.deaf + self.lost:
            asyncio.get_running_loop().call_later(0.02, self.producer.push, self, KEY, 3000 * self.requests)
        return True


class Reader:
    """A reader that sends nothing over the network (as a recorder): it has no byte counters."""

    def __init__(self, waiting: bool = True) -> None:
        self.waiting_for_keyframe = waiting
        self.frames: list[EncodedFrame] = []
        self.resets: list[bool] = []

    def deliver(self, frame: EncodedFrame) -> None:
        if self.waiting_for_keyframe and not frame.keyframe:
            return
        self.waiting_for_keyframe = False
        self.frames.append(frame)

    def producer_reset(self, codec_changed: bool) -> None:
        self.resets.append(codec_changed)
        self.waiting_for_keyframe = True

    def stop(self) -> None:
        pass


class NetworkReader(Reader):
    """A reader that sends what it reads (as a viewer's consumer): it counts bytes and drops."""

    def __init__(self) -> None:
        super().__init__(waiting=False)
        self.bytes_sent = 0
        self.frames_dropped = 0

    def deliver(self, frame: EncodedFrame) -> None:
        super().deliver(frame)
        self.bytes_sent += len(frame.data)


async def until(condition: object, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_timestamps_stay_on_one_timeline_across_publishers() -> None:
    producer = Producer("course/or1/endoscope", "video")
    first = FakeSource(producer)
    producer.attach(first, "VP8")
    reader = Reader(waiting=False)
    producer.readers.add(reader)
    for n in range(3):
        producer.push(first, KEY if n == 0 else DELTA, 1_000_000 + 3000 * n)
    second = FakeSource(producer)
    assert producer.attach(second, "VP8") is False  # same codec: viewers stay
    assert reader.resets == [False]
    producer.push(second, KEY, 7)  # a new encoder starts its clock anywhere
    producer.push(second, DELTA, 3007)
    stamps = [f.timestamp for f in reader.frames]
    assert stamps[:3] == [0, 3000, 6000], stamps
    assert stamps[3] > stamps[2] and stamps[4] - stamps[3] == 3000, stamps
    # a clock that goes backwards never makes the outgoing timeline go back
    producer.push(second, DELTA, 1)
    assert reader.frames[-1].timestamp > stamps[4]
    assert producer.attach(FakeSource(producer), "H264") is True  # a codec change is reported
    producer.close()


async def test_a_request_is_asked_again_until_a_keyframe_arrives() -> None:
    producer = Producer("course/or1/endoscope", "video")
    source = FakeSource(producer, deaf=2, lost=1)
    producer.attach(source, "VP8")
    reader = Reader()
    producer.add_reader(reader)
    for _ in range(5):
        producer.request_keyframe()  # ride on the outstanding one
    await until(lambda: bool(reader.frames), 4.0)
    assert source.requests == 4  # 2 unheard (0.2 s apart), 1 lost (1 s), 1 answered
    assert not producer.keyframe_outstanding
    producer.close()


async def test_requests_are_throttled_and_a_new_source_is_asked_at_once() -> None:
    producer = Producer("course/or1/endoscope", "video")
    deaf = FakeSource(producer, deaf=10_000)
    producer.attach(deaf, "VP8")
    reader = Reader()
    producer.add_reader(reader)
    await asyncio.sleep(0.7)
    assert deaf.requests <= math.ceil(0.7 / KEYFRAME_MIN_INTERVAL) + 1, deaf.requests
    answering = FakeSource(producer)
    producer.attach(answering, "VP8")
    await until(lambda: bool(reader.frames), 0.5)
    before = deaf.requests
    await asyncio.sleep(0.3)
    assert deaf.requests == before
    producer.close()


def test_media_clock_takes_the_least_delayed_frame_and_the_lowest_report() -> None:
    clock = MediaClock(90_000)
    clock.on_frame(90_000, 100.05)  # arrived 50 ms late
    clock.on_frame(180_000, 101.01)  # 10 ms late: the better estimate
    assert math.isclose(clock.arrival_offset or 0, 99.01)
    clock.on_sender_report(50.2, 0)
    clock.on_sender_report(51.1, 90_000)
    assert math.isclose(clock.sender_offset or 0, 50.1)
    clock.reset()
    assert clock.sender_offset is None and clock.arrival_offset is None
    assert math.isclose(ntp_to_unix((2_208_988_800 + 10) << 32 | (1 << 31)), 10.5)


def test_rate_limiter_allows_bursts_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert math.isclose(limiter.take("a", now=0.0), 0.5)
    assert limiter.take("b", now=0.0) == 0.0  # per key
    assert limiter.take("a", now=0.5) == 0.0


def test_a_stream_is_live_only_once_its_publisher_has_negotiated() -> None:
    stream = Stream(StreamPath("course", "or1", "talkback-x"))

    class Negotiating:
        id, participant, created_at, closed = "s", None, 0.0, False

        def log_name(self) -> str:
            return "negotiating"

        async def close(self, reason: object = None, detail: str = "") -> None:
            pass

    stream.publisher = Negotiating()  # type: ignore[assignment]
    assert not stream.live, "a page told 'live' now would see no video codec and play audio only"
    assert not stream.idle, "a stream being published to is not forgotten"
    stream.mark_live("whip")
    assert stream.live and stream.info().live


async def test_egress_counts_only_readers_that_send_over_the_network() -> None:
    producer = Producer("course/or1/endoscope", "video")
    source = FakeSource(producer)
    producer.attach(source, "VP8")
    recorder, viewer, gone = Reader(waiting=False), NetworkReader(), NetworkReader()
    for reader in (recorder, viewer, gone):
        producer.add_reader(reader)
    producer.push(source, KEY, 0)
    assert len(recorder.frames) == len(viewer.frames) == 1
    producer.remove_reader(gone)  # a viewer that left still counts in the total
    producer.push(source, DELTA, 3000)
    assert producer.bytes_out == 2 * len(KEY) + len(DELTA)
    producer.remove_reader(gone)  # twice: counted once
    assert producer.bytes_out == 2 * len(KEY) + len(DELTA)
    producer.close()


async def test_pictures_hold_after_an_incoming_loss_until_a_keyframe() -> None:
    producer = Producer("course/or1/endoscope", "video")
    source = FakeSource(producer, answer=False)
    producer.attach(source, "VP8")
    reader = Reader(waiting=False)
    producer.add_reader(reader)
    producer.push(source, KEY, 0)
    producer.push(source, DELTA, 3000)
    asked = source.requests
    producer.push(source, DELTA, 9000, after_loss=True)  # frame 6000 could not be completed
    producer.push(source, DELTA, 12000)  # still undecodable: it refers to what was lost
    assert [f.timestamp for f in reader.frames] == [0, 3000]
    assert producer.frames_held == 2
    await until(lambda: source.requests > asked, 1.0)  # a keyframe is asked for
    producer.push(source, KEY, 15000)
    producer.push(source, DELTA, 18000)
    assert [f.timestamp for f in reader.frames] == [0, 3000, 15000, 18000]
    producer.close()
