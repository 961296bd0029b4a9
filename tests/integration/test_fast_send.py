"""The relay's own send path, with real aiortc viewers: each viewer gets RTP written for it
(payload types and extension ids of its own answer), NACKs are answered from its history,
a viewer whose socket backs up drops to a keyframe without holding up the others, sender
reports count what was sent, and the aiortc send path stays selectable."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from broadcast.relay.streampath import StreamPath
from broadcast.sources.synthetic import SyntheticFeed, encode_clip
from broadcast.webrtc.consumer import Consumer
from broadcast.webrtc.viewer import ViewerSession
from signaling.keys import BROADCASTER
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.peers import Viewer, _consume, assert_consecutive, post_offer, publish, watch

PATH = "course/or1/endoscope"


def consumers(server: RunningServer) -> list[Consumer]:
    return [c for s in server.broadcaster.sessions.values() if isinstance(s, ViewerSession) for c in s.consumers]


def renumber(sdp: str) -> str:
    """An offer with other payload types and extension ids than aiortc's own (as a browser's are)."""
    pts = {"97": "111", "98": "112", "99": "113", "100": "114", "101": "115", "102": "116"}
    sdp = re.sub(r"^(m=video \d+ \S+) (.*)$",
                 lambda m: m.group(1) + " " + " ".join(pts.get(p, p) for p in m.group(2).split()), sdp, flags=re.M)
    sdp = re.sub(r"^a=(rtpmap|fmtp|rtcp-fb):(\d+)",
                 lambda m: f"a={m.group(1)}:{pts.get(m.group(2), m.group(2))}", sdp, flags=re.M)
    sdp = re.sub(r"apt=(\d+)", lambda m: f"apt={pts.get(m.group(1), m.group(1))}", sdp)
    return sdp.replace("a=extmap:1 ", "a=extmap:5 ").replace("a=extmap:3 ", "a=extmap:9 ")


async def watch_renumbered(server: RunningServer) -> Viewer:
    pc = RTCPeerConnection()
    viewer = Viewer(pc)
    pc.addTransceiver("video", direction="recvonly")
    pc.on("track", lambda track: viewer.tasks.append(asyncio.ensure_future(_consume(viewer, track))))
    await pc.setLocalDescription(await pc.createOffer())
    munged = renumber(pc.localDescription.sdp)
    await pc.setLocalDescription(RTCSessionDescription(munged, "offer"))
    status, body, headers = await post_offer(server.http, f"{server.base}/whep/{PATH}", munged)
    assert status == 201, body
    assert "a=rtpmap:111 VP8/90000" in body and "a=extmap:5 " in body, body
    viewer.session_url = server.base + headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return viewer


async def test_viewers_with_their_own_payload_types_and_extension_ids_on_one_feed(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=True)
    plain = await watch(server.http, server.base, PATH, audio=True)
    other = await watch_renumbered(server)
    await plain.wait_frames(60)
    await other.wait_frames(60)
    assert_consecutive(plain.counters, "aiortc's numbering")
    assert_consecutive(other.counters, "other numbering")
    assert plain.audio_frames > 50
    fast = [c.fast for c in consumers(server)]
    assert all(f is not None and f.packets_sent > 0 for f in fast), "every viewer on the fast path"
    assert {f.params.payload_type for f in fast if f is not None and f.params.payload_type != 111} >= {97}
    assert any(f is not None and f.params.payload_type == 111 and f.params.mid_id == 5 for f in fast)
    for viewer in (plain, other):
        await viewer.close(server.http)
    await pub.pc.close()


async def test_a_nacked_packet_is_sent_again_and_no_frame_is_lost(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(20)
    consumer = next(c for c in consumers(server) if c.kind == "video")
    assert consumer.fast is not None and consumer._link is not None
    link = consumer._link
    send_many = link.send_many
    dropped: list[int] = []

    def lossy_send_many(packets: list[bytes]) -> None:
        if not dropped and consumer.fast is not None and consumer.fast.packets_sent > 100:
            dropped.append(int.from_bytes(packets[0][2:4], "big"))
            packets = packets[1:]  # lost on the way: the viewer NACKs it
        send_many(packets)

    link.send_many = lossy_send_many  # type: ignore[method-assign]
    at = len(viewer.counters)
    await viewer.wait_until(lambda: len(viewer.counters) > at + 60, 10, "viewer stopped")
    assert dropped and consumer.fast.retransmitted >= 1, "the NACKed packet was not sent again"
    assert_consecutive(viewer.counters, "viewer after a lost packet")
    await viewer.close(server.http)
    await pub.pc.close()


async def test_a_viewer_whose_socket_backs_up_drops_to_a_keyframe_and_holds_up_no_one(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    slow = await watch(server.http, server.base, PATH, audio=False)
    fast = await watch(server.http, server.base, PATH, audio=False)
    await slow.wait_frames(20)
    await fast.wait_frames(20)
    slow_consumer, _ = sorted((c for c in consumers(server)), key=lambda c: c.created_at)
    assert slow_consumer._link is not None
    slow_consumer._link.backlog = lambda: 10 * 1024 * 1024  # type: ignore[method-assign]
    at_fast, at_slow = len(fast.counters), len(slow.counters)
    await asyncio.sleep(2.0)
    assert len(fast.counters) - at_fast >= 45, "the other viewer was held up"
    assert slow_consumer.frames_dropped >= 45 and slow_consumer.overflows >= 1
    assert len(slow.counters) - at_slow <= 5
    del slow_consumer._link.backlog  # the socket drains: it recovers on a keyframe
    at_slow = len(slow.counters)
    await slow.wait_until(lambda: len(slow.counters) > at_slow + 20, 10, "slow viewer did not recover")
    assert_consecutive(fast.counters, "the other viewer")
    for viewer in (slow, fast):
        await viewer.close(server.http)
    await pub.pc.close()


async def test_sender_reports_count_what_the_fast_path_sent(server: RunningServer) -> None:
    from broadcast.webrtc.aiortchooks import install_sender_report_listener
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    pc = RTCPeerConnection()
    viewer = Viewer(pc)
    pc.addTransceiver("video", direction="recvonly")
    reports: list[tuple[int, int, int]] = []

    def on_track(track: Any) -> None:
        receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
        install_sender_report_listener(receiver, lambda ssrc, ntp, rtp: reports.append((ssrc, ntp, rtp)))
        viewer.tasks.append(asyncio.ensure_future(_consume(viewer, track)))

    pc.on("track", on_track)
    await pc.setLocalDescription(await pc.createOffer())
    status, body, headers = await post_offer(server.http, f"{server.base}/whep/{PATH}", pc.localDescription.sdp)
    assert status == 201
    viewer.session_url = server.base + headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    await viewer.wait_until(lambda: len(reports) >= 2, 8, "no sender report")
    consumer = next(c for c in consumers(server) if c.kind == "video")
    assert consumer.fast is not None
    assert {ssrc for ssrc, _, _ in reports} == {consumer.fast.params.ssrc}
    assert reports[-1][1] > reports[0][1], "NTP time moves on"
    await viewer.close(server.http)
    await pub.pc.close()


async def test_the_aiortc_send_path_stays_selectable() -> None:
    runner, base, app = await start_server(replace(make_config(), relay_send_path="aiortc"))
    try:
        async with organizer_session(app) as http:
            pub = await publish(http, base, PATH, "VP8", audio=True)
            viewer = await watch(http, base, PATH, audio=True)
            await viewer.wait_frames(30)
            assert_consecutive(viewer.counters, "viewer on aiortc's path")
            sessions = [s for s in app[BROADCASTER].sessions.values() if isinstance(s, ViewerSession)]
            assert sessions and all(c.fast is None and c.frames_sent > 0 for s in sessions for c in s.consumers)
            await viewer.close(http)
            await pub.pc.close()
    finally:
        await runner.cleanup()


async def test_viewers_get_aead_aes_128_gcm(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(5)
    session = next(s for s in server.broadcaster.sessions.values() if isinstance(s, ViewerSession))
    dtls = next(t.sender.transport for t in session.pc.getTransceivers())
    assert dtls._ssl.get_selected_srtp_profile() == b"SRTP_AEAD_AES_128_GCM"
    await viewer.close(server.http)
    await pub.pc.close()


@pytest.mark.parametrize("gso", [True, False])
async def test_a_frames_packets_leave_in_one_system_call_per_size_with_udp_gso(gso: bool) -> None:
    runner, base, app = await start_server(make_config(relay_udp_gso=gso))
    # frames of several packets each (640×360 at 1.5 Mbit/s): what GSO batches
    feed = SyntheticFeed(await asyncio.to_thread(encode_clip, "H264", 640, 360, 30, 1, 1_500_000), "synthetic")
    stream = app[BROADCASTER].attach_source(StreamPath.parse(PATH), (feed, "H264"), feed)
    feed.start(stream.video, stream.audio)
    try:
        async with organizer_session(app) as http:
            server = RunningServer(base, app, http)
            viewer = await watch(http, base, PATH, audio=True)
            await viewer.wait_frames(60)
            links = [c._link for c in consumers(server) if c._link is not None and c.kind == "video"]
            assert links
            gso_sends = sum(link.gso_sends for link in links)
            assert (gso_sends > 30) is gso, gso_sends
            assert viewer.sizes == {(640, 360)}
            gaps = [b - a for a, b in zip(viewer.frame_times, viewer.frame_times[1:], strict=False)]
            assert max(gaps) < 0.25, f"a frame came {max(gaps):.2f} s after the one before"
            await viewer.close(http)
    finally:
        await feed.stop()
        await runner.cleanup()
