"""The device's own records: one SQLite file, ``journal.db``, for journal and outbox.

Kept apart from the list snapshot: the snapshot can be rebuilt from the
registry, these records cannot. Opened through sqlite-utils in WAL mode
(counter UI and sync agent are different processes) with
``synchronous=FULL``, so a verdict shown at the counter or a report queued
there survives a power cut (https://www.sqlite.org/pragma.html#pragma_synchronous:
FULL syncs the WAL on every commit; NORMAL may lose the last ones).

The schema is a list of migrations kept in code; each one applied is
recorded in the ``migrations`` table, so a file from an older build is
brought up to date on open and a file from a newer build is refused.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.private_files import private_file

FILENAME = "journal.db"
BUSY_TIMEOUT_MS = 5000


class JournalDbError(Exception):
    """Any problem with journal.db, as one human-readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Migration:
    id: int
    name: str
    apply: Callable[[sqlite_utils.Database], None]


def _journal_v1(db: sqlite_utils.Database) -> None:
    # seq is assigned by Journal.append from chain_head, never by SQLite, so
    # it stays monotonic even after retention empties the table.
    db.execute("""
        CREATE TABLE journal (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            verdict TEXT NOT NULL,
            body TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX journal_at ON journal (at)")
    # One row: the last seq ever appended and its hash (the next prev_hash).
    db.execute("""
        CREATE TABLE chain_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
        )""")
    # Runs of consecutive seqs removed by retention, with the hash of the
    # run's last record: the prev_hash the next surviving record refers to.
    db.execute("""
        CREATE TABLE purged (
            first_seq INTEGER PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            last_hash TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE purges (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            clear_days INTEGER NOT NULL,
            match_days INTEGER NOT NULL,
            removed INTEGER NOT NULL
        )""")


def _outbox_v1(db: sqlite_utils.Database) -> None:
    db.execute("""
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            report_id TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'acknowledged')),
            created_at TEXT NOT NULL,
            sent_at TEXT,
            acknowledged_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        )""")
    db.execute("CREATE INDEX outbox_pending ON outbox (id) WHERE state != 'acknowledged'")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "journal hash chain", _journal_v1),
    Migration(2, "incident report outbox", _outbox_v1),
)


def open_db(path: str | Path, *, create: bool = True, readonly: bool = False) -> sqlite_utils.Database:
    """Open journal.db (a file path, or a data dir holding one) and migrate it.

    With ``create=False`` a missing file, or a SQLite file that is not a
    gatecheck journal, is an error instead of being initialised: what
    ``gatecheck journal verify`` wants. ``readonly`` (implies create=False)
    opens it without migrating or taking a write lock: what a look from
    outside wants (``gatecheck doctor``, possibly run as root, must not
    migrate the live journal of a counter that is serving).
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if readonly:
        return _open_readonly(path)
    if not create and not path.is_file():
        raise JournalDbError(f"no journal at {path}")
    if create:
        private_file(path)
    try:
        # Shared between a server's threads; Journal and Outbox serialise calls.
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise JournalDbError(f"cannot open {path}: {exc}") from None
    try:
        db = sqlite_utils.Database(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.enable_wal()
        db.execute("PRAGMA synchronous = FULL")
        if not create and not db["migrations"].exists():
            raise JournalDbError(f"{path} is not a gatecheck journal (no migrations table)")
        migrate(db)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise JournalDbError(f"{path} is not a readable journal: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return db


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply the migrations this file lacks, each recorded; returns the ids applied."""
    with immediate(db):
        db.execute("""
            CREATE TABLE IF NOT EXISTS migrations (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL
            )""")
        done = {row[0] for row in db.execute("SELECT id FROM migrations")}
        known = {m.id for m in MIGRATIONS}
        newer = sorted(done - known)
        if newer:
            raise JournalDbError(
                f"journal schema {newer[-1]} is newer than this gatecheck knows ({max(known)})"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.id in done:
                continue
            migration.apply(db)
            db.execute(
                "INSERT INTO migrations (id, name, applied_at) VALUES (?, ?, ?)",
                (migration.id, migration.name, utc_iso(datetime.now(timezone.utc))),
            )
            applied.append(migration.id)
    return applied


@contextlib.contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One write transaction that takes the write lock up front.

    BEGIN IMMEDIATE makes two processes appending at once queue on the lock
    (busy_timeout) instead of both reading the same chain head.
    """
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        db.conn.execute("COMMIT")


def utc_iso(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds, so text order is time order.

    A naive time is taken as UTC, as the verdict rules do.
    """
    return as_utc(moment).isoformat(timespec="microseconds")


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_utc(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text))


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: one text per value, for hashing and comparing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _open_readonly(path: Path) -> sqlite_utils.Database:
    if not path.is_file():
        raise JournalDbError(f"no journal at {path}")
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        if not db["migrations"].exists():
            conn.close()
            raise JournalDbError(f"{path} is not a gatecheck journal (no migrations table)")
    except sqlite3.Error as exc:
        raise JournalDbError(f"{path} is not a readable journal: {exc}") from None
    return db


class SharedConnection:
    """One journal.db connection shared by a server's threads, behind one lock.

    Journal and Outbox are both tables of journal.db; each holds its own
    connection and serialises its calls on it.
    """

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.db = open_db(path, create=create, readonly=readonly)
        self._lock = threading.RLock()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self.db.close()
