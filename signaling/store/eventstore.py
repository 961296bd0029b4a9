"""Events, theatres, minted links and revocations, kept in SQLite under the data dir.

SQLite is the embedded default: nothing to install, one file to back up. Reads come from an
in-memory copy (every request checks revocation, so that must not touch the disk); writes go
to the file first and then to memory, so a restart loses nothing that was acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from broadcast.sqlitedb import SchemaTooNew, open_database, transaction
from broadcast.telestration.board import DEFAULT_FADE_S
from signaling.auth.tokens import TokenClaims

logger = logging.getLogger(__name__)

DB_FILE = "orcast.sqlite3"
SCHEMA_VERSION = 3
# a version-1 file (before on-demand sources) gets their column, a version-2 file the drawing settings
_MIGRATIONS = {2: "ALTER TABLE sources ADD COLUMN on_demand INTEGER NOT NULL DEFAULT 0",
               3: "ALTER TABLE events ADD COLUMN viewers_draw INTEGER NOT NULL DEFAULT 0; "
                  "ALTER TABLE events ADD COLUMN stroke_fade_s REAL NOT NULL DEFAULT 8"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    slug TEXT PRIMARY KEY, title TEXT NOT NULL, record INTEGER NOT NULL, public INTEGER NOT NULL,
    adhoc_theatres INTEGER NOT NULL, starts_at TEXT, ends_at TEXT,
    token_gen INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL, created_at REAL NOT NULL,
    viewers_draw INTEGER NOT NULL DEFAULT 0, stroke_fade_s REAL NOT NULL DEFAULT 8);
CREATE TABLE IF NOT EXISTS theatres (
    event TEXT NOT NULL REFERENCES events(slug) ON DELETE CASCADE, slug TEXT NOT NULL,
    title TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (event, slug));
CREATE TABLE IF NOT EXISTS tokens (
    jti TEXT PRIMARY KEY, event TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
    theatre TEXT, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, max_sessions INTEGER,
    minted_by TEXT NOT NULL, revoked_at REAL);
CREATE TABLE IF NOT EXISTS retired (
    slug TEXT PRIMARY KEY, token_gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked (
    jti TEXT PRIMARY KEY, event TEXT NOT NULL, revoked_at REAL NOT NULL, expires_at INTEGER);
CREATE TABLE IF NOT EXISTS event_log (
    id INTEGER PRIMARY KEY, event TEXT NOT NULL, at REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS event_log_by_event ON event_log (event, at);
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY, event TEXT NOT NULL REFERENCES events(slug) ON DELETE CASCADE,
    url TEXT NOT NULL, transport TEXT NOT NULL, token TEXT, added_by TEXT NOT NULL, created_at REAL NOT NULL,
    on_demand INTEGER NOT NULL DEFAULT 0);
"""


class StoreError(ValueError):
    """A request the store refuses, in words (signaling/http/errors.py gives it a status)."""


class AlreadyExists(StoreError):
    """An event or theatre of that name is there already."""


class NotFound(StoreError):
    """No such event."""


@dataclass(frozen=True)
class StoredSource:
    """A pulled source added through the API: `path` is event/theatre/feed."""

    path: str
    url: str
    transport: str
    added_by: str
    token: str | None = field(default=None, repr=False)  # a WHEP source's bearer token
    on_demand: bool = False


@dataclass(frozen=True)
class Theatre:
    slug: str
    title: str


@dataclass(frozen=True)
class Event:
    slug: str
    title: str
    theatres: tuple[Theatre, ...] = ()
    record: bool = False
    public: bool = False          # viewing needs no link (publishing always does)
    adhoc_theatres: bool = False  # technicians may publish to theatres not listed here
    starts_at: str | None = None  # ISO 8601, informational
    ends_at: str | None = None
    token_gen: int = 0            # tokens minted with a lower gen are revoked
    source: str = "api"           # "config" events are rewritten from the file at start-up
    viewers_draw: bool = False    # viewers may draw on the picture too (faculty, moderators, organizers always)
    stroke_fade_s: float = DEFAULT_FADE_S  # a stroke fades this long after it ends, unless pinned

    def theatre(self, slug: str) -> Theatre | None:
        return next((t for t in self.theatres if t.slug == slug), None)

    def accepts_theatre(self, slug: str) -> bool:
        return self.adhoc_theatres or self.theatre(slug) is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["theatres"] = [asdict(t) for t in self.theatres]
        del data["token_gen"]
        return data


@dataclass
class MintedToken:
    jti: str
    event: str
    role: str
    name: str
    theatre: str | None
    issued_at: int
    expires_at: int
    max_sessions: int | None
    minted_by: str
    revoked_at: float | None = None


@dataclass
class _Memory:
    events: dict[str, Event] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    revoked_per_event: Counter[str] = field(default_factory=Counter)


class EventStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILE
        try:
            # the CLI and to_thread callers may share the connection (under the lock)
            self._db = open_database(self.path, _SCHEMA, SCHEMA_VERSION, "event store", shared_between_threads=True,
                                     migrations=_MIGRATIONS)
        except SchemaTooNew as exc:
            raise StoreError(str(exc)) from None
        self._lock = threading.Lock()
        self._mem = _Memory()
        self.reload()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reload(self) -> None:
        """Re-read everything (another process, such as `orcast token`, may have written)."""
        with self._lock:
            events = {}
            for row in self._db.execute("SELECT slug, title, record, public, adhoc_theatres, starts_at, "
                                        "ends_at, token_gen, source, viewers_draw, stroke_fade_s FROM events"):
                theatres = tuple(Theatre(s, t) for s, t in self._db.execute(
                    "SELECT slug, title FROM theatres WHERE event=? ORDER BY position", (row[0],)))
                events[row[0]] = Event(row[0], row[1], theatres, bool(row[2]), bool(row[3]), bool(row[4]),
                                       row[5], row[6], row[7], row[8], bool(row[9]), float(row[10]))
            rows = self._db.execute("SELECT jti, event FROM revoked").fetchall()
        self._mem = _Memory(events, {r[0] for r in rows}, Counter(r[1] for r in rows))

    # -- events -------------------------------------------------------------------------
    def events(self) -> list[Event]:
        return sorted(self._mem.events.values(), key=lambda e: e.slug)

    def get(self, slug: str) -> Event | None:
        return self._mem.events.get(slug)

    def put_event(self, event: Event, replace_existing: bool = False) -> Event:
        """Create an event (or rewrite it, keeping its token generation)."""
        with self._lock:
            old = self._mem.events.get(event.slug)
            if old is not None and not replace_existing:
                raise AlreadyExists(f"event {event.slug!r} exists already")
            if old is not None:
                event = replace(event, token_gen=old.token_gen)
            else:
                # a new event (or one deleted and created again) starts at a generation no
                # earlier link can have: links of an earlier event of that name stay dead
                row = self._db.execute("SELECT token_gen FROM retired WHERE slug=?", (event.slug,)).fetchone()
                floor = row[0] + 1 if row else 0
                event = replace(event, token_gen=max(event.token_gen, int(time.time()), floor))
            with transaction(self._db):
                self._db.execute(
                    "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(slug) DO UPDATE SET "
                    "title=excluded.title, record=excluded.record, public=excluded.public, "
                    "adhoc_theatres=excluded.adhoc_theatres, starts_at=excluded.starts_at, "
                    "ends_at=excluded.ends_at, source=excluded.source, viewers_draw=excluded.viewers_draw, "
                    "stroke_fade_s=excluded.stroke_fade_s",
                    (event.slug, event.title, event.record, event.public, event.adhoc_theatres,
                     event.starts_at, event.ends_at, event.token_gen, event.source, time.time(),
                     event.viewers_draw, event.stroke_fade_s))
                self._db.execute("DELETE FROM theatres WHERE event=?", (event.slug,))
                self._db.executemany("INSERT INTO theatres VALUES (?,?,?,?)",
                                     [(event.slug, t.slug, t.title, i) for i, t in enumerate(event.theatres)])
            self._mem.events[event.slug] = event
        return event

    def add_theatre(self, slug: str, theatre: Theatre) -> Event:
        event = self._require(slug)
        if event.theatre(theatre.slug) is not None:
            raise AlreadyExists(f"theatre {theatre.slug!r} exists already in {slug}")
        return self.put_event(replace(event, theatres=(*event.theatres, theatre)), replace_existing=True)

    def delete_event(self, slug: str) -> None:
        self._require(slug)
        with self._lock:
            with transaction(self._db):
                self._db.execute("INSERT OR REPLACE INTO retired SELECT slug, token_gen FROM events WHERE slug=?",
                                 (slug,))
                self._db.execute("DELETE FROM events WHERE slug=?", (slug,))
                # its links must never come back to life if the slug is reused
                self._db.execute("INSERT OR IGNORE INTO revoked SELECT jti, event, ?, expires_at "
                                 "FROM tokens WHERE event=?", (time.time(), slug))
            self._mem.events.pop(slug, None)
        self.reload()

    def _require(self, slug: str) -> Event:
        event = self._mem.events.get(slug)
        if event is None:
            raise NotFound(f"no event {slug!r}")
        return event

    # -- pulled sources added through the API (they come back after a restart) ----------
    def sources(self) -> list[StoredSource]:
        with self._lock:
            rows = self._db.execute("SELECT path, url, transport, added_by, token, on_demand FROM sources "
                                    "ORDER BY path").fetchall()
        return [StoredSource(path, url, transport, added_by, token, bool(on_demand))
                for path, url, transport, added_by, token, on_demand in rows]

    def put_source(self, source: StoredSource) -> None:
        event = source.path.split("/", 1)[0]
        self._require(event)
        with self._lock, transaction(self._db):
            if self._db.execute("SELECT 1 FROM sources WHERE path=?", (source.path,)).fetchone():
                raise AlreadyExists(f"{source.path} has a source already; remove it first")
            self._db.execute("INSERT INTO sources (path, event, url, transport, token, added_by, created_at, "
                             "on_demand) VALUES (?,?,?,?,?,?,?,?)",
                             (source.path, event, source.url, source.transport, source.token, source.added_by,
                              time.time(), int(source.on_demand)))

    def delete_source(self, path: str) -> bool:
        with self._lock, transaction(self._db):
            return self._db.execute("DELETE FROM sources WHERE path=?", (path,)).rowcount > 0

    # -- tokens -------------------------------------------------------------------------
    def record_token(self, claims: TokenClaims, minted_by: str) -> None:
        with self._lock, transaction(self._db):
            self._db.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                             (claims.jti, claims.event, str(claims.role), claims.name, claims.theatre,
                              claims.iat, claims.exp, claims.max_sessions, minted_by))

    def import_token(self, token: MintedToken) -> None:
        """A link another node of the cluster minted: listed here too (revoked if it was)."""
        with self._lock, transaction(self._db):
            revoked = self._db.execute("SELECT revoked_at FROM revoked WHERE jti=?", (token.jti,)).fetchone()
            self._db.execute("INSERT OR IGNORE INTO tokens VALUES (?,?,?,?,?,?,?,?,?,?)",
                             (token.jti, token.event, token.role, token.name, token.theatre, token.issued_at,
                              token.expires_at, token.max_sessions, token.minted_by, revoked[0] if revoked else None))

    def tokens(self, event: str) -> list[MintedToken]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM tokens WHERE event=? ORDER BY issued_at", (event,)).fetchall()
        return [MintedToken(*row) for row in rows]

    def is_revoked(self, claims: TokenClaims) -> bool:
        if claims.jti in self._mem.revoked:
            return True
        event = self._mem.events.get(claims.event)
        return event is not None and claims.gen < event.token_gen

    def revoke(self, event: str, jti: str, expires_at: int | None = None) -> None:
        """`expires_at`: the link's expiry when another node minted it (this store has no row)."""
        now = time.time()
        with self._lock:
            with transaction(self._db):
                row = self._db.execute("SELECT expires_at FROM tokens WHERE jti=? AND event=?",
                                       (jti, event)).fetchone()
                self._db.execute("INSERT OR IGNORE INTO revoked VALUES (?,?,?,?)",
                                 (jti, event, now, row[0] if row else expires_at))
                self._db.execute("UPDATE tokens SET revoked_at=? WHERE jti=? AND revoked_at IS NULL",
                                 (now, jti))
            if jti not in self._mem.revoked:
                self._mem.revoked.add(jti)
                self._mem.revoked_per_event[event] += 1

    def revoke_all(self, slug: str) -> int:
        """Every token of the event minted so far stops working. Returns the new generation."""
        event = self._require(slug)
        now = time.time()
        with self._lock:
            with transaction(self._db):
                self._db.execute("UPDATE events SET token_gen=token_gen+1 WHERE slug=?", (slug,))
                self._db.execute("UPDATE tokens SET revoked_at=? WHERE event=? AND revoked_at IS NULL",
                                 (now, slug))
            self._mem.events[slug] = replace(event, token_gen=event.token_gen + 1)
        return event.token_gen + 1

    def raise_token_gen(self, slug: str, gen: int) -> bool:
        """Another node revoked the event's links: its generation, if newer, is taken here too."""
        event = self._require(slug)
        if gen <= event.token_gen:
            return False
        now = time.time()
        with self._lock:
            with transaction(self._db):
                self._db.execute("UPDATE events SET token_gen=? WHERE slug=? AND token_gen<?", (gen, slug, gen))
                self._db.execute("UPDATE tokens SET revoked_at=? WHERE event=? AND revoked_at IS NULL",
                                 (now, slug))
            self._mem.events[slug] = replace(event, token_gen=gen)
        return True

    def adopt_token_gen(self, slug: str, gen: int) -> bool:
        """The cluster's generation for this event (every node of a cluster must accept the
        same links), though never one at which links of an earlier event of this name, deleted
        here, would come back."""
        event = self._require(slug)
        with self._lock:
            row = self._db.execute("SELECT token_gen FROM retired WHERE slug=?", (slug,)).fetchone()
            gen = max(gen, row[0] + 1 if row else 0)
            if gen == event.token_gen:
                return False
            with transaction(self._db):
                self._db.execute("UPDATE events SET token_gen=? WHERE slug=?", (gen, slug))
            self._mem.events[slug] = replace(event, token_gen=gen)
        return True

    def token_expiry(self, jti: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT expires_at FROM tokens WHERE jti=?", (jti,)).fetchone()
        return int(row[0]) if row else None

    def revoked_count(self, slug: str) -> int:
        """How many of the event's links are revoked (HLS prefixes change with it)."""
        return self._mem.revoked_per_event[slug]

    # -- the event's log: who did what that matters afterwards (a privacy pause) ---------
    def log_action(self, event: str, who: str, action: str, detail: str, at: float | None = None) -> None:
        with self._lock, transaction(self._db):
            self._db.execute("INSERT INTO event_log (event, at, who, action, detail) VALUES (?,?,?,?,?)",
                             (event, at if at is not None else time.time(), who, action, detail))

    def event_log(self, event: str, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT at, who, action, detail FROM event_log WHERE event=? ORDER BY at DESC, id "
                                    "DESC LIMIT ?", (event, limit)).fetchall()
        return [{"at": at, "who": who, "action": action, "detail": detail} for at, who, action, detail in rows]

    def token_gen(self, slug: str) -> int:
        event = self._mem.events.get(slug)
        return event.token_gen if event else 0

    def prune(self, now: float | None = None) -> int:
        """Forget revocations of tokens that have expired anyway (they fail on `exp`)."""
        cutoff = int(now if now is not None else time.time()) - 3600
        with self._lock, transaction(self._db):
            cur = self._db.execute("DELETE FROM revoked WHERE expires_at IS NOT NULL AND expires_at < ?",
                                   (cutoff,))
        if cur.rowcount:
            self.reload()
        return cur.rowcount
