"""A/V sync from RTCP sender reports, checked on ten simulated minutes.

Frames are pushed straight into a stream's producers far faster than real time, so their
arrival times say nothing about when they were captured: only the sender reports can put
audio next to the picture. The sender's audio clock runs 100 ppm fast (60 ms over ten
minutes, a plausible sound card), which the recorder must correct as it goes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import av

from broadcast.recording.recorder import Recorder, RecorderSettings
from broadcast.relay.stream import Stream
from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import encode_clip

SECONDS = 600
DRIFT = 100e-6           # the audio clock runs this much fast
AUDIO_ORIGIN = 3_000_000_000  # random-looking RTP origins; audio wraps past 2**32 on the way
VIDEO_ORIGIN = 123_456


class FakeSender:
    name = "simulated encoder"

    async def request_keyframe(self) -> bool:
        return True


def opus_packet(k: int) -> bytes:
    return bytes([0xFC]) + k.to_bytes(4, "big")  # a TOC byte and the packet's number


async def test_audio_stays_on_the_picture_for_ten_minutes(tmp_path: Path) -> None:
    clip = encode_clip("H264", 160, 120, 30, 2, 200_000)
    idr = next(p.data for p in clip.video if p.keyframe)
    p_frame = next(p.data for p in clip.video if not p.keyframe)
    stream = Stream(StreamPath("sim", "or1", "cam"))
    sender = FakeSender()
    stream.video.attach(sender, "H264")
    stream.audio.attach(sender, "opus")
    recorder = Recorder(stream.path, tmp_path, RecorderSettings(segment_s=SECONDS + 60))
    recorder.attach(stream)
    wall0 = 1_800_000_000.0  # the sender's NTP clock, in Unix seconds

    def video_ts(t: float) -> int:
        return VIDEO_ORIGIN + round(t * 90_000)

    def audio_ts(t: float) -> int:
        return (AUDIO_ORIGIN + round(t * 48_000 * (1 + DRIFT))) % 2**32

    video_n, audio_n = 0, 0
    for tick in range(SECONDS * 50):  # 20 ms steps
        t = tick * 0.02
        while video_n / 30 <= t:
            vt = video_n / 30
            stream.video.push(sender, idr if video_n % 60 == 0 else p_frame, video_ts(vt))
            video_n += 1
        stream.audio.push(sender, opus_packet(audio_n), audio_ts(t))
        audio_n += 1
        if tick % 50 == 1:  # a sender report for each track every second
            stream.video.sender_report(sender, wall0 + t, video_ts(t))
            stream.audio.sender_report(sender, wall0 + t, audio_ts(t))
        if tick < 3:
            await asyncio.sleep(0.2)  # at the start the writer keeps up, as it does live
        elif tick % 500 == 0:
            await asyncio.sleep(0)
    await recorder.stop()
    assert recorder.error is None
    (segment,) = recorder.segments
    errors = []
    with av.open(str(tmp_path / segment.file)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        first_video_t = None
        for packet in container.demux(video, audio):
            if packet.dts is None:
                continue
            at = float(packet.pts * packet.time_base)
            if packet.stream is video:
                first_video_t = at if first_video_t is None else first_video_t
                continue
            k = int.from_bytes(bytes(packet)[1:5], "big")
            errors.append((k * 0.02, at - k * 0.02))  # file time - capture time
    assert first_video_t == 0.0
    start_error = errors[0][1] + 0.0  # the first video frame sits at capture time 0
    end_error = errors[-1][1]
    worst = max(abs(e) for _, e in errors)
    print(f"\naudio vs picture: {start_error * 1000:+.1f} ms at the start, {end_error * 1000:+.1f} ms "
          f"after {errors[-1][0]:.0f} s, worst {worst * 1000:.1f} ms; {recorder.sync_corrections} "
          f"corrections, {len(errors)} of {audio_n} audio packets written")
    assert abs(start_error) < 0.040
    assert worst < 0.040, "audio drifted off the picture"
    assert errors[-1][0] > SECONDS - 2
    assert len(errors) >= audio_n * 0.99
