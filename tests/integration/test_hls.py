"""LL-HLS of a live feed: the playlist's tags, blocking reload, parts that FFmpeg decodes as the
feed's codec and size, and who may fetch what (a viewer's link, the shared signed prefix, and
neither once the link is revoked)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import pytest

from broadcast.hls.service import HlsSettings
from broadcast.participant import Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import SyntheticFeed, encode_clip
from tests.conftest import RunningServer
from tests.support.peers import bearer, publish

PATH = "course/or1/endoscope"
BASE = f"/hls/{PATH}/high"
WIDTH, HEIGHT = 640, 360


@pytest.fixture
async def live(server: RunningServer) -> AsyncIterator[SyntheticFeed]:
    """The feed from an in-process H.264 + Opus source (a keyframe every second, as encoders
    set up for HLS send)."""
    clip = await asyncio.to_thread(encode_clip, "H264", WIDTH, HEIGHT, 30, 2, 1_000_000)
    feed = SyntheticFeed(clip, "synthetic")
    stream = server.broadcaster.attach_source(StreamPath.parse(PATH), (feed, "H264"), feed,
                                              h264_profile=clip.h264_profile)
    feed.start(stream.video, stream.audio)
    yield feed
    await feed.stop()


def hint(playlist: str) -> tuple[int, int]:
    match = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s"', playlist)
    assert match, playlist
    return int(match.group(1)), int(match.group(2))


def ffprobe(path: Path) -> list[dict[str, object]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,codec_type,width,height",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=30, check=True)
    return list(json.loads(out.stdout)["streams"])


async def test_the_playlist_has_the_ll_hls_tags_and_blocking_reload_returns_the_next_part(
        server: RunningServer, live: SyntheticFeed, tmp_path: Path) -> None:
    viewer = bearer(server.token("viewer"))
    started = time.monotonic()
    async with server.http.get(f"{server.base}{BASE}/index.m3u8", headers=viewer) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/vnd.apple.mpegurl"
        assert resp.headers["Cache-Control"].startswith("private")  # a viewer's own link: no shared cache
        playlist = await resp.text()
    print(f"\nfirst playlist {time.monotonic() - started:.2f} s after the first request (the muxer starts with it)")
    for tag in ("#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:2", "#EXT-X-PART-INF:PART-TARGET=0.334",
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002", '#EXT-X-MAP:URI="init1.mp4"',
                "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-PART:DURATION=", "INDEPENDENT=YES", "#EXT-X-PRELOAD-HINT"):
        assert tag in playlist, playlist

    # blocking reload: asked for the hinted part, the answer comes when it is there and lists it
    for _ in range(3):
        msn, part = hint(playlist)
        asked = time.monotonic()
        async with server.http.get(f"{server.base}{BASE}/index.m3u8?_HLS_msn={msn}&_HLS_part={part}",
                                   headers=viewer) as resp:
            assert resp.status == 200, await resp.text()
            assert "max-age=60" in resp.headers["Cache-Control"]
            playlist = await resp.text()
        assert f'URI="part{msn}.{part}.m4s"' in playlist, playlist
        print(f"blocking reload for part {msn}.{part}: answered after {time.monotonic() - asked:.3f} s")

    # the PROGRAM-DATE-TIME is the wall clock of the segment's picture
    dates = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", playlist)
    newest = time.mktime(time.strptime(dates[-1][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(newest - time.time()) < 5, dates

    # init + an independent part decode as the feed: H.264 640×360 and Opus
    independent = re.findall(r'URI="(part\d+\.\d+\.m4s)",INDEPENDENT=YES', playlist)[-1]
    data = b""
    for name in ("init1.mp4", independent):
        async with server.http.get(f"{server.base}{BASE}/{name}", headers=viewer) as resp:
            assert resp.status == 200 and resp.content_type == "video/mp4", name
            assert "max-age=60" in resp.headers["Cache-Control"]
            data += await resp.read()
    file = tmp_path / "part.mp4"
    file.write_bytes(data)
    streams = {s["codec_type"]: s for s in ffprobe(file)}
    assert streams["video"]["codec_name"] == "h264", streams
    assert (streams["video"]["width"], streams["video"]["height"]) == (WIDTH, HEIGHT), streams
    assert streams["audio"]["codec_name"] == "opus", streams
    with av.open(str(file)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 5, "the part holds a quarter second of picture"
    picture = frames[0].to_ndarray(format="gray")
    assert picture.std() > 10, "a decoded picture that is one flat colour"

    # a whole segment too, as players without LL-HLS fetch it
    complete = re.findall(r"^seg(\d+)\.m4s$", playlist, re.M)
    if complete:
        async with server.http.get(f"{server.base}{BASE}/seg{complete[-1]}.m4s", headers=viewer) as resp:
            assert resp.status == 200
            file.write_bytes((await (await server.http.get(f"{server.base}{BASE}/init1.mp4", headers=viewer)).read())
                             + await resp.read())
        with av.open(str(file)) as container:
            assert sum(1 for _ in container.decode(video=0)) >= 55  # ≈ 2 s at 30 fps

    # the feed's multivariant playlist: high and its low rendition, which the server makes
    # (this source sends none) once a player asks for it
    async with server.http.get(f"{server.base}/hls/{PATH}/index.m3u8", headers=viewer) as resp:
        assert resp.status == 200
        variants = await resp.text()
    assert 'BANDWIDTH=' in variants and 'CODECS="avc1.' in variants and ',opus"' in variants, variants
    assert f"RESOLUTION={WIDTH}x{HEIGHT}\nhigh/index.m3u8" in variants and "\nlow/index.m3u8" in variants, variants
    async with server.http.get(f"{server.base}/hls/{PATH}/low/index.m3u8", headers=viewer) as resp:
        assert resp.status == 200, await resp.text()
        low = await resp.text()
    low_part = re.findall(r'URI="(part\d+\.\d+\.m4s)",INDEPENDENT=YES', low)[0]
    data = b""
    for name in ("init1.mp4", low_part):
        async with server.http.get(f"{server.base}/hls/{PATH}/low/{name}", headers=viewer) as resp:
            assert resp.status == 200, name
            data += await resp.read()
    file.write_bytes(data)
    streams = {s["codec_type"]: s for s in ffprobe(file)}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "opus", streams
    assert int(str(streams["video"]["width"])) <= 640 and int(str(streams["video"]["height"])) <= 360, streams

    # what a player may get wrong
    for query, status in (("_HLS_part=1", 400), ("_HLS_msn=x", 400), ("_HLS_msn=999999", 400)):
        async with server.http.get(f"{server.base}{BASE}/index.m3u8?{query}", headers=viewer) as resp:
            assert resp.status == status, (query, await resp.text())
    for name in ("index.m3u", "../x", "part1.m4s", "init99.mp4", "seg999999.m4s", "../medium/index.m3u8",
                 "../part0.0.m4s"):
        async with server.http.get(f"{server.base}{BASE}/{name}", headers=viewer) as resp:
            assert resp.status == 404, name

    # the muxer stops once nobody asks (here: at once)
    service = server.broadcaster.hls
    assert (StreamPath.parse(PATH), "high") in service.feeds
    service.settings = HlsSettings(idle_s=0.0)
    await service._sweep()
    assert not service.feeds


async def test_who_may_fetch_hls_a_link_the_shared_prefix_and_not_once_revoked(
        server: RunningServer, live: SyntheticFeed) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{server.base}{BASE}/index.m3u8") as resp:
            assert resp.status == 401, await resp.text()
        other_theatre = server.token("technician", theatre="or2")
        async with anonymous.get(f"{server.base}{BASE}/index.m3u8", headers=bearer(other_theatre)) as resp:
            assert resp.status == 403, await resp.text()
        async with anonymous.get(f"{server.base}/hls/course/or9/endoscope/index.m3u8",
                                 headers=bearer(server.token("viewer"))) as resp:
            assert resp.status == 404  # no such feed (not live)

        # the signed prefix: the same for every viewer now, and enough alone
        viewer, other = server.token("viewer", name="Dr Leaver"), server.token("viewer", name="Dr Stays")
        urls = []
        for token in (viewer, other):
            async with anonymous.get(f"{server.base}/api/events/course/hls/or1/endoscope",
                                     headers=bearer(token)) as resp:
                assert resp.status == 200, await resp.text()
                urls.append((await resp.json())["url"])
        assert urls[0] == urls[1], "a cache can only share what has one URL"
        assert urls[0].endswith("/index.m3u8")
        async with anonymous.get(server.base + urls[0]) as resp:
            assert resp.status == 200 and "high/index.m3u8" in await resp.text()  # the variants
        url = server.base + urls[0].replace("index.m3u8", "high/index.m3u8")
        async with anonymous.get(url) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Cache-Control"].startswith("public")
            playlist = await resp.text()
        msn, part = hint(playlist)
        async with anonymous.get(url.replace("index.m3u8", f"part{msn}.{part}.m4s")) as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "public, max-age=60"
        forged = re.sub(r"/hls/s/(\d+)-[^/]+/", r"/hls/s/\1-AAAAAAAAAAAAAAAAAAAAAA/", url)
        async with anonymous.get(forged) as resp:
            assert resp.status == 403
        async with anonymous.get(url.replace("/or1/", "/or2/")) as resp:
            assert resp.status == 403, "a prefix opens its own feed only"

        # revoking a link: the prefix it had stops working at once, the link gets no new one,
        # a viewer whose link is valid gets a new prefix
        jti = server.access.issuer.verify(viewer).jti
        async with server.http.delete(f"{server.base}/api/events/course/tokens/{jti}") as resp:
            assert resp.status == 200
        async with anonymous.get(url) as resp:
            assert resp.status == 403, "a revoked link's prefix still works"
            assert "reload the page" in await resp.text()
        async with anonymous.get(f"{server.base}/api/events/course/hls/or1/endoscope", headers=bearer(viewer)) as resp:
            assert resp.status == 401
        async with anonymous.get(f"{server.base}/api/events/course/hls/or1/endoscope", headers=bearer(other)) as resp:
            fresh = server.base + (await resp.json())["url"]
        fresh = fresh.replace("index.m3u8", "high/index.m3u8")
        assert fresh != url
        async with anonymous.get(fresh) as resp:
            assert resp.status == 200
        # and revoking the whole event stops every prefix
        async with server.http.post(f"{server.base}/api/events/course/revoke-all") as resp:
            assert resp.status == 200
        async with anonymous.get(fresh) as resp:
            assert resp.status == 403


async def test_a_vp8_feed_is_refused_with_what_to_do(server: RunningServer) -> None:
    publisher = await publish(server.http, server.base, "course/or2/room", codec="VP8", audio=False,
                              token=server.token(Role.TECHNICIAN, theatre="or2"))
    try:
        async with server.http.get(f"{server.base}/hls/course/or2/room/index.m3u8") as resp:
            assert resp.status == 415, await resp.text()
            assert "H.264" in await resp.text()
    finally:
        await publisher.pc.close()
