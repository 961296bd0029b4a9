"""Pulled sources: an IP camera (GStreamer's RTSP server, a live x264 picture with AAC audio and
a password) pulled into a feed from the config file, watched over WHEP, restarted while the
viewer watches; wrong passwords and unreachable cameras; the password in no log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import av
import pytest

from broadcast.participant import Role
from broadcast.relay.frame import h264_nal_units
from broadcast.relay.streampath import StreamPath
from broadcast.sources.mediaconvert import VCL_TYPES, AnnexB, starts_picture
from broadcast.sources.pulled import PulledSource, PullSettings, redact_url, scrub
from signaling.keys import ACCESS, BROADCASTER
from tests.conftest import RunningServer, make_config, mint, organizer_session, start_server
from tests.support.camera import PASSWORD, Camera, free_port
from tests.support.demoproc import start_demo
from tests.support.logcheck import LogCapture
from tests.support.mediacheck import decode
from tests.support.peers import wait_until, watch
from tests.support.tls import self_signed

ROOT = Path(__file__).resolve().parents[2]
PATH = "course/or3/room"


@pytest.fixture
def debug_logs() -> Iterator[LogCapture]:
    """Every line at DEBUG, through the server's log filter as `orcast serve` writes them."""
    LogCapture.secrets.add(PASSWORD)
    with LogCapture(logging.DEBUG, redact=True) as capture:
        yield capture
    LogCapture.secrets.discard(PASSWORD)
    raw = [line for line in capture.lines if PASSWORD in line]
    assert not raw, f"the camera's password reached the logs: {raw[:3]}"


@contextlib.asynccontextmanager
async def running(sources: list[PullSettings]) -> AsyncIterator[RunningServer]:
    runner, base, app = await start_server(make_config(sources=sources))
    async with organizer_session(app) as http:
        yield RunningServer(base, app, http)
    await runner.cleanup()
    shutil.rmtree(app[ACCESS].config.data_dir, ignore_errors=True)


async def record(server: RunningServer, action: str) -> None:
    async with server.http.post(f"{server.base}/api/events/course/recording",
                                json={"action": action, "theatre": "or3", "feed": "room"}) as resp:
        assert resp.status == 200, await resp.text()


def source_of(server: RunningServer, path: str = PATH) -> PulledSource:
    return server.app[BROADCASTER].pulled[StreamPath.parse(path)]


async def test_a_camera_from_the_config_is_watched_and_survives_a_restart(
        camera: Camera, debug_logs: LogCapture) -> None:
    logging.getLogger("aioice").setLevel(logging.WARNING)
    async with running([PullSettings(PATH, camera.url())]) as server:
        source = source_of(server)
        await wait_until(lambda: source.state == "live", 20.0, lambda: f"camera not live: {source.status()}")
        assert source.status()["url"] == f"rtsp://cam:***@127.0.0.1:{camera.port}/stream1"
        assert source.audio_transcoded_from == "aac"
        async with server.http.get(f"{server.base}/api/streams") as resp:
            assert resp.status == 200
            text = await resp.text()
        assert PASSWORD not in text and '"rtsp"' in text
        viewer = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
        await viewer.wait_frames(30, timeout=20.0)
        await viewer.wait_until(lambda: viewer.audio_frames > 20 and viewer.audio_energy > 0, 10.0,
                                "no audio from the camera (AAC transcoded to Opus)")
        assert (640, 360) in viewer.sizes
        await record(server, "start")
        recordings = server.app[BROADCASTER].recordings
        await wait_until(lambda: recordings.status(StreamPath.parse(PATH)).duration_s > 1.5, 15.0,
                         lambda: f"not recording: {recordings.status(StreamPath.parse(PATH))}")

        camera.kill()  # the camera goes away while the viewer watches (and it records) …
        await wait_until(lambda: source.state == "reconnecting", 20.0, lambda: f"not reconnecting: {source.status()}")
        assert source.error
        seen = len(viewer.counters)
        camera.start()  # … and comes back on the same address
        await wait_until(lambda: source.state == "live", 40.0, lambda: f"camera not back: {source.status()}")
        await viewer.wait_until(lambda: len(viewer.counters) > seen + 30, 20.0,
                                "the viewer saw no picture after the camera came back")
        assert viewer.pc.connectionState == "connected"
        assert source.reconnects == 1
        await record(server, "stop")
        await viewer.close(server.http)
        # the recording holds the picture and the (transcoded) sound from before and after the restart
        async with server.http.get(f"{server.base}/api/recordings", params={"event": "course"}) as resp:
            (rec,) = (await resp.json())["recordings"]
        root = server.app[BROADCASTER].recordings.library.root
        files = [root / rec["path"] / seg["file"] for seg in rec["segments"]]
        decoded = [decode(f) for f in files]
        # one segment before the camera dropped, one after it came back (a new timeline)
        assert [seg["end_reason"] for seg in rec["segments"]] == ["reconnect", "stop"]
        assert all(len(d.counters) > 25 for d in decoded), [len(d.counters) for d in decoded]
        assert all(d.size == (640, 360) and d.audio_rms > 0 for d in decoded)
        assert rec["codecs"] == ["H264", "opus"]
        # every recorded frame is a whole picture (the camera's keyframes come from the demuxer in
        # two packets; sent as two frames, viewers showed half of each keyframe)
        for file in files:
            with av.open(str(file)) as container:
                packets = [p for p in container.demux(video=0) if p.size]
            assert sum(p.is_keyframe for p in packets) >= 2
            for packet in packets:
                first = next(u for u in h264_nal_units(AnnexB(packet.stream.codec_context.extradata)
                                                       .convert(bytes(packet))) if u[0] & 0x1F in VCL_TYPES)
                assert starts_picture(first), f"a recorded frame starts mid-picture (pts {packet.pts})"
            assert len({p.pts for p in packets}) == len(packets)


async def test_wrong_password_and_unreachable_camera_are_clear_errors(
        camera: Camera, debug_logs: LogCapture) -> None:
    wrong = PullSettings("course/or3/ceiling", camera.url("not-" + PASSWORD))
    nobody = PullSettings("course/or3/light", f"rtsp://cam:{PASSWORD}@127.0.0.1:{free_port()}/stream1")
    async with running([wrong, nobody]) as server:
        refused, absent = source_of(server, wrong.path), source_of(server, nobody.path)
        await wait_until(lambda: bool(refused.error and absent.error), 30.0,
                         lambda: f"{refused.status()} {absent.status()}")
        assert "password" in (refused.error or "") and refused.state == "connecting"
        assert "connection refused" in (absent.error or "") or "did not answer" in (absent.error or "")
        assert PASSWORD not in repr(refused.status()) + repr(absent.status())
        # the server still serves, and the feeds are not live
        viewer = await watch(server.http, server.base, wrong.path, expect=409, token=server.token(Role.VIEWER))
        del viewer


async def test_a_camera_that_sends_garbage_is_a_clear_error_and_the_server_goes_on(debug_logs: LogCapture) -> None:
    """Something on the camera's address that is not an RTSP server: it answers every request
    with noise, or with an RTSP reply whose SDP is nonsense."""
    async def noise(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(os.urandom(4096))
        await writer.drain()
        writer.close()

    async def bad_sdp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.readuntil(b"\r\n\r\n"):
            cseq = next((line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                         if line.lower().startswith(b"cseq")), b"1")
            body = b"v=0\r\nm=video banana\r\n\x00\xff" + os.urandom(64)
            writer.write(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\nContent-Type: application/sdp\r\n"
                         b"Public: OPTIONS, DESCRIBE\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
            await writer.drain()

    servers = [await asyncio.start_server(handler, "127.0.0.1", 0) for handler in (noise, bad_sdp)]
    try:
        ports = [srv.sockets[0].getsockname()[1] for srv in servers]
        sources = [PullSettings(f"course/or3/{name}", f"rtsp://cam:{PASSWORD}@127.0.0.1:{port}/stream1")
                   for name, port in zip(("noise", "nonsense"), ports, strict=True)]
        async with running(sources) as server:
            pulled = [source_of(server, s.path) for s in sources]
            await wait_until(lambda: all(p.error for p in pulled), 20.0, lambda: str([p.status() for p in pulled]))
            for source in pulled:
                assert source.state == "connecting" and PASSWORD not in repr(source.status())
                assert "check the port and path" in (source.error or ""), source.error
            # the event loop was never blocked: the API answers at once, and a publisher goes live beside them
            async with server.http.get(f"{server.base}/api/events/course/sources") as resp:
                assert resp.status == 200
            await watch(server.http, server.base, sources[0].path, expect=409, token=server.token(Role.VIEWER))
    finally:
        for srv in servers:
            srv.close()


@pytest.mark.parametrize(("video", "shown"), [("h265", "HEVC"), ("mjpeg", "MJPEG"), ("h264-bframes", "H264")])
async def test_a_camera_the_relay_cannot_take_as_is_is_transcoded_once(video: str, shown: str) -> None:
    camera = Camera(free_port(), video)
    camera.start()
    try:
        async with running([PullSettings(PATH, camera.url())]) as server:
            source = source_of(server)
            await wait_until(lambda: source.state == "live" and source.video_transcoded_from is not None, 30.0,
                             lambda: f"not transcoded: {source.status()}")
            assert source.transcoding == f"video {shown} → H.264, audio AAC → Opus" and source.codec == "H264"
            viewer = await watch(server.http, server.base, PATH, token=server.token(Role.VIEWER))
            await viewer.wait_frames(30, timeout=20.0)
            assert (640, 360) in viewer.sizes
            async with server.http.get(f"{server.base}/api/events/course/streams") as resp:
                (feed,) = [s for s in (await resp.json())["streams"] if s["path"] == PATH]
            assert feed["transcoding"] == source.transcoding and feed["video_codec"] == "H264"
            async with server.http.get(f"{server.base}/metrics") as resp:
                metrics = await resp.text()
            assert f'orcast_source_transcoding{{kind="video",path="{PATH}"}} 1.0' in metrics
            await viewer.close(server.http)
    finally:
        camera.kill()


async def test_cameras_over_rtsps_and_over_udp(tmp_path: Path) -> None:
    """rtsps:// (RTSP over TLS, interleaved) and plain RTSP with `transport = "udp"`: both live,
    both watched; the cameras say which transport each track was set up with."""
    cert, key = self_signed(tmp_path)
    pem = tmp_path / "camera.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    secure, plain = Camera(free_port(), tls_pem=pem), Camera(free_port())
    secure.start()
    plain.start()
    try:
        tls_source = PullSettings("course/or3/ceiling", secure.url())
        udp_source = PullSettings("course/or3/light", plain.url(), transport="udp")
        assert tls_source.url.startswith("rtsps://")
        async with running([tls_source, udp_source]) as server:
            async def watched(path: str) -> None:
                source = source_of(server, path)
                await wait_until(lambda: source.state == "live", 30.0, lambda: f"not live: {source.status()}")
                viewer = await watch(server.http, server.base, path, token=server.token(Role.VIEWER))
                await viewer.wait_frames(30, timeout=20.0)
                assert (640, 360) in viewer.sizes
                await viewer.close(server.http)

            await watched(tls_source.path)
            await watched(udp_source.path)
            assert source_of(server, udp_source.path).status()["transport"] == "udp"
        assert secure.transports and all(t == "RTP/AVP/TCP" for t in secure.transports), secure.transports
        assert plain.transports and all(t == "RTP/AVP/UDP" for t in plain.transports), plain.transports
    finally:
        secure.kill()
        plain.kill()


def test_a_port_with_401_in_it_is_not_a_wrong_password() -> None:
    url = "rtsp://cam:pw@10.1.3.20:40401/stream1"
    source = PulledSource(PullSettings(PATH, url), lambda *args: (None, None))  # type: ignore[arg-type,return-value]
    said = source._describe(av.error.InvalidDataError(1094995529, "Invalid data found when processing input", url))
    assert "password" not in said and "check the port and path" in said and ":pw@" not in said
    refused = source._describe(Exception("method DESCRIBE failed: 401 Unauthorized"))
    assert "password" in refused


def test_urls_are_shown_without_their_secrets() -> None:
    url = "rtsp://admin:p%40ss:w@10.1.3.20:554/stream1?token=abc"
    assert redact_url(url) == "rtsp://admin:***@10.1.3.20:554/stream1?***"
    assert redact_url("rtsp://10.1.3.20/s") == "rtsp://10.1.3.20/s"
    assert "p%40ss" not in scrub(f"Server returned 401 for '{url}' (p@ss:w)", url)


async def test_a_camera_added_through_the_api_is_kept_across_a_restart(camera: Camera, debug_logs: LogCapture) -> None:
    config = make_config()
    runner, base, app = await start_server(config)
    try:
        async with organizer_session(app) as http:
            tech = mint(app, Role.TECHNICIAN, "course", name="OR 3 cart", theatre="or3")
            body = {"theatre": "or3", "feed": "ceiling", "url": camera.url()}
            async with http.post(f"{base}/api/events/course/sources", json=body,
                                 headers={"Authorization": f"Bearer {tech}"}) as resp:
                text = await resp.text()
                assert resp.status == 201, text
            assert PASSWORD not in text and "cam:***@" in text
            async with http.post(f"{base}/api/events/course/sources", json={**body, "theatre": "or1"},
                                 headers={"Authorization": f"Bearer {tech}"}) as resp:
                assert resp.status == 403  # a technician manages its own theatre's cameras
            async with http.post(f"{base}/api/events/course/sources", json=body) as resp:
                assert resp.status == 409  # one source per feed
            async with http.post(f"{base}/api/events/course/sources", json={**body, "url": "ftp://x/y"}) as resp:
                assert resp.status == 400 and "rtsp://" in (await resp.json())["error"]
            pulled = app[BROADCASTER].pulled[StreamPath.parse("course/or3/ceiling")]
            await wait_until(lambda: pulled.state == "live", 20.0, lambda: str(pulled.status()))
    finally:
        await runner.cleanup()
    # the server restarts on the same data directory: the camera is pulled again
    runner, base, app = await start_server(config)
    try:
        async with organizer_session(app) as http:
            async with http.get(f"{base}/api/events/course/sources") as resp:
                listed = (await resp.json())["sources"]
            assert [(s["path"], s["origin"], s["url"]) for s in listed] == [
                ("course/or3/ceiling", "api", f"rtsp://cam:***@127.0.0.1:{camera.port}/stream1")]
            stream_path = StreamPath.parse("course/or3/ceiling")
            await wait_until(lambda: app[BROADCASTER].pulled[stream_path].state == "live", 20.0,
                             lambda: str(app[BROADCASTER].pulled[stream_path].status()))
            async with http.delete(f"{base}/api/events/course/sources/or3/ceiling") as resp:
                assert resp.status == 200
            assert stream_path not in app[BROADCASTER].pulled
            stream = app[BROADCASTER].streams.get(stream_path)
            assert stream is None or not stream.live
            assert app[ACCESS].store.sources() == []
    finally:
        await runner.cleanup()
        shutil.rmtree(config.data_dir, ignore_errors=True)


async def test_a_feed_pulled_over_whep_from_a_second_orcast_process(tmp_path: Path) -> None:
    """The other server is `orcast demo` in its own process; its viewer link is the pull's token."""
    other = start_demo(tmp_path, name="other")
    try:
        token = other.token("viewer")
        pull = PullSettings("course/or1/remote", f"{other.base}/whep/demo/or1/room", token=token)
        async with running([pull]) as server:
            source = source_of(server, pull.path)
            await wait_until(lambda: source.state == "live", 30.0, lambda: f"not pulled: {source.status()}")
            status = source.status()
            assert status["kind"] == "whep" and status["token"] == "***" and token not in repr(status)
            assert source.codec == "VP8"
            viewer = await watch(server.http, server.base, pull.path, token=server.token(Role.VIEWER))
            await viewer.wait_frames(30, timeout=20.0)
            assert (640, 360) in viewer.sizes
            assert viewer.audio_frames > 0
            async with server.http.get(f"{server.base}/api/events/course/streams") as resp:
                streams = {s["path"]: s for s in (await resp.json())["streams"]}
            assert streams[pull.path]["publisher"] == "whep" and streams[pull.path]["live"]

            # the other server goes down and comes back on the same address, with the same secret
            other.kill()
            await wait_until(lambda: source.state == "reconnecting", 30.0, lambda: f"{source.status()}")
            seen = len(viewer.counters)
            other = start_demo(tmp_path, name="other", port=other.port, secret=other.secret,
                               data_dir=tmp_path / "data")
            await wait_until(lambda: source.state == "live", 60.0, lambda: f"not back: {source.status()}")
            await viewer.wait_until(lambda: len(viewer.counters) > seen + 30, 20.0,
                                    "no picture after the other server came back")
            assert viewer.pc.connectionState == "connected" and source.reconnects >= 1
            await viewer.close(server.http)
    finally:
        other.stop()
