"""The event store on disk: what was acknowledged survives a restart; links of a deleted event
never come back to life."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from broadcast.participant import Role
from signaling.auth.tokens import TokenIssuer, load_secret
from signaling.config.settings import ConfigError, parse_config
from signaling.store.eventstore import AlreadyExists, Event, EventStore, Theatre


def test_events_and_revocations_survive_a_restart(tmp_path: Path) -> None:
    issuer = TokenIssuer(load_secret(tmp_path))
    store = EventStore(tmp_path)
    event = store.put_event(Event("hpb", "HPB", (Theatre("or1", "OR 1"),)))
    store.add_theatre("hpb", Theatre("or2", "OR 2"))
    _, kept = issuer.mint("hpb", Role.VIEWER, "kept", 600, gen=event.token_gen)
    _, gone = issuer.mint("hpb", Role.VIEWER, "gone", 600, gen=event.token_gen)
    store.record_token(kept, "test")
    store.record_token(gone, "test")
    store.revoke("hpb", gone.jti)
    store.close()

    again = EventStore(tmp_path)
    assert [t.slug for t in again.get("hpb").theatres] == ["or1", "or2"]  # type: ignore[union-attr]
    assert not again.is_revoked(kept) and again.is_revoked(gone)
    assert {t.name: t.revoked_at is not None for t in again.tokens("hpb")} == {"kept": False, "gone": True}
    again.revoke_all("hpb")
    assert again.is_revoked(kept)
    _, fresh = issuer.mint("hpb", Role.VIEWER, "fresh", 600, gen=again.token_gen("hpb"))
    assert not again.is_revoked(fresh)
    with pytest.raises(AlreadyExists, match="exists already"):  # HTTP 409, given by signaling/http/errors.py
        again.put_event(Event("hpb", "Twice"))
    assert TokenIssuer(load_secret(tmp_path)).verify(issuer.mint("hpb", Role.HALL, "h", 60)[0]).role is Role.HALL


def test_a_deleted_event_recreated_does_not_revive_old_links(tmp_path: Path) -> None:
    issuer = TokenIssuer(load_secret(tmp_path))
    store = EventStore(tmp_path)
    first = store.put_event(Event("course", "First"))
    _, unrecorded = issuer.mint("course", Role.VIEWER, "old", 600, gen=first.token_gen)
    store.delete_event("course")
    store.put_event(Event("course", "Second"))
    assert store.token_gen("course") > first.token_gen and store.is_revoked(unrecorded)


def test_config_events_are_validated() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"events": [{"slug": "Bad Slug"}, {"slug": "ok", "theatres": ["or1", "or1"], "colour": 1},
                                 {"slug": "ok"}]})
    problems = "\n".join(exc.value.problems)
    assert "events[0].slug" in problems and "events[1].colour" in problems
    assert "listed twice" in problems and "defined twice" in problems
    with pytest.raises(ConfigError, match="tls"):
        parse_config({"tls": {"cert": "/x.pem"}})
    with pytest.raises(ConfigError, match="default_ttl"):
        parse_config({"auth": {"default_ttl": "forever"}})
    cfg = parse_config({"events": [{"slug": "hpb", "theatres": ["or1", {"slug": "podium", "title": "Hall"}],
                                    "public": True}], "limits": {"sessions_per_token": 3}})
    assert cfg.events[0].theatre("podium") == Theatre("podium", "Hall") and cfg.events[0].public
    assert cfg.sessions_per_token == 3


def test_readme_config_examples_parse() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```toml\n")[1:]]
    assert len(blocks) >= 2
    for block in blocks:
        parse_config(tomllib.loads(block))
