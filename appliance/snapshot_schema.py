"""The snapshot store's schema, as migrations kept in code (docs/snapshot.md).

Each migration is a named function over a sqlite-utils Database. They run in
order, each in its own write transaction together with the row recording it
in ``migrations``, so a migration is applied entirely or not at all. Names
are never reused and applied migrations are never edited: a change of schema
is a new migration at the end of MIGRATIONS.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from typing import Callable, NamedTuple

#: "GCK1": marks a file as a Gatecheck snapshot (SQLite header application_id).
APPLICATION_ID = 0x47434B31


#: The columns of a ``meta`` row, in the order meta_id() takes their values.
META_COLUMNS = {
    "list_id": str, "category": str, "action": str,
    "valid_from": str, "valid_until": str,  # ISO dates
    "redress_id": int, "ref_prefix": str, "ref_width": int, "ref_suffix": str,
}
_META_NAMES = ", ".join(META_COLUMNS)


def meta_key(values: tuple) -> int:
    """A signed 64-bit hash of a meta row's values."""
    digest = hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def meta_id(conn: sqlite3.Connection, values: tuple, *, known_new: bool = False) -> int:
    """The id of the meta row with these values (META_COLUMNS order), inserted if new.

    Rows with the same hash are compared value by value, so a hash collision
    costs a second row, never a wrong one. ``known_new`` skips the search
    (the bulk loader deduplicates in memory).
    """
    key = meta_key(values)
    if not known_new:
        for row in conn.execute(f"SELECT id, {_META_NAMES} FROM meta WHERE key = ?", (key,)):
            if tuple(row[1:]) == tuple(values):
                return row[0]
    marks = ", ".join("?" * (len(META_COLUMNS) + 1))
    return conn.execute(f"INSERT INTO meta (key, {_META_NAMES}) VALUES ({marks})", (key, *values)).lastrowid


class Migration(NamedTuple):
    name: str
    apply: Callable  # (sqlite_utils.Database) -> None


def _initial(db) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db["lists"].create(
        {
            "list_id": str, "name": str, "authority": str, "legal_basis": str,
            "scopes": str,  # JSON array
            "default_action": str, "token_key": bytes, "redress": str,
            "version": int, "state_digest": bytes,
            "signed_at": str, "valid_until": str, "heartbeat_at": str,  # ISO 8601
            "tokens": int,  # number of token records of this list, kept by every write
        },
        pk="list_id",
        not_null={"name", "authority", "legal_basis", "scopes", "default_action",
                  "token_key", "redress", "version", "state_digest", "tokens"},
        defaults={"redress": "", "version": 0, "state_digest": b"", "tokens": 0},
        strict=True,
    )
    # Redress texts repeat across thousands of entries: stored once.
    db["redress"].create({"id": int, "text": str}, pk="id", not_null={"text"}, strict=True)
    db["redress"].create_index(["text"], index_name="redress_unique", unique=True)
    # Everything an entry's tokens share except the reference number. Found
    # again by a 64-bit hash of the values (meta_key): an index on the hash is
    # a fifth of the size of a unique index over all nine columns.
    db["meta"].create(
        {"id": int, "key": int, **{column: META_COLUMNS[column] for column in META_COLUMNS}},
        pk="id",
        not_null={"key", *META_COLUMNS},
        foreign_keys=[("list_id", "lists", "list_id"), ("redress_id", "redress", "id")],
        strict=True,
    )
    db["meta"].create_index(["key"], index_name="meta_key")
    # Packed token records (appliance/snapshot_codec.py): an INTEGER PRIMARY
    # KEY is the rowid, so a bucket seek is one b-tree descent.
    db["buckets"].create({"start": int, "data": bytes}, pk="start", not_null={"data"}, strict=True)
    db["clearances"].create(
        {"token": bytes, "list_id": str, "redress_number": str, "valid_until": str},
        pk=("token", "list_id"),
        not_null={"token", "list_id", "redress_number", "valid_until"},
        foreign_keys=[("list_id", "lists", "list_id")],
        strict=True,
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", _initial),
)


def applied(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations recorded in the file; [] for a new file."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY rowid")]


def pending(conn: sqlite3.Connection) -> list[Migration]:
    done = set(applied(conn))
    return [m for m in MIGRATIONS if m.name not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the pending migrations; returns their names.

    ``conn`` must be in autocommit mode (isolation_level=None). Each
    migration takes the write lock with BEGIN IMMEDIATE, so two processes
    opening a new store at once cannot both apply it.
    """
    import sqlite_utils  # only the write path pays for the import

    db = sqlite_utils.Database(conn, execute_plugins=False)
    if not db["migrations"].exists():
        db["migrations"].create({"name": str, "applied_at": str}, pk="name",
                                not_null={"applied_at"}, strict=True, if_not_exists=True)
    done: list[str] = []
    for migration in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (migration.name,)).fetchone():
                conn.execute("COMMIT")
                continue
            migration.apply(db)
            db["migrations"].insert(
                {"name": migration.name, "applied_at": datetime.now(timezone.utc).isoformat()}
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(migration.name)
    return done
