"""The demo's clip cache: a second start reads what the first encoded, byte for byte, and a
damaged cache file is encoded again instead of breaking the demo."""

from __future__ import annotations

import time
from pathlib import Path

from broadcast.sources.clipcache import cached_clip


def test_the_second_start_reads_the_first_ones_clip(tmp_path: Path) -> None:
    started = time.monotonic()
    first, cached = cached_clip(tmp_path, "VP8", 160, 120)
    encoded_s = time.monotonic() - started
    assert not cached and first.video and first.audio
    started = time.monotonic()
    again, cached = cached_clip(tmp_path, "VP8", 160, 120)
    print(f"\nencode {encoded_s * 1000:.0f} ms, read from the cache {(time.monotonic() - started) * 1000:.1f} ms")
    assert cached
    assert [(p.data, p.pts, p.keyframe) for p in again.video] == [(p.data, p.pts, p.keyframe) for p in first.video]
    assert [(p.data, p.pts) for p in again.audio] == [(p.data, p.pts) for p in first.audio]
    assert (again.codec, again.width, again.height, again.fps) == ("VP8", 160, 120, 30)


def test_a_damaged_cache_file_is_encoded_again(tmp_path: Path) -> None:
    cached_clip(tmp_path, "H264", 160, 120)
    (path,) = tmp_path.glob("clip-h264-160x120-*.bin")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a start killed while writing
    clip, cached = cached_clip(tmp_path, "H264", 160, 120)
    assert not cached and clip.video[0].keyframe
    assert cached_clip(tmp_path, "H264", 160, 120)[1]
    assert len(list(tmp_path.glob("clip-h264-*.bin"))) == 1
