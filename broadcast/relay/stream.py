"""A Stream: everything the relay holds for one stream path (one feed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broadcast.relay.connection import Connection
from broadcast.relay.producer import Producer, Source
from broadcast.relay.renditions import LowMaker, Renditions
from broadcast.relay.streampath import StreamPath

# A publisher silent this long is "stalled" (pages say "reconnecting"), and a new session
# may replace it: ICE would take ~30 s to declare it gone.
STALLED_AFTER_S = 2.0


@dataclass(frozen=True)
class StreamInfo:
    path: str
    live: bool
    video_codec: str | None
    h264_profile: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    publisher: str | None  # "whip", "synthetic", …
    uptime_s: float | None
    viewers: int
    bitrate_in_bps: int
    bitrate_out_bps: int
    frames_in: int
    frames_dropped: int
    keyframe_requests: int
    recording: str = "off"  # the feed's RecordingStatus.state
    stalled: bool = False  # live, but its publisher has sent nothing for STALLED_AFTER_S
    publisher_name: str | None = None  # the publishing link's display name ("Prof. Weber")
    source_error: str | None = None  # a pulled camera's last problem, while it reconnects
    transcoding: str | None = None  # what a pulled source transcodes ("audio AAC → Opus"), once per feed
    on_demand: bool = False  # pulled only while watched or recorded: a viewer may start it when it is not live
    low_rendition: str | None = None  # "publisher" (sends its own), "server" (made while watched), else None
    node: str | None = None  # in a cluster: the node that holds the feed's source
    low_wanted: bool = False  # someone watches the low rendition (a console encodes its own only then)
    privacy_by: str | None = None  # paused for privacy: who did it (nothing of the picture leaves the server)
    privacy_audio: bool = False    # … and the sound still goes on


@dataclass(frozen=True)
class PrivacyPause:
    by: str            # who paused (a person's name and role, for the pages and the event's log)
    since: float       # time.time()
    keep_audio: bool   # the sound goes on (the surgeon keeps talking); the picture never does


class Stream:
    def __init__(self, path: StreamPath, make_low: Callable[[], LowMaker] | None = None) -> None:
        self.path = path
        self.video = Producer(str(path), "video")
        self.audio = Producer(str(path), "audio")
        self.publisher: Connection | None = None
        self.publisher_kind: str | None = None
        self.local_source: Source | None = None  # in-process source (synthetic feed)
        self.viewers: set[Connection] = set()
        self.h264_profile: str | None = None
        self.live_since: float | None = None
        # the low rendition: the publisher's own, or made while someone watches it (`make_low`: how)
        self.renditions = Renditions(path, self.video, make=make_low)
        self.privacy: PrivacyPause | None = None
        # rates, sampled by Broadcaster once a second
        self._sample: tuple[float, int, int] | None = None
        self.bitrate_in = 0
        self.bitrate_out = 0

    @property
    def producers(self) -> tuple[Producer, Producer]:
        return (self.video, self.audio)

    @property
    def live(self) -> bool:
        """A publisher has finished negotiating (its tracks and codecs are known), or an
        in-process source feeds the stream. A page told "live" mid-negotiation would see no
        video codec yet and play the feed as audio only."""
        return (self.publisher is not None and self.live_since is not None) or self.local_source is not None

    @property
    def idle(self) -> bool:
        """Nobody publishes (or is negotiating to) and nobody watches: the stream can be forgotten."""
        return self.publisher is None and self.local_source is None and not self.viewers

    def silent_for(self, now: float | None = None) -> float:
        """Seconds since the source's last frame (since it went live, if none came yet)."""
        if self.live_since is None:
            return 0.0
        now = time.monotonic() if now is None else now
        last = max(self.live_since, self.video.last_frame_at or 0.0, self.audio.last_frame_at or 0.0)
        return max(0.0, now - last)

    @property
    def stalled(self) -> bool:
        # a pulled camera that is reconnecting says so at once (its feed stays attached)
        return self.live and (self.silent_for() >= STALLED_AFTER_S
                              or bool(getattr(self.local_source, "reconnecting", False)))

    def mark_live(self, kind: str) -> None:
        self.publisher_kind = kind
        self.live_since = time.monotonic()

    def mark_offline(self) -> None:
        self.publisher_kind = None
        self.live_since = None
        for producer in self.producers:
            if producer.source is not None:
                producer.detach(producer.source)

    def media_time(self, seconds_ago: float = 0.0) -> float | None:
        """The feed's media clock `seconds_ago` (what a stroke drawn on the picture then is
        kept with): the sender's clock once both tracks have sender reports, as the recorder does."""
        sender = self.video.clock.sender_offset is not None and (
            self.audio.source is None or self.audio.clock.sender_offset is not None)
        return self.video.media_time(seconds_ago, sender)

    def sample_rates(self) -> None:
        now = time.monotonic()
        bytes_in = self.video.bytes_in + self.audio.bytes_in
        bytes_out = self.video.bytes_out + self.audio.bytes_out + self.renditions.low.bytes_out
        if self._sample is not None:
            then, b_in, b_out = self._sample
            elapsed = now - then
            if elapsed > 0:
                self.bitrate_in = int((bytes_in - b_in) * 8 / elapsed)
                self.bitrate_out = int((bytes_out - b_out) * 8 / elapsed)
        self._sample = (now, bytes_in, bytes_out)

    def info(self) -> StreamInfo:
        res = self.video.resolution
        return StreamInfo(
            path=str(self.path),
            live=self.live,
            video_codec=self.video.codec,
            h264_profile=self.h264_profile if self.video.codec == "H264" else None,
            audio_codec=self.audio.codec,
            width=res[0] if res else None,
            height=res[1] if res else None,
            publisher=self.publisher_kind,
            uptime_s=round(time.monotonic() - self.live_since, 1) if self.live_since else None,
            viewers=len(self.viewers),
            bitrate_in_bps=self.bitrate_in,
            bitrate_out_bps=self.bitrate_out,
            frames_in=self.video.frames_in + self.audio.frames_in,
            frames_dropped=self.video.frames_dropped + self.audio.frames_dropped,
            keyframe_requests=self.video.keyframe_requests_sent,
            stalled=self.stalled,
            publisher_name=(self.publisher.participant.name
                            if self.publisher is not None and self.publisher.participant is not None else None),
            source_error=getattr(self.local_source, "error", None),
            transcoding=(getattr(self.video.source, "transcoding", None)
                         or getattr(self.local_source, "transcoding", None)),
            low_rendition=self.renditions.made_by,
            low_wanted=bool(self.renditions.low.readers),
            privacy_by=self.privacy.by if self.privacy else None,
            privacy_audio=bool(self.privacy and self.privacy.keep_audio),
        )

    def set_privacy(self, pause: PrivacyPause | None) -> None:
        """Pause (or resume) every picture of the feed at once: the feed's video and its low
        rendition (the publisher's own too), and its sound unless kept. Kept across a
        reconnect of the publisher: only someone resuming ends it."""
        self.privacy = pause
        video = (self.video, self.renditions.low)
        for producer in video:
            producer.pause() if pause is not None else producer.resume()
        if pause is not None and not pause.keep_audio:
            self.audio.pause()
        else:
            self.audio.resume()

    def close(self) -> None:
        self.renditions.close()
        for producer in self.producers:
            producer.close()
