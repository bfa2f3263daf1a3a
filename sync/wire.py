"""The compact payload inside a signed envelope: one list's delta (N -> M).

Issue 4 asks for at most 20 bytes on the wire per added entry and 14 per
removal. Tokens travel as raw 12-byte strings (docs/token-layout.md); what
entries share (kind, category, action, dates, redress and the case number's
template, as appliance/snapshot_codec.py splits it) goes once into a
metadata table, and entries are grouped by it, so an addition costs its
token plus a varint case-number delta. The body is zlib-compressed only
when that makes it smaller. The byte layout is docs/wire-format.md.

Full-list snapshots used to be this format's type 0x02, decoded whole in
memory; they are now format v2 (sync/snapshot_wire.py), streamed in token
order, and type 0x02 is refused.

Encoding is canonical: the same change gives the same bytes whatever order
it is passed in, so a published delta can be rebuilt and cached byte for
byte. Decoding is defensive: every malformed, truncated or oversized input
raises ``WireError``, and sizes are checked before anything is allocated or
decompressed. Pure: no I/O.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, NamedTuple, Sequence

from appliance.records import Action, Batch, Clearance, Entry, TokenKind
from sync.errors import SyncError
from sync.identity import TOKEN_BYTES

MAGIC = b"GCW1"
FLAG_ZLIB = 0x01
TYPE_DELTA = 0x01
#: Retired: a v1 snapshot. Refused by the decoder (snapshots are sync/snapshot_wire.py's).
TYPE_SNAPSHOT = 0x02
#: A decompressed body may be at most this many times the wire bytes allowed.
#: Tokens are incompressible, so real payloads shrink by far less; a zlib
#: bomb (up to ~1000x) is cut off at this bound.
MAX_EXPANSION = 4
MAX_STRING_BYTES = 0xFFFF
ZLIB_LEVEL = 9
#: A case number's digit run is at most this long (a longer run keeps its
#: head in the template), as in appliance/snapshot_codec.py.
REF_DIGITS = 9
_REFERENCE = re.compile(r"(.*?)([0-9]{1,%d})([^0-9]*)" % REF_DIGITS, re.DOTALL)
_KINDS = {TokenKind.DOCUMENT: 0x01, TokenKind.PERSON: 0x02}
_ACTIONS = {Action.REFER: 0x01, Action.DENY: 0x02}
_KIND_OF = {code: kind for kind, code in _KINDS.items()}
_ACTION_OF = {code: action for action, code in _ACTIONS.items()}
_MAX_ORDINAL = date.max.toordinal()


class WireError(SyncError):
    """A payload that cannot be encoded or decoded; ``reason`` (= ``message``) says why in one line."""

    code = "malformed_payload"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodedDelta:
    """A decoded delta, in canonical order."""

    list_id: str
    from_version: int
    to_version: int
    adds: tuple[Entry, ...] = ()
    removes: tuple[bytes, ...] = ()
    add_clearances: tuple[Clearance, ...] = ()
    remove_clearances: tuple[bytes, ...] = ()

    def batch(self, *, state_digest: bytes = b"", signed_at: datetime | None = None,
              valid_until: datetime | None = None) -> Batch:
        """The store's Batch for this change, with the envelope's fields."""
        return Batch(
            self.list_id, self.from_version, self.to_version, self.adds, self.removes,
            self.add_clearances, self.remove_clearances, state_digest, signed_at, valid_until,
        )


class _Template(NamedTuple):
    prefix: str
    width: int
    suffix: str


def split_reference(reference: str) -> tuple[_Template, int]:
    """A case number as (template, number): ``NFL-2024-00012345`` -> (``NFL-2024-``, 8, ``""``), 12345."""
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        return _Template(reference, 0, ""), 0
    head, digits, tail = match.groups()
    return _Template(head, len(digits), tail), int(digits)


def join_reference(template: _Template, number: int) -> str:
    if template.width == 0:
        return template.prefix
    return f"{template.prefix}{number:0{template.width}d}{template.suffix}"


# -- encoding ---------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text(value: str, what: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        raise WireError(f"{what} {value!r} is not encodable text") from None
    if len(raw) > MAX_STRING_BYTES:
        raise WireError(f"{what} is {len(raw)} bytes, more than {MAX_STRING_BYTES}")
    return _varint(len(raw)) + raw


def _day(value: date, what: str) -> bytes:
    if not isinstance(value, date):
        raise WireError(f"{what} {value!r} is not a date")
    return _varint(value.toordinal())


def _token(token: bytes, what: str) -> bytes:
    if not isinstance(token, (bytes, bytearray)) or len(token) != TOKEN_BYTES:
        raise WireError(f"{what} must be {TOKEN_BYTES} bytes, got {token!r}")
    return bytes(token)


def _version(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WireError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _grouped(records: Iterable[tuple[bytes, bytes, int]], what: str) -> bytes:
    """A template table and its records: (meta bytes, token, number) grouped by meta.

    Metas are sorted by their bytes and records within a meta by (number,
    token), so the output does not depend on input order.
    """
    groups: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
    seen: set[bytes] = set()
    for meta, token, number in records:
        if token in seen:
            raise WireError(f"{what}: token {token.hex()} appears twice")
        seen.add(token)
        groups[meta].append((number, token))
    table, tokens, numbers = [_varint(len(groups))], [], []
    for meta in sorted(groups):
        members = sorted(groups[meta])
        table.append(_varint(len(members)) + meta)
        previous = 0
        for number, token in members:
            tokens.append(token)
            numbers.append(_varint(number - previous))
            previous = number
    return b"".join(table) + b"".join(tokens) + b"".join(numbers)


def _entry_records(list_id: str, adds: Sequence[Entry]) -> Iterable[tuple[bytes, bytes, int]]:
    cache: dict[tuple, bytes] = {}
    for entry in adds:
        if not isinstance(entry, Entry):
            raise WireError(f"an addition must be an Entry, got {type(entry).__name__}")
        if entry.list_id != list_id:
            raise WireError(f"entry of list {entry.list_id!r} in a payload for list {list_id!r}")
        if entry.kind not in _KINDS or entry.action not in _ACTIONS:
            raise WireError(f"entry has unknown kind {entry.kind!r} or action {entry.action!r}")
        if not isinstance(entry.reference, str):
            raise WireError(f"reference {entry.reference!r} is not text")
        template, number = split_reference(entry.reference)
        key = (entry.kind, entry.action, entry.category, template, entry.valid_from,
               entry.valid_until, entry.redress)
        meta = cache.get(key)
        if meta is None:
            meta = cache[key] = b"".join((
                bytes([_KINDS[entry.kind], _ACTIONS[entry.action]]),
                _text(entry.category, "category"),
                _text(template.prefix, "reference"), _varint(template.width),
                _text(template.suffix, "reference"),
                _day(entry.valid_from, "valid_from"), _day(entry.valid_until, "valid_until"),
                _text(entry.redress, "redress"),
            ))
        yield meta, _token(entry.token, "entry token"), number


def _clearance_records(list_id: str, clearances: Sequence[Clearance]) -> Iterable[tuple[bytes, bytes, int]]:
    for clearance in clearances:
        if not isinstance(clearance, Clearance):
            raise WireError(f"a clearance must be a Clearance, got {type(clearance).__name__}")
        if clearance.list_id != list_id:
            raise WireError(f"clearance of list {clearance.list_id!r} in a payload for list {list_id!r}")
        if not isinstance(clearance.redress_number, str):
            raise WireError(f"redress number {clearance.redress_number!r} is not text")
        template, number = split_reference(clearance.redress_number)
        meta = b"".join((
            _text(template.prefix, "redress number"), _varint(template.width),
            _text(template.suffix, "redress number"), _day(clearance.valid_until, "valid_until"),
        ))
        yield meta, _token(clearance.token, "clearance token"), number


def _bare_tokens(tokens: Sequence[bytes], what: str) -> bytes:
    checked = sorted({_token(token, what) for token in tokens})
    if len(checked) != len(tokens):
        raise WireError(f"{what}s repeat a token")
    return _varint(len(checked)) + b"".join(checked)


def _encode(kind: int, list_id: str, from_version: int, to_version: int, adds: Sequence[Entry],
            removes: Sequence[bytes], add_clearances: Sequence[Clearance],
            remove_clearances: Sequence[bytes]) -> bytes:
    if not list_id:
        raise WireError("a payload needs a list id")
    _version(from_version, "from_version")
    _version(to_version, "to_version")
    if from_version > to_version:
        raise WireError(f"from_version {from_version} is after to_version {to_version}")
    body = b"".join((
        bytes([kind]), _text(list_id, "list id"), _varint(from_version), _varint(to_version),
        _grouped(_entry_records(list_id, adds), "additions"),
        _bare_tokens(removes, "removal"),
        _grouped(_clearance_records(list_id, add_clearances), "clearances"),
        _bare_tokens(remove_clearances, "clearance removal"),
    ))
    packed = zlib.compress(body, ZLIB_LEVEL)
    flags, data = (FLAG_ZLIB, packed) if len(packed) < len(body) else (0, body)
    return MAGIC + bytes([flags]) + _varint(len(body)) + data


def encode_delta(list_id: str, from_version: int, to_version: int, adds: Sequence[Entry],
                 removes: Sequence[bytes], add_clearances: Sequence[Clearance] = (),
                 remove_clearances: Sequence[bytes] = ()) -> bytes:
    """The payload of one change to one list, version from_version -> to_version."""
    return _encode(TYPE_DELTA, list_id, from_version, to_version, adds, removes,
                   add_clearances, remove_clearances)


# -- decoding ---------------------------------------------------------------


class _Fields:
    """Varints and texts over any ``take(size, what)``; a bytes cursor and a file stream share them."""

    __slots__ = ()

    def take(self, size: int, what: str) -> bytes:
        raise NotImplementedError

    def varint(self, what: str) -> int:
        value = shift = 0
        for i in range(10):
            b = self.take(1, what)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise WireError(f"{what} is an over-long varint")
                return value
            shift += 7
        raise WireError(f"{what} is a varint longer than 10 bytes")

    def text(self, what: str) -> str:
        size = self.varint(f"{what} length")
        if size > MAX_STRING_BYTES:
            raise WireError(f"{what} is {size} bytes, more than {MAX_STRING_BYTES}")
        try:
            return self.take(size, what).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError(f"{what} is not UTF-8") from None


class _Reader(_Fields):
    """A cursor over bytes whose every read checks what is left."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, size: int, what: str) -> bytes:
        if size > self.left():
            raise WireError(f"truncated: {what} needs {size} bytes, {self.left()} left")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        value = shift = 0
        data, pos = self.data, self.pos
        for i in range(10):
            if pos + i >= len(data):
                raise WireError(f"truncated: {what} ends inside a varint")
            b = data[pos + i]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise WireError(f"{what} is an over-long varint")
                self.pos = pos + i + 1
                return value
            shift += 7
        raise WireError(f"{what} is a varint longer than 10 bytes")

    def day(self, what: str) -> date:
        ordinal = self.varint(what)
        if not 1 <= ordinal <= _MAX_ORDINAL:
            raise WireError(f"{what} {ordinal} is not a day number")
        return date.fromordinal(ordinal)

    def template(self, what: str) -> _Template:
        prefix = self.text(what)
        width = self.varint(f"{what} digit count")
        if width > REF_DIGITS:
            raise WireError(f"{what} has {width} digits, more than {REF_DIGITS}")
        return _Template(prefix, width, self.text(what))


class _Budget:
    """The records a payload may still hold (``max_entries``, all sections together)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, count: int, what: str) -> None:
        if count > self.left:
            raise WireError(f"{what}: {count} records exceed the max_entries limit")
        self.left -= count


def _read_grouped(reader: _Reader, budget: _Budget, what: str, read_meta) -> list[tuple[object, bytes, int]]:
    """Inverse of _grouped(): [(meta, token, number)] in wire order."""
    n_meta = reader.varint(f"{what} table size")
    budget_before = budget.left
    if n_meta > budget.left:
        raise WireError(f"{what}: {n_meta} metadata rows exceed the max_entries limit")
    metas = []
    for _ in range(n_meta):
        count = reader.varint(f"{what} group size")
        if count == 0:
            raise WireError(f"{what}: a metadata row is used by no record")
        budget.spend(count, what)
        metas.append((read_meta(reader), count))
    total = budget_before - budget.left
    tokens = reader.take(total * TOKEN_BYTES, f"{what} tokens")
    out = []
    at = 0
    for meta, count in metas:
        template = meta[0]
        limit = 10 ** template.width if template.width else 1
        number = 0
        for _ in range(count):
            number += reader.varint(f"{what} number")
            if number >= limit:
                raise WireError(f"{what}: case number {number} does not fit {template.width} digits")
            out.append((meta, tokens[at:at + TOKEN_BYTES], number))
            at += TOKEN_BYTES
    if len({token for _, token, _ in out}) != len(out):
        raise WireError(f"{what}: a token appears twice")
    return out


def _read_entry_meta(reader: _Reader) -> tuple:
    kind = _KIND_OF.get(reader.byte("token kind"))
    action = _ACTION_OF.get(reader.byte("action"))
    if kind is None or action is None:
        raise WireError("unknown token kind or action code")
    category = reader.text("category")
    template = reader.template("reference")
    valid_from = reader.day("valid_from")
    valid_until = reader.day("valid_until")
    return template, kind, action, category, valid_from, valid_until, reader.text("redress")


def _read_clearance_meta(reader: _Reader) -> tuple:
    return reader.template("redress number"), reader.day("valid_until")


def _read_bare(reader: _Reader, budget: _Budget, what: str) -> tuple[bytes, ...]:
    count = reader.varint(f"{what} count")
    budget.spend(count, what)
    raw = reader.take(count * TOKEN_BYTES, what)
    tokens = tuple(raw[i:i + TOKEN_BYTES] for i in range(0, len(raw), TOKEN_BYTES))
    if len(set(tokens)) != len(tokens):
        raise WireError(f"{what}: a token appears twice")
    return tokens


def _body(data: bytes, max_bytes: int, max_body_bytes: int | None) -> bytes:
    """Check the header and return the body, decompressed within the size bounds."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"a payload is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise WireError(f"payload is {len(data)} bytes, more than the {max_bytes}-byte limit")
    head = _Reader(data)
    if head.take(len(MAGIC), "magic") != MAGIC:
        raise WireError("not a Gatecheck wire payload (bad magic)")
    flags = head.byte("flags")
    if flags & ~FLAG_ZLIB:
        raise WireError(f"unknown flags 0x{flags:02x}")
    size = head.varint("body length")
    limit = max_bytes * MAX_EXPANSION if max_body_bytes is None else max_body_bytes
    if size > limit:
        raise WireError(f"body would be {size} bytes, more than the {limit}-byte limit")
    rest = data[head.pos:]
    if not flags & FLAG_ZLIB:
        if len(rest) != size:
            raise WireError(f"body is {len(rest)} bytes, the header says {size}")
        return rest
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(rest, size + 1)  # never more than one byte past the bound
    except zlib.error as exc:
        raise WireError(f"compressed body is corrupt: {exc}") from None
    if len(body) != size:
        raise WireError(f"body decompresses to {'more' if len(body) > size else len(body)} bytes,"
                        f" the header says {size}")
    if not inflater.eof:
        raise WireError("compressed body is truncated")
    if inflater.unused_data:
        raise WireError("bytes after the end of the compressed body")
    return body


def decode_payload(data: bytes, *, max_bytes: int, max_entries: int,
                   max_body_bytes: int | None = None) -> DecodedDelta:
    """Decode a delta payload; every failure is a WireError.

    ``max_bytes`` bounds the wire bytes, ``max_entries`` the records of all
    sections together, and ``max_body_bytes`` (default MAX_EXPANSION x
    max_bytes) the decompressed body, which is checked before decompression
    and enforced during it.
    """
    body = _body(data, max_bytes, max_body_bytes)
    reader = _Reader(body)
    kind = reader.byte("payload type")
    if kind == TYPE_SNAPSHOT:
        raise WireError("a v1 snapshot payload (type 0x02) is no longer accepted: snapshots are format v2")
    if kind != TYPE_DELTA:
        raise WireError(f"unknown payload type 0x{kind:02x}")
    list_id = reader.text("list id")
    if not list_id:
        raise WireError("empty list id")
    from_version = reader.varint("from_version")
    to_version = reader.varint("to_version")
    if from_version > to_version:
        raise WireError(f"from_version {from_version} is after to_version {to_version}")
    budget = _Budget(max_entries)
    adds = tuple(
        Entry(token, list_id, kind_, category, action, join_reference(template, number),
              valid_from, valid_until, redress)
        for (template, kind_, action, category, valid_from, valid_until, redress), token, number
        in _read_grouped(reader, budget, "additions", _read_entry_meta)
    )
    removes = _read_bare(reader, budget, "removals")
    add_clearances = tuple(
        Clearance(token, list_id, join_reference(template, number), valid_until)
        for (template, valid_until), token, number
        in _read_grouped(reader, budget, "clearances", _read_clearance_meta)
    )
    remove_clearances = _read_bare(reader, budget, "clearance removals")
    if reader.left():
        raise WireError(f"{reader.left()} bytes after the end of the payload")
    return DecodedDelta(list_id, from_version, to_version, adds, removes, add_clearances, remove_clearances)


def decode_delta(data: bytes, *, max_bytes: int, max_entries: int,
                 max_body_bytes: int | None = None) -> DecodedDelta:
    """Decode a delta payload (the name the agent uses; the same as decode_payload)."""
    return decode_payload(data, max_bytes=max_bytes, max_entries=max_entries, max_body_bytes=max_body_bytes)
