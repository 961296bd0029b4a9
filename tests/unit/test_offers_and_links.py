"""SDP shaping and link validation, without a peer or a server: what a browser's offer becomes,
what is refused and why; tokens and media tickets that are valid, tampered, expired or foreign."""

from __future__ import annotations

import base64
import json
import time

import pytest

from broadcast.errors import InvalidOffer, UnsupportedOffer
from broadcast.participant import Role
from broadcast.webrtc.sdpoffer import shape_data_offer, shape_play_offer, shape_publish_offer
from signaling.auth.tickets import MediaTickets
from signaling.auth.tokens import TokenError, TokenIssuer

SESSION = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
           "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=ice-ufrag:abcd\r\na=ice-pwd:" + "p" * 24 + "\r\n")


def video(direction: str, mid: str = "0") -> str:
    return (f"m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na={direction}\r\n"
            "a=rtcp-mux\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n"
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;"
            "profile-level-id=42e01f\r\na=rtpmap:103 H264/90000\r\na=fmtp:103 packetization-mode=1;"
            "profile-level-id=640c1f\r\n")


def audio(direction: str, mid: str = "1") -> str:
    return (f"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na={direction}\r\n"
            "a=rtcp-mux\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n")


def test_a_publisher_offer_is_narrowed_to_one_video_codec_and_opus() -> None:
    shaped = shape_publish_offer(SESSION + video("sendonly") + audio("sendonly"))
    assert shaped.video_codec == "H264" and shaped.has_audio and shaped.has_video
    assert "VP8" not in shaped.sdp and "PCMU" not in shaped.sdp
    kept = shape_publish_offer(SESSION + video("sendonly") + audio("sendonly"), keep_codec="VP8")
    assert kept.video_codec == "VP8", "a returning publisher keeps its viewers' codec"


def test_a_viewer_gets_the_feeds_codec_and_profile() -> None:
    shaped = shape_play_offer(SESSION + video("recvonly") + audio("recvonly"), "H264", "640c1f")
    # the payload type with the feed's exact profile is chosen; aiortc is shown a profile it
    # knows and the answer gets the viewer's own back
    assert shaped.video_codec == "H264" and shaped.restore_profiles == {103: "640c1f"}
    assert "a=rtpmap:103 H264" in shaped.sdp and "VP8" not in shaped.sdp and "a=rtpmap:102" not in shaped.sdp
    with pytest.raises(UnsupportedOffer):
        shape_play_offer(SESSION + audio("recvonly", "0").replace("opus/48000/2", "G722/8000"), None, None)


def test_a_publisher_s_second_video_track_is_its_low_rendition_in_the_same_codec() -> None:
    offer = SESSION + video("sendonly") + audio("sendonly") + video("sendonly", "2")
    shaped = shape_publish_offer(offer)
    assert shaped.has_low_video and shaped.video_codec == "H264"
    assert shaped.sdp.count("m=video") == 2 and "VP8" not in shaped.sdp
    # the low track cannot be VP8 when the feed is H.264: viewers switch within one codec
    vp8_low = video("sendonly", "2").replace(" 96 102 103", " 96").split("a=rtpmap:102")[0]
    with pytest.raises(UnsupportedOffer, match=r"low rendition.*H264"):
        shape_publish_offer(SESSION + video("sendonly") + vp8_low)
    with pytest.raises(UnsupportedOffer, match="at most one video"):
        shape_play_offer(SESSION + video("recvonly") + video("recvonly", "2"), "H264", None)


def test_a_simulcast_offer_is_answered_with_one_encoding() -> None:
    simulcast = video("sendonly").replace("a=rtcp-mux\r\n", "a=rtcp-mux\r\na=rid:q send\r\na=rid:f send\r\n"
                                          "a=simulcast:send q;f\r\n")
    shaped = shape_publish_offer(SESSION + simulcast)
    assert shaped.simulcast_dropped and "a=simulcast" not in shaped.sdp and "a=rid:" not in shaped.sdp
    assert not shape_publish_offer(SESSION + video("sendonly")).simulcast_dropped


@pytest.mark.parametrize("body", ["hello", "v=0\r\n", SESSION, SESSION + video("sendonly") * 3])
def test_bad_publisher_offers_are_refused_with_a_reason(body: str) -> None:
    with pytest.raises((InvalidOffer, UnsupportedOffer)) as refused:
        shape_publish_offer(body)
    assert str(refused.value)


def test_a_media_offer_is_not_a_data_channel_offer() -> None:
    with pytest.raises((InvalidOffer, UnsupportedOffer)):
        shape_data_offer(SESSION + video("recvonly"))


def test_tokens_valid_tampered_expired_and_foreign() -> None:
    issuer = TokenIssuer(b"s" * 32)
    token, claims = issuer.mint("course", Role.VIEWER, "Dr Kim", 3600)
    assert issuer.verify(token).jti == claims.jti
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["role"] = "organizer"
    tampered = ".".join([head, base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode(), sig])
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode() + f".{body}."
    expired, _ = issuer.mint("course", Role.VIEWER, "Dr Kim", 60, now=time.time() - 3600)
    foreign, _ = TokenIssuer(b"t" * 32).mint("course", Role.VIEWER, "Dr Kim", 3600)
    for bad, words in ((tampered, "not valid"), (none, "not valid"), (expired, "expired"), (foreign, "not valid"),
                       ("[" * 3000, "not valid"), ("", "missing")):
        with pytest.raises(TokenError) as refused:
            issuer.verify(bad)
        assert words in str(refused.value), (bad[:20], refused.value)


def test_media_tickets_are_bound_to_their_file_and_expire() -> None:
    issuer = TokenIssuer(b"s" * 32)
    _, claims = issuer.mint("course", Role.MODERATOR, "Mod", 3600)
    tickets = MediaTickets(b"s" * 32)
    ticket = tickets.sign("course/or1/endoscope/a.mp4", claims)
    assert tickets.verify("course/or1/endoscope/a.mp4", ticket).jti == claims.jti
    for resource, bad, words in (("course/or1/endoscope/b.mp4", ticket, "another file"),
                                 ("course/or1/endoscope/a.mp4", ticket[:-2] + "xx", "not valid"),
                                 ("course/or1/endoscope/a.mp4", "x" * 3000, "not valid")):
        with pytest.raises(TokenError) as refused:
            tickets.verify(resource, bad)
        assert words in str(refused.value)
    with pytest.raises(TokenError, match="expired"):
        tickets.verify("course/or1/endoscope/a.mp4", ticket, now=time.time() + 10 * 3600)
