"""The SQLite helpers both stores use: a newer file is refused, a transaction is all or nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broadcast.qa.store import QaStore, StoreFailed
from broadcast.sqlitedb import SchemaTooNew, open_database, transaction
from signaling.store.eventstore import EventStore, StoreError

SCHEMA = "CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY);"


def test_a_file_from_a_newer_orcast_is_refused_by_both_stores(tmp_path: Path) -> None:
    for name in ("orcast.sqlite3", "qa.sqlite3"):
        db = sqlite3.connect(tmp_path / name)
        db.execute("PRAGMA user_version=99")
        db.close()
    with pytest.raises(StoreError, match="newer ORcast"):
        EventStore(tmp_path)
    with pytest.raises(StoreFailed, match="newer ORcast"):
        QaStore(tmp_path / "qa.sqlite3")
    with pytest.raises(SchemaTooNew, match="schema 99"):
        open_database(tmp_path / "qa.sqlite3", SCHEMA, 1, "test")


def test_a_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    db = open_database(tmp_path / "items.sqlite3", SCHEMA, 1, "test")
    with transaction(db):
        db.execute("INSERT INTO items VALUES ('kept')")
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO items VALUES ('lost')")
        db.execute("INSERT INTO items VALUES ('kept')")  # fails: the whole block is undone
    assert not db.in_transaction
    assert [r[0] for r in db.execute("SELECT name FROM items")] == ["kept"]
    db.close()
    again = open_database(tmp_path / "items.sqlite3", SCHEMA, 1, "test")
    assert again.execute("PRAGMA user_version").fetchone()[0] == 1
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()
