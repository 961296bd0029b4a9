"""DTLS interop: RSA-certificate clients connect; a P-224 client gets a log line that says why not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import RunningServer
from tests.support.peers import CounterTrack, post_offer, watch

PATH = "course/or2/endoscope"


def rsa_certificate() -> RTCCertificate:
    import datetime

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "gstreamer-like")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return RTCCertificate(key=key, cert=cert)  # type: ignore[arg-type]


def p224_certificate() -> RTCCertificate:
    key = ec.generate_private_key(ec.SECP224R1())
    return RTCCertificate(key=key, cert=generate_certificate(key))


async def publish_with(server: RunningServer, certificate: RTCCertificate, ciphers: bytes | None,
                       setup: str = "actpass") -> Any:
    pc = RTCPeerConnection()
    # what an encoder with this certificate type presents (aiortc has no public setting)
    pc._RTCPeerConnection__certificates = [certificate]
    if ciphers is not None:
        original = certificate._create_ssl_context

        def create(srtp_profiles: Any) -> Any:
            ctx = original(srtp_profiles)
            ctx.set_cipher_list(ciphers)
            return ctx

        certificate._create_ssl_context = create  # type: ignore[method-assign]
    pc.addTransceiver(CounterTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp.replace("a=setup:actpass", f"a=setup:{setup}")
    status, answer, _ = await post_offer(server.http, f"{server.base}/whip/{PATH}", offer)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc


async def test_encoder_with_rsa_certificate_as_dtls_server_publishes(server: RunningServer) -> None:
    # An encoder with an RSA certificate that wants to be the DTLS server: the ORcast server,
    # as DTLS client, must offer ECDHE-RSA suites (aiortc alone offers ECDSA only).
    pc = await publish_with(server, rsa_certificate(), b"ECDHE-RSA-AES128-GCM-SHA256", setup="passive")
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(15)
    await viewer.close(server.http)
    await pc.close()


async def test_encoder_with_rsa_certificate_as_dtls_client_publishes(server: RunningServer) -> None:
    # GStreamer's usual case: it offers actpass, the server answers passive (DTLS server)
    pc = await publish_with(server, rsa_certificate(), None)
    viewer = await watch(server.http, server.base, PATH, audio=False)
    await viewer.wait_frames(15)
    await viewer.close(server.http)
    await pc.close()


async def test_p224_certificate_failure_is_explained_in_the_log(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="broadcast")
    pc = await publish_with(server, p224_certificate(), None)
    for _ in range(100):
        if any("P-224" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    messages = [r.getMessage() for r in caplog.records if "DTLS" in r.getMessage()]
    assert any("P-224" in m and "-cert_file" in m for m in messages), messages
    await pc.close()
