"""Recording end to end: aiortc publishers over WHIP, recordings started through the API,
files read back with PyAV (every frame decoded, counters, keyframes, A/V sync)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from signaling.keys import CONFIG
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.mediacheck import av_offset, decode, gaps
from tests.support.peers import Publisher, bearer, publish

PATH = "course/or1/endoscope"


@pytest.fixture
async def rec_server(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    overrides: dict[str, Any] = {"min_free_gb": 0.0, **getattr(request, "param", {})}
    runner, base, app = await start_server(make_config(**overrides))
    async with organizer_session(app) as http:
        yield RunningServer(base, app, http)
    await runner.cleanup()
    shutil.rmtree(app[CONFIG].data_dir, ignore_errors=True)


async def control(server: RunningServer, action: str, token: str | None = None, expect: int = 200,
                  **scope: str) -> dict[str, Any]:
    headers = bearer(token) if token else {}
    async with server.http.post(f"{server.base}/api/events/course/recording",
                                json={"action": action, **scope}, headers=headers) as r:
        data: dict[str, Any] = await r.json()
        assert r.status == expect, data
        return data


async def feed_state(server: RunningServer, path: str = PATH) -> dict[str, Any]:
    async with server.http.get(f"{server.base}/api/events/course/recording") as r:
        assert r.status == 200
        feeds = {f["path"]: f for f in (await r.json())["feeds"]}
    return feeds.get(path, {"state": "absent"})


async def wait_state(server: RunningServer, state: str, path: str = PATH, timeout: float = 15) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await feed_state(server, path)
        if current["state"] == state and (state != "recording" or current["duration_s"] > 0):
            return current
        assert asyncio.get_running_loop().time() < deadline, f"{path} never became {state}: {current}"
        await asyncio.sleep(0.1)


async def library(server: RunningServer, **query: str) -> list[dict[str, Any]]:
    async with server.http.get(f"{server.base}/api/recordings", params=query) as r:
        assert r.status == 200, await r.text()
        recs: list[dict[str, Any]] = (await r.json())["recordings"]
        return recs


def files_of(server: RunningServer, rec: dict[str, Any]) -> list[Path]:
    root = server.broadcaster.recordings.library.root
    return [root / rec["path"] / seg["file"] for seg in rec["segments"]]


async def stop_publisher(server: RunningServer, pub: Publisher) -> None:
    async with server.http.delete(pub.session_url):
        pass
    await pub.pc.close()


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_recording_decodes_every_frame_in_sync(rec_server: RunningServer, codec: str) -> None:
    server = rec_server
    pub = await publish(server.http, server.base, PATH, codec)
    technician = server.token(Role.TECHNICIAN, theatre="or1")
    started = await control(server, "start", technician, theatre="or1", feed="endoscope")
    assert started["scope"] == PATH and started["feeds"][0]["path"] == PATH
    await wait_state(server, "recording")
    await asyncio.sleep(6)
    live = await feed_state(server)
    assert live["file"].endswith(".mp4" if codec == "H264" else ".webm")
    assert live["duration_s"] > 4 and live["size_bytes"] > 10_000
    await control(server, "stop", technician, theatre="or1", feed="endoscope")
    assert (await feed_state(server))["state"] == "stopped"
    await stop_publisher(server, pub)

    (rec,) = await library(server)
    assert rec["state"] == "complete" and len(rec["segments"]) == 1
    assert rec["codecs"] == sorted([codec, "opus"]) and (rec["width"], rec["height"]) == (320, 240)
    (file,) = files_of(server, rec)
    assert file.parent == server.broadcaster.recordings.library.root / "course" / "or1" / "endoscope"
    got = decode(file)
    sent = got.counters[-1] - got.counters[0] + 1  # frames the publisher sent meanwhile
    assert abs(len(got.counters) - sent) <= sent * 0.01, (len(got.counters), sent)
    assert not gaps(got.counters), gaps(got.counters)[:5]
    assert got.size == (320, 240)
    assert got.keyframes >= 1
    assert rec["segments"][0]["video_frames"] == len(got.counters)
    assert got.audio_rms > 0.01, "the recorded audio is silent"
    assert got.first_audio is not None and got.first_video is not None
    assert abs(got.first_audio - got.first_video) < 0.040, (got.first_audio, got.first_video)
    offset = av_offset(got)
    print(f"\n{codec}: {len(got.counters)} frames, A/V offset {offset * 1000:+.1f} ms "
          f"over {len(got.flashes)} flashes")
    assert abs(offset) < 0.040, f"audio is {offset * 1000:.0f} ms off the picture"
    # the keyframe index is there (MP4 'mfra', WebM Cues), and a seek lands on a keyframe
    tail = file.read_bytes()[-65536:]
    assert (b"mfra" in tail) if codec == "H264" else (b"\x1c\x53\xbb\x6b" in file.read_bytes())
    with av.open(str(file)) as container:
        container.seek(3_000_000)
        frame = next(container.decode(video=0))
        assert frame.key_frame and frame.time <= 3.05, frame.time


@pytest.mark.parametrize("rec_server", [{"segment_minutes": 0.05}], indirect=True)
async def test_segments_rotate_on_keyframes_without_gap(rec_server: RunningServer) -> None:
    server = rec_server
    pub = await publish(server.http, server.base, PATH, "H264")
    await control(server, "start")  # the whole event
    await wait_state(server, "recording")
    await asyncio.sleep(10)
    await control(server, "stop")
    await stop_publisher(server, pub)
    (rec,) = await library(server)
    segs = rec["segments"]
    assert len(segs) >= 3, segs
    assert [s["start_reason"] for s in segs[1:]] == ["rotation"] * (len(segs) - 1)
    counters: list[int] = []
    for file, seg in zip(files_of(server, rec), segs, strict=True):
        got = decode(file)
        assert got.keyframes >= 1
        assert seg["video_frames"] == len(got.counters)
        if counters:  # the boundary: the next segment starts with the very next frame
            assert got.counters[0] == counters[-1] + 1, (counters[-1], got.counters[0], file.name)
        counters += got.counters
    assert not gaps(counters)
    total = sum(s["duration_s"] for s in segs)
    assert abs(total - len(counters) / 30) < 0.5, (total, len(counters))


async def test_reconnect_and_codec_change_continue_in_new_segments(rec_server: RunningServer) -> None:
    server = rec_server
    await control(server, "start", theatre="or1")  # armed before anything is live
    pub = await publish(server.http, server.base, PATH, "H264")
    await wait_state(server, "recording")
    await asyncio.sleep(2)
    await stop_publisher(server, pub)
    await wait_state(server, "waiting")
    pub = await publish(server.http, server.base, PATH, "VP8", start=5000)
    await asyncio.sleep(0.5)
    await wait_state(server, "recording")
    await asyncio.sleep(2)
    await stop_publisher(server, pub)
    await control(server, "stop", theatre="or1")
    (rec,) = await library(server)
    segs = rec["segments"]
    assert [Path(s["file"]).suffix for s in segs] == [".mp4", ".webm"], segs
    assert segs[0]["end_reason"] == "feed offline"
    assert segs[1]["start_reason"] in ("reconnect", "codec change")
    first, second = (decode(f) for f in files_of(server, rec))
    assert first.counters[0] < 5000 <= second.counters[0]
    assert not gaps(first.counters) and not gaps(second.counters)


async def test_recording_rules_are_kept_on_disk(rec_server: RunningServer) -> None:
    """Rules are kept on disk: a restart goes on recording what was recording."""
    server = rec_server
    await control(server, "start", theatre="or2")
    await control(server, "stop", theatre="or2", feed="room")
    manager = server.broadcaster.recordings
    saved = manager._load_rules()
    assert {str(k): v for k, v in saved.items()} == {"course/or2": True, "course/or2/room": False}
    await control(server, "start", theatre="or2")  # clears the narrower stop
    assert {str(k): v for k, v in manager._load_rules().items()} == {"course/or2": True}


async def test_disk_below_minimum_refuses_to_start(rec_server: RunningServer) -> None:
    server = rec_server
    server.broadcaster.recordings.settings.min_free_bytes = 10**18
    data = await control(server, "start", expect=507)
    assert "free" in data["error"] and "min_free_gb" in data["error"]
    state = await (await server.http.get(f"{server.base}/api/events/course/recording")).json()
    assert state["rules"] == []


async def test_record_true_event_records_whatever_goes_live(rec_server: RunningServer) -> None:
    server = rec_server
    async with server.http.post(f"{server.base}/api/events", json={
            "slug": "auto", "title": "Auto", "theatres": ["or1"], "record": True}) as r:
        assert r.status == 201
    async with aiohttp.ClientSession(headers=bearer(server.token(Role.TECHNICIAN, "auto"))) as tech:
        pub = await publish(tech, server.base, "auto/or1/room", "VP8")
        deadline = asyncio.get_running_loop().time() + 10
        while server.broadcaster.recordings.status(StreamPath.parse("auto/or1/room")).state != "recording":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        await stop_publisher(server, pub)
    deadline = asyncio.get_running_loop().time() + 10
    while not (recs := await library(server, event="auto")) or recs[0]["segments"][-1]["end_reason"] is None:
        assert asyncio.get_running_loop().time() < deadline, recs
        await asyncio.sleep(0.1)
    (rec,) = recs
    assert rec["path"] == "auto/or1/room" and rec["codecs"] == ["VP8", "opus"]
    assert rec["segments"][0]["end_reason"] == "feed offline" and rec["duration_s"] > 0.5
    # the recording stays on: it goes on in a new segment when the feed returns
    assert server.broadcaster.recordings.status(StreamPath.parse("auto/or1/room")).state == "waiting"
