"""WHIP/WHEP error paths (RFC 9725 and the WHEP draft): status codes and headers."""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
import pytest

from broadcast.participant import Role
from broadcast.qa.messages import QaError, parse
from broadcast.webrtc.session import IceServer
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.peers import make_offer_sdp, post_offer, publish, watch

PATH = "course/or3/overhead"
SDP = {"Content-Type": "application/sdp"}


async def make_offer(video: int = 1, audio: int = 1, direction: str = "sendonly") -> str:
    return await make_offer_sdp(direction, video, audio)


async def test_options_advertises_sdp(server: RunningServer) -> None:
    async with server.http.options(f"{server.base}/whip/{PATH}") as resp:
        assert resp.status == 204
        assert resp.headers["Accept-Post"] == "application/sdp"
        assert "POST" in resp.headers["Allow"]
    async with server.http.options(f"{server.base}/whep/{PATH}") as resp:
        assert resp.status == 204
        assert resp.headers["Accept-Post"] == "application/sdp"


async def test_wrong_content_type_is_415(server: RunningServer) -> None:
    offer = await make_offer()
    for url in (f"{server.base}/whip/{PATH}", f"{server.base}/whep/{PATH}"):
        async with server.http.post(url, data=offer, headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
            assert "application/sdp" in await r.text()


async def test_malformed_sdp_is_400(server: RunningServer) -> None:
    for body in ("hello", "v=0\r\nm=video\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                 "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"):
        status, text, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}", body)
        assert status == 400, (body, status, text)
        assert text.strip()
    assert server.broadcaster.sessions == {}


async def test_oversized_sdp_is_413(server: RunningServer) -> None:
    offer = await make_offer()
    padded = offer + "a=x-padding:" + "x" * 40_000 + "\r\n"
    status, _, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}", padded)
    assert status == 413


async def test_too_many_tracks_is_422(server: RunningServer) -> None:
    # two video tracks are a feed and its own low rendition; a third is one too many
    status, text, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}",
                                       await make_offer(video=3))
    assert status == 422
    assert "too many tracks" in text and "low rendition" in text
    assert server.broadcaster.sessions == {} and server.broadcaster.streams == {}


async def test_unsupported_codec_is_422(server: RunningServer) -> None:
    offer = await make_offer(audio=0)
    # keep only a codec the relay does not handle
    offer = re.sub(r"a=rtpmap:(\d+) (VP8|H264)/90000", r"a=rtpmap:\1 AV1/90000", offer)
    status, text, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}", offer)
    assert status == 422
    assert "H.264" in text and "VP8" in text


async def test_publisher_must_send_and_viewer_must_receive(server: RunningServer) -> None:
    status, text, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}",
                                       await make_offer(direction="recvonly"))
    assert status == 422 and "publisher must send" in text
    pub = await publish(server.http, server.base, PATH, "VP8")
    status, text, _ = await post_offer(server.http, f"{server.base}/whep/{PATH}",
                                       await make_offer(direction="sendonly"))
    assert status == 422 and "viewer must receive" in text
    await pub.pc.close()


async def test_whep_on_feed_not_live_is_409_with_retry_after(server: RunningServer) -> None:
    status, text, headers = await post_offer(server.http, f"{server.base}/whep/{PATH}",
                                             await make_offer(direction="recvonly"))
    assert status == 409
    assert int(headers["Retry-After"]) > 0
    assert "not live" in text


async def test_second_publisher_of_another_link_is_409(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8")
    await asyncio.sleep(0.5)  # sending media: not stalled
    status, text, headers = await post_offer(server.http, f"{server.base}/whip/{PATH}", await make_offer(),
                                             server.token(Role.TECHNICIAN, name="another cart"))
    assert status == 409
    assert "is live from 'test organizer' (organizer)" in text, text
    assert headers["Retry-After"] == "2"
    assert len(server.broadcaster.sessions) == 1
    await pub.pc.close()


async def test_bad_stream_path_is_400(server: RunningServer) -> None:
    status, text, _ = await post_offer(server.http, f"{server.base}/whip/Course/OR_1/x",
                                       await make_offer())
    assert status == 400
    assert "lower-case" in text


async def test_session_patch_and_delete(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8")
    url = pub.session_url
    assert re.fullmatch(rf"{server.base}/whip/{PATH}/[A-Za-z0-9_-]{{20,}}", url)
    frag = ("a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.99 50000 typ host\r\n"
            "a=end-of-candidates\r\n")
    hdr = {"Content-Type": "application/trickle-ice-sdpfrag"}
    async with server.http.patch(url, data=frag, headers=hdr) as resp:
        assert resp.status == 204
    async with server.http.patch(url, data=frag, headers=SDP) as resp:
        assert resp.status == 415
    restart = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n" + frag
    async with server.http.patch(url, data=restart, headers=hdr) as resp:
        assert resp.status == 428
    async with server.http.patch(url, data=restart, headers={**hdr, "If-Match": "*"}) as resp:
        assert resp.status == 422
        assert "ICE restart" in await resp.text()
    async with server.http.patch(url, data="a=nonsense\r\n", headers=hdr) as resp:
        assert resp.status == 400
    async with server.http.delete(url) as resp:
        assert resp.status == 200
    assert server.broadcaster.sessions == {} and server.broadcaster.streams == {}
    async with server.http.delete(url) as resp:
        assert resp.status == 404
    async with server.http.delete(f"{server.base}/whip/{PATH}/not-a-session") as resp:
        assert resp.status == 404
    await pub.pc.close()


async def test_overload_is_503_with_retry_after() -> None:
    runner, base, app = await start_server(make_config(max_sessions=1))
    async with organizer_session(app) as http:
        pub = await publish(http, base, PATH, "VP8")  # publishers are counted apart
        first = await watch(http, base, PATH)
        status, text, headers = await post_offer(http, f"{base}/whep/{PATH}",
                                                 await make_offer(direction="recvonly"))
        assert status == 503
        assert int(headers["Retry-After"]) > 0
        assert "limit" in text
        await first.close(http)
        await pub.pc.close()
    await runner.cleanup()


async def test_ice_servers_are_advertised_in_link_headers() -> None:
    config = make_config(ice_servers=[IceServer(["stun:stun.hospital.example:3478"])])
    runner, base, _app = await start_server(config)
    async with aiohttp.ClientSession() as http, http.options(f"{base}/whip/{PATH}") as resp:
        assert resp.headers["Link"] == '<stun:stun.hospital.example:3478>; rel="ice-server"'
    await runner.cleanup()


async def test_viewer_answer_is_sendonly(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8")
    viewer = await watch(server.http, server.base, PATH)
    assert "a=sendonly" in viewer.answer and "a=recvonly" not in viewer.answer
    assert "a=setup:passive" in viewer.answer, "the server takes the DTLS server role"
    await viewer.close(server.http)
    await pub.pc.close()


async def test_sessions_deleted_before_they_connect_log_no_dtls_advice(server: RunningServer,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """750 "DTLS handshake failed … check the client's certificate" lines in one day sent an
    operator the wrong way: a session ended on purpose fails its handshake on purpose."""
    pub = await publish(server.http, server.base, PATH, "VP8")
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            viewer = await watch(server.http, server.base, PATH)  # ICE and DTLS start …
            await viewer.close(server.http)                       # … and the page leaves at once
        await asyncio.sleep(2.0)
    assert "DTLS handshake failed" not in caplog.text
    await pub.pc.close()


async def test_malformed_http_is_one_info_line(server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    with caplog.at_level(logging.INFO):
        for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the HTTP port
                        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                        b"POST /api/events HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            await writer.drain()
            answer = await reader.read(200)
            writer.close()
            assert answer.split(b" ", 2)[1] == b"400", answer
    bad = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert bad and all(r.levelno == logging.INFO and not r.exc_info for r in bad), \
        [(r.levelname, r.getMessage()) for r in bad]
    assert all("malformed HTTP request from" in r.getMessage() for r in bad)


async def test_titles_and_names_refuse_hidden_characters(server: RunningServer) -> None:
    for body, what in (({"slug": "or9", "title": "OR 9 \u202egpj.exe"}, "U+202E"),
                       ({"slug": "or9", "title": "OR\u200b9"}, "U+200B")):
        async with server.http.post(f"{server.base}/api/events/course/theatres", json=body) as r:
            assert r.status == 400 and what in (await r.json())["error"], await r.text()
    async with server.http.post(f"{server.base}/api/events/course/tokens",
                                json={"role": "viewer", "name": "Dr \u202eKim"}) as r:
        assert r.status == 400 and "U+202E" in (await r.json())["error"]
    async with server.http.post(f"{server.base}/api/events/course/theatres",
                                json={"slug": "or9", "title": "OR 9 · Ünal"}) as r:
        assert r.status == 201, await r.text()


def test_deep_json_on_the_qa_channel_is_bad_json() -> None:
    for raw in ("[" * 8000, '{"a":' * 3000 + "1" + "}" * 3000, "[" * 40 + "]" * 40):
        with pytest.raises(QaError) as caught:
            parse(raw)
        assert caught.value.code in ("bad_json", "too_large"), caught.value.code


async def test_static_modules_are_revalidated_so_an_upgrade_never_mixes_versions(server: RunningServer) -> None:
    for path in ("/static/lib/player.js", "/static/watch.js", "/static/style.css"):
        async with server.http.get(server.base + path) as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache", (path, r.headers)
