"""Property-based fuzzing of every endpoint that takes SDP or JSON, against `orcast demo`
running in a subprocess: random and mutated inputs never yield a 5xx, and afterwards the
server still relays the live demo feed to a real viewer."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcast.participant import ALL_EVENTS, Role
from signaling.eventstore import EventStore
from signaling.tokens import TokenIssuer

from .demoproc import start_demo
from .peers import make_offer_sdp, watch

ROOT = Path(__file__).resolve().parent.parent
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
               organizer=issuer.mint("demo", Role.ORGANIZER, "fuzz organiser", 3600, gen=demo_gen(tmp / "data"))[0],
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
