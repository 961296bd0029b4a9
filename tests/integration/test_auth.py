"""Tokens on every protocol, revocation and kick of live sessions, limits, headers, TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import jwt
import pytest

from broadcast.participant import Role
from signaling.auth.tokens import TokenIssuer
from signaling.store.eventstore import Event, Theatre
from tests.conftest import RunningServer, make_config, organizer_session, start_server
from tests.support.logcheck import LogCapture
from tests.support.peers import assert_consecutive, make_offer_sdp, post_offer, publish, watch
from tests.support.tls import self_signed

PATH = "course/or1/endoscope"
ROOT = Path(__file__).resolve().parents[2]


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(server: RunningServer) -> dict[str, tuple[str | None, int]]:
    """name → (token, expected status)."""
    good = server.token(Role.ORGANIZER)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    now = int(time.time())
    expired, _ = server.access.issuer.mint("course", Role.ORGANIZER, "old", 60, now=now - 7200)
    tampered_claims = dict(claims, role="organizer", event="course", name="mallory")
    revoked = server.token(Role.ORGANIZER)
    server.access.store.revoke("course", server.access.issuer.verify(revoked).jti)
    return {
        "missing": (None, 401),
        "garbage": ("not-a-token", 401),
        "expired": (expired, 401),
        "tampered": (f"{header}.{b64(tampered_claims)}.{signature}", 401),
        "alg-none": (f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", 401),
        "hs512": (jwt.encode(claims, server.access.issuer._secret, algorithm="HS512"), 401),
        "other-secret": (TokenIssuer(b"x" * 64).mint("course", Role.ORGANIZER, "x", 600)[0], 401),
        "wrong-event": (server.token(Role.ORGANIZER, event="other"), 403),
        "revoked": (revoked, 401),
    }


async def try_http(server: RunningServer, token: str | None, http: aiohttp.ClientSession) -> int:
    async with http.get(f"{server.base}/api/events/course", headers=_h(token)) as r:
        if r.status == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        return r.status


async def try_whip(server: RunningServer, token: str | None, http: aiohttp.ClientSession) -> int:
    status, _, _ = await post_offer(http, f"{server.base}/whip/course/or1/cam",
                                    await make_offer_sdp("sendonly"), token)
    return status


async def try_whep(server: RunningServer, token: str | None, http: aiohttp.ClientSession) -> int:
    status, _, _ = await post_offer(http, f"{server.base}/whep/{PATH}", await make_offer_sdp("recvonly"), token)
    return status


async def try_ws(server: RunningServer, token: str | None, http: aiohttp.ClientSession) -> int:
    async with http.ws_connect(f"{server.base}/ws/course") as ws:
        await ws.send_json({"type": "auth", "token": token})
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT and msg.json()["type"] == "hello":
            return 101
        assert msg.json()["type"] == "error" and msg.json()["message"]
        closed = await ws.receive(timeout=10)
        assert closed.type == aiohttp.WSMsgType.CLOSE
        return int(closed.data) - 4000


def _h(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


PROTOCOLS: dict[str, Callable[[RunningServer, str | None, aiohttp.ClientSession], Awaitable[int]]] = {
    "http": try_http, "whip": try_whip, "whep": try_whep, "websocket": try_ws,
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bad_tokens_are_refused_on_every_protocol(server: RunningServer, protocol: str) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    server.access.store.put_event(Event("other", "Other"))
    attempt = PROTOCOLS[protocol]
    async with aiohttp.ClientSession() as http:
        got = {name: await attempt(server, token, http) for name, (token, _) in bad_tokens(server).items()}
        good = await attempt(server, server.token(Role.ORGANIZER), http)
    assert got == {name: status for name, (_, status) in bad_tokens(server).items()}
    assert good in (101, 200, 201)
    assert len(server.broadcaster.sessions) <= 2  # the publisher (and the one good session)
    await pub.pc.close()


async def test_revoking_a_viewer_link_closes_its_session_within_5s(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    token_a, token_b = server.token(Role.VIEWER, name="Dr A"), server.token(Role.VIEWER, name="Dr B")
    a = await watch(server.http, server.base, PATH, audio=False, token=token_a)
    b = await watch(server.http, server.base, PATH, audio=False, token=token_b)
    await a.wait_frames(10)
    await b.wait_frames(10)
    jti = server.access.issuer.verify(token_a).jti
    started = time.monotonic()
    async with server.http.delete(f"{server.base}/api/events/course/tokens/{jti}") as r:
        assert r.status == 200 and (await r.json())["closed_sessions"] == 1
    await a.wait_until(lambda: a.pc.connectionState in ("closed", "failed"), 5.0,
                       "the revoked viewer's connection did not close")
    closed_after = time.monotonic() - started
    print(f"revoked viewer closed after {closed_after:.2f} s")
    before = len(b.counters)
    await b.wait_frames(before + 30)
    assert_consecutive(b.counters, "the other viewer")
    # the revoked link cannot start again
    again = await watch(server.http, server.base, PATH, audio=False, token=token_a, expect=401)
    assert closed_after < 5.0 and not again.session_url
    await a.close()
    await b.close(server.http)
    await pub.pc.close()


async def test_kick_closes_one_session_and_revoke_all_closes_the_event(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False,
                        token=server.token(Role.TECHNICIAN, theatre="or1"))
    viewer_token = server.token(Role.VIEWER)
    v = await watch(server.http, server.base, PATH, audio=False, token=viewer_token)
    await v.wait_frames(5)
    async with server.http.get(f"{server.base}/api/events/course/sessions") as r:
        sessions = (await r.json())["sessions"]
    assert {s["kind"] for s in sessions} == {"publisher", "viewer"}
    viewer_id = next(s["id"] for s in sessions if s["kind"] == "viewer")
    async with server.http.delete(f"{server.base}/api/events/course/sessions/{viewer_id}") as r:
        assert r.status == 200
    await v.wait_until(lambda: v.pc.connectionState in ("closed", "failed"), 5.0, "kicked viewer still up")
    assert server.broadcaster.stream_infos()[0].live, "kicking a viewer leaves the feed live"
    # the kicked viewer's link still works (kick is not revoke)
    v2 = await watch(server.http, server.base, PATH, audio=False, token=viewer_token)
    await v2.wait_frames(5)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{server.base}/ws/course") as ws:
        await ws.send_json({"type": "auth", "token": viewer_token})
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        assert (await ws.receive_json(timeout=5))["type"] == "streams"
        async with server.http.post(f"{server.base}/api/events/course/revoke-all") as r:
            assert r.status == 200 and (await r.json())["closed_sessions"] == 3
        closing = await ws.receive_json(timeout=5)
        assert closing == {"type": "closing", "reason": "all links of the event revoked", "reconnect": False,
                           "kind": "revoked"}
        closed = await ws.receive(timeout=5)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4403
    await v2.wait_until(lambda: v2.pc.connectionState in ("closed", "failed"), 5.0, "viewer still up")
    assert not server.broadcaster.sessions
    for peer in (v, v2):
        await peer.close()
    await pub.pc.close()


async def test_expired_link_loses_its_live_session(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    short = server.token(Role.VIEWER, ttl_s=3)
    v = await watch(server.http, server.base, PATH, audio=False, token=short)
    await v.wait_frames(5)
    # exp is 3 s away; the sweep runs every second
    await v.wait_until(lambda: v.pc.connectionState in ("closed", "failed"), 8.0, "expired link still watching")
    await v.close()
    await pub.pc.close()


async def test_faculty_and_theatre_limits(server: RunningServer) -> None:
    faculty = server.token(Role.FACULTY, theatre="or1")
    status, text, _ = await post_offer(server.http, f"{server.base}/whip/course/or1/endoscope",
                                       await make_offer_sdp("sendonly"), faculty)
    assert status == 403 and "talkback" in text
    status, text, _ = await post_offer(server.http, f"{server.base}/whip/course/or2/talkback",
                                       await make_offer_sdp("sendonly"), faculty)
    assert status == 403 and "or1" in text
    status, _, headers = await post_offer(server.http, f"{server.base}/whip/course/or1/talkback",
                                          await make_offer_sdp("sendonly"), faculty)
    assert status == 201
    async with server.http.delete(server.base + headers["Location"], headers=_h(faculty)) as r:
        assert r.status == 200


async def test_unknown_theatre_is_404_unless_adhoc() -> None:
    config = make_config(events=[Event("fixed", "Fixed", (Theatre("or1", "OR 1"),)),
                                 Event("open", "Open", (), adhoc_theatres=True)])
    runner, base, app = await start_server(config)
    async with organizer_session(app) as http:
        status, text, _ = await post_offer(http, f"{base}/whip/fixed/or9/cam", await make_offer_sdp("sendonly"))
        assert status == 404 and "or9" in text
        status, _, headers = await post_offer(http, f"{base}/whip/open/or9/cam", await make_offer_sdp("sendonly"))
        assert status == 201
        async with http.delete(base + headers["Location"]):
            pass
        status, _, _ = await post_offer(http, f"{base}/whip/nosuch/or1/cam", await make_offer_sdp("sendonly"))
        assert status == 404
    await runner.cleanup()


async def test_public_event_lets_guests_watch_but_not_publish() -> None:
    runner, base, app = await start_server(make_config(events=[Event("open", "Open", (), public=True,
                                                                     adhoc_theatres=True)]))
    async with organizer_session(app) as http:
        pub = await publish(http, base, "open/or1/cam", "VP8", audio=False)
        async with aiohttp.ClientSession() as guest:
            v = await watch(guest, base, "open/or1/cam", audio=False)
            await v.wait_frames(5)
            status, _, _ = await post_offer(guest, f"{base}/whip/open/or1/other", await make_offer_sdp("sendonly"))
            assert status == 401
            async with guest.get(f"{base}/api/events/open") as r:
                assert r.status == 200 and (await r.json())["you"]["role"] == "viewer"
            await v.close(guest)
        await pub.pc.close()
    await runner.cleanup()


async def test_json_body_cap_is_413_and_bad_json_400(server: RunningServer) -> None:
    url = f"{server.base}/api/events/course/tokens"
    async with server.http.post(url, data=b"{" + b" " * 17000 + b"}",
                                headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
    async with server.http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
    async with server.http.post(url, data=b"role=viewer") as r:
        assert r.status == 415
    async with server.http.post(url, json={"role": "surgeon"}) as r:
        assert r.status == 400 and "role" in (await r.json())["error"]
    async with server.http.post(url, json={"role": "viewer", "name": "x", "color": 1}) as r:
        assert r.status == 400 and "color" in (await r.json())["error"]
    async with server.http.post(url, json={"role": "viewer", "name": "a\x00b"}) as r:
        assert r.status == 400
    async with server.http.post(url, json={"role": "viewer", "ttl": "forever"}) as r:
        assert r.status == 400 and "ttl" in (await r.json())["error"]


async def test_rate_limit_is_429_with_retry_after() -> None:
    runner, base, app = await start_server(make_config(session_rate=0.5, session_burst=3))
    sdp = await make_offer_sdp("recvonly")
    async with organizer_session(app) as http:
        statuses = []
        for _ in range(5):
            status, text, headers = await post_offer(http, f"{base}/whep/{PATH}", sdp)
            statuses.append(status)
        assert statuses[:3] == [409, 409, 409]  # not live, but admitted
        assert statuses[3:] == [429, 429]
        assert int(headers["Retry-After"]) >= 1 and "retry" in text
    await runner.cleanup()


async def test_sessions_per_link_limit(server: RunningServer) -> None:
    pub = await publish(server.http, server.base, PATH, "VP8", audio=False)
    one = server.token(Role.VIEWER, max_sessions=1)
    v = await watch(server.http, server.base, PATH, audio=False, token=one)
    status, text, headers = await post_offer(server.http, f"{server.base}/whep/{PATH}",
                                             await make_offer_sdp("recvonly"), one)
    assert status == 429 and "limit" in text and headers["Retry-After"]
    await v.close(server.http)
    v2 = await watch(server.http, server.base, PATH, audio=False, token=one)  # freed again
    await v2.close(server.http)
    await pub.pc.close()


async def test_cors_and_security_headers() -> None:
    runner, base, _app = await start_server(make_config(cors_origins=["https://hall.example"]))
    async with aiohttp.ClientSession() as http:
        async with http.options(f"{base}/api/events/course/tokens",
                                headers={"Origin": "https://hall.example",
                                         "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://hall.example"
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        async with http.get(f"{base}/api/events/course", headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 401 and "Access-Control-Allow-Origin" not in r.headers
        async with http.get(f"{base}/api/events/course", headers={"Origin": "https://hall.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://hall.example"  # errors readable too
        for url in ("/watch/course", "/api/me", "/whip/course/or1/cam"):
            async with http.get(base + url) as r:
                csp = r.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
                assert r.headers["Referrer-Policy"] == "no-referrer"
    await runner.cleanup()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signaling.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


async def test_tls_serve_and_token_cli(tmp_path: Path) -> None:
    """`orcast token` mints a link that `orcast serve --cert --key` accepts over HTTPS."""
    cert, key = self_signed(tmp_path)
    (tmp_path / "orcast.toml").write_text('[[events]]\nslug = "hpb"\ntheatres = ["or1"]\n')
    port = 18000 + os.getpid() % 1000
    common = ["--config", str(tmp_path / "orcast.toml"), "--data-dir", str(tmp_path / "data")]
    bad = run_cli("token", "--event", "hpb", "--role", "viewer", "--theatre", "or1", *common)
    assert bad.returncode == 2 and "theatre" not in bad.stdout
    minted = run_cli("token", "--event", "hpb", "--role", "technician", "--theatre", "or1",
                     "--name", "OR 1 tech", *common)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.split("token: ")[1].split()[0]
    assert f"https://localhost:{port + 1}/console/hpb/or1#token=" not in minted.stdout  # no --cert given here
    assert "/console/hpb/or1#token=" in minted.stdout
    secret = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    server = subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve", "--port", str(port),
                               "--cert", str(cert), "--key", str(key), *common], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"https://localhost:{port}/api/me", ssl=context,
                                        headers=_h(token)) as r:
                        assert r.status == 200
                        assert (await r.json())["you"]["theatre"] == "or1"
                        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the TLS server did not start")
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=20)
    assert token not in out and "eyJ" not in out, "the server printed a token"


async def test_debug_logs_hold_no_token_or_sdp_password(server: RunningServer) -> None:
    """Everything at DEBUG, aiortc and aioice included, through the server's log filter."""
    noisy = [logging.getLogger(n) for n in ("aiortc", "aioice")]
    levels = [lg.level for lg in noisy]
    with LogCapture(logging.DEBUG, redact=True) as capture:
        for lg in noisy:
            lg.setLevel(logging.DEBUG)
        try:
            tech = server.token(Role.TECHNICIAN, theatre="or1")
            pub = await publish(server.http, server.base, PATH, "VP8", audio=False, token=tech)
            viewer_token = server.token(Role.VIEWER)
            v = await watch(server.http, server.base, PATH, audio=False, token=viewer_token)
            await v.wait_frames(5)
            await try_ws(server, viewer_token, server.http)
            await try_whep(server, "eyJhbGciOiJIUzI1NiJ9.eyJldmVudCI6ImNvdXJzZSJ9.forged-signature", server.http)
            async with server.http.post(f"{server.base}/api/events/course/tokens",
                                        json={"role": "viewer", "name": "logged?"}) as r:
                LogCapture.secrets.add((await r.json())["token"])
            await server.access.revoke("course", server.access.issuer.verify(viewer_token).jti)
            await v.wait_until(lambda: v.pc.connectionState in ("closed", "failed"), 5.0)
            await pub.pc.close()
        finally:
            for lg, level in zip(noisy, levels, strict=True):
                lg.setLevel(level)
    assert len(capture.lines) > 50, "DEBUG logging was not captured"
    capture.assert_clean()
