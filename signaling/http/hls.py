"""LL-HLS over plain HTTP, for large passive audiences and networks that block UDP.

    GET /hls/{event}/{theatre}/{feed}/index.m3u8                  with the viewer's link (Bearer)
    GET /hls/{event}/{theatre}/{feed}/{variant}/{file}
    GET /hls/s/{prefix}/{event}/{theatre}/{feed}/…                 the same with a signed prefix
    GET /api/events/{event}/hls/{theatre}/{feed}                   the signed prefix's URL, for a link

`index.m3u8` of a feed is its multivariant playlist: `high/` (the feed as published) and `low/`
(its low rendition, ≤ 640×360: the publisher's own, or made by the server while a player
fetches it). In a variant, `{file}` is `index.m3u8` (the media playlist; `?_HLS_msn=&_HLS_part=`
block until that part is there), `init{n}.mp4`, `seg{msn}.m4s` or `part{msn}.{i}.m4s`. A part
named by the playlist's preload hint is answered as soon as it is complete. What a shared cache may keep,
and for how long, is in each answer's Cache-Control: parts, segments and init sections never
change (their names are never reused); a playlist changes with every part.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web

from broadcast.hls.muxer import NotMuxable
from broadcast.hls.playlist import Variant, multivariant
from broadcast.hls.service import VARIANTS, FeedHls
from broadcast.participant import Capability
from broadcast.relay.streampath import StreamPath
from signaling.http.params import stream_path
from signaling.keys import ACCESS, BROADCASTER, CLUSTER, HLS_PREFIXES

FILE = re.compile(r"^(?:index\.m3u8|init(\d{1,9})\.mp4|seg(\d{1,9})\.m4s|part(\d{1,9})\.(\d{1,4})\.m4s)$")
START_WAIT_S = 8.0            # a first request waits this long for the feed's first keyframe
PLAYLIST = "application/vnd.apple.mpegurl"
MP4 = "video/mp4"
# what a shared cache may keep (with a prefix) and a browser (with a viewer's own link)
IMMUTABLE = "max-age=60"
BLOCKING = "max-age=60"       # a blocking reload's answer is that of its part: the same for everyone
LIVE = "max-age=1"            # a playlist asked without _HLS_msn changes with every part
VARIANT_LIST = "max-age=10"   # the multivariant playlist: its codecs and sizes change with the publisher only
LOW_BANDWIDTH = 700_000       # the low rendition's peak (≈ 500 kbit/s of video and the audio)


def _not_found(text: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=text + "\n", headers={"Cache-Control": "no-store"})


async def with_link(request: web.Request) -> web.StreamResponse:
    path = stream_path(request)
    identity = request.app[ACCESS].require(request, path.event, Capability.VIEW)
    if not identity.participant.may_watch(path.event, path.theatre):
        raise web.HTTPForbidden(text=f"this link cannot watch theatre {path.theatre!r}\n")
    return await _serve(request, path, "private")


async def with_prefix(request: web.Request) -> web.StreamResponse:
    path = stream_path(request, not_found="no such feed")
    access = request.app[ACCESS]
    if access.store.get(path.event) is None:
        raise _not_found(f"there is no event {path.event!r}")
    if not request.app[HLS_PREFIXES].valid(request.match_info["prefix"], str(path), access.store.token_gen(path.event),
                                           access.store.revoked_count(path.event)):
        raise web.HTTPForbidden(text="this HLS address has expired or its links were revoked; reload the page "
                                     "(it asks for a new one with its link)\n", headers={"Cache-Control": "no-store"})
    return await _serve(request, path, "public")


async def prefix_url(request: web.Request) -> web.Response:
    """The signed HLS address of a feed for this viewer's link (shared by every viewer now)."""
    path = stream_path(request)
    access = request.app[ACCESS]
    identity = access.require(request, path.event, Capability.VIEW)
    if not identity.participant.may_watch(path.event, path.theatre):
        raise web.HTTPForbidden(text=f"this link cannot watch theatre {path.theatre!r}\n")
    prefix, expires_at = request.app[HLS_PREFIXES].current(str(path), access.store.token_gen(path.event),
                                                          access.store.revoked_count(path.event))
    if identity.claims is not None:
        expires_at = min(expires_at, identity.claims.exp)
    url = f"/hls/s/{prefix}/{quote(path.event)}/{quote(path.theatre)}/{quote(path.feed)}/index.m3u8"
    return web.json_response({"url": url, "expires_at": expires_at}, headers={"Cache-Control": "no-store"})


async def _serve(request: web.Request, path: StreamPath, scope: str) -> web.StreamResponse:
    variant = request.match_info.get("variant")
    name = request.match_info["file"]
    if variant is None:
        if name != "index.m3u8":
            raise _not_found("a feed's HLS is index.m3u8 (its variants), high/… and low/…")
        return await _variants(request, path, scope)
    if variant not in VARIANTS:
        raise _not_found(f"no HLS variant {variant[:20]!r}: high or low")
    match = FILE.match(name)
    if match is None:
        raise _not_found("no such HLS file: index.m3u8, init{n}.mp4, seg{msn}.m4s or part{msn}.{i}.m4s")
    hls = await _feed(request, path, variant)
    playlist = hls.playlist
    init, seg, part_msn, part_index = match.groups()
    if init is not None:
        data = playlist.inits.get(int(init))
        if data is None:
            raise _not_found(f"init section {init} of {path} is gone (the feed restarted); reload the playlist")
        hls.served("init")
        return _media(data, scope)
    if seg is not None:
        msn = int(seg)
        if not await playlist.wait_for(msn, None, _wait_s(hls)) or (segment := playlist.segment(msn)) is None:
            raise _not_found(f"segment {msn} of {path} is not there (too old, or not made yet)")
        hls.served("segment")
        return _media(segment.data, scope)
    if part_msn is not None:
        msn, index = int(part_msn), int(part_index)
        if msn > playlist.hinted()[0] + 1:
            raise _not_found(f"part {msn}.{index} of {path} is further ahead than the preload hint")
        if await playlist.wait_for(msn, index, _wait_s(hls)):
            found = playlist.part(msn, index)
            if found is not None:
                hls.served("part", request.match_info["file"])
                return _media(found.data, scope)
        raise _not_found(f"part {msn}.{index} of {path} is not there (too old, or the segment ended before it)")
    return await _playlist(request, hls, scope)


async def _variants(request: web.Request, path: StreamPath, scope: str) -> web.Response:
    """The multivariant playlist. Starts the high variant (its codecs and size are read from
    its first keyframe); the low one starts when a player asks for it."""
    high = await _feed(request, path, "high")
    stream = request.app[BROADCASTER].streams.get(path)
    bandwidth = max(1_000_000, int((stream.bitrate_in if stream is not None else 0) * 1.25))
    low = request.app[BROADCASTER].hls.running(path, "low")
    audio = ",opus" if high.playlist.codecs.endswith(",opus") else ""
    low_codecs = low.playlist.codecs if low is not None and low.playlist.codecs else f"avc1.42e01f{audio}"
    low_size = low.playlist.resolution if low is not None else None
    text = multivariant([Variant("high/index.m3u8", bandwidth, high.playlist.codecs, high.playlist.resolution),
                         Variant("low/index.m3u8", LOW_BANDWIDTH, low_codecs, low_size)])
    high.served("variants")
    return web.Response(text=text, content_type=PLAYLIST, headers={"Cache-Control": f"{scope}, {VARIANT_LIST}"})


def _wait_s(hls: FeedHls) -> float:
    return 3 * hls.playlist.longest_s


async def _playlist(request: web.Request, hls: FeedHls, scope: str) -> web.Response:
    playlist = hls.playlist
    msn_text, part_text = request.query.get("_HLS_msn"), request.query.get("_HLS_part")
    cache = LIVE
    if part_text is not None and msn_text is None:
        raise web.HTTPBadRequest(text="_HLS_part needs _HLS_msn\n")
    if msn_text is not None:
        if not msn_text.isdigit() or (part_text is not None and not part_text.isdigit()) or len(msn_text) > 9:
            raise web.HTTPBadRequest(text="_HLS_msn and _HLS_part are whole numbers\n")
        msn, part = int(msn_text), int(part_text) if part_text is not None else None
        if msn > playlist.next_msn + 1:
            raise web.HTTPBadRequest(text=f"_HLS_msn={msn} is more than two segments ahead of the playlist\n")
        if not await playlist.wait_for(msn, part, _wait_s(hls)):
            raise web.HTTPServiceUnavailable(text="that part did not come in time (the feed may be stalled)\n",
                                             headers={"Cache-Control": "no-store", "Retry-After": "1"})
        cache = BLOCKING
    hls.served("blocking" if msn_text is not None else "playlist")
    return web.Response(text=playlist.render(), content_type=PLAYLIST,
                        headers={"Cache-Control": f"{scope}, {cache}"})


def _media(data: bytes, scope: str) -> web.Response:
    return web.Response(body=data, content_type=MP4, headers={"Cache-Control": f"{scope}, {IMMUTABLE}"})


async def _feed(request: web.Request, path: StreamPath, variant: str) -> FeedHls:
    """The variant's HLS, started by this request; waits for its first part."""
    request.app[CLUSTER].prepare_play(path, None)  # a feed another node holds is pulled here
    service = request.app[BROADCASTER].hls
    try:
        hls = service.feed(path, variant)
        if hls is None:
            hls = await service.when_live(path, variant, START_WAIT_S)
    except NotMuxable as exc:
        raise web.HTTPUnsupportedMediaType(text=f"{exc}\n", headers={"Cache-Control": "no-store"}) from None
    if hls is None:
        raise _not_found(f"{path} is not live")
    if not await hls.playlist.wait_ready(START_WAIT_S):
        raise web.HTTPServiceUnavailable(text=f"{path} has not sent a keyframe yet; try again in a moment\n",
                                         headers={"Cache-Control": "no-store", "Retry-After": "1"})
    return hls


def routes() -> list[web.RouteDef]:
    return [
        web.get("/hls/s/{prefix}/{event}/{theatre}/{feed}/{file}", with_prefix),
        web.get("/hls/s/{prefix}/{event}/{theatre}/{feed}/{variant}/{file}", with_prefix),
        web.get("/hls/{event}/{theatre}/{feed}/{file}", with_link),
        web.get("/hls/{event}/{theatre}/{feed}/{variant}/{file}", with_link),
        web.get("/api/events/{event}/hls/{theatre}/{feed}", prefix_url),
    ]
