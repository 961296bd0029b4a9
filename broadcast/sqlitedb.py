"""SQLite as both stores use it (the event store and the Q&A boards): one file under the data
dir, WAL so readers never wait for a writer, a schema version that refuses a file written by a
newer ORcast, and transactions that take the write lock up front (BEGIN IMMEDIATE), so two
processes writing at once wait for each other instead of failing half-way."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

BUSY_TIMEOUT_MS = 5000


class SchemaTooNew(Exception):
    """The file was written by a newer ORcast; this one must not touch it."""


def open_database(path: Path | None, schema: str, version: int, what: str, *,
                  synchronous: Literal["FULL", "NORMAL"] = "FULL",
                  shared_between_threads: bool = False,
                  migrations: dict[int, str] | None = None) -> sqlite3.Connection:
    """Open (or create) the database at `path` (None: in memory) with `schema` at `version`.

    `migrations[n]` is the script that brings a file written at version n-1 to version n; a new
    file gets `schema` as it is (which already has everything the migrations add).

    `synchronous="NORMAL"` (with WAL) keeps every commit through a crash of the process, and
    loses only the last moments to a power cut; "FULL" loses nothing acknowledged.
    """
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                         check_same_thread=not shared_between_threads)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise SchemaTooNew(f"{path} was written by a newer ORcast ({what} schema {found}, this one "
                               f"knows {version}); upgrade ORcast or point it at another data directory")
        db.executescript(schema)
        if found:
            for step in range(found + 1, version + 1):
                script = (migrations or {}).get(step)
                if script:
                    db.executescript(f"BEGIN IMMEDIATE; {script}; COMMIT;")
        db.execute(f"PRAGMA user_version={int(version)}")
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """All of the block's writes, or none: committed at the end, rolled back on any error
    (a failed COMMIT too, so the connection is never left inside a transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
