"""The full-list snapshot payload, format v3: streamed in token order, in bounded blocks.

A v1 snapshot was one in-memory body, grouped by metadata: fine for
thousands of entries, not for a 50 M-token list (about 28 GiB of Python
objects on the device, and a digest recomputed element by element). A v2
snapshot is written and read a block at a time, so both sides work in
constant memory (plus the table of distinct metadata rows), and its records
come in token order with the device store's own record layout, so the
device builds its new store file in one pass (appliance/snapshot_bulk.py).
It also carries the list's 2048-byte digest lanes, which the device accepts
only when their SHA-256 is the checksum the envelope signs: no O(n) digest
recomputation on install. The byte layout is docs/wire-format.md, "Snapshot
payload (v3)". v3 is v2 plus the hash of the token key the records are under:
after a list is re-keyed (registry/rekey.py) a device must not install
new-key tokens and go on looking them up with its old key.

Pure: it reads from and writes to a file object it is given, and does no
other I/O. Decoding is defensive: every malformed, truncated or oversized
input raises ``WireError``, and every size is checked before anything is
allocated or inflated.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from appliance.records import Action, Clearance, Entry, TokenKind
from appliance.snapshot_codec import ListMeta, RecordBlock, ReferenceTemplate
from sync.identity import KEY_HASH_BYTES, TOKEN_BYTES
from sync.wire import (
    _REFERENCE,
    REF_DIGITS,
    WireError,
    _Fields,
    _Reader,
    _day,
    _text,
    _varint,
    join_reference,
)

MAGIC = b"GCS3"
LANES_BYTES = 2048
BLOCK_END, BLOCK_RECORDS, BLOCK_CLEARANCES = 0x00, 0x01, 0x02
FLAG_ZLIB = 0x01
#: Records per block: 64 Ki records are ~1 MiB of body, small enough to hold
#: twice (wire and store form) and large enough that numpy does the work.
BLOCK_RECORDS_MAX = 65_536
#: A block body (after inflating) may be at most this long: records plus the
#: metadata rows they introduce. The encoder flushes before it gets there.
MAX_BLOCK_BODY = 16 * 1024 * 1024
ZLIB_LEVEL = 1
#: zlib is kept for a block only when it saves at least 1/16 of the body.
_ZLIB_MIN_GAIN = 16
PERSON_BIT = 1 << 31
NUMBER_MASK = PERSON_BIT - 1
_ACTIONS = {Action.REFER: 0x01, Action.DENY: 0x02}
_ACTION_OF = {code: action for action, code in _ACTIONS.items()}
_PERSON, _DOCUMENT = TokenKind.PERSON.value, TokenKind.DOCUMENT.value
_U64 = struct.Struct(">Q")
_LIMITS = [10 ** width if width else 1 for width in range(REF_DIGITS + 1)]


class SnapshotHeader(NamedTuple):
    list_id: str
    version: int
    records: int
    clearances: int
    lanes: bytes
    #: sync.identity.token_key_hash of the key every token in the payload is under.
    token_key_hash: bytes = b""

    @property
    def checksum(self) -> bytes:
        """SHA-256 of the lanes: must equal the envelope's signed post-state checksum."""
        return hashlib.sha256(self.lanes).digest()


# -- encoding ---------------------------------------------------------------


def _date(value):
    """A date from a driver's value: a ``date``, or an ISO string (SQLite's Date columns)."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise WireError(f"{value!r} is not an ISO date") from None
    return value


def _width(value: int) -> int:
    return max(1, (int(value).bit_length() + 7) // 8)


def _packed(values: np.ndarray, width: int) -> bytes:
    """Unsigned integers as ``width``-byte little-endian fields."""
    return np.ascontiguousarray(values.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :width]).tobytes()


class SnapshotWriter:
    """Writes one snapshot to ``out`` a block at a time; records must come in strictly increasing token order.

    ``records`` and ``clearances`` are the counts the header promises; finish()
    refuses a stream that did not keep that promise. Memory: one block plus
    the table of distinct metadata rows.
    """

    def __init__(self, out: BinaryIO, list_id: str, version: int, lanes: bytes, *, token_key_hash: bytes,
                 records: int, clearances: int = 0, compress: bool = True) -> None:
        if not list_id:
            raise WireError("a snapshot needs a list id")
        if not isinstance(token_key_hash, (bytes, bytearray)) or len(token_key_hash) != KEY_HASH_BYTES:
            raise WireError(f"the token key hash is {KEY_HASH_BYTES} bytes")
        if not isinstance(lanes, (bytes, bytearray)) or len(lanes) != LANES_BYTES:
            raise WireError(f"digest lanes are {LANES_BYTES} bytes")
        for name, value in (("version", version), ("records", records), ("clearances", clearances)):
            if type(value) is not int or value < 0:
                raise WireError(f"snapshot {name} must be a non-negative integer, got {value!r}")
        self._out = out
        self._compress = compress
        self._expected = (records, clearances)
        self._metas: dict[tuple, int] = {}
        self._new_metas: list[bytes] = []
        self._new_meta_bytes = 0
        self._tokens: list[bytes] = []
        self._meta_index: list[int] = []
        self._refs: list[int] = []
        self._last = b""
        self._records = 0
        self._clearances: list[bytes] = []
        self._clearance_count = 0
        self._last_clearance = b""
        out.write(MAGIC + _text(list_id, "list id") + _varint(version) + bytes(token_key_hash)
                  + _varint(records) + _varint(clearances) + bytes(lanes))

    def add(self, token: bytes, kind: str, action: str, category: str, reference: str,
            valid_from: date | str, valid_until: date | str, redress: str) -> None:
        """One entry of the list; ``kind`` and ``action`` are the TokenKind and Action values."""
        self.add_rows(((token, kind, category, action, reference, valid_from, valid_until, redress),))

    def add_rows(self, rows) -> None:
        """Many entries, each (token, kind, category, action, reference, valid_from, valid_until, redress).

        The registry's hot loop (50 M rows a build): everything per row is
        done here with local names. Dates may be ``date`` values or ISO
        strings, as the database driver returns them.
        """
        if self._clearances:
            self._flush_clearances()
        metas, tokens, indexes, refs = self._metas, self._tokens, self._meta_index, self._refs
        # split_reference's own pattern, inlined: a function call and a NamedTuple
        # per row cost a second per million rows.
        match, last = _REFERENCE.fullmatch, self._last
        for token, kind, category, action, reference, valid_from, valid_until, redress in rows:
            if type(token) is not bytes:
                token = bytes(token)
            if len(token) != TOKEN_BYTES or token <= last:
                raise WireError("snapshot tokens must be 12 bytes, in strictly increasing order")
            last = token
            found = match(reference) if type(reference) is str else None
            if found is None:
                prefix, width, suffix, number = reference, 0, "", 0
            else:
                prefix, digits, suffix = found.groups()
                width, number = len(digits), int(digits)
            key = (action, category, prefix, width, suffix, valid_from, valid_until, redress)
            index = metas.get(key)
            if index is None:
                index = self._new_meta(key)
            if kind == _PERSON:
                number |= PERSON_BIT
            elif kind != _DOCUMENT:
                raise WireError(f"entry has unknown kind {kind!r}")
            tokens.append(token)
            indexes.append(index)
            refs.append(number)
            if len(tokens) >= BLOCK_RECORDS_MAX or self._new_meta_bytes > MAX_BLOCK_BODY // 2:
                self._last = last
                self._flush_records()
        self._last = last

    def add_entry(self, entry: Entry) -> None:
        self.add(entry.token, TokenKind(entry.kind).value, Action(entry.action).value, entry.category,
                 entry.reference, entry.valid_from, entry.valid_until, entry.redress)

    def _new_meta(self, key: tuple) -> int:
        action, category, prefix, width, suffix, valid_from, valid_until, redress = key
        try:
            code = _ACTIONS[Action(action)]
        except ValueError:
            raise WireError(f"entry has unknown action {action!r}") from None
        if not isinstance(prefix, str):
            raise WireError(f"reference {prefix!r} is not text")
        raw = b"".join((
            bytes([code]), _text(category, "category"), _text(prefix, "reference"),
            _varint(width), _text(suffix, "reference"),
            _day(_date(valid_from), "valid_from"), _day(_date(valid_until), "valid_until"),
            _text(redress, "redress"),
        ))
        index = self._metas[key] = len(self._metas)
        self._new_metas.append(raw)
        self._new_meta_bytes += len(raw)
        return index

    def _flush_records(self) -> None:
        n = len(self._tokens)
        if not n:
            return
        raw = np.frombuffer(b"".join(self._tokens), np.uint8).reshape(n, TOKEN_BYTES)
        keys = raw[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        gaps = np.diff(keys)
        gap_width = _width(gaps.max()) if n > 1 else 1
        index = np.array(self._meta_index, np.uint32)
        meta_width = _width(index.max())
        body = b"".join((
            _varint(len(self._new_metas)), *self._new_metas,
            _varint(n), bytes([gap_width, meta_width]), _U64.pack(int(keys[0])),
            _packed(gaps, gap_width), np.ascontiguousarray(raw[:, 8:]).tobytes(),
            _packed(index, meta_width), np.array(self._refs, "<u4").tobytes(),
        ))
        self._block(BLOCK_RECORDS, body)
        self._records += n
        self._tokens.clear()
        self._meta_index.clear()
        self._refs.clear()
        self._new_metas.clear()
        self._new_meta_bytes = 0

    def add_clearance(self, clearance: Clearance) -> None:
        """One clearance (namesake allow-token); before any record, in strictly increasing token order."""
        if self._records or self._tokens:
            raise WireError("clearances come before the records")
        token = clearance.token
        if type(token) is not bytes or len(token) != TOKEN_BYTES or token <= self._last_clearance:
            raise WireError("clearance tokens must be 12 bytes, in strictly increasing order")
        self._last_clearance = token
        self._clearances.append(token + _text(clearance.redress_number, "redress number")
                                + _day(clearance.valid_until, "valid_until"))
        self._clearance_count += 1
        if len(self._clearances) >= BLOCK_RECORDS_MAX:
            self._flush_clearances()

    def _flush_clearances(self) -> None:
        if self._clearances:
            self._block(BLOCK_CLEARANCES, _varint(len(self._clearances)) + b"".join(self._clearances))
            self._clearances.clear()

    def _block(self, kind: int, body: bytes) -> None:
        if len(body) > MAX_BLOCK_BODY:
            raise WireError(f"a snapshot block would be {len(body)} bytes, more than {MAX_BLOCK_BODY}")
        flags, data = 0, body
        if self._compress:
            packed = zlib.compress(body, ZLIB_LEVEL)
            if len(packed) <= len(body) - len(body) // _ZLIB_MIN_GAIN:
                flags, data = FLAG_ZLIB, packed
        self._out.write(bytes([kind, flags]) + _varint(len(body)) + _varint(len(data)) + data)

    def finish(self) -> None:
        """Write the last blocks and the end mark; refuse counts other than the header's."""
        self._flush_clearances()
        self._flush_records()
        if (self._records, self._clearance_count) != self._expected:
            raise WireError(f"the header promised {self._expected[0]} records and {self._expected[1]}"
                            f" clearances; {self._records} and {self._clearance_count} were written")
        self._out.write(bytes([BLOCK_END]))


def encode_snapshot(list_id: str, version: int, lanes: bytes, entries: Sequence[Entry],
                    clearances: Sequence[Clearance] = (), *, token_key_hash: bytes, compress: bool = True) -> bytes:
    """A whole snapshot in memory (tests, small lists): entries in any order."""
    import io

    for item in (*entries, *clearances):
        if item.list_id != list_id:
            raise WireError(f"entry of list {item.list_id!r} in a snapshot of list {list_id!r}")
    out = io.BytesIO()
    writer = SnapshotWriter(out, list_id, version, lanes, token_key_hash=token_key_hash, records=len(entries),
                            clearances=len(clearances), compress=compress)
    for clearance in sorted(clearances, key=lambda c: c.token):
        writer.add_clearance(clearance)
    for entry in sorted(entries, key=lambda e: e.token):
        writer.add_entry(entry)
    writer.finish()
    return out.getvalue()


# -- decoding ---------------------------------------------------------------


class _Stream(_Fields):
    """Exact reads from a file object: short reads are truncation."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read

    def take(self, size: int, what: str) -> bytes:
        data = self._read(size) if size else b""
        if len(data) != size:
            raise WireError(f"truncated: {what} needs {size} bytes, {len(data)} arrived")
        return data

    def at_end(self) -> bool:
        return not self._read(1)


def _unpacked(data: bytes, n: int, width: int) -> np.ndarray:
    wide = np.zeros((n, 8), np.uint8)
    wide[:, :width] = np.frombuffer(data, np.uint8).reshape(n, width)
    return wide.view("<u8").ravel()


class SnapshotReader:
    """Reads a v3 snapshot from a file object: header and clearances at once, then record blocks on demand.

    ``blocks()`` yields one :class:`~appliance.snapshot_codec.RecordBlock`
    per records block, checked in full (token order across blocks, metadata
    indexes, case numbers that fit their template), and checks the end
    (counts as the header promised, nothing after the end mark) when it
    finishes. Anything else raises WireError.
    """

    def __init__(self, stream: BinaryIO, *, max_entries: int) -> None:
        self._in = _Stream(stream.read)
        if self._in.take(len(MAGIC), "magic") != MAGIC:
            raise WireError("not a Gatecheck v3 snapshot payload (bad magic)")
        list_id = self._in.text("list id")
        if not list_id:
            raise WireError("empty list id")
        version = self._in.varint("version")
        key_hash = self._in.take(KEY_HASH_BYTES, "token key hash")
        records = self._in.varint("record count")
        clearances = self._in.varint("clearance count")
        if records + clearances > max_entries:
            raise WireError(f"{records + clearances} records exceed the max_entries limit of {max_entries}")
        self.header = SnapshotHeader(list_id, version, records, clearances,
                                     self._in.take(LANES_BYTES, "digest lanes"), key_hash)
        self.clearances: list[Clearance] = []
        self._metas = 0
        self._limits: list[int] = []
        self._last = (-1, -1)
        self._kind = self._block_type()
        while self._kind == BLOCK_CLEARANCES:  # clearances come first, so an install knows them at once
            self._clearance_block(_Reader(self._body()))
            self._kind = self._block_type()

    def _block_type(self) -> int:
        kind = self._in.take(1, "block type")[0]
        if kind not in (BLOCK_END, BLOCK_RECORDS, BLOCK_CLEARANCES):
            raise WireError(f"unknown snapshot block type 0x{kind:02x}")
        return kind

    def blocks(self) -> Iterator[RecordBlock]:
        records = 0
        while self._kind != BLOCK_END:
            if self._kind != BLOCK_RECORDS:
                raise WireError("a clearances block after the records")
            block = self._records(_Reader(self._body()))
            records += len(block.refs)
            if records > self.header.records:
                raise WireError(f"more records than the {self.header.records} the header promised")
            yield block
            self._kind = self._block_type()
        if records != self.header.records or len(self.clearances) != self.header.clearances:
            raise WireError(f"snapshot ended with {records} records and {len(self.clearances)} clearances;"
                            f" the header promised {self.header.records} and {self.header.clearances}")
        if not self._in.at_end():
            raise WireError("bytes after the end of the snapshot")

    def _body(self) -> bytes:
        flags = self._in.take(1, "block flags")[0]
        if flags & ~FLAG_ZLIB:
            raise WireError(f"unknown block flags 0x{flags:02x}")
        size = self._in.varint("block body length")
        stored = self._in.varint("block data length")
        if size > MAX_BLOCK_BODY or stored > size:
            raise WireError(f"block of {stored} bytes for a body of {size}: over the {MAX_BLOCK_BODY}-byte limit"
                            " or larger than its body")
        data = self._in.take(stored, "block data")
        if not flags & FLAG_ZLIB:
            if stored != size:
                raise WireError(f"stored block is {stored} bytes, its body length says {size}")
            return data
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(data, size + 1)
        except zlib.error as exc:
            raise WireError(f"compressed block is corrupt: {exc}") from None
        if len(body) != size or not inflater.eof or inflater.unused_data:
            raise WireError(f"compressed block does not inflate to exactly its {size}-byte body")
        return body

    def _records(self, reader: _Reader) -> RecordBlock:
        n_metas = reader.varint("metadata row count")
        if n_metas > reader.left():
            raise WireError(f"{n_metas} metadata rows cannot fit in the block")
        metas = tuple(self._meta(reader) for _ in range(n_metas))
        n = reader.varint("block record count")
        if not 1 <= n <= BLOCK_RECORDS_MAX:
            raise WireError(f"a records block holds 1..{BLOCK_RECORDS_MAX} records, not {n}")
        gap_width, meta_width = reader.byte("gap width"), reader.byte("meta width")
        if not (1 <= gap_width <= 8 and 1 <= meta_width <= 4):
            raise WireError(f"field widths {gap_width} and {meta_width} are out of range")
        first = _U64.unpack(reader.take(8, "first token key"))[0]
        gaps = _unpacked(reader.take((n - 1) * gap_width, "token key gaps"), n - 1, gap_width)
        tails = np.frombuffer(reader.take(n * 4, "token tails"), np.uint8).reshape(n, 4)
        index = _unpacked(reader.take(n * meta_width, "metadata indexes"), n, meta_width)
        refs = np.frombuffer(reader.take(n * 4, "case numbers"), "<u4")
        if reader.left():
            raise WireError(f"{reader.left()} bytes after the records of a block")
        keys = np.empty(n, np.uint64)
        keys[0] = first
        if n > 1:
            # uint64 sums wrap; a wrap makes a key smaller than the one before, refused below.
            np.cumsum(gaps, out=keys[1:])
            keys[1:] += np.uint64(first)
        lows = tails.copy().view(">u4").ravel()
        after = (keys[1:] > keys[:-1]) | ((keys[1:] == keys[:-1]) & (lows[1:] > lows[:-1]))
        if not after.all() or (int(keys[0]), int(lows[0])) <= self._last:
            raise WireError("snapshot tokens are not in strictly increasing order")
        self._last = (int(keys[-1]), int(lows[-1]))
        if int(index.max()) >= self._metas:
            raise WireError("a record refers to a metadata row not yet defined")
        index = index.astype(np.uint32)
        limits = np.array(self._limits, np.uint32)[index]
        if not ((refs & NUMBER_MASK) < limits).all():
            raise WireError("a case number does not fit its template's digit count")
        tokens = np.empty((n, TOKEN_BYTES), np.uint8)
        tokens[:, :8] = keys.astype(">u8").view(np.uint8).reshape(n, 8)
        tokens[:, 8:] = tails
        return RecordBlock(metas, self._metas - n_metas, tokens, index, refs.astype(np.uint32))

    def _meta(self, reader: _Reader) -> ListMeta:
        action = _ACTION_OF.get(reader.byte("action"))
        if action is None:
            raise WireError("unknown action code")
        category = reader.text("category")
        template = reader.template("reference")
        valid_from = reader.day("valid_from")
        valid_until = reader.day("valid_until")
        redress = reader.text("redress")
        self._metas += 1
        self._limits.append(_LIMITS[template.width])
        return ListMeta(category, action, valid_from, valid_until, redress,
                        ReferenceTemplate(template.prefix, template.width, template.suffix))

    def _clearance_block(self, reader: _Reader) -> None:
        n = reader.varint("clearance count")
        if not 1 <= n <= BLOCK_RECORDS_MAX or len(self.clearances) + n > self.header.clearances:
            raise WireError(f"a clearances block of {n} goes past the header's {self.header.clearances}")
        list_id = self.header.list_id
        last = self.clearances[-1].token if self.clearances else b""
        for _ in range(n):
            token = reader.take(TOKEN_BYTES, "clearance token")
            if token <= last:
                raise WireError("clearance tokens are not in strictly increasing order")
            last = token
            redress_number = reader.text("redress number")
            self.clearances.append(Clearance(token, list_id, redress_number, reader.day("valid_until")))
        if reader.left():
            raise WireError(f"{reader.left()} bytes after the clearances of a block")


@dataclass(frozen=True)
class DecodedSnapshot:
    """A whole snapshot as values (tests, small lists); the agent streams instead."""

    header: SnapshotHeader
    entries: tuple[Entry, ...]
    clearances: tuple[Clearance, ...]


def entries_of(block: RecordBlock, metas: Sequence[ListMeta], list_id: str) -> Iterator[Entry]:
    """The Entry values of one block; ``metas`` is every metadata row defined so far."""
    for row, index, ref in zip(block.tokens, block.meta_index.tolist(), block.refs.tolist()):
        meta = metas[index]
        kind = TokenKind.PERSON if ref & PERSON_BIT else TokenKind.DOCUMENT
        yield Entry(row.tobytes(), list_id, kind, meta.category, meta.action,
                    join_reference(meta.template, ref & NUMBER_MASK), meta.valid_from, meta.valid_until,
                    meta.redress)


def decode_snapshot(data: bytes, *, max_entries: int) -> DecodedSnapshot:
    """Decode a whole v3 snapshot held in memory; every failure is a WireError."""
    import io

    reader = SnapshotReader(io.BytesIO(bytes(data)), max_entries=max_entries)
    metas: list[ListMeta] = []
    entries: list[Entry] = []
    for block in reader.blocks():
        metas.extend(block.metas)
        entries.extend(entries_of(block, metas, reader.header.list_id))
    return DecodedSnapshot(reader.header, tuple(entries), tuple(reader.clearances))
