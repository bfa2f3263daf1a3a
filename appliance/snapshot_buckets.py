"""The snapshot store's token buckets on the SQL side: find the rows a change touches, write them back.

appliance/snapshot_codec.py says what is inside a bucket; this says which
``buckets`` rows a set of tokens falls in and how a bucket's new bytes are
written (deleted when empty, split past BUCKET_MAX). The store's apply path
reads every bucket a batch touches before it writes any, so the entries the
batch takes out are known, and can be checked, before the file changes
(docs/snapshot.md, "Writes"). Every function runs inside the caller's
write transaction.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left
from typing import Mapping, NamedTuple

from appliance import snapshot_codec as codec

#: A bucket and where it ends (the next bucket's start), in one statement.
_SEEK_SPAN = ("SELECT start, data, (SELECT start FROM buckets WHERE start > b.start ORDER BY start LIMIT 1)"
              " FROM buckets AS b WHERE start <= ? ORDER BY start DESC LIMIT 1")
_FIRST = "SELECT start FROM buckets ORDER BY start LIMIT 1"


class Bucket(NamedTuple):
    """One bucket row a sorted token list falls in: ``tokens[first:end]`` are its."""

    start: int
    data: bytes | None  # None: no row yet (tokens below the first bucket, or an empty store)
    first: int
    end: int
    held: list[tuple[int, tuple[bytes, int, int]]]  # (offset, record): the list's records of those tokens


def read(conn: sqlite3.Connection, tokens: list[bytes], own: set[int]) -> list[Bucket]:
    """The buckets sorted, distinct ``tokens`` fall in, in order, with the records the list (``own``
    meta ids) holds for them: one statement per bucket."""
    keys = [codec.token_key(token) for token in tokens]
    found = []
    i = 0
    while i < len(tokens):
        row = conn.execute(_SEEK_SPAN, (keys[i],)).fetchone()
        if row is None:  # below every bucket: a new one from MIN_KEY, up to the first
            first = conn.execute(_FIRST).fetchone()
            start, data, end = codec.MIN_KEY, None, first[0] if first else None
        else:
            start, data, end = row
        j = len(tokens) if end is None else bisect_left(keys, end, i)
        found.append(Bucket(start, data, i, j, codec.find_own(data, tokens[i:j], own) if data else []))
        i = j
    return found


def write(conn: sqlite3.Connection, buckets: list[Bucket], tokens: list[bytes],
          adds: Mapping[bytes, tuple[int, int]]) -> int:
    """Take the held records of the changed tokens out of buckets that read() found, put ``adds``
    in, and store them; returns the change in the list's token count.

    Reading all of them first is safe: buckets cover disjoint key ranges,
    and a rewritten bucket, split or not, stays inside its own.
    """
    delta = 0
    for bucket in buckets:
        new_records = [(token, *adds[token]) for token in tokens[bucket.first:bucket.end] if token in adds]
        if not (bucket.held or new_records):
            continue  # removals of tokens the list does not hold
        old = bucket.data or b""
        new = codec.splice(old, [at for at, _ in bucket.held], new_records)
        if new != old:
            delta += (len(new) - len(old)) // codec.RECORD_BYTES
            store(conn, bucket.start, bucket.data is not None, new)
    return delta


def store(conn: sqlite3.Connection, start: int, exists: bool, data: bytes) -> None:
    """Write one bucket's new records: delete it if empty, split it if it grew past BUCKET_MAX."""
    if not data:
        conn.execute("DELETE FROM buckets WHERE start = ?", (start,))
        return
    first_piece = "UPDATE buckets SET data = ? WHERE start = ?" if exists else \
                  "INSERT INTO buckets (data, start) VALUES (?, ?)"
    if len(data) <= codec.BUCKET_MAX * codec.RECORD_BYTES:
        conn.execute(first_piece, (data, start))
        return
    records = codec.decode(data)
    bounds = codec.chunk_bounds(records)
    for n, lo in enumerate(bounds):
        hi = bounds[n + 1] if n + 1 < len(bounds) else len(records)
        piece = data[lo * codec.RECORD_BYTES:hi * codec.RECORD_BYTES]
        if n == 0:
            conn.execute(first_piece, (piece, start))
        else:
            conn.execute("INSERT INTO buckets (data, start) VALUES (?, ?)",
                         (piece, codec.token_key(records[lo].token)))
