"""HLS prefixes: one per feed and time window, valid for that window and the next, changed by
revocations; and never in a log line."""

from __future__ import annotations

from signaling.auth.hlsprefix import WINDOW_S, HlsPrefixes
from signaling.logs.safety import redact

FEED = "course/or1/endoscope"


def test_a_prefix_is_shared_valid_two_windows_and_changed_by_revocations() -> None:
    signer = HlsPrefixes(b"s" * 32)
    now = 1_000 * WINDOW_S + 5.0
    prefix, expires_at = signer.current(FEED, gen=7, revoked=0, now=now)
    assert signer.current(FEED, gen=7, revoked=0, now=now + 10)[0] == prefix  # every viewer the same
    assert expires_at == 1_002 * WINDOW_S
    assert signer.valid(prefix, FEED, 7, 0, now=now + WINDOW_S)  # the next window still
    assert not signer.valid(prefix, FEED, 7, 0, now=now + 2 * WINDOW_S)  # then no more
    assert not signer.valid(prefix, FEED, 7, 1, now=now)  # a link revoked
    assert not signer.valid(prefix, FEED, 8, 0, now=now)  # the event's links revoked
    assert not signer.valid(prefix, "course/or2/endoscope", 7, 0, now=now)
    assert not signer.valid(prefix, FEED, 7, 0, now=now - WINDOW_S)  # not before its window
    assert not HlsPrefixes(b"t" * 32).valid(prefix, FEED, 7, 0, now=now)
    for bad in ("", "x", "1000-", f"{prefix}x", "99999999999999-" + "A" * 22):
        assert not signer.valid(bad, FEED, 7, 0, now=now)


def test_a_prefix_never_reaches_the_logs() -> None:
    prefix, _ = HlsPrefixes(b"s" * 32).current(FEED, 0, 0)
    line = redact(f'"GET /hls/s/{prefix}/{FEED}/index.m3u8?_HLS_msn=3 HTTP/1.1" 200')
    assert prefix not in line and "/hls/s/<prefix>/course/or1" in line
