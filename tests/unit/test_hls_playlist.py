"""The LL-HLS media playlist's rules, without a muxer: segments cut on keyframe parts after the
target, a window that slides, discontinuities counted as they leave, a target duration that only
grows, blocking reload that wakes on the part it waits for."""

from __future__ import annotations

import asyncio
import re

from broadcast.hls.fmp4 import boxes
from broadcast.hls.playlist import KEPT_SEGMENTS, MediaPlaylist, PlaylistSettings, Variant, multivariant


def feed(playlist: MediaPlaylist, seconds: float, init: int = 1, keyframe_every: float = 1.0) -> None:
    """Parts of 0.25 s; an independent one every `keyframe_every` seconds."""
    per_key = round(keyframe_every / 0.25)
    for i in range(round(seconds / 0.25)):
        playlist.add_part(init, b"part", 0.25, independent=i % per_key == 0, arrived_at=1_800_000_000.0 + i * 0.25)


def test_segments_are_cut_on_the_first_keyframe_part_after_the_target() -> None:
    playlist = MediaPlaylist(PlaylistSettings())
    playlist.add_init(1, b"init", "avc1.42e01f,opus", (1280, 720))
    playlist.add_part(1, b"x", 0.25, independent=False, arrived_at=0.0)
    assert not playlist.segments, "a segment starts on a keyframe"
    feed(playlist, 5.0)
    durations = [round(s.duration, 2) for s in playlist.segments]
    assert durations == [2.0, 2.0, 1.0], durations
    text = playlist.render()
    assert "#EXT-X-TARGETDURATION:2" in text and text.count("#EXTINF:2.000,") == 2
    assert text.rstrip().endswith('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part2.4.m4s"')
    assert "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z" in text
    # a 4 s keyframe interval: 4 s segments, and the target duration says so from then on
    slow = MediaPlaylist(PlaylistSettings())
    slow.add_init(1, b"init", "avc1.42e01f", None)
    feed(slow, 8.25, keyframe_every=4.0)
    assert [s.duration for s in slow.segments] == [4.0, 4.0, 0.25]
    assert "#EXT-X-TARGETDURATION:4" in slow.render()


def test_the_window_slides_and_a_new_init_is_a_discontinuity_counted_when_it_leaves() -> None:
    playlist = MediaPlaylist(PlaylistSettings())
    playlist.add_init(1, b"init1", "avc1.42e01f", None)
    feed(playlist, 4.0)
    playlist.add_init(2, b"init2", "avc1.42e01f", None)  # the publisher came back
    feed(playlist, 4.0, init=2)
    text = playlist.render()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and '#EXT-X-MAP:URI="init2.mp4"' in text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in text
    feed(playlist, 2 * KEPT_SEGMENTS, init=2)
    text = playlist.render()
    first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))  # type: ignore[union-attr]
    assert len(playlist.segments) == KEPT_SEGMENTS and first == playlist.segments[0].msn > 0
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text and "#EXT-X-DISCONTINUITY\n" not in text
    assert list(playlist.inits) == [2], "an init no listed segment uses is dropped"


def test_a_part_past_the_end_of_a_segment_is_the_next_segment_s_first() -> None:
    playlist = MediaPlaylist(PlaylistSettings())
    playlist.add_init(1, b"init", "avc1.42e01f", None)
    feed(playlist, 2.0)
    assert playlist.hinted() == (0, 8)
    assert not playlist.has(0, 8)
    feed(playlist, 0.25)  # a keyframe part: segment 0 ends with 8 parts
    assert playlist.segments[0].complete and len(playlist.segments[0].parts) == 8
    assert playlist.has(0, 8) and playlist.has(1, 0) and not playlist.has(1, 1)
    assert playlist.part(0, 8) is None  # …but there is no such file


async def test_a_blocking_reload_wakes_when_its_part_comes() -> None:
    playlist = MediaPlaylist(PlaylistSettings())
    playlist.add_init(1, b"init", "avc1.42e01f", None)
    feed(playlist, 0.25)
    waiting = asyncio.ensure_future(playlist.wait_for(0, 2, within=5))
    await asyncio.sleep(0.05)
    feed(playlist, 0.25)  # part 0.1
    await asyncio.sleep(0.05)
    assert not waiting.done()
    playlist.add_part(1, b"p", 0.25, False, 0.0)  # part 0.2
    assert await asyncio.wait_for(waiting, 1)
    assert not await playlist.wait_for(5, 0, within=0.05)


def test_the_multivariant_playlist_and_the_box_reader() -> None:
    text = multivariant([Variant("high/index.m3u8", 2_500_000, "avc1.42e01f,opus", (1280, 720)),
                         Variant("low/index.m3u8", 700_000, "avc1.42e01f,opus", None)])
    assert 'BANDWIDTH=2500000,CODECS="avc1.42e01f,opus",RESOLUTION=1280x720\nhigh/index.m3u8' in text
    assert 'BANDWIDTH=700000,CODECS="avc1.42e01f,opus"\nlow/index.m3u8' in text
    data = (16).to_bytes(4, "big") + b"moof" + b"12345678" + (12).to_bytes(4, "big") + b"mdat" + b"abcd"
    assert [b.kind for b in boxes(data)] == [b"moof", b"mdat"]
    assert [b.kind for b in boxes(data[:-1])] == [b"moof"], "a box cut short is not read"
