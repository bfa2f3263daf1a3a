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
from typing import Container, Iterable, Iterator, NamedTuple

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


def find_own(data: bytes, tokens: Iterable[bytes], own: Container[int]) -> list[tuple[int, tuple[bytes, int, int]]]:
    """(offset, record) of every record in a bucket of these tokens whose meta id is in ``own`` (one list's).

    bytes.find does the scan in C; a hit counts only at a record boundary.
    """
    found = []
    for token in tokens:
        at = data.find(token)
        while at != -1:
            if at % RECORD_BYTES == 0:
                record = RECORD.unpack_from(data, at)
                if record[1] in own:
                    found.append((at, record))
            at = data.find(token, at + 1)
    return found


def splice(data: bytes, cuts: Iterable[int], new: list[tuple[bytes, int, int]]) -> bytes:
    """A bucket's bytes with the records at offsets ``cuts`` taken out and the ``new`` records put in, in order.

    A delta puts one or two tokens into each of tens of thousands of
    buckets, so this works on the bytes: slicing, and a binary search over
    ~24 records for where a record goes, cost less than decoding, sorting
    and encoding each bucket. Many new records for one bucket are merged by
    a sort instead (each insert copies the bucket).
    """
    cuts = sorted(cuts)
    if cuts:
        pieces, begin = [], 0
        for at in cuts:
            pieces.append(data[begin:at])
            begin = at + RECORD_BYTES
        pieces.append(data[begin:])
        data = b"".join(pieces)
    if len(new) > _FEW_INSERTS:
        return b"".join(RECORD.pack(*record) for record in sorted([*RECORD.iter_unpack(data), *new]))
    for record in new:
        at = _insertion_point(data, *record) * RECORD_BYTES
        data = b"".join((data[:at], RECORD.pack(*record), data[at:]))
    return data


#: More new records than this for one bucket are merged by sorting.
_FEW_INSERTS = 8


def _insertion_point(data: bytes, token: bytes, meta: int, ref: int) -> int:
    """How many records of sorted ``data`` order before (token, meta, ref)."""
    lo, hi = 0, len(data) // RECORD_BYTES
    while lo < hi:
        mid = (lo + hi) // 2
        at = mid * RECORD_BYTES
        other = data[at:at + TOKEN_BYTES]
        # The same token on another list: its record orders by (meta, ref) as ints.
        if other < token or (other == token and RECORD.unpack_from(data, at)[1:] < (meta, ref)):
            lo = mid + 1
        else:
            hi = mid
    return lo


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


class ListMeta(NamedTuple):
    """What an entry's tokens share, as a full-list load describes it (the store's ``meta`` row, less the list)."""

    category: str
    action: str  # an appliance.records.Action
    valid_from: object  # datetime.date
    valid_until: object  # datetime.date
    redress: str
    template: ReferenceTemplate


class RecordBlock(NamedTuple):
    """A run of one list's token records for a full-list load, in token order (numpy arrays).

    ``metas`` are the metadata rows this block introduces; they are numbered
    on from ``first_meta`` (every row an earlier block introduced comes
    before). ``meta_index`` refers to those numbers, ``refs`` are pack_ref()
    values and ``tokens`` is an (n, 12) uint8 array, strictly increasing
    across all blocks of the load.
    """

    metas: tuple
    first_meta: int
    tokens: object  # numpy.ndarray (n, 12) uint8
    meta_index: object  # numpy.ndarray (n,) uint32
    refs: object  # numpy.ndarray (n,) uint32
