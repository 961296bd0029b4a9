"""What crosses the worker link as JSON: a participant, a shaped offer, ICE servers and a
feed's egress figures, each turned into plain values and back."""

from __future__ import annotations

import dataclasses
from typing import Any

from broadcast.participant import Participant, Role
from broadcast.relay.stream import Stream
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import IceServer


def encode_participant(participant: Participant | None) -> dict[str, Any] | None:
    return dataclasses.asdict(participant) if participant is not None else None


def decode_participant(data: Any) -> Participant | None:
    if data is None:
        return None
    return Participant(event=str(data["event"]), role=Role(data["role"]), name=str(data["name"]),
                       token_id=str(data["token_id"]), theatre=data.get("theatre"),
                       guest=bool(data.get("guest", False)))


def encode_shaped_offer(shaped: ShapedOffer) -> dict[str, Any]:
    data = dataclasses.asdict(shaped)
    data["restore_profiles"] = [[pt, profile] for pt, profile in shaped.restore_profiles.items()]
    return data


def decode_shaped_offer(data: dict[str, Any]) -> ShapedOffer:
    return ShapedOffer(
        sdp=str(data["sdp"]), video_codec=data.get("video_codec"), h264_profile=data.get("h264_profile"),
        has_audio=bool(data["has_audio"]), has_video=bool(data["has_video"]),
        client_hint=str(data.get("client_hint", "")),
        restore_profiles={int(pt): str(profile) for pt, profile in data.get("restore_profiles", [])})


def encode_ice_servers(servers: list[IceServer]) -> list[dict[str, Any]]:
    # the TURN secret goes over the socket pair, never on a command line (ps shows those)
    return [dataclasses.asdict(server) for server in servers]


def decode_ice_servers(data: list[dict[str, Any]]) -> list[IceServer]:
    return [IceServer(urls=list(s["urls"]), username=s.get("username"), credential=s.get("credential"),
                      secret=s.get("secret"), ttl_s=int(s.get("ttl_s", 24 * 3600))) for s in data]


def feed_figures(stream: Stream) -> list[int]:
    """A mirrored feed's egress in the worker: video bytes and drops, audio bytes and drops, the
    low rendition's bytes and drops."""
    low = stream.renditions.low
    return [stream.video.bytes_out, stream.video.frames_dropped, stream.audio.bytes_out, stream.audio.frames_dropped,
            low.bytes_out, low.frames_dropped]
