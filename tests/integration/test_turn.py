"""TURN: Debian's coturn on loopback with `use-auth-secret`; the server hands out time-limited
credentials in its Link header; a viewer that may only use relayed candidates receives frames."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from broadcast.webrtc.session import IceServer
from tests.conftest import make_config, organizer_session, start_server
from tests.support.demoproc import free_port
from tests.support.peers import Viewer, _consume, post_offer, publish

SECRET = "coturn-shared-secret-for-the-test"
PATH = "course/or1/endoscope"


@pytest.fixture
def coturn() -> Iterator[int]:
    binary = shutil.which("turnserver")
    assert binary, "coturn is not installed: ./scripts/test.sh installs it (apt-get install coturn)"
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="coturn-")) / "turn.log"
    process = subprocess.Popen(
        [binary, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
         "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=orcast.test",
         "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--fingerprint",
         "--min-port=49200", "--max-port=49300", f"--log-file={log}", "--simple-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (log.exists() and "Total" in log.read_text(errors="replace")):
        time.sleep(0.1)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


def link_servers(header: str) -> list[RTCIceServer]:
    servers = []
    for part in header.split(", <"):
        url = re.search(r"<?([^>]+)>", part)
        username = re.search(r'username="([^"]+)"', part)
        credential = re.search(r'credential="([^"]+)"', part)
        assert url and username and credential, header
        servers.append(RTCIceServer(urls=url.group(1), username=username.group(1), credential=credential.group(1)))
    return servers


async def test_a_relay_only_viewer_receives_frames_through_coturn(coturn: int) -> None:
    turn = IceServer([f"turn:127.0.0.1:{coturn}?transport=udp"], secret=SECRET, ttl_s=600)
    runner, base, app = await start_server(make_config(ice_servers=[turn]))
    try:
        async with organizer_session(app) as http:
            publisher = await publish(http, base, PATH, codec="VP8", audio=False)
            async with http.options(f"{base}/whep/{PATH}") as r:
                header = r.headers["Link"]
            assert SECRET not in header and 'credential-type="password"' in header
            servers = link_servers(header)
            assert servers[0].username.endswith(":orcast")  # type: ignore[union-attr]

            pc = RTCPeerConnection(RTCConfiguration(iceServers=servers,
                                                    iceTransportPolicy=RTCIceTransportPolicy.RELAY))
            viewer = Viewer(pc)
            pc.addTransceiver("video", direction="recvonly")
            pc.on("track", lambda track: viewer.tasks.append(asyncio.ensure_future(_consume(viewer, track))))
            await pc.setLocalDescription(await pc.createOffer())
            offer = pc.localDescription.sdp
            types = set(re.findall(r"a=candidate:.* typ (\w+)", offer))
            assert types == {"relay"}, f"the viewer offered {types}; it may only use the TURN relay"
            status, body, headers = await post_offer(http, f"{base}/whep/{PATH}", offer)
            assert status == 201, body
            viewer.session_url = base + headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
            await viewer.wait_frames(30, timeout=20)
            pair = pc.getTransceivers()[0].receiver.transport.transport._connection._nominated  # type: ignore[union-attr]
            local = next(iter(pair.values())).local_candidate
            assert local.type == "relay" and local.host == "127.0.0.1"
            print(f"\nrelay-only viewer: {len(viewer.counters)} frames through coturn on port {coturn}")
            await viewer.close(http)
            await publisher.pc.close()
    finally:
        await runner.cleanup()
