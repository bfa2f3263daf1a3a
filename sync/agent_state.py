"""What the sync agent remembers between runs: ``sync.db`` in the data directory.

Per list: the :class:`~sync.trust.TrustedListState` it verified and the full
2048-byte digest lanes (sync/digest.py) that let it check the next delta in
time proportional to the delta. Besides: every root-signed key statement it
accepted (so a revoked key stays revoked across restarts, sync/keys.py) and
the monitoring row shown by ``gatecheck sync status``.

The snapshot store and this file are two SQLite files, so one transaction
cannot span both. The agent therefore *stages* the state it is about to
reach, applies the batch to the store, then *commits* the staged state; on
start, :meth:`AgentState.reconcile` keeps the staged state if the store
reached its version and drops it otherwise. Every method is one
transaction; the file is 0600 (it holds nothing secret, but it sits beside
files that do).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

from appliance.private_files import private_file
from sync.digest import DIGEST_BYTES
from sync.errors import SyncError
from sync.trust import TrustedListState

FILENAME = "sync.db"
KIND_CERT, KIND_REVOCATION = "cert", "revocation"
_EMPTY_LANES = bytes(DIGEST_BYTES)


class AgentStateError(SyncError):
    """sync.db cannot be opened or holds something unusable."""

    code = "agent_state"


@dataclass(frozen=True)
class ListRecord:
    """One list as the agent holds it: the trusted state and its digest lanes."""

    state: TrustedListState
    lanes: bytes = _EMPTY_LANES


@dataclass(frozen=True)
class AgentStatus:
    """The monitoring row: times are Unix seconds, None when it never happened."""

    last_success_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    next_poll_at: float | None = None
    failures: int = 0


def _v1(db: sqlite_utils.Database) -> None:
    for table in ("lists", "staged"):
        db.execute(f"""
            CREATE TABLE {table} (
                list_id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                digest BLOB,
                heartbeat_issued_at INTEGER,
                heartbeat_valid_until INTEGER,
                lanes BLOB NOT NULL
            )""")
    db.execute("""
        CREATE TABLE key_statements (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('cert', 'revocation')),
            data BLOB NOT NULL UNIQUE
        )""")
    db.execute("""
        CREATE TABLE status (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_success_at REAL, last_error_at REAL, last_error TEXT,
            next_poll_at REAL, failures INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("INSERT INTO status (id) VALUES (1)")


#: Registered in code, recorded in the ``migrations`` table (the sqlite-utils habit).
MIGRATIONS = ((1, "lists, staged, key statements, status", _v1),)


def state_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / FILENAME


def read_status(data_dir: str | os.PathLike) -> AgentStatus | None:
    """The monitoring row, read by another process (the counter's /metrics); None before the agent's first run.

    Read-only (SQLite ``mode=ro``): a reader must neither create sync.db
    nor take the write lock that migrating would, while the agent runs.
    """
    path = state_path(data_dir)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            row = conn.execute("SELECT last_success_at, last_error_at, last_error, next_poll_at, failures"
                               " FROM status WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise AgentStateError(f"cannot read {path}: {exc}") from None
    return AgentStatus(*row) if row is not None else None


class AgentState:
    """``sync.db``; ``path`` is the file or the data directory. One writer: the agent."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self.path = state_path(path) if path.is_dir() else path
        try:
            private_file(self.path)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self.db = sqlite_utils.Database(conn, execute_plugins=False)
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise AgentStateError(f"cannot open {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "AgentState":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self):
        return _Transaction(self.db.conn)

    def _migrate(self) -> None:
        with self._tx():
            self.db.execute("CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, name TEXT)")
            done = {row[0] for row in self.db.execute("SELECT id FROM migrations")}
            newest = max(m[0] for m in MIGRATIONS)
            if done and max(done) > newest:
                raise AgentStateError(f"{self.path} was written by a newer build (migration {max(done)})")
            for number, name, apply in MIGRATIONS:
                if number not in done:
                    apply(self.db)
                    self.db.execute("INSERT INTO migrations (id, name) VALUES (?, ?)", (number, name))

    # -- lists -----------------------------------------------------------------

    def get(self, list_id: str) -> ListRecord:
        """The held record; a list never synced is version 0 with empty lanes."""
        return self._read("lists", list_id) or ListRecord(TrustedListState(list_id))

    def lists(self) -> dict[str, ListRecord]:
        rows = self.db.execute("SELECT list_id FROM lists ORDER BY list_id").fetchall()
        return {row[0]: self.get(row[0]) for row in rows}

    def save(self, record: ListRecord) -> None:
        """Replace the held record (a heartbeat, or a recovery)."""
        with self._tx():
            self._write("lists", record)

    def stage(self, record: ListRecord) -> None:
        """Remember the state the agent is about to reach, before it touches the store."""
        with self._tx():
            self._write("staged", record)

    def staged(self, list_id: str) -> ListRecord | None:
        return self._read("staged", list_id)

    def commit_staged(self, list_id: str) -> ListRecord:
        """The store reached the staged version: make it the held record."""
        with self._tx():
            record = self._read("staged", list_id)
            if record is None:
                raise AgentStateError(f"no staged state for list {list_id!r}")
            self._write("lists", record)
            self.db.execute("DELETE FROM staged WHERE list_id = ?", (list_id,))
        return record

    def discard_staged(self, list_id: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM staged WHERE list_id = ?", (list_id,))

    def reconcile(self, list_id: str, store_version: int | None) -> ListRecord:
        """After a crash: keep the staged state if the store got there, drop it otherwise."""
        staged = self.staged(list_id)
        if staged is not None:
            if store_version == staged.state.version:
                return self.commit_staged(list_id)
            self.discard_staged(list_id)
        return self.get(list_id)

    def _read(self, table: str, list_id: str) -> ListRecord | None:
        row = self.db.execute(
            f"SELECT list_id, version, digest, heartbeat_issued_at, heartbeat_valid_until, lanes"
            f" FROM {table} WHERE list_id = ?", (list_id,)).fetchone()
        if row is None:
            return None
        lanes = bytes(row[5])
        if len(lanes) != DIGEST_BYTES:
            raise AgentStateError(f"{self.path}: list {list_id!r} has {len(lanes)} digest bytes, not {DIGEST_BYTES}")
        digest = bytes(row[2]) if row[2] is not None else None
        return ListRecord(TrustedListState(row[0], row[1], digest, row[3], row[4]), lanes)

    def _write(self, table: str, record: ListRecord) -> None:
        s = record.state
        self.db.execute(
            f"INSERT OR REPLACE INTO {table} (list_id, version, digest, heartbeat_issued_at,"
            f" heartbeat_valid_until, lanes) VALUES (?, ?, ?, ?, ?, ?)",
            (s.list_id, s.version, s.digest, s.heartbeat_issued_at, s.heartbeat_valid_until,
             bytes(record.lanes)))

    # -- keys --------------------------------------------------------------------

    def key_statements(self) -> list[tuple[str, bytes]]:
        """Accepted certs and revocations, in the order they were accepted."""
        return [(kind, bytes(data)) for kind, data in
                self.db.execute("SELECT kind, data FROM key_statements ORDER BY seq")]

    def add_key_statement(self, kind: str, data: bytes) -> None:
        with self._tx():
            self.db.execute("INSERT OR IGNORE INTO key_statements (kind, data) VALUES (?, ?)",
                            (kind, bytes(data)))

    # -- monitoring ----------------------------------------------------------------

    def status(self) -> AgentStatus:
        row = self.db.execute("SELECT last_success_at, last_error_at, last_error, next_poll_at, failures"
                              " FROM status WHERE id = 1").fetchone()
        return AgentStatus(*row)

    def record_success(self, at: float, next_poll_at: float) -> None:
        with self._tx():
            self.db.execute("UPDATE status SET last_success_at = ?, next_poll_at = ?, failures = 0"
                            " WHERE id = 1", (at, next_poll_at))

    def record_failure(self, at: float, message: str, failures: int, next_poll_at: float) -> None:
        """A failed poll: ``failures`` is the count of consecutive ones, this one included."""
        with self._tx():
            self.db.execute("UPDATE status SET last_error_at = ?, last_error = ?, next_poll_at = ?,"
                            " failures = ? WHERE id = 1", (at, message, next_poll_at, failures))

    def record_error(self, at: float, message: str) -> None:
        """An error that does not count as a failed poll (one list refused, others synced)."""
        with self._tx():
            self.db.execute("UPDATE status SET last_error_at = ?, last_error = ? WHERE id = 1", (at, message))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
