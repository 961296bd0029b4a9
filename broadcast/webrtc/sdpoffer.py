"""Checking and shaping SDP offers before aiortc sees them.

The relay forwards encoded frames, so one video codec must run end to end per feed and
any H.264 profile must be accepted (aiortc would refuse High/Main profile offers because it
matches profiles for its own encoder). Offers are edited line by line, so attributes aiortc
does not know survive untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiortc import sdp as aiortc_sdp

from broadcast.errors import InvalidOffer, UnsupportedOffer

MAX_SDP_BYTES = 32 * 1024
# The profile aiortc's codec table knows; offers are mapped to it and the answer is mapped back.
AIORTC_H264_PROFILE = "42e01f"
SUPPORTED_VIDEO = ("H264", "VP8")


@dataclass
class Codec:
    payload_type: int
    name: str  # as in rtpmap, e.g. "H264", "VP8", "opus", "rtx"
    clock_rate: int
    params: dict[str, str] = field(default_factory=dict)

    @property
    def upper(self) -> str:
        return self.name.upper()

    @property
    def h264_profile(self) -> str:
        return self.params.get("profile-level-id", "42e01f").lower()


@dataclass
class Section:
    kind: str
    lines: list[str]
    codecs: dict[int, Codec]
    direction: str

    @property
    def m_line(self) -> str:
        return self.lines[0]


@dataclass
class ShapedOffer:
    """An offer edited for aiortc, and what to undo in the answer."""

    sdp: str
    video_codec: str | None  # "H264" / "VP8", or None without video
    h264_profile: str | None
    has_audio: bool
    has_video: bool
    client_hint: str  # e.g. "FFmpeg" when the offer says who made it
    restore_profiles: dict[int, str] = field(default_factory=dict)
    # a publisher's second video track: its own low rendition of the same camera (same codec)
    has_low_video: bool = False
    simulcast_dropped: bool = False  # the offer asked for RID simulcast, answered with one encoding


def _split(sdp_text: str) -> tuple[list[str], list[Section]]:
    lines = [ln for ln in sdp_text.replace("\r\n", "\n").split("\n") if ln.strip()]
    session: list[str] = []
    sections: list[Section] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith("m="):
            current = [line]
            sections.append(Section(line[2:].split(" ", 1)[0], current, {}, "sendrecv"))
        elif current is None:
            session.append(line)
        else:
            current.append(line)
    for section in sections:
        for line in section.lines[1:]:
            if line.startswith("a=rtpmap:"):
                m = re.match(r"a=rtpmap:(\d+) ([^/\s]+)/(\d+)", line)
                if m:
                    pt = int(m.group(1))
                    section.codecs[pt] = Codec(pt, m.group(2), int(m.group(3)))
            elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
                section.direction = line[2:]
        for line in section.lines[1:]:
            m = re.match(r"a=fmtp:(\d+) (.*)", line)
            if m and int(m.group(1)) in section.codecs:
                params = section.codecs[int(m.group(1))].params
                for item in m.group(2).split(";"):
                    if "=" in item:
                        key, _, value = item.strip().partition("=")
                        params[key.strip()] = value.strip()
    return session, sections


def _keep_payload_types(section: Section, keep: list[int]) -> None:
    """Drop every payload type not in `keep` (and the RTX streams of dropped ones)."""
    keep_set = set(keep)
    for codec in section.codecs.values():
        apt = codec.params.get("apt")
        if codec.upper == "RTX" and apt and apt.isdigit() and int(apt) in keep_set:
            keep_set.add(codec.payload_type)
    parts = section.m_line.split(" ")
    ordered = [p for p in parts[3:] if p.isdigit() and int(p) in keep_set]
    section.lines[0] = " ".join([*parts[:3], *ordered])
    out = [section.lines[0]]
    for line in section.lines[1:]:
        m = re.match(r"a=(rtpmap|fmtp|rtcp-fb):(\d+)[ ]", line)
        if m and int(m.group(2)) not in keep_set:
            continue
        out.append(line)
    section.lines[:] = out
    for pt in list(section.codecs):
        if pt not in keep_set:
            del section.codecs[pt]


def _set_profile(section: Section, pt: int, profile: str) -> None:
    for i, line in enumerate(section.lines):
        if line.startswith(f"a=fmtp:{pt} "):
            if "profile-level-id=" in line:
                section.lines[i] = re.sub(
                    r"profile-level-id=[0-9a-fA-F]{6}", f"profile-level-id={profile}", line
                )
            else:
                section.lines[i] = f"{line};profile-level-id={profile}"
            return
    section.lines.append(f"a=fmtp:{pt} profile-level-id={profile};packetization-mode=1")


def _usable_video(codec: Codec) -> bool:
    if codec.upper == "VP8":
        return codec.clock_rate == 90000
    if codec.upper == "H264":
        # aiortc depacketizes mode 1 only (single NAL, STAP-A, FU-A)
        return codec.clock_rate == 90000 and codec.params.get("packetization-mode") == "1"
    return False


def _parse(sdp_text: str) -> tuple[list[str], list[Section]]:
    if len(sdp_text.encode("utf-8", "replace")) > MAX_SDP_BYTES:
        raise InvalidOffer(f"SDP offer is larger than {MAX_SDP_BYTES // 1024} KiB")
    if not sdp_text.lstrip().startswith("v=0"):
        raise InvalidOffer("body is not an SDP offer: it must start with 'v=0'")
    try:
        parsed = aiortc_sdp.SessionDescription.parse(sdp_text)
    except Exception as exc:
        raise InvalidOffer(f"SDP offer could not be parsed: {exc}") from None
    for media in parsed.media:
        if media.kind in ("audio", "video", "application") and (
            media.ice is None or not media.ice.usernameFragment or not media.ice.password
        ):
            raise InvalidOffer("SDP offer lacks ICE credentials (a=ice-ufrag / a=ice-pwd)")
        if media.kind in ("audio", "video", "application") and (
            media.dtls is None or not media.dtls.fingerprints
        ):
            raise InvalidOffer("SDP offer lacks a DTLS fingerprint (a=fingerprint)")
    session, sections = _split(sdp_text)
    if not sections:
        raise InvalidOffer("SDP offer has no media sections (m= lines)")
    return session, sections


def _client_hint(session: list[str]) -> str:
    text = " ".join(line for line in session if line.startswith(("o=", "s=")))
    for name in ("FFmpeg", "GStreamer", "OBS", "mozilla", "aiortc"):
        if name.lower() in text.lower():
            return name
    return ""


def _count(sections: list[Section], publisher: bool = False) -> dict[str, int]:
    counts = {"audio": 0, "video": 0, "application": 0}
    for s in sections:
        if s.kind not in counts:
            raise UnsupportedOffer(f"media type {s.kind!r} is not supported (audio, video, data)")
        if s.m_line.split(" ")[1:2] != ["0"]:  # port 0 = rejected section, ignore it
            counts[s.kind] += 1
    max_video = 2 if publisher else 1
    if counts["video"] > max_video or counts["audio"] > 1 or counts["application"] > 1:
        allowed = ("at most two video tracks (the second is the feed's low rendition, at most 640×360) "
                   "and one audio track" if publisher else "at most one video and one audio track")
        raise UnsupportedOffer(
            f"too many tracks: one session carries one feed, i.e. {allowed} "
            f"(got {counts['video']} video, {counts['audio']} audio); "
            "publish each camera as its own feed"
        )
    return counts


def _drop_simulcast(section: Section) -> bool:
    """aiortc 1.16 receives one RTP stream per m-line (no RID simulcast): an offer's
    a=simulcast / a=rid are taken out, so the answer has none and the sender sends one
    encoding (JSEP: its first)."""
    kept = [ln for ln in section.lines if not ln.startswith(("a=simulcast:", "a=rid:"))]
    dropped = len(kept) != len(section.lines)
    section.lines[:] = kept
    return dropped


def _join(session: list[str], sections: list[Section]) -> str:
    lines = list(session)
    for s in sections:
        lines.extend(s.lines)
    return "\r\n".join(lines) + "\r\n"


def _shape_audio(section: Section) -> None:
    opus = [c.payload_type for c in section.codecs.values() if c.upper == "OPUS"]
    if not opus:
        raise UnsupportedOffer("audio must be Opus (48 kHz); the offer has no Opus payload type")
    _keep_payload_types(section, opus[:1])


def shape_publish_offer(sdp_text: str, preferred: tuple[str, ...] = SUPPORTED_VIDEO,
                        keep_codec: str | None = None) -> ShapedOffer:
    """Validate a publisher's offer and narrow it to one video codec and Opus.

    `keep_codec` is the codec viewers of this feed already use: when the publisher offers
    it, it wins, so viewers keep playing across a publisher reconnect.
    """
    session, sections = _parse(sdp_text)
    counts = _count(sections, publisher=True)
    if counts["audio"] + counts["video"] == 0:
        raise UnsupportedOffer("the offer has no audio or video track to publish")
    shaped = ShapedOffer("", None, None, counts["audio"] > 0, counts["video"] > 0,
                         _client_hint(session))
    order = list(preferred)
    if keep_codec in order:
        order.remove(keep_codec)
        order.insert(0, keep_codec)
    for section in sections:
        if section.kind in ("audio", "video") and section.direction in ("recvonly", "inactive"):
            raise UnsupportedOffer(
                f"the {section.kind} track is {section.direction}: a publisher must send "
                "(sendonly or sendrecv)"
            )
        if section.kind == "audio":
            _shape_audio(section)
        elif section.kind == "video" and section.m_line.split(" ")[1:2] == ["0"]:
            continue  # a rejected section carries nothing
        elif section.kind == "video" and shaped.video_codec is not None:
            # the second video track is the feed's low rendition: viewers switch between the
            # two on a keyframe within one negotiated codec, so it must be the same codec
            candidates = [c for c in section.codecs.values()
                          if _usable_video(c) and c.upper == shaped.video_codec]
            same = next((c for c in candidates if c.h264_profile == shaped.h264_profile),
                        candidates[0] if candidates else None)
            if same is None:
                raise UnsupportedOffer(
                    f"the second video track (the feed's low rendition) must use the first one's codec, "
                    f"{shaped.video_codec}" + (" with packetization-mode=1" if shaped.video_codec == "H264" else "")
                )
            _keep_payload_types(section, [same.payload_type])
            shaped.simulcast_dropped |= _drop_simulcast(section)
            shaped.has_low_video = True
            if same.upper == "H264":
                shaped.restore_profiles[same.payload_type] = same.h264_profile
                _set_profile(section, same.payload_type, AIORTC_H264_PROFILE)
        elif section.kind == "video":
            shaped.simulcast_dropped |= _drop_simulcast(section)
            usable = [c for c in section.codecs.values() if _usable_video(c)]
            chosen = None
            for name in order:
                chosen = next((c for c in usable if c.upper == name), None)
                if chosen:
                    break
            if chosen is None:
                offered = sorted({c.name for c in section.codecs.values() if c.upper != "RTX"})
                raise UnsupportedOffer(
                    f"no supported video codec offered ({', '.join(offered) or 'none'}); "
                    "publish H.264 (packetization-mode=1, any profile) or VP8"
                )
            _keep_payload_types(section, [chosen.payload_type])
            shaped.video_codec = chosen.upper
            if chosen.upper == "H264":
                shaped.h264_profile = chosen.h264_profile
                shaped.restore_profiles[chosen.payload_type] = chosen.h264_profile
                _set_profile(section, chosen.payload_type, AIORTC_H264_PROFILE)
    shaped.sdp = _join(session, sections)
    return shaped


def shape_play_offer(sdp_text: str, video_codec: str | None,
                     h264_profile: str | None) -> ShapedOffer:
    """Validate a viewer's offer and narrow it to the feed's codec.

    For H.264 the viewer's payload type with the feed's exact profile is preferred, then the
    same profile_idc, then any H.264: browsers decode any profile they list.
    """
    session, sections = _parse(sdp_text)
    counts = _count(sections)
    if counts["audio"] + counts["video"] == 0:
        raise UnsupportedOffer("the offer has no audio or video track to receive")
    shaped = ShapedOffer("", video_codec, h264_profile, counts["audio"] > 0,
                         counts["video"] > 0, _client_hint(session))
    for section in sections:
        if section.kind in ("audio", "video") and section.direction in ("sendonly", "inactive"):
            raise UnsupportedOffer(
                f"the {section.kind} track is {section.direction}: a viewer must receive "
                "(recvonly or sendrecv)"
            )
        if section.kind == "audio":
            _shape_audio(section)
        elif section.kind == "video":
            if video_codec is None:
                raise UnsupportedOffer("this feed has no video; offer audio only")
            usable = [c for c in section.codecs.values()
                      if _usable_video(c) and c.upper == video_codec]
            if not usable:
                raise UnsupportedOffer(
                    f"this feed is {video_codec}; the offer cannot receive {video_codec}"
                    + (" with packetization-mode=1" if video_codec == "H264" else "")
                )
            chosen = usable[0]
            if video_codec == "H264" and h264_profile:
                chosen = (
                    next((c for c in usable if c.h264_profile == h264_profile), None)
                    or next((c for c in usable if c.h264_profile[:2] == h264_profile[:2]), None)
                    or usable[0]
                )
            _keep_payload_types(section, [chosen.payload_type])
            if video_codec == "H264":
                shaped.restore_profiles[chosen.payload_type] = chosen.h264_profile
                _set_profile(section, chosen.payload_type, AIORTC_H264_PROFILE)
    shaped.sdp = _join(session, sections)
    return shaped


def shape_data_offer(sdp_text: str) -> ShapedOffer:
    """Validate an offer for a data-channel-only connection (the Q&A without media)."""
    session, sections = _parse(sdp_text)
    counts = _count(sections)
    if counts["audio"] + counts["video"]:
        raise UnsupportedOffer("a Q&A connection carries only the data channel; play feeds with "
                               "WHEP (which can carry the qa channel too)")
    if counts["application"] == 0:
        raise UnsupportedOffer("the offer has no data channel (m=application); create the "
                               "'qa' data channel before making the offer")
    return ShapedOffer(_join(session, sections), None, None, False, False, _client_hint(session))


def restore_answer(answer_sdp: str, shaped: ShapedOffer) -> str:
    """Put the peer's own H.264 profile back into aiortc's answer."""
    if not shaped.restore_profiles:
        return answer_sdp
    session, sections = _split(answer_sdp)
    for section in sections:
        for pt, profile in shaped.restore_profiles.items():
            if pt in section.codecs:
                _set_profile(section, pt, profile)
    return _join(session, sections)
