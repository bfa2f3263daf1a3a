"""The on-device list snapshot: lists, token entries and clearances in one SQLite file.

Why it is shaped this way (numbers in docs/snapshot.md):

* WAL journal, so the counter UI (readers) never waits for the sync agent
  (the writer, another process), and a ``kill -9`` of the writer leaves the
  last committed version intact.
* Every change to a list is one ``apply_batch``: one BEGIN IMMEDIATE
  transaction that checks the version, applies additions and removals and
  moves the list from N to N+1. Anything that goes wrong rolls all of it back.
* Token records are packed into buckets (appliance/snapshot_codec.py) and an
  entry's metadata is stored once in ``meta``: 20 bytes per token record,
  about 21.5 bytes per token on disk, where one SQLite row per token costs
  27-28.
* The schema is made by migrations in appliance/snapshot_schema.py with
  sqlite-utils. The lookup path uses the plain sqlite3 connection: it runs
  two prepared statements per token and must not pay for anything else.

Nothing here stores a name or a document number: only the keyed tokens of
sync/identity.py and what a match means.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import quote

from appliance import snapshot_buckets as buckets_io
from appliance import snapshot_codec as codec
from appliance import snapshot_generations as generations
from appliance import snapshot_schema as schema
from appliance.private_files import private_file
from appliance.records import Action, Batch, Clearance, Entry, ListInfo, TokenKind
from appliance.snapshot_errors import (  # noqa: F401 (re-exported: callers import them from here)
    SnapshotBusy,
    SnapshotCorrupt,
    SnapshotError,
    UnknownList,
    VersionMismatch,
    translated,
)
from appliance.snapshot_validate import unique_tokens, validate_batch, validate_list_info

SNAPSHOT_FILE = "snapshot.db"
BUSY_TIMEOUT_MS = 5000
#: SQLite page cache per connection. Holds the bucket table's interior pages
#: at 50 M tokens (about 4 MB), so a lookup reads one leaf page from the OS.
CACHE_KIB = 16 * 1024
_MAX_META_ID = 0xFFFFFFFF

_SEEK = "SELECT start, data FROM buckets WHERE start <= ? ORDER BY start DESC LIMIT 1"


def snapshot_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / SNAPSHOT_FILE


@dataclass(frozen=True)
class _Meta:
    list_id: str
    category: str
    action: Action
    valid_from: date
    valid_until: date
    redress: str
    template: codec.ReferenceTemplate


class SnapshotStore:
    """One snapshot file. Thread-safe: one connection behind a lock.

    ``readonly`` opens the file with SQLite's ``mode=ro`` and never migrates;
    the counter UI uses it, the sync agent opens read-write. The store must
    already exist and be migrated to open it read-only. ``busy_timeout_ms``
    bounds how long a write waits for another writer; ``cache_kib`` sizes
    this connection's SQLite page cache.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS, cache_kib: int = CACHE_KIB) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._depth = 0
        self._metas: dict[int, _Meta] = {}
        self._sqlite_utils_db = None
        self._settings = (busy_timeout_ms, cache_kib)
        #: The SQLite file in use: ``path`` itself, or the generation it points at.
        self.file = self.path
        self._marker: tuple | None = None
        self._conn = self._open_current()

    # -- generations (appliance/snapshot_generations.py) ------------------------

    def _open_current(self) -> sqlite3.Connection:
        """Open the file the pointer designates, retrying if it moves meanwhile."""
        for _ in range(20):
            file, mark = generations.resolve(self.path)
            if file != self.path and not file.is_file():
                continue  # the generation was replaced between reading the pointer and opening it
            conn = self._open(file)
            if generations.marker(self.path) == mark:
                self.file, self._marker = file, mark
                return conn
            conn.close()
        raise SnapshotBusy(f"snapshot store {self.path} kept moving to new generations while opening")

    def _follow(self) -> None:
        """Reopen if the pointer moved to a new generation (a full reload in another process)."""
        mark = generations.marker(self.path)
        if mark is not None and mark != self._marker:
            self._conn.close()
            self._metas = {}  # meta ids are per file
            self._sqlite_utils_db = None
            self._conn = self._open_current()

    def _open(self, file: Path) -> sqlite3.Connection:
        busy_timeout_ms, cache_kib = self._settings
        if self.readonly and not file.is_file():
            raise SnapshotError(f"no snapshot store at {self.path}")
        try:
            if self.readonly or file != self.path:
                # A generation file is never created by opening it: it exists or it was replaced.
                mode = "ro" if self.readonly else "rw"
                conn = sqlite3.connect(f"file:{quote(str(file.absolute()))}?mode={mode}", uri=True,
                                       isolation_level=None, check_same_thread=False)
            else:
                private_file(file)
                conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise SnapshotError(f"cannot open snapshot store {self.path}: {exc}") from None
        try:
            with translated(self.path):
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                if app_id not in (0, schema.APPLICATION_ID):
                    raise SnapshotCorrupt(f"{self.path} is an SQLite file but not a snapshot store")
                if self.readonly:
                    if schema.pending(conn):
                        raise SnapshotError(
                            f"snapshot store {self.path} needs migrating; open it read-write once"
                        )
                else:
                    conn.execute("PRAGMA journal_mode = WAL")
                    # FULL: a committed version survives power loss too; commits are rare.
                    conn.execute("PRAGMA synchronous = FULL")
                    if schema.pending(conn):
                        schema.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "SnapshotStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def read(self) -> Iterator["SnapshotStore"]:
        """One consistent view for several calls (lists, lookup, clearances).

        Inside, every call sees the same committed version of every list even
        while the writer commits; outside, each call is consistent on its own.
        """
        with self._lock:
            if self._depth == 0:
                with translated(self.path):
                    self._follow()
                    self._conn.execute("BEGIN")
                    # BEGIN is lazy; the first read fixes the view, so read now.
                    self._conn.execute("SELECT 1 FROM sqlite_schema LIMIT 1").fetchone()
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._conn.execute("COMMIT")

    # -- lists ---------------------------------------------------------------

    def lists(self) -> list[ListInfo]:
        with self.read(), translated(self.path):
            rows = self._conn.execute(f"SELECT {_LIST_COLUMNS} FROM lists ORDER BY list_id").fetchall()
        return [_list_info(row) for row in rows]

    def get_list(self, list_id: str) -> ListInfo | None:
        with self.read(), translated(self.path):
            row = self._conn.execute(
                f"SELECT {_LIST_COLUMNS} FROM lists WHERE list_id = ?", (list_id,)
            ).fetchone()
        return _list_info(row) if row else None

    def put_list(self, info: ListInfo) -> None:
        """Create a list, or update its descriptive fields.

        A new list takes every field of ``info``, version state included. For
        an existing list only name, authority, legal basis, scopes, default
        action, token key and redress change: versions move by apply_batch
        and record_heartbeat alone. A new token key for a list that holds
        tokens is refused, since it would orphan every one of them.
        """
        validate_list_info(info)
        row = {
            "list_id": info.list_id, "name": info.name, "authority": info.authority,
            "legal_basis": info.legal_basis, "scopes": json.dumps(list(info.scopes)),
            "default_action": Action(info.default_action).value, "token_key": bytes(info.token_key),
            "redress": info.redress,
        }
        with self._write() as db:
            current = self._conn.execute(
                "SELECT token_key, tokens FROM lists WHERE list_id = ?", (info.list_id,)
            ).fetchone()
            if current is None:
                db["lists"].insert({
                    **row, "version": info.version, "state_digest": bytes(info.state_digest),
                    "signed_at": _iso(info.signed_at), "valid_until": _iso(info.valid_until),
                    "heartbeat_at": _iso(info.heartbeat_at), "tokens": 0,
                })
            else:
                if current[0] != row["token_key"] and current[1]:
                    raise SnapshotError(
                        f"list {info.list_id!r} holds {current[1]} tokens made with its current key;"
                        " a new token key needs a full reload of the list"
                    )
                db["lists"].update(info.list_id, row)

    def record_heartbeat(self, list_id: str, *, signed_at: datetime | None,
                         valid_until: datetime | None, heartbeat_at: datetime) -> None:
        """The registry proved the list current without changing it (None keeps a time)."""
        with self._write():
            cur = self._conn.execute(
                "UPDATE lists SET signed_at = COALESCE(?, signed_at),"
                " valid_until = COALESCE(?, valid_until), heartbeat_at = ? WHERE list_id = ?",
                (_iso(signed_at), _iso(valid_until), _iso(heartbeat_at), list_id),
            )
            if cur.rowcount == 0:
                raise UnknownList(f"no list {list_id!r} in the snapshot")

    # -- lookups ---------------------------------------------------------------

    def lookup(self, tokens: Iterable[bytes]) -> list[Entry]:
        """Every entry, on any list, keyed by one of these tokens (exact match).

        Expired entries are returned too, with their dates: the verdict rules
        ignore them (Entry.in_force), the sync removes them.
        """
        wanted = unique_tokens(tokens)
        found: list[Entry] = []
        with self.read(), translated(self.path):
            execute = self._conn.execute
            for token in wanted:
                row = execute(_SEEK, (codec.token_key(token),)).fetchone()
                if row is None:
                    continue
                for meta_id, ref in codec.find(row[1], token):
                    found.append(self._entry(token, meta_id, ref))
        return found

    def clearances(self, tokens: Iterable[bytes]) -> list[Clearance]:
        """The clearances (allow-tokens), on any list, for these document tokens."""
        wanted = unique_tokens(tokens)
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        with self.read(), translated(self.path):
            rows = self._conn.execute(
                "SELECT token, list_id, redress_number, valid_until FROM clearances"
                f" WHERE token IN ({marks}) ORDER BY token, list_id", wanted,
            ).fetchall()
        return [Clearance(row[0], row[1], row[2], date.fromisoformat(row[3])) for row in rows]

    def iter_entries(self, list_id: str | None = None) -> Iterator[Entry]:
        """All entries (of one list, or all), in token order, from one consistent view.

        Reads the whole file and holds the store's lock until the iterator is
        exhausted or closed: for the sync agent and for checks, not the counter.
        """
        with self.read(), translated(self.path):
            for _, data in self._conn.execute("SELECT start, data FROM buckets ORDER BY start"):
                for record in codec.decode(data):
                    meta = self._meta(record.meta)
                    if list_id is None or meta.list_id == list_id:
                        yield self._entry(record.token, record.meta, record.ref)

    def iter_clearances(self, list_id: str | None = None) -> Iterator[Clearance]:
        """All clearances (of one list, or all), in token order."""
        where, args = ("WHERE list_id = ?", (list_id,)) if list_id is not None else ("", ())
        with self.read(), translated(self.path):
            rows = self._conn.execute(
                f"SELECT token, list_id, redress_number, valid_until FROM clearances {where}"
                " ORDER BY token, list_id", args).fetchall()
        for row in rows:
            yield Clearance(row[0], row[1], row[2], date.fromisoformat(row[3]))

    def _entry(self, token: bytes, meta_id: int, ref: int) -> Entry:
        meta = self._meta(meta_id)
        number, person = codec.unpack_ref(ref)
        return Entry(
            token=token, list_id=meta.list_id,
            kind=TokenKind.PERSON if person else TokenKind.DOCUMENT,
            category=meta.category, action=meta.action,
            reference=codec.join_reference(meta.template, number),
            valid_from=meta.valid_from, valid_until=meta.valid_until, redress=meta.redress,
        )

    def _meta(self, meta_id: int) -> _Meta:
        # Meta rows are written once and never changed or reused, so a
        # process may cache them whatever the writer does meanwhile.
        meta = self._metas.get(meta_id)
        if meta is None:
            row = self._conn.execute(
                "SELECT m.list_id, m.category, m.action, m.valid_from, m.valid_until,"
                " r.text, m.ref_prefix, m.ref_width, m.ref_suffix"
                " FROM meta m JOIN redress r ON r.id = m.redress_id WHERE m.id = ?", (meta_id,),
            ).fetchone()
            if row is None:
                raise SnapshotCorrupt(f"token record refers to missing metadata row {meta_id}")
            meta = _Meta(row[0], row[1], Action(row[2]), date.fromisoformat(row[3]),
                         date.fromisoformat(row[4]), row[5], codec.ReferenceTemplate(*row[6:9]))
            self._metas[meta_id] = meta
        return meta

    # -- the write path ----------------------------------------------------------

    @contextmanager
    def _write(self):
        """BEGIN IMMEDIATE ... COMMIT; any exception rolls everything back."""
        if self.readonly:
            raise SnapshotError(f"snapshot store {self.path} is open read-only")
        with self._lock, translated(self.path):
            if self._depth:
                raise SnapshotError("cannot write inside a read() view")
            self._follow()
            self._conn.execute("BEGIN IMMEDIATE")
            while generations.marker(self.path) not in (None, self._marker):
                # A full reload swapped generations while this waited for the lock:
                # write to the new file, never to the one it replaced.
                self._conn.execute("ROLLBACK")
                self._follow()
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._db()
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _db(self):
        if self._sqlite_utils_db is None:
            import sqlite_utils

            self._sqlite_utils_db = sqlite_utils.Database(self._conn, execute_plugins=False)
        return self._sqlite_utils_db

    def apply_batch(self, batch: Batch, *,
                    before_commit: Callable[[list[Entry | Clearance]], None] | None = None) -> None:
        """Move one list from version N to N+1, all of it or none of it.

        Removals apply before additions, so removing and adding one token
        replaces its entry; adding a token the list already holds replaces it
        too. Removing a token the list does not hold is not an error (the
        registry may repeat a removal). A verified batch counts as a heartbeat.

        ``before_commit``, if given, is called inside the transaction after
        the buckets the batch touches are read and before anything is
        written, with every entry and clearance the batch takes out of the
        list, as held (removed, or replaced by an addition); if it raises,
        nothing is committed. The sync agent checks the list's new digest
        there: the bucket reads that the write needs anyway find what it
        replaces, so there is no lookup pass of its own.
        """
        validate_batch(batch)
        with self._write() as db:
            self._require_version(batch, "the batch starts at")
            own = self._own_metas(batch.list_id)
            tokens = sorted({*batch.remove, *(entry.token for entry in batch.add)})
            buckets = buckets_io.read(self._conn, tokens, own)
            if before_commit is not None:
                taken = [record for bucket in buckets for _, record in bucket.held]
                cleared = [*batch.remove_clearances, *(c.token for c in batch.add_clearances)]
                before_commit([*self._entries(taken), *self._held_clearances(batch.list_id, cleared)])
            delta = buckets_io.write(self._conn, buckets, tokens, self._records_for(batch.add))
            self._conn.executemany("DELETE FROM clearances WHERE token = ? AND list_id = ?",
                                   [(token, batch.list_id) for token in batch.remove_clearances])
            self._finish_batch(db, batch, delta)

    def replace_list(self, batch: Batch) -> None:
        """Install a full snapshot of one list: all of it or none of it.

        For a device too far behind for deltas, or one whose digest did not
        match: ``batch.add`` and ``batch.add_clearances`` are everything the
        list holds at ``to_version``, which may be any version at or past the
        held one (``from_version``). Tokens the snapshot lacks are removed.
        """
        validate_batch(batch, replacement=True)
        with self._write() as db:
            self._require_version(batch, "the snapshot replaces version")
            adds = self._records_for(batch.add)
            stale = self._held_tokens(batch.list_id) - adds.keys()
            delta = self._rewrite_buckets(batch.list_id, stale, adds)
            self._conn.execute("DELETE FROM clearances WHERE list_id = ?", (batch.list_id,))
            self._finish_batch(db, batch, delta)

    def install_list(self, batch: Batch, blocks: Iterable[codec.RecordBlock]) -> int:
        """Install a full snapshot of one list as a new store generation; returns its token count.

        replace_list rewrites buckets one by one (~10 µs a token): too slow for
        a list of millions. Here the other lists' records and the snapshot's
        (``blocks``, in token order) are merged into a new file in one pass
        (snapshot_bulk.install), and the store's pointer is swapped to it
        atomically (snapshot_generations.py). ``batch`` carries the versions,
        digest, times and clearances, and no entries; after a re-key it
        carries the list's new token key too, which lands in the same
        generation as the new tokens, so a reader sees old key and old
        tokens or new key and new tokens, never a mix. Processes that have the
        store open see the new generation at their next read; until then,
        and if anything fails, they read the old one.
        """
        validate_batch(batch, replacement=True)
        if batch.add:
            raise SnapshotError("install_list takes the list's records as blocks, not as batch.add")
        from appliance.snapshot_bulk import install

        with self._write():
            self._require_version(batch, "the snapshot replaces version")
            old = self.file
            tokens = install(self._conn, self.path, old, batch, blocks)
        with self._lock, translated(self.path):
            self._follow()
        generations.remove_unused(self.path)
        if old == self.path:  # a plain-file store became generations: its journal names are free
            for stale in generations.side_files(old)[1:]:
                stale.unlink(missing_ok=True)
        return tokens

    def _require_version(self, batch: Batch, what: str) -> None:
        """The list exists and is at the batch's from-version, inside the write transaction."""
        row = self._conn.execute(
            "SELECT version FROM lists WHERE list_id = ?", (batch.list_id,)
        ).fetchone()
        if row is None:
            raise UnknownList(f"no list {batch.list_id!r} in the snapshot")
        if row[0] != batch.from_version:
            raise VersionMismatch(
                f"list {batch.list_id!r} is at version {row[0]}; {what} {batch.from_version}"
            )

    def _finish_batch(self, db, batch: Batch, delta: int) -> None:
        """Clearance additions and the list's new version, digest and freshness."""
        if batch.add_clearances:
            db["clearances"].upsert_all(
                ({"token": c.token, "list_id": c.list_id, "redress_number": c.redress_number,
                  "valid_until": c.valid_until.isoformat()} for c in batch.add_clearances),
                pk=("token", "list_id"),
            )
        self._conn.execute(
            "UPDATE lists SET version = ?, state_digest = ?, signed_at = COALESCE(?, signed_at),"
            " valid_until = COALESCE(?, valid_until), heartbeat_at = COALESCE(?, heartbeat_at),"
            " tokens = tokens + ?, token_key = COALESCE(?, token_key) WHERE list_id = ?",
            (batch.to_version, bytes(batch.state_digest), _iso(batch.signed_at),
             _iso(batch.valid_until), _iso(batch.signed_at), delta,
             None if batch.token_key is None else bytes(batch.token_key), batch.list_id),
        )

    def _held_tokens(self, list_id: str) -> set[bytes]:
        """Every token the list holds, read inside the caller's transaction."""
        own = {row[0] for row in self._conn.execute("SELECT id FROM meta WHERE list_id = ?", (list_id,))}
        held: set[bytes] = set()
        for (data,) in self._conn.execute("SELECT data FROM buckets"):
            held.update(record.token for record in codec.decode(data) if record.meta in own)
        return held

    def _entries(self, records: list[tuple[bytes, int, int]]) -> list[Entry]:
        """_entry for many records at once (a delta may replace 100,000 entries)."""
        person, document, join = TokenKind.PERSON, TokenKind.DOCUMENT, codec.join_reference
        entries = []
        for token, meta_id, ref in records:
            meta = self._meta(meta_id)
            entries.append(Entry(token, meta.list_id, person if ref & codec.PERSON_BIT else document,
                                 meta.category, meta.action, join(meta.template, ref & ~codec.PERSON_BIT),
                                 meta.valid_from, meta.valid_until, meta.redress))
        return entries

    def _held_clearances(self, list_id: str, tokens: list[bytes]) -> list[Clearance]:
        """The list's clearances for these tokens, read inside the caller's transaction."""
        wanted = list(dict.fromkeys(tokens))
        held: list[Clearance] = []
        for at in range(0, len(wanted), 500):  # under SQLite's limit on bound parameters
            part = wanted[at:at + 500]
            rows = self._conn.execute(
                "SELECT token, list_id, redress_number, valid_until FROM clearances"
                f" WHERE list_id = ? AND token IN ({','.join('?' * len(part))})", (list_id, *part))
            held += [Clearance(row[0], row[1], row[2], date.fromisoformat(row[3])) for row in rows]
        return held

    def _records_for(self, entries: Iterable[Entry]) -> dict[bytes, tuple[int, int]]:
        """{token: (meta id, ref)} for a batch's entries, creating the meta rows that are new.

        A batch's entries share few metadata rows, and an entry's 2-3 tokens
        share its reference, so each is worked out once per batch.
        """
        redress_ids: dict[str, int] = {}
        metas: dict[tuple, int] = {}
        references: dict[str, tuple[codec.ReferenceTemplate, int]] = {}
        records: dict[bytes, tuple[int, int]] = {}
        for entry in entries:
            split = references.get(entry.reference)
            if split is None:
                split = references[entry.reference] = codec.split_reference(entry.reference)
            template, number = split
            key = (entry.list_id, entry.category, entry.action, entry.valid_from, entry.valid_until,
                   entry.redress, template)
            meta_id = metas.get(key)
            if meta_id is None:
                meta_id = metas[key] = self._meta_id(entry, template, redress_ids)
            records[entry.token] = (meta_id, codec.pack_ref(number, entry.kind == TokenKind.PERSON))
        return records

    def _meta_id(self, entry: Entry, template: codec.ReferenceTemplate, redress_ids: dict[str, int]) -> int:
        """The id of the meta row an entry's tokens share, inserted if new."""
        redress_id = redress_ids.get(entry.redress)
        if redress_id is None:
            redress_id = redress_ids[entry.redress] = self._db()["redress"].lookup({"text": entry.redress})
        values = (entry.list_id, entry.category, Action(entry.action).value, entry.valid_from.isoformat(),
                  entry.valid_until.isoformat(), redress_id, *template)
        meta_id = schema.meta_id(self._conn, values)
        if meta_id > _MAX_META_ID:
            raise SnapshotError("the store ran out of metadata ids; rebuild it")
        return meta_id

    def _rewrite_buckets(self, list_id: str, removes: set[bytes], adds: dict[bytes, tuple[int, int]]) -> int:
        """Apply one list's token changes bucket by bucket; returns the change in its count."""
        tokens = sorted(removes | adds.keys())
        return buckets_io.write(self._conn, buckets_io.read(self._conn, tokens, self._own_metas(list_id)),
                                tokens, adds)

    def _own_metas(self, list_id: str) -> set[int]:
        return {row[0] for row in self._conn.execute("SELECT id FROM meta WHERE list_id = ?", (list_id,))}

    # -- maintenance ---------------------------------------------------------------

    def stats(self) -> dict:
        """Counts and size: tokens (also per list), clearances, lists, meta rows, bytes.

        ``bytes_per_token`` is the main file over the tokens; pages still in
        the WAL are counted apart (``wal_bytes``).
        """
        with self.read(), translated(self.path):
            execute = self._conn.execute
            per_list = dict(execute("SELECT list_id, tokens FROM lists ORDER BY list_id").fetchall())
            clearances = execute("SELECT count(*) FROM clearances").fetchone()[0]
            metas = execute("SELECT count(*) FROM meta").fetchone()[0]
            pages, page_size = (execute("PRAGMA page_count").fetchone()[0],
                                execute("PRAGMA page_size").fetchone()[0])
        tokens = sum(per_list.values())
        file_bytes = pages * page_size
        wal = self.file.with_name(self.file.name + "-wal")
        return {
            "tokens": tokens, "clearances": clearances, "lists": len(per_list),
            "tokens_per_list": per_list, "meta_rows": metas,
            "file_bytes": file_bytes, "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "bytes_per_token": round(file_bytes / tokens, 2) if tokens else None,
        }

    def compact(self, progress: Callable[[], None] | None = None) -> dict:
        """Rewrite the file without the slack that random updates leave in its pages.

        Sync deltas split full pages, and the file drifts from ~21.5 towards
        ~27 bytes per token (docs/snapshot.md, "Churn"); VACUUM packs it
        again. It holds the write lock for its duration (seconds per
        million tokens) and needs free disk of about twice the file; readers
        go on reading meanwhile. For the sync agent's quiet hours, e.g. when
        stats()["bytes_per_token"] passes 24. ``progress`` is called every
        so many SQLite steps while VACUUM runs (the sync agent's watchdog
        ping: a large store takes minutes).
        """
        with self._lock:
            if self.readonly:
                raise SnapshotError(f"snapshot store {self.path} is open read-only")
            if self._depth:
                raise SnapshotError("cannot compact inside a read() view")
            with translated(self.path):
                self._follow()
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                before = self.file.stat().st_size
                if progress is not None:
                    def tick() -> int:
                        progress()
                        return 0  # non-zero would abort the VACUUM
                    self._conn.set_progress_handler(tick, 1_000_000)  # about every 0.3 s
                try:
                    self._conn.execute("VACUUM")
                finally:
                    self._conn.set_progress_handler(None, 0)
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return {"file_bytes_before": before, "file_bytes_after": self.file.stat().st_size}

    def check_integrity(self) -> list[str]:
        """SQLite's integrity_check plus the bucket invariants; [] when all is well.

        Reads the whole file: a maintenance and test tool, not for the counter.
        """
        problems: list[str] = []
        with self.read(), translated(self.path):
            execute = self._conn.execute
            problems += [r[0] for r in execute("PRAGMA integrity_check") if r[0] != "ok"]
            metas = dict(execute("SELECT id, list_id FROM meta").fetchall())
            counts: dict[str, int] = {}
            previous: tuple[int, bytes] | None = None
            for start, data in execute("SELECT start, data FROM buckets ORDER BY start"):
                if not data or len(data) % codec.RECORD_BYTES:
                    problems.append(f"bucket {start}: {len(data)} bytes is not whole records")
                    continue
                records = codec.decode(data)
                if previous is not None and codec.token_key(previous[1]) >= start:
                    problems.append(f"bucket {start}: previous bucket reaches into it")
                if start != codec.MIN_KEY and codec.token_key(records[0].token) < start:
                    problems.append(f"bucket {start}: first token lies before the bucket")
                seen: set[tuple[bytes, str]] = set()
                for a, b in zip(records, records[1:]):
                    if (a.token, a.meta) >= (b.token, b.meta):
                        problems.append(f"bucket {start}: records out of order")
                        break
                for record in records:
                    owner = metas.get(record.meta)
                    if owner is None:
                        problems.append(f"bucket {start}: record refers to missing meta {record.meta}")
                        continue
                    if (record.token, owner) in seen:
                        problems.append(f"bucket {start}: token {record.token.hex()} twice on {owner}")
                    seen.add((record.token, owner))
                    counts[owner] = counts.get(owner, 0) + 1
                previous = (start, records[-1].token)
            for list_id, tokens in execute("SELECT list_id, tokens FROM lists"):
                if counts.get(list_id, 0) != tokens:
                    problems.append(f"list {list_id}: counted {counts.get(list_id, 0)} tokens,"
                                    f" recorded {tokens}")
        return problems


_LIST_COLUMNS = ("list_id, name, authority, legal_basis, scopes, default_action, token_key,"
                 " version, state_digest, signed_at, valid_until, heartbeat_at, redress")


def _list_info(row: tuple) -> ListInfo:
    return ListInfo(
        list_id=row[0], name=row[1], authority=row[2], legal_basis=row[3],
        scopes=tuple(json.loads(row[4])), default_action=Action(row[5]), token_key=row[6],
        version=row[7], state_digest=row[8], signed_at=_datetime(row[9]),
        valid_until=_datetime(row[10]), heartbeat_at=_datetime(row[11]), redress=row[12],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None
