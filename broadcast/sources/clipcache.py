"""The demo's encoded clips, kept on disk between starts: encoding 4 s of 720p takes
seconds, reading them back a few milliseconds.

A cache file is named after everything that shapes the clip (its parameters and the code
that draws and encodes it), so a changed test picture or encoder setting encodes anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from pathlib import Path

from broadcast.sources import synthetic, testpattern
from broadcast.sources.synthetic import ClipPacket, EncodedClip, encode_clip

logger = logging.getLogger(__name__)

_FORMAT = 1
_PACKET = struct.Struct("!BBqI")  # kind (0 video, 1 audio), keyframe, pts, size


def _key(params: dict[str, object]) -> str:
    digest = hashlib.sha256(json.dumps({"format": _FORMAT, **params}, sort_keys=True).encode())
    for module in (synthetic, testpattern):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:20]


def _write(path: Path, clip: EncodedClip) -> None:
    header = json.dumps({"codec": clip.codec, "width": clip.width, "height": clip.height,
                         "fps": clip.fps, "profile": clip.profile}).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(struct.pack("!I", len(header)) + header)
        for kind, packets in ((0, clip.video), (1, clip.audio)):
            for p in packets:
                fh.write(_PACKET.pack(kind, p.keyframe, p.pts, len(p.data)) + p.data)
    os.replace(tmp, path)  # whole or not at all


def _read(path: Path) -> EncodedClip:
    data = path.read_bytes()
    (size,) = struct.unpack_from("!I", data)
    header = json.loads(data[4:4 + size])
    clip = EncodedClip(header["codec"], header["width"], header["height"], header["fps"], header["profile"])
    at = 4 + size
    while at < len(data):
        kind, keyframe, pts, length = _PACKET.unpack_from(data, at)
        at += _PACKET.size
        if at + length > len(data):
            raise ValueError("cut short")
        (clip.audio if kind else clip.video).append(ClipPacket(data[at:at + length], pts, bool(keyframe)))
        at += length
    if not clip.video or not clip.audio:
        raise ValueError("no video or no audio")
    return clip


def cached_clip(directory: Path, codec: str, width: int, height: int) -> tuple[EncodedClip, bool]:
    """The clip from `directory` if it is there and whole, else encoded and stored.
    Returns (clip, came from the cache)."""
    path = directory / f"clip-{codec.lower()}-{width}x{height}-{_key({'codec': codec, 'w': width, 'h': height})}.bin"
    if path.exists():
        try:
            return _read(path), True
        except (OSError, ValueError, KeyError, struct.error) as exc:
            logger.info("demo clip cache %s unreadable (%s); encoding again", path.name, exc)
    clip = encode_clip(codec, width, height)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob(f"clip-{codec.lower()}-{width}x{height}-*.bin"):
            old.unlink(missing_ok=True)
        _write(path, clip)
    except OSError as exc:  # a read-only data dir: the demo still runs, it only starts slower
        logger.info("could not keep the demo clip in %s (%s)", directory, exc)
    return clip, False
