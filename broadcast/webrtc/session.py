"""Peer sessions: one WebRTC connection of a publisher or a viewer.

A session owns its RTCPeerConnection. `close()` is idempotent, frees the connection and
its consumers or sources, and tells the owner (the Broadcaster) through `on_closed`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import candidate_from_sdp

from broadcast.errors import InvalidOffer, UnsupportedOffer
from broadcast.lifecycle import CloseReason, describe, notify
from broadcast.participant import Participant
from broadcast.relay.streampath import StreamPath
from broadcast.webrtc.aiortchooks import configure_dtls
from broadcast.webrtc.sdpoffer import ShapedOffer, restore_answer

logger = logging.getLogger(__name__)

TLS_ALERT_ILLEGAL_PARAMETER = 47


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None
    # coturn's `use-auth-secret` (TURN REST API): time-limited credentials made from a shared
    # secret, so no long-lived TURN password is handed to browsers
    secret: str | None = field(default=None, repr=False)
    ttl_s: int = 24 * 3600

    def resolved(self, now: float | None = None) -> IceServer:
        """This server with credentials to hand out now (fresh ones when it has a secret)."""
        if self.secret is None:
            return self
        expires = int((time.time() if now is None else now) + self.ttl_s)
        username = f"{expires}:orcast"
        digest = hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()
        return IceServer(self.urls, username, base64.b64encode(digest).decode())

    def to_aiortc(self) -> RTCIceServer:
        server = self.resolved()
        return RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)


@dataclass
class SessionSettings:
    ice_servers: list[IceServer] = field(default_factory=list)
    connect_timeout: float = 30.0
    fast_send: bool = True  # a viewer's RTP through FastSender, not aiortc's RTCRtpSender loop
    udp_gso: bool = True    # on the fast path, a frame's packets in one sendmsg per size (Linux)


class PeerSession:
    role = "peer"

    def __init__(self, path: StreamPath | None, settings: SessionSettings,
                 participant: Participant | None = None, event: str | None = None) -> None:
        self.id = secrets.token_urlsafe(18)  # unguessable: it is the session URL
        self.path = path  # None: a session without media (the Q&A only)
        self.event = path.event if path is not None else event or ""
        self.participant = participant  # who connected (None: in-process or open access)
        self.settings = settings
        # An empty list, not None: None makes aiortc use a public Google STUN server.
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[s.to_aiortc() for s in settings.ice_servers])
        )
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self.answer_sdp = ""
        self.shaped: ShapedOffer | None = None
        self.on_closed: list[Callable[[PeerSession], None]] = []
        # the peer opened a data channel (the Broadcaster hands `qa` ones to the board)
        self.on_datachannel: Callable[[PeerSession, RTCDataChannel], None] | None = None
        self.close_reason = CloseReason.OTHER
        self.close_detail = ""
        self._closing: asyncio.Future[None] | None = None
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._timeout: asyncio.TimerHandle | None = None
        self._dtls_alerts: list[int] = []
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("datachannel", self._on_datachannel)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    @property
    def log_extra(self) -> dict[str, str]:
        """Structured fields for this session's log lines (JSON logs show them as keys)."""
        return {"path": str(self.path or self.event), "session": self.id[:6]}

    def log_name(self) -> str:
        who = f" by {self.participant.describe()}" if self.participant else ""
        return f"{self.role} {self.id[:6]} on {self.path or self.event}{who}"

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self._closed or self.on_datachannel is None:
            channel.close()
            return
        try:
            self.on_datachannel(self, channel)
        except Exception:  # never let it reach aiortc's SCTP receive path
            logger.exception("%s: data channel %r failed to open", self.log_name(), channel.label[:40])
            channel.close()

    async def _negotiate(self, shaped: ShapedOffer, prepare: Callable[[], None]) -> str:
        """Apply the offer, let `prepare` attach tracks, answer. Returns the answer SDP."""
        self.shaped = shaped
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(shaped.sdp, "offer"))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidOffer(f"SDP offer rejected: {exc}") from None
        except Exception as exc:  # aiortc raises OperationError/InvalidStateError etc.
            raise UnsupportedOffer(f"SDP offer cannot be answered: {exc}") from None
        actpass = "a=setup:actpass" in shaped.sdp
        if any(t.receiver.transport is None for t in self.pc.getTransceivers()):
            # aiortc left a media section without a transport (a broken BUNDLE group or mid)
            raise InvalidOffer("SDP offer has a media section without a transport; check a=group:BUNDLE and a=mid")
        for transport in self._dtls_transports():
            configure_dtls(transport, actpass, self._dtls_alerts.append)
            self._watch_dtls(transport)
        prepare()
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # aiortc accepted the offer but cannot answer it (a missing direction, say)
            raise InvalidOffer(f"SDP offer cannot be answered: {exc}") from None
        self.answer_sdp = restore_answer(self.pc.localDescription.sdp, shaped)
        self._timeout = asyncio.get_running_loop().call_later(
            self.settings.connect_timeout, self._connect_timed_out
        )
        return self.answer_sdp

    def _dtls_transports(self) -> list[Any]:
        seen: dict[int, Any] = {}
        for t in self.pc.getTransceivers():
            seen[id(t.receiver.transport)] = t.receiver.transport
        if self.pc.sctp is not None:
            seen[id(self.pc.sctp.transport)] = self.pc.sctp.transport
        return list(seen.values())

    def _watch_dtls(self, transport: Any) -> None:
        def on_state() -> None:
            # a session closed before it connected (deleted, replaced, timed out) fails its
            # handshake on purpose: nothing to explain
            if transport.state == "failed" and not self._closed:
                self._explain_dtls_failure()

        transport.on("statechange", on_state)

    def _explain_dtls_failure(self) -> None:
        client = self.shaped.client_hint if self.shaped else ""
        if TLS_ALERT_ILLEGAL_PARAMETER in self._dtls_alerts:
            logger.warning(
                "%s: DTLS handshake failed with alert 47 (illegal parameter / wrong curve)%s. "
                "This is what a P-224 certificate causes: FFmpeg's WHIP muxer generates one. "
                "Give FFmpeg a P-256 certificate with -cert_file and -key_file (see README, "
                "'Publishing with FFmpeg').",
                self.log_name(), f" from a {client} client" if client else "",
            )
        else:
            logger.warning(
                "%s: DTLS handshake failed%s (alerts %s); check the client's certificate "
                "type (ECDSA P-256 or RSA work) and that UDP reaches the server",
                self.log_name(), f" with a {client} client" if client else "",
                self._dtls_alerts or "none",
            )

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.info("%s: connection %s", self.log_name(), state, extra=self.log_extra)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            if self._timeout is not None:
                self._timeout.cancel()
        elif state in ("failed", "closed"):
            self.close_soon()

    def _connect_timed_out(self) -> None:
        if self.connected_at is None and not self._closed:
            logger.warning(
                "%s: not connected after %.0f s (ICE/DTLS did not complete); closing. "
                "Check that UDP reaches the server or configure a TURN server",
                self.log_name(), self.settings.connect_timeout,
            )
            self.close_soon(CloseReason.CONNECT_TIMEOUT)

    async def add_ice_fragment(self, fragment: str) -> None:
        """Apply a trickle-ICE SDP fragment (RFC 8840). ICE restarts are not supported."""
        ufrag = re.search(r"^a=ice-ufrag:(\S+)", fragment, re.M)
        remote = self.pc.remoteDescription
        if ufrag and remote is not None and f"a=ice-ufrag:{ufrag.group(1)}" not in remote.sdp:
            raise UnsupportedOffer("ICE restart is not supported: start a new session instead")
        mid_match = re.search(r"^a=mid:(\S+)", fragment, re.M)
        transceivers = self.pc.getTransceivers()
        mid = mid_match.group(1) if mid_match else (transceivers[0].mid if transceivers else "0")
        count = 0
        for line in fragment.splitlines():
            line = line.strip()
            if line.startswith("a=candidate:"):
                try:
                    # aiortc's parser asserts on short lines; any failure here is the client's input
                    candidate = candidate_from_sdp(line[len("a=candidate:"):])
                    candidate.sdpMid = mid
                    await self.pc.addIceCandidate(candidate)
                except Exception as exc:
                    raise InvalidOffer(f"bad ICE candidate line {line[:100]!r}: "
                                       f"{exc or type(exc).__name__}") from None
                count += 1
            elif line == "a=end-of-candidates":
                count += 1
        if count == 0 and not ufrag:
            raise InvalidOffer("the SDP fragment has no a=candidate or a=end-of-candidates line")

    def close_soon(self, reason: CloseReason = CloseReason.CONNECTION_LOST) -> None:
        if not self._closed and self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self.close(reason))

    async def close(self, reason: CloseReason = CloseReason.OTHER, detail: str = "") -> None:
        """Idempotent: closes the connection and releases what the session holds. A second
        call while the first is under way returns when the session is closed."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._close(reason, detail)
        finally:
            self._closing.set_result(None)

    async def _close(self, reason: CloseReason, detail: str) -> None:
        self._closed = True
        self.close_reason = reason
        self.close_detail = detail
        if self._timeout is not None:
            self._timeout.cancel()
        self._release()
        try:
            await self.pc.close()
        except Exception as exc:
            # aiortc cannot close a connection whose offer it half applied; stop what exists
            logger.warning("%s: closing the peer connection piecewise (%r)", self.log_name(), exc)
            await self._stop_transports()
        notify(self.on_closed, self, what=f"{self.log_name()}: a close listener")
        logger.info("%s: closed (%s)", self.log_name(), describe(reason, detail), extra=self.log_extra)

    async def _stop_transports(self) -> None:
        for transceiver in self.pc.getTransceivers():
            dtls = transceiver.receiver.transport
            # best effort: each part is tried even when another fails
            for part in (transceiver.sender, transceiver.receiver, dtls, getattr(dtls, "transport", None)):
                if part is not None:
                    with contextlib.suppress(Exception):
                        await part.stop()

    def _release(self) -> None:
        """Subclasses free their sources or consumers here."""


def codec_name(codec: RTCRtpCodecParameters) -> str:
    name = codec.mimeType.split("/", 1)[1]
    return "opus" if name.lower() == "opus" else name.upper()
