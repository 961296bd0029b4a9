"""Property-based fuzzing of every endpoint that takes SDP or JSON, against `orcast demo`
running in a subprocess: random and mutated inputs never yield a 5xx, and afterwards the
server still relays the live demo feed to a real viewer."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcast.participant import ALL_EVENTS, Role
from signaling.auth.tokens import TokenIssuer
from signaling.store.eventstore import EventStore
from tests.support.demoproc import start_demo
from tests.support.peers import make_offer_sdp, watch

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=int(os.environ.get("ORCAST_FUZZ_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass
class Demo:
    port: int
    process: subprocess.Popen[str]
    organizer: str            # demo event organizer
    root: str                 # server-wide organizer
    viewer: str
    offers: dict[str, str]
    log: Path
    statuses: list[int] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.read()
            status = response.status
        finally:
            conn.close()
        self.statuses.append(status)
        if status >= 500:
            log = self.log.read_text()
            where = log.rfind("Traceback")
            raise AssertionError(f"{method} {path} → {status} for body {str(body)[:300]!r}\n"
                                 f"{log[where:where + 3000] if where >= 0 else ''}")
        return status


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("fuzz")
    server = start_demo(tmp, "[limits]\nsession_rate = 10000\nsession_burst = 10000\n"
                             "sessions_per_token = 10000\nconnect_timeout = 3\n")
    process, port, log_path, secret, text = (server.process, server.port, server.log_path,
                                             server.secret, server.startup_text)
    issuer = TokenIssuer(secret.encode())
    offers = {d: asyncio.run(make_offer_sdp(d)) for d in ("sendonly", "recvonly")}
    yield Demo(port, process,
               organizer=issuer.mint("demo", Role.ORGANIZER, "fuzz organizer", 3600, gen=demo_gen(tmp / "data"))[0],
               root=issuer.mint(ALL_EVENTS, Role.ORGANIZER, "fuzz root", 3600)[0],
               viewer=server.token("viewer"), offers=offers, log=log_path)
    server.stop()
    logged = log_path.read_text()[len(text):]
    assert "Traceback" not in logged, logged[logged.index("Traceback") - 300:][:4000]
    assert "eyJ" not in logged, "the server logged a token"


def demo_gen(data_dir: Path) -> int:
    """The demo event's token generation, read from the running server's store."""
    store = EventStore(data_dir)
    try:
        return store.token_gen("demo")
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ strategies
@st.composite
def mutated_sdp(draw: st.DrawFn, base: str) -> str:
    lines = base.strip().split("\r\n")
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        op = draw(st.sampled_from(["drop", "dup", "replace", "flip", "truncate", "insert"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = draw(st.text(max_size=80))
        elif op == "flip" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.characters()) + lines[i][j + 1:]
        elif op == "truncate":
            lines = lines[:i]
        elif op == "insert":
            key = draw(st.sampled_from(["m=video 9 UDP/TLS/RTP/SAVPF ", "a=rtpmap:", "a=fmtp:", "a=candidate:",
                                        "a=ice-ufrag:", "a=fingerprint:sha-256 ", "a=mid:", "a=setup:",
                                        "m=application 9 UDP/DTLS/SCTP ", "a=group:BUNDLE ", "a=ssrc:"]))
            lines.insert(i, key + draw(st.text(alphabet=st.characters(codec="ascii"), max_size=40)))
    return "\r\n".join(lines) + "\r\n"


def sdp_bodies(base: str) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=500), mutated_sdp(base))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15)
TOKEN_FIELDS = st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from([r.value for r in Role]), JSON), "name": JSON, "theatre": JSON,
    "ttl": st.one_of(st.sampled_from(["12h", "0", "-1s", "999999d", "1"]), JSON), "max_sessions": JSON})
EVENT_FIELDS = st.fixed_dictionaries({}, optional={
    "slug": st.one_of(st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,10}\Z"), JSON), "title": JSON,
    "theatres": st.one_of(st.lists(st.one_of(st.from_regex(r"\A[a-z0-9]{1,5}\Z"), JSON), max_size=4), JSON),
    "record": JSON, "public": JSON, "adhoc_theatres": JSON, "starts_at": JSON, "ends_at": JSON})


def json_bodies(fields: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    return st.one_of(fields.map(lambda d: json.dumps(d).encode()),
                     JSON.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200))


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------ the properties
@FUZZ
@given(data=st.data())
def test_whip_offers(demo: Demo, data: st.DataObject) -> None:
    body = data.draw(sdp_bodies(demo.offers["sendonly"]))
    status = demo.request("POST", f"/whip/demo/or2/f{len(demo.statuses)}", utf8(body),
                          {"Content-Type": "application/sdp", **bearer(demo.organizer)})
    assert status in (201, 400, 409, 413, 422)


@FUZZ
@given(data=st.data())
def test_whep_offers(demo: Demo, data: st.DataObject) -> None:
    body = data.draw(sdp_bodies(demo.offers["recvonly"]))
    status = demo.request("POST", "/whep/demo/or1/endoscope", utf8(body),
                          {"Content-Type": "application/sdp", **bearer(demo.viewer)})
    assert status in (201, 400, 413, 422)


TRICKLE_LINES = ["a=candidate:1 1 udp 1 192.0.2.9 9 typ host", "a=ice-ufrag:x", "a=ice-pwd:y", "a=mid:0",
                 "a=end-of-candidates", "a=candidate:", "m=audio 9 RTP/AVP 0"]


@FUZZ
@given(fragment=st.one_of(st.text(max_size=300), st.lists(st.sampled_from(TRICKLE_LINES), max_size=6)
                          .map("\r\n".join)), if_match=st.booleans())
def test_trickle_patches(demo: Demo, fragment: str, if_match: bool) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=30)
    conn.request("POST", "/whep/demo/or1/endoscope", demo.offers["recvonly"],
                 {"Content-Type": "application/sdp", **bearer(demo.viewer)})
    response = conn.getresponse()
    response.read()
    location = response.getheader("Location")
    conn.close()
    assert response.status == 201 and location
    headers = {"Content-Type": "application/trickle-ice-sdpfrag", **bearer(demo.viewer)}
    if if_match:
        headers["If-Match"] = "*"
    demo.request("PATCH", location, utf8(fragment), headers)
    assert demo.request("DELETE", location, None, bearer(demo.viewer)) == 200


@FUZZ
@given(body=json_bodies(TOKEN_FIELDS))
def test_mint_json(demo: Demo, body: bytes) -> None:
    demo.request("POST", "/api/events/demo/tokens", body,
                 {"Content-Type": "application/json", **bearer(demo.organizer)})


@FUZZ
@given(body=json_bodies(EVENT_FIELDS))
def test_event_json(demo: Demo, body: bytes) -> None:
    demo.request("POST", "/api/events", body, {"Content-Type": "application/json", **bearer(demo.root)})


@FUZZ
@given(body=json_bodies(st.fixed_dictionaries({}, optional={"slug": JSON, "title": JSON})))
def test_theatre_json(demo: Demo, body: bytes) -> None:
    demo.request("POST", "/api/events/demo/theatres", body,
                 {"Content-Type": "application/json", **bearer(demo.organizer)})


@FUZZ
@given(auth=st.one_of(st.text(alphabet=st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=300),
                      st.sampled_from(["Bearer ", "Bearer eyJ.eyJ.", "bearer  x", "Basic abc"])))
def test_authorization_headers(demo: Demo, auth: str) -> None:
    assert demo.request("GET", "/api/events/demo", None, {"Authorization": auth}) == 401


WS_MESSAGES = st.lists(st.one_of(
    JSON.map(json.dumps), st.text(max_size=200),
    st.fixed_dictionaries({"type": st.text(max_size=10)}, optional={"token": JSON}).map(json.dumps)),
    min_size=1, max_size=15)


@settings(max_examples=40, deadline=None)
@given(messages=WS_MESSAGES)
def test_websocket_messages(demo: Demo, messages: list[str]) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(
                f"http://127.0.0.1:{demo.port}/ws/demo") as ws:
            await ws.send_json({"type": "auth", "token": demo.viewer})
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            for message in messages:
                await ws.send_str(message)
            await ws.send_json({"type": "ping"})
            while True:  # every message gets an answer; the connection stays up
                reply = await ws.receive_json(timeout=10)
                if reply["type"] == "pong":
                    break
                assert reply["type"] in ("error", "streams"), reply
    asyncio.run(run())


def test_after_fuzzing_the_demo_still_relays(demo: Demo) -> None:
    async def run() -> int:
        async with aiohttp.ClientSession() as http:
            viewer = await watch(http, f"http://127.0.0.1:{demo.port}", "demo/or1/room", audio=False,
                                 token=demo.viewer)
            await viewer.wait_until(lambda: viewer.first_frame_at is not None, 15.0, "no frame after fuzzing")
            await asyncio.sleep(1.0)
            frames = len(viewer.frame_times)
            await viewer.close(http)
            return frames
    assert asyncio.run(run()) > 10
    assert demo.process.poll() is None, "the server died"
    assert demo.statuses and max(demo.statuses) < 500


# ------------------------------------------------------------------ shapes from real networks
def raw_request(demo: Demo, method: str, path: str, headers: dict[str, bytes], parts: list[bytes],
                pause: float = 0.0) -> tuple[int, bytes]:
    """One request over a raw socket: header bytes as given (not re-encoded), the body in
    `parts` written `pause` s apart (how proxies, slow links and chunked uploads split it)."""
    body = b"".join(parts)
    head = [f"{method} {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{demo.port}".encode(),
            f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    head += [name.encode() + b": " + value for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", demo.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        for part in parts:
            if pause:
                time.sleep(pause)
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    demo.statuses.append(status)
    if status >= 500:
        raise AssertionError(f"{method} {path} → {status}: {answer[:500]!r}")
    return status, answer.partition(b"\r\n\r\n")[2]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 10_000), min_size=1, max_size=3))
def test_split_bodies_are_read_whole(demo: Demo, cuts: list[int]) -> None:
    offer = demo.offers["recvonly"].encode()
    status, answer = raw_request(demo, "POST", "/whep/demo/or1/endoscope",
                                 {"Content-Type": b"application/sdp",
                                  "Authorization": f"Bearer {demo.viewer}".encode()},
                                 split(offer, cuts), pause=0.05)
    assert status == 201, answer
    mint = json.dumps({"role": "viewer", "name": "Dr Split", "ttl": "1h"}).encode()
    status, answer = raw_request(demo, "POST", "/api/events/demo/tokens",
                                 {"Content-Type": b"application/json",
                                  "Authorization": f"Bearer {demo.organizer}".encode()},
                                 split(mint, cuts), pause=0.05)
    assert status == 201, answer


ENDPOINTS = [("GET", "/api/events/demo"), ("GET", "/api/me"), ("GET", "/api/events"),
             ("POST", "/whep/demo/or1/endoscope"), ("POST", "/whip/demo/or2/cam"), ("POST", "/qa/demo"),
             ("GET", "/api/recordings?event=demo"), ("GET", "/api/events/demo/streams")]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b),
       where=st.sampled_from(ENDPOINTS), scheme=st.sampled_from([b"Bearer ", b"bearer ", b""]))
def test_any_bytes_in_authorization_are_401(demo: Demo, raw: bytes, where: tuple[str, str], scheme: bytes) -> None:
    method, path = where
    token = scheme + raw
    if token.strip() == b"" or token.strip().lower() == b"bearer":
        return  # no token at all: still 401, but tested elsewhere
    status, answer = raw_request(demo, method, path, {"Authorization": token, "Content-Type": b"application/sdp"},
                                 [demo.offers["recvonly"].encode()] if method == "POST" else [])
    assert status in (400, 401), (status, answer)


def deep(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "open":
        return b"[" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.sampled_from([40, 900, 2000, 8000]), kind=st.sampled_from(["list", "open", "object"]),
       where=st.sampled_from(["/api/events/demo/tokens", "/api/events", "/api/events/demo/theatres"]))
def test_deep_json_is_400(demo: Demo, depth: int, kind: str, where: str) -> None:
    token = demo.root if where == "/api/events" else demo.organizer
    status, answer = raw_request(demo, "POST", where, {"Content-Type": b"application/json",
                                                      "Authorization": f"Bearer {token}".encode()},
                                 [deep(depth, kind)])
    assert status in (400, 413), (status, answer)


def test_deep_json_and_bad_bytes_on_the_websocket(demo: Demo) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{demo.port}/ws/demo") as ws:
                await ws.send_str("[" * 8000)  # before auth: refused, not a dead handler
                closed = await ws.receive(timeout=10)
                assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4400, closed
            async with session.ws_connect(f"http://127.0.0.1:{demo.port}/ws/demo") as ws:
                await ws.send_json({"type": "auth", "token": demo.viewer})
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
                await ws.send_str("[" * 8000)
                while (reply := await ws.receive_json(timeout=10))["type"] == "streams":
                    pass
                assert reply["type"] == "error" and "nested" in reply["message"], reply
                await ws.send_json({"type": "ping"})
                while (reply := await ws.receive_json(timeout=10))["type"] == "streams":
                    pass
                assert reply["type"] == "pong"
    asyncio.run(run())
    # a WebSocket upgrade with undecodable bytes in Authorization: 4401, never 1006
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as sock:
        sock.sendall(b"GET /ws/demo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     b"Authorization: Bearer \xff\xfe\xc3\x28\r\n\r\n")
        answer = b""
        deadline = time.monotonic() + 10
        while b"4401" not in answer and b'"status": 401' not in answer and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
    assert b'"status": 401' in answer, answer[:500]
