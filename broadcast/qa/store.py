"""The Q&A boards on disk: questions, votes and the moderators' log in SQLite.

Every accepted action is one transaction, committed before anyone is told about it, so a
crash or restart loses nothing that a client saw. WAL with `synchronous=NORMAL`: a commit
survives the process dying at any point; only a power cut can lose the last moments.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from broadcast.qa.question import Action, Question, QuestionState
from broadcast.sqlitedb import SchemaTooNew, open_database, transaction

logger = logging.getLogger(__name__)

DB_FILE = "qa.sqlite3"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    event TEXT NOT NULL, id INTEGER NOT NULL, text TEXT NOT NULL, author_key TEXT NOT NULL,
    author_name TEXT NOT NULL, author_role TEXT NOT NULL, anonymous INTEGER NOT NULL,
    theatre TEXT, created_at REAL NOT NULL, state TEXT NOT NULL, original_text TEXT,
    edited_by TEXT, reason TEXT, merged_into INTEGER, pinned INTEGER NOT NULL, on_air TEXT,
    answered_at REAL, updated_at REAL NOT NULL,
    PRIMARY KEY (event, id));
CREATE TABLE IF NOT EXISTS votes (
    event TEXT NOT NULL, question INTEGER NOT NULL, voter TEXT NOT NULL,
    PRIMARY KEY (event, question, voter));
CREATE TABLE IF NOT EXISTS actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL, question INTEGER NOT NULL,
    action TEXT NOT NULL, actor_name TEXT NOT NULL, actor_role TEXT NOT NULL,
    actor_id TEXT NOT NULL, at REAL NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS actions_event ON actions (event, seq);
CREATE TABLE IF NOT EXISTS layouts (event TEXT PRIMARY KEY, layout TEXT NOT NULL);
"""
_COLUMNS = ("event", "id", "text", "author_key", "author_name", "author_role", "anonymous",
            "theatre", "created_at", "state", "original_text", "edited_by", "reason",
            "merged_into", "pinned", "on_air", "answered_at", "updated_at")


class StoreFailed(Exception):
    """The board could not be written (disk full, read-only disk, a broken file)."""


class QaStore:
    def __init__(self, path: Path | None) -> None:
        """`path` None keeps the boards in memory (in-process use without a data dir)."""
        self.path = path
        try:
            self._db = open_database(path, _SCHEMA, SCHEMA_VERSION, "Q&A", synchronous="NORMAL")
        except SchemaTooNew as exc:
            raise StoreFailed(str(exc)) from None

    def load(self, event: str) -> list[Question]:
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM questions WHERE event = ? ORDER BY id", (event,))
        questions: dict[int, Question] = {}
        for row in rows:
            values = dict(zip(_COLUMNS, row, strict=True))
            values["state"] = QuestionState(values["state"])
            values["anonymous"] = bool(values["anonymous"])
            values["pinned"] = bool(values["pinned"])
            question = Question(**values)
            questions[question.id] = question
        for qid, voter in self._db.execute("SELECT question, voter FROM votes WHERE event = ?", (event,)):
            if qid in questions:
                questions[qid].voters.add(voter)
        return list(questions.values())

    def commit(self, event: str, changed: Iterable[Question], actions: Iterable[Action] = (),
               votes_added: Iterable[tuple[int, str]] = (),
               votes_removed: Iterable[tuple[int, str]] = (), layout: dict[str, Any] | None = None) -> None:
        """Write one action's changes (the hall layout too) in one transaction, or nothing (StoreFailed)."""
        try:
            with transaction(self._db):
                if layout is not None:
                    self._db.execute("INSERT OR REPLACE INTO layouts VALUES (?, ?)", (event, json.dumps(layout)))
                for q in changed:
                    self._db.execute(
                        f"INSERT OR REPLACE INTO questions ({', '.join(_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                        tuple(_column(q, name) for name in _COLUMNS))
                self._db.executemany("INSERT OR IGNORE INTO votes VALUES (?, ?, ?)",
                                     [(event, qid, voter) for qid, voter in votes_added])
                self._db.executemany("DELETE FROM votes WHERE event = ? AND question = ? AND voter = ?",
                                     [(event, qid, voter) for qid, voter in votes_removed])
                self._insert_actions(event, actions)
        except sqlite3.Error as exc:
            logger.error("Q&A board of %s could not be saved: %s", event, exc)
            raise StoreFailed(str(exc)) from None

    def _insert_actions(self, event: str, actions: Iterable[Action]) -> None:
        self._db.executemany(
            "INSERT INTO actions (event, question, action, actor_name, actor_role, actor_id, "
            "at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(event, a.question, a.action, a.actor_name, a.actor_role, a.actor_id, a.at,
              json.dumps(a.detail)) for a in actions])

    def layout(self, event: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT layout FROM layouts WHERE event = ?", (event,)).fetchone()
        return json.loads(row[0]) if row else None

    def clear_event(self, event: str) -> None:
        """Forget this copy of an event's board (a cluster's shared log replaces it)."""
        try:
            with transaction(self._db):
                for table, column in (("questions", "event"), ("votes", "event"), ("actions", "event"),
                                      ("layouts", "event")):
                    self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (event,))
        except sqlite3.Error as exc:
            raise StoreFailed(str(exc)) from None

    def actions(self, event: str) -> list[Action]:
        rows = self._db.execute(
            "SELECT question, action, actor_name, actor_role, actor_id, at, detail FROM actions "
            "WHERE event = ? ORDER BY seq", (event,))
        return [Action(q, a, n, r, i, at, json.loads(d)) for q, a, n, r, i, at, d in rows]

    def archive_event(self, event: str, archived_as: str) -> None:
        """Move an event's board aside (a new event of the same name starts empty)."""
        with transaction(self._db):
            for table in ("questions", "votes", "actions", "layouts"):
                self._db.execute(f"UPDATE {table} SET event = ? WHERE event = ?", (archived_as, event))

    def close(self) -> None:
        self._db.close()


def _column(question: Question, name: str) -> object:
    value = getattr(question, name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, QuestionState):
        return str(value)
    return value
