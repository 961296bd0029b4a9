"""The worker link's parts: the socket framing, what crosses it as JSON, the port split."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from broadcast.participant import Participant, Role
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import IceServer
from broadcast.webrtc.udpports import UdpPortRange
from broadcast.workers.messages import (
    decode_ice_servers,
    decode_participant,
    decode_shaped_offer,
    encode_ice_servers,
    encode_participant,
    encode_shaped_offer,
)
from broadcast.workers.pool import split_ports
from broadcast.workers.wire import HEADER, KEYFRAME_FLAG, MAX_BODY, VIDEO_FLAG, Channel, ChannelClosed, RemoteError


def test_ports_split_in_equal_parts_the_front_first() -> None:
    parts = split_ports(UdpPortRange(40000, 40199), 3)
    assert [(p.low, p.high) for p in parts] == [(40000, 40066), (40067, 40133), (40134, 40199)]
    assert sum(p.size for p in parts) == 200
    assert split_ports(UdpPortRange(40000, 40009), 1) == [UdpPortRange(40000, 40009)]
    with pytest.raises(ValueError, match="fewer than"):
        split_ports(UdpPortRange(40000, 40001), 3)


def test_what_crosses_as_json_comes_back_the_same() -> None:
    who = Participant("course", Role.FACULTY, "Prof. Weber", "jti-1", theatre="or2")
    assert decode_participant(encode_participant(who)) == who
    assert decode_participant(encode_participant(None)) is None
    shaped = ShapedOffer("v=0\r\n", "H264", "42e01f", True, True, "FFmpeg", {102: "profile-level-id=64001f"})
    assert decode_shaped_offer(encode_shaped_offer(shaped)) == shaped
    servers = [IceServer(["turn:t.example:3478"], secret="s3cret", ttl_s=600), IceServer(["stun:s.example"])]
    assert decode_ice_servers(encode_ice_servers(servers)) == servers


async def channel_pair() -> tuple[Channel, Channel, list[Any], list[Any]]:
    a_sock, b_sock = socket.socketpair()
    got_a: list[Any] = []
    got_b: list[Any] = []
    a = Channel(got_a.append, lambda *f: got_a.append(f), name="a")
    b = Channel(got_b.append, lambda *f: got_b.append(f), name="b")
    loop = asyncio.get_running_loop()
    await loop.create_unix_connection(lambda: a, sock=a_sock)
    await loop.create_unix_connection(lambda: b, sock=b_sock)
    return a, b, got_a, got_b


async def test_frames_and_control_arrive_in_order_and_requests_get_replies() -> None:
    a, b, _, got_b = await channel_pair()
    big = bytes(range(256)) * 2000  # 512 KB: read in many pieces
    a.send({"type": "reset", "feed": 1})
    a.send_frame(1, VIDEO_FLAG | KEYFRAME_FLAG, 2**40, big)
    a.send_frame(1, 0, -5, b"opus")
    while len(got_b) < 3:
        await asyncio.sleep(0.01)
    assert got_b[0] == {"type": "reset", "feed": 1}
    assert got_b[1] == (1, VIDEO_FLAG | KEYFRAME_FLAG, 2**40, big)
    assert got_b[2] == (1, 0, -5, b"opus")

    def answer(message: dict[str, Any]) -> None:
        if message.get("type") == "ping":
            b.reply(message, pong=message["n"])
        elif message.get("type") == "fail":
            b.reply_error(message, ValueError("no such feed"))

    b.on_control = answer
    assert (await a.request({"type": "ping", "n": 7}))["pong"] == 7
    with pytest.raises(RemoteError, match="no such feed") as refused:
        await a.request({"type": "fail"})
    assert refused.value.kind == "ValueError"
    # the other side goes: a request waiting for it fails at once, a send is a no-op
    pending = asyncio.ensure_future(a.request({"type": "never answered"}))
    await asyncio.sleep(0.05)
    b.close()
    with pytest.raises(ChannelClosed):
        await pending
    a.send({"type": "after"})
    with pytest.raises(ChannelClosed):
        await a.request({"type": "after"})


async def test_a_broken_message_is_logged_and_an_oversized_one_closes_the_link() -> None:
    a, b, _, got_b = await channel_pair()
    assert a.transport is not None
    body = b"not json"
    a.transport.write(HEADER.pack(len(body), 1) + body)
    a.send({"type": "still here"})
    while not got_b:
        await asyncio.sleep(0.01)
    assert got_b == [{"type": "still here"}]
    a.transport.write(HEADER.pack(MAX_BODY + 1, 2))
    for _ in range(100):
        if b.closed:
            break
        await asyncio.sleep(0.01)
    assert b.closed
    a.close()
