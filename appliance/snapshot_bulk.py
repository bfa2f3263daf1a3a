"""Build a new snapshot file in one pass from token records that arrive sorted.

For a full load (the synthetic snapshots of ``gatecheck snapshot synth``):
tens of millions of tokens in minutes. The file is built beside the target as
``<name>.building`` with no rollback journal and no fsync until the end,
which is safe only because nothing else can see that file; a crash leaves a
``.building`` file that the next build deletes. ``finish()`` switches the file
to WAL, syncs it and renames it over the target.

Do not overwrite a snapshot that a counter or the sync agent has open: SQLite
files must not be replaced under open connections (their -wal and -shm files
would then belong to the wrong database).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Mapping

from appliance import snapshot_codec as codec
from appliance import snapshot_schema as schema
from appliance.private_files import private_file
from appliance.records import Action, ListInfo
from appliance.snapshot_errors import SnapshotError
from appliance.snapshot_validate import validate_list_info

_R = codec.RECORD_BYTES


class BulkLoader:
    """A fresh snapshot: lists, then metadata rows, then records in token order.

    Records are codec.RECORD bytes (token, meta id, ref), sorted
    by token across all append() calls.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise SnapshotError(f"{self.path} exists; refusing to overwrite a snapshot")
        self.building = self.path.with_name(self.path.name + ".building")
        for stale in _sqlite_files(self.building):
            stale.unlink(missing_ok=True)
        private_file(self.building)
        self._conn = sqlite3.connect(self.building, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("PRAGMA cache_size = -16384")
        schema.migrate(self._conn)
        import sqlite_utils

        self._db = sqlite_utils.Database(self._conn, execute_plugins=False)
        self._conn.execute("BEGIN")
        self._metas: dict[tuple, int] = {}
        self._redress: dict[str, int] = {}
        self._pending = b""
        self._last = b""
        self._first_bucket = True

    def put_list(self, info: ListInfo) -> None:
        validate_list_info(info)
        self._db["lists"].insert({
            "list_id": info.list_id, "name": info.name, "authority": info.authority,
            "legal_basis": info.legal_basis, "scopes": json.dumps(list(info.scopes)),
            "default_action": Action(info.default_action).value, "token_key": bytes(info.token_key),
            "redress": info.redress, "version": info.version, "state_digest": bytes(info.state_digest),
            "signed_at": _iso(info.signed_at), "valid_until": _iso(info.valid_until),
            "heartbeat_at": _iso(info.heartbeat_at), "tokens": 0,
        })

    def meta_id(self, *, list_id: str, category: str, action: Action,
                valid_from, valid_until, redress: str, template: codec.ReferenceTemplate) -> int:
        """The id of a metadata row, created on first use (see snapshot_schema.meta)."""
        redress_id = self._redress.get(redress)
        if redress_id is None:
            redress_id = self._redress[redress] = self._db["redress"].insert({"text": redress}).last_pk
        values = (list_id, category, Action(action).value,
                  valid_from.isoformat(), valid_until.isoformat(), redress_id, *template)
        meta_id = self._metas.get(values)
        if meta_id is None:
            meta_id = self._metas[values] = schema.meta_id(self._conn, values, known_new=True)
        return meta_id

    def append(self, records: bytes) -> None:
        """Add records that sort after every record appended so far."""
        if len(records) % _R:
            raise SnapshotError("records must be whole codec.RECORD records")
        if not records:
            return
        if records[:codec.TOKEN_BYTES] <= self._last:
            raise SnapshotError("bulk records must arrive in strictly increasing token order")
        self._last = bytes(records[-_R:-_R + codec.TOKEN_BYTES])
        data = self._pending + bytes(records)
        count = len(data) // _R
        rows = []
        i = 0
        while count - i > codec.BUCKET_FILL:
            j = i + codec.BUCKET_FILL
            # Never part two tokens that share the 8-byte bucket key.
            while j < count and data[j * _R:j * _R + 8] == data[(j - 1) * _R:(j - 1) * _R + 8]:
                j += 1
            if j >= count:
                break
            rows.append((self._start(data, i), data[i * _R:j * _R]))
            i = j
        self._pending = data[i * _R:]
        self._conn.executemany("INSERT INTO buckets (start, data) VALUES (?, ?)", rows)

    def _start(self, data: bytes, i: int) -> int:
        if self._first_bucket:
            self._first_bucket = False
            return codec.MIN_KEY
        return codec.token_key(data[i * _R:i * _R + 8])

    def finish(self, token_counts: Mapping[str, int]) -> Path:
        """Write the last bucket and the per-list counts, then put the file in place."""
        if self._pending:
            self._conn.execute("INSERT INTO buckets (start, data) VALUES (?, ?)",
                               (self._start(self._pending, 0), self._pending))
            self._pending = b""
        for list_id, tokens in token_counts.items():
            self._conn.execute("UPDATE lists SET tokens = ? WHERE list_id = ?", (tokens, list_id))
        self._conn.execute("COMMIT")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.close()
        with open(self.building, "rb+") as fh:
            os.fsync(fh.fileno())
        for stale in _sqlite_files(self.path)[1:]:
            stale.unlink(missing_ok=True)  # a WAL left by the old file must not replay into the new
        os.replace(self.building, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.path

    def abort(self) -> None:
        try:
            self._conn.close()
        finally:
            for stale in _sqlite_files(self.building):
                stale.unlink(missing_ok=True)


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
            path.with_name(path.name + "-journal")]


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
