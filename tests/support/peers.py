"""Real aiortc peers for the tests: publishers that draw a frame counter and encode it,
viewers that decode and read the counter back. They talk WHIP/WHEP over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from broadcast.sources.testpattern import make_frame, read_code, tone

WIDTH, HEIGHT, FPS = 320, 240, 30


class CounterTrack(VideoStreamTrack):
    """Video whose every frame carries its index as a block code (read back by viewers)."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, start: int = 0) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.index = start
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = make_frame(self.index, self.width, self.height, FPS, grain=False)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.index += 1
        self.sent += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """The test tone (beep each second) instead of aiortc's silence."""

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        count = frame.samples
        data = tone(self.samples, count, rate=frame.sample_rate).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        out.sample_rate = frame.sample_rate
        out.pts, out.time_base = frame.pts, frame.time_base
        self.samples += count
        return out


def prefer_codec(pc: RTCPeerConnection, codec: str) -> None:
    for t in pc.getTransceivers():
        if t.kind == "video":
            caps = RTCRtpSender.getCapabilities("video").codecs
            t.setCodecPreferences([c for c in caps if c.mimeType.lower() == f"video/{codec.lower()}"])


async def make_offer_sdp(direction: str = "sendonly", video: int = 1, audio: int = 1,
                         data: bool = False) -> str:
    """An aiortc offer that is never connected (for status-code tests); `data` adds a `qa` channel."""
    pc = RTCPeerConnection()
    if data:
        pc.createDataChannel("qa")
    for _ in range(video):
        pc.addTransceiver(CounterTrack() if direction != "recvonly" else "video", direction=direction)
    for _ in range(audio):
        pc.addTransceiver(ToneTrack() if direction != "recvonly" else "audio", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


async def wait_until(condition: Callable[[], bool], timeout: float, failure: Callable[[], str]) -> None:
    """Poll `condition` until it holds; after `timeout` s fail with `failure()`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure())
        await asyncio.sleep(0.02)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def post_offer(http: aiohttp.ClientSession, url: str, sdp: str,
                     token: str | None = None) -> tuple[int, str, Any]:
    """POST an offer; `token` replaces the session's default Authorization header."""
    headers = {"Content-Type": "application/sdp", **bearer(token)}
    async with http.post(url, data=sdp, headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: CounterTrack
    session_url: str
    answer: str


async def publish(http: aiohttp.ClientSession, base: str, path: str, codec: str = "H264",
                  audio: bool = True, start: int = 0, munge: Any = None,
                  token: str | None = None) -> Publisher:
    pc = RTCPeerConnection()
    video = CounterTrack(start=start)
    pc.addTransceiver(video, direction="sendonly")
    prefer_codec(pc, codec)
    if audio:
        pc.addTransceiver(ToneTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    if munge is not None:
        offer = munge(offer)
    status, body, headers = await post_offer(http, f"{base}/whip/{path}", offer, token)
    assert status == 201, f"WHIP POST failed: {status} {body}"
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return Publisher(pc, video, base + headers["Location"], body)


@dataclass
class Viewer:
    pc: RTCPeerConnection
    session_url: str = ""
    answer: str = ""
    token: str | None = None
    counters: list[int] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    audio_frames: int = 0
    audio_energy: float = 0.0
    started: float = field(default_factory=time.monotonic)
    first_frame_at: float | None = None
    sizes: set[tuple[int, int]] = field(default_factory=set)
    last_size: tuple[int, int] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        if http is not None and self.session_url:
            async with http.delete(self.session_url, headers=bearer(self.token)):
                pass
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def wait_frames(self, count: int, timeout: float = 15.0) -> None:
        await self.wait_until(lambda: len(self.counters) >= count, timeout,
                              f"viewer got fewer than {count} frames")

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 15.0,
                         what: str = "condition not met") -> None:
        await wait_until(condition, timeout, lambda: f"{what} after {timeout} s ({len(self.counters)} frames)")


async def _consume(viewer: Viewer, track: Any) -> None:
    try:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                luma = frame.to_ndarray(format="gray")
                viewer.counters.append(read_code(luma))
                now = time.monotonic()
                viewer.frame_times.append(now)
                viewer.sizes.add((frame.width, frame.height))
                viewer.last_size = (frame.width, frame.height)
                if viewer.first_frame_at is None:
                    viewer.first_frame_at = now
            else:
                viewer.audio_frames += 1
                samples = frame.to_ndarray().astype(np.float64)
                viewer.audio_energy += float(np.mean(samples * samples))
    except MediaStreamError:
        pass


async def watch(http: aiohttp.ClientSession, base: str, path: str, audio: bool = True,
                expect: int = 201, token: str | None = None) -> Viewer:
    pc = RTCPeerConnection()
    viewer = Viewer(pc, token=token)
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")

    @pc.on("track")
    def on_track(track: Any) -> None:
        viewer.tasks.append(asyncio.ensure_future(_consume(viewer, track)))

    await pc.setLocalDescription(await pc.createOffer())
    viewer.started = time.monotonic()
    status, body, headers = await post_offer(http, f"{base}/whep/{path}", pc.localDescription.sdp, token)
    assert status == expect, f"WHEP POST: {status} {body}"
    if status != 201:
        await pc.close()
        return viewer
    viewer.session_url = base + headers["Location"]
    viewer.answer = body
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return viewer


def assert_consecutive(counters: list[int], what: str = "viewer") -> None:
    """Every frame from the first one received arrived once and in order."""
    assert counters, f"{what} decoded no frame"
    gaps = [(a, b) for a, b in itertools.pairwise(counters) if b != a + 1]
    assert not gaps, f"{what}: counter jumps {gaps[:5]} in {len(counters)} frames"


async def publish_clip(http: aiohttp.ClientSession, base: str, path: str, clip: Any,
                       token: str | None = None, low_clip: Any = None) -> RTCPeerConnection:
    """A WHIP encoder that sends a pre-encoded clip (broadcast.sources.synthetic.EncodedClip)
    and answers keyframe requests, as hardware encoders do; with `low_clip`, also its own low
    rendition, as a second video track (what the console sends)."""
    from broadcast.sources.synthetic import ClipTrack
    pc = RTCPeerConnection()
    sent = [(clip, "video"), (clip, "audio")] + ([(low_clip, "video")] if low_clip is not None else [])
    for source, kind in sent:
        track = ClipTrack(source, kind)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        if kind == "video":
            transceiver.sender._send_keyframe = track.request_keyframe
    prefer_codec(pc, clip.codec)
    await pc.setLocalDescription(await pc.createOffer())
    status, body, _ = await post_offer(http, f"{base}/whip/{path}", pc.localDescription.sdp, token)
    assert status == 201, f"WHIP POST failed: {status} {body}"
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc

