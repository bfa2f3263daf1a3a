"""The packed token records of the snapshot store (docs/snapshot.md, "Token buckets").

Tokens are not stored one per SQLite row: a row per token costs 27-28 bytes
on disk once its metadata is attached (measured in bench/bench_snapshot.py),
over the 24-byte budget. Instead the ``buckets`` table holds runs of sorted,
fixed-width records, one run per row, keyed by the lowest 64-bit token prefix
the run may contain::

    record = token (12 bytes) || meta id (uint32 LE) || ref (uint32 LE)
    ref    = kind bit (bit 31: 1 person token, 0 document token) | case number (bits 0-30)

A bucket row ``(start, data)`` covers the token keys from ``start`` up to the
next row's ``start``; a lookup is one ``start <= key ORDER BY start DESC
LIMIT 1`` seek and a scan of at most ~BUCKET_MAX records. Buckets split when
they grow past BUCKET_MAX, so their size does not depend on how many tokens
the store holds.

The kind lives in the record because it is the one field an entry's tokens
do not share; everything they share is in the ``meta`` row. Everything here
is pure: bytes and ints in, bytes and ints out.
"""

from __future__ import annotations

import re
import struct
from typing import Iterator, NamedTuple

TOKEN_BYTES = 12
RECORD = struct.Struct("<12sII")
RECORD_BYTES = RECORD.size  # 20
#: The key of a token is its first 8 bytes as a signed 64-bit integer, shifted
#: so that signed order is byte order (SQLite rowids are signed).
MIN_KEY = -(1 << 63)
#: A bucket splits when it holds more records than this.
BUCKET_MAX = 32
#: Records per bucket in a bulk build and after a split: room for a few
#: inserts before the next split.
BUCKET_FILL = 24
#: A reference's number part is at most this many digits, so it fits 30 bits.
REF_DIGITS = 9
PERSON_BIT = 1 << 31

# The last run of ASCII digits (its last REF_DIGITS digits at most), with
# whatever precedes and follows it. Lazy head: the digit group ends as late
# as possible.
_REFERENCE = re.compile(r"(.*?)([0-9]{1,%d})([^0-9]*)" % REF_DIGITS, re.DOTALL)


class Record(NamedTuple):
    token: bytes
    meta: int
    ref: int  # pack_ref(number, person)


def pack_ref(number: int, person: bool) -> int:
    return number | PERSON_BIT if person else number


def unpack_ref(ref: int) -> tuple[int, bool]:
    """(case number, is a person token)."""
    return ref & ~PERSON_BIT, bool(ref & PERSON_BIT)


class ReferenceTemplate(NamedTuple):
    """What a case number shares with its neighbours: all but its last digit run.

    ``NFL-2024-00012345`` is prefix ``NFL-2024-``, width 8, suffix ``""`` and
    number 12345; the template goes into the deduplicated ``meta`` row and the
    number into each token's record. Width 0 means the reference has no digits.
    """

    prefix: str
    width: int
    suffix: str


def split_reference(reference: str) -> tuple[ReferenceTemplate, int]:
    """A reference as (template, number); join_reference() gives it back exactly."""
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        return ReferenceTemplate(reference, 0, ""), 0
    head, digits, tail = match.groups()
    return ReferenceTemplate(head, len(digits), tail), int(digits)


def join_reference(template: ReferenceTemplate, number: int) -> str:
    if template.width == 0:
        return template.prefix
    return f"{template.prefix}{number:0{template.width}d}{template.suffix}"


def token_key(token: bytes) -> int:
    """The bucket key of a token: its first 8 bytes, order-preserving as a signed int."""
    return int.from_bytes(token[:8], "big") + MIN_KEY


def decode(data: bytes) -> list[Record]:
    return [Record(*fields) for fields in RECORD.iter_unpack(data)]


def encode(records: list[Record]) -> bytes:
    return b"".join(RECORD.pack(*record) for record in records)


def find(data: bytes, token: bytes) -> Iterator[tuple[int, int]]:
    """(meta, ref) of every record in a bucket whose token is ``token``.

    A token can appear once per list. bytes.find does the scan in C; a hit
    counts only at a record boundary.
    """
    at = data.find(token)
    while at != -1:
        if at % RECORD_BYTES == 0:
            _, meta, ref = RECORD.unpack_from(data, at)
            yield meta, ref
        at = data.find(token, at + 1)


def chunk_bounds(records: list[Record], fill: int = BUCKET_FILL) -> list[int]:
    """Start indexes of the buckets a sorted record list splits into.

    Records whose tokens share the 8-byte key must stay in one bucket, since
    bucket rows are told apart by that key alone; a boundary that would part
    them moves forward.
    """
    if len(records) <= BUCKET_MAX:
        return [0]
    pieces = -(-len(records) // fill)
    bounds = [0]
    for i in range(1, pieces):
        at = max(len(records) * i // pieces, bounds[-1] + 1)
        while at < len(records) and records[at].token[:8] == records[at - 1].token[:8]:
            at += 1
        if at >= len(records):
            break
        bounds.append(at)
    return bounds
