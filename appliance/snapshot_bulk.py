"""Build a new snapshot file in one pass from token records that arrive sorted.

For a full load: the synthetic snapshots of ``gatecheck snapshot synth``,
and a full-list snapshot from the registry (``install``), tens of millions of
tokens in minutes. The file is built beside the target as
``<name>.building`` with no rollback journal and no fsync until the end,
which is safe only because nothing else can see that file; a crash leaves a
``.building`` file that the next build deletes. ``finish()`` switches the file
to WAL, syncs it and renames it over the target.

Do not overwrite a snapshot that a counter or the sync agent has open: SQLite
files must not be replaced under open connections (their -wal and -shm files
would then belong to the wrong database). ``install`` therefore builds a new
*generation* and swaps the store's pointer (appliance/snapshot_generations.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from appliance import snapshot_codec as codec
from appliance import snapshot_generations as generations
from appliance import snapshot_schema as schema
from appliance.private_files import private_file
from appliance.records import Action, Batch, ListInfo
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

    def copy_from(self, old: Path, list_id: str) -> None:
        """Every list row, redress text, and other list's metadata and clearances of ``old``, ids kept.

        For a full reload of ``list_id``: the other lists' packed records
        then keep their meta ids and are copied as they are.
        """
        self._conn.execute("COMMIT")  # ATTACH and DETACH are refused inside a transaction
        self._conn.execute("ATTACH DATABASE ? AS old", (str(old),))
        self._conn.execute("BEGIN")
        for table, where in (("lists", ""), ("redress", ""), ("meta", " WHERE list_id != ?"),
                             ("clearances", " WHERE list_id != ?")):
            self._conn.execute(f"INSERT INTO main.{table} SELECT * FROM old.{table}{where}",
                               (list_id,) if where else ())
        self._conn.execute("COMMIT")
        self._conn.execute("DETACH DATABASE old")
        self._conn.execute("BEGIN")
        self._redress = {text: rid for rid, text in self._conn.execute("SELECT id, text FROM redress")}

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


# -- a full reload of one list, into a new generation --------------------------------

#: Old-store records read per merge step (whole buckets: a token's records never straddle two).
_MERGE_RECORDS = 65_536


def install(conn: sqlite3.Connection, pointer: Path, old: Path, batch: Batch,
            blocks: Iterable[codec.RecordBlock]) -> int:
    """Build a new generation holding ``old`` with ``batch.list_id`` replaced, and point the store at it.

    ``conn`` is the store's connection to ``old``, inside its write
    transaction (so no other writer changes ``old`` meanwhile); ``blocks``
    are the list's records in token order. The records of the other lists
    are read from ``old`` in token order and merged with the new ones, a
    block at a time (numpy), into a BulkLoader; memory stays flat whatever
    the list's size. Returns the list's token count. On any error the
    building file is deleted and the pointer is untouched.
    """
    import numpy as np

    target = generations.next_generation(pointer)
    generations.prepare(pointer)
    generations.remove_unused(pointer)
    loader = BulkLoader(target)
    try:
        loader.copy_from(old, batch.list_id)
        dropped = np.array([row[0] for row in conn.execute(
            "SELECT id FROM meta WHERE list_id = ?", (batch.list_id,))], np.uint32)
        counter = [0]
        merged = _merged(_old_records(conn, dropped), _new_records(loader, batch.list_id, blocks, counter))
        for records in merged:
            loader.append(records.tobytes())
        _finish_list(loader, batch, counter[0])
        loader.finish({batch.list_id: counter[0]})
    except BaseException:
        loader.abort()
        raise
    generations.point_to(pointer, target)
    return counter[0]


def _finish_list(loader: BulkLoader, batch: Batch, tokens: int) -> None:
    """The list's new version and clearances, and its new token key if it was re-keyed: one generation, one switch."""
    loader._conn.execute(
        "UPDATE lists SET version = ?, state_digest = ?, signed_at = COALESCE(?, signed_at),"
        " valid_until = COALESCE(?, valid_until), heartbeat_at = COALESCE(?, heartbeat_at),"
        " token_key = COALESCE(?, token_key) WHERE list_id = ?",
        (batch.to_version, bytes(batch.state_digest), _iso(batch.signed_at), _iso(batch.valid_until),
         _iso(batch.signed_at), None if batch.token_key is None else bytes(batch.token_key), batch.list_id))
    loader._conn.executemany(
        "INSERT INTO clearances (token, list_id, redress_number, valid_until) VALUES (?, ?, ?, ?)",
        [(c.token, c.list_id, c.redress_number, c.valid_until.isoformat()) for c in batch.add_clearances])


def _record_dtype():
    import numpy as np

    return np.dtype([("token", "V12"), ("meta", "<u4"), ("ref", "<u4")])


def _keys(records):
    """(first 8 token bytes, last 4) as big-endian integers: token order is their order."""
    import numpy as np

    raw = np.ascontiguousarray(records).view(np.uint8).reshape(-1, _R)
    hi = np.ascontiguousarray(raw[:, :8]).view(">u8").ravel()
    lo = np.ascontiguousarray(raw[:, 8:12]).view(">u4").ravel()
    return hi, lo


def _old_records(conn: sqlite3.Connection, dropped) -> Iterator:
    """The old store's records of every other list, in token order, a few whole buckets at a time."""
    import numpy as np

    dtype = _record_dtype()
    parts: list[bytes] = []
    size = 0
    for (data,) in conn.execute("SELECT data FROM buckets ORDER BY start"):
        parts.append(data)
        size += len(data)
        if size >= _MERGE_RECORDS * _R:
            records = np.frombuffer(b"".join(parts), dtype)
            yield records[~np.isin(records["meta"], dropped)] if len(dropped) else records
            parts, size = [], 0
    if parts:
        records = np.frombuffer(b"".join(parts), dtype)
        yield records[~np.isin(records["meta"], dropped)] if len(dropped) else records


def _new_records(loader: BulkLoader, list_id: str, blocks: Iterable[codec.RecordBlock], counter: list) -> Iterator:
    """The list's records with store meta ids, checked for order; counts them into ``counter[0]``."""
    import numpy as np

    dtype = _record_dtype()
    ids: list[int] = []
    last = (-1, -1)
    for block in blocks:
        if block.first_meta != len(ids):
            raise SnapshotError("snapshot metadata rows arrive out of sequence")
        for meta in block.metas:
            ids.append(loader.meta_id(list_id=list_id, category=meta.category, action=meta.action,
                                      valid_from=meta.valid_from, valid_until=meta.valid_until,
                                      redress=meta.redress, template=meta.template))
        n = len(block.refs)
        if not n:
            continue
        if int(block.meta_index.max()) >= len(ids):
            raise SnapshotError("a snapshot record refers to an unknown metadata row")
        records = np.empty(n, dtype)
        records["token"] = np.ascontiguousarray(block.tokens, np.uint8).view("V12").ravel()
        records["meta"] = np.array(ids, np.uint32)[block.meta_index]
        records["ref"] = block.refs
        hi, lo = _keys(records)
        ordered = (hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] > lo[:-1]))
        if not ordered.all() or (int(hi[0]), int(lo[0])) <= last:
            raise SnapshotError("snapshot records must arrive in strictly increasing token order")
        last = (int(hi[-1]), int(lo[-1]))
        counter[0] += n
        yield records


def _merged(old: Iterator, new: Iterator) -> Iterator:
    """Two token-ordered record streams as one, in (token, meta) order, one step at a time.

    Each step emits everything up to the smaller of the two buffers' last
    tokens, so equal tokens (one token on two lists) leave in the same step
    and every step starts past the previous one, as BulkLoader.append needs.
    """
    import numpy as np

    empty = np.empty(0, _record_dtype())
    streams = [old, new]
    buffers = [empty, empty]
    while streams[0] is not None or streams[1] is not None or len(buffers[0]) or len(buffers[1]):
        for i in (0, 1):
            while not len(buffers[i]) and streams[i] is not None:
                buffers[i] = next(streams[i], None)
                if buffers[i] is None:
                    streams[i], buffers[i] = None, empty
        a, b = buffers
        if not len(a) or not len(b):  # one stream is over: the other goes out as it comes
            if len(a) or len(b):
                yield a if len(a) else b
            buffers = [empty, empty]
            continue
        a_hi, a_lo = _keys(a)
        b_hi, b_lo = _keys(b)
        bound = min((int(a_hi[-1]), int(a_lo[-1])), (int(b_hi[-1]), int(b_lo[-1])))
        bound_hi, bound_lo = np.uint64(bound[0]), np.uint32(bound[1])
        na = int(((a_hi < bound_hi) | ((a_hi == bound_hi) & (a_lo <= bound_lo))).sum())
        nb = int(((b_hi < bound_hi) | ((b_hi == bound_hi) & (b_lo <= bound_lo))).sum())
        step = np.concatenate((a[:na], b[:nb]))
        hi, lo = _keys(step)
        yield step[np.lexsort((step["meta"], lo, hi))]
        buffers = [a[na:], b[nb:]]


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
            path.with_name(path.name + "-journal")]


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
