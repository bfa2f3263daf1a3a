"""The list state digest: an order-independent, incremental hash of a list's contents.

The registry signs, with every delta, a digest of the list as it stands after
the delta; the device checks its own state against it. The digest is an
additive multiset hash, LtHash16 (Bellare and Micciancio's "incremental
hashing", as used at scale by Lewi et al., "Securing update propagation with
homomorphic hashing", 2019): every element is expanded by an extendable-output
function into 1024 16-bit lanes, and the digest of a set is the lane-wise sum
of its elements' vectors modulo 2^16. Adding an element adds its vector;
removing it subtracts it. So a device updates the digest of a 50 M-token list
in time proportional to the delta, and the order of elements never matters.

The canonical element encoding is specified in docs/wire-format.md
("State digest") so that the registry and any other implementation reproduce
it bit for bit. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Iterable, Union

import numpy as np

from appliance.records import Action, Clearance, Entry, TokenKind
from sync.errors import SyncError
from sync.identity import TOKEN_BYTES

DIGEST_DOMAIN = b"GCDIG1"
ELEMENT_ENTRY = 0x01
ELEMENT_CLEARANCE = 0x02
_ENTRY_PREFIX = DIGEST_DOMAIN + bytes([ELEMENT_ENTRY])
LANES = 1024
DIGEST_BYTES = LANES * 2  # 2048: LtHash16, 1024 little-endian uint16 lanes
CHECKSUM_BYTES = 32
_LANE = np.dtype("<u2")
#: Elements hashed per numpy reduction: 1024 x 2 KiB = 2 MiB of lanes at a time.
_CHUNK = 1024

Element = Union[Entry, Clearance]


class DigestError(SyncError):
    """An element or serialised digest that cannot be used, with the reason."""

    code = "bad_digest"


def _text(value: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except (AttributeError, UnicodeEncodeError) as exc:
        raise DigestError(f"digest field {value!r} is not encodable text: {exc}") from None
    return len(raw).to_bytes(4, "big") + raw


def _day(value: date) -> bytes:
    # f-string, not strftime: strftime("%Y") does not zero-pad years below 1000.
    return f"{value.year:04d}{value.month:02d}{value.day:02d}".encode("ascii")


def _token(token: bytes) -> bytes:
    if not isinstance(token, (bytes, bytearray)) or len(token) != TOKEN_BYTES:
        raise DigestError(f"a token is {TOKEN_BYTES} bytes, got {token!r}")
    return bytes(token)


def _entry_shared(entry: Entry) -> tuple[bytes, bytes]:
    """The fields an entry shares with entries like it: (those after its token, those after its reference)."""
    try:
        kind, action = TokenKind(entry.kind).value, Action(entry.action).value
    except ValueError as exc:
        raise DigestError(str(exc)) from None
    return (b"".join((_text(entry.list_id), _text(kind), _text(entry.category), _text(action))),
            b"".join((_day(entry.valid_from), _day(entry.valid_until), _text(entry.redress))))


def encode_element(element: Element) -> bytes:
    """The canonical bytes of one entry or clearance (docs/wire-format.md, "State digest")."""
    if isinstance(element, Entry):
        token = _token(element.token)
        middle, tail = _entry_shared(element)
        return b"".join((_ENTRY_PREFIX, token, middle, _text(element.reference), tail))
    if isinstance(element, Clearance):
        return b"".join((
            DIGEST_DOMAIN, bytes([ELEMENT_CLEARANCE]), _token(element.token),
            _text(element.list_id), _text(element.redress_number), _day(element.valid_until),
        ))
    raise DigestError(f"only entries and clearances go into a digest, got {type(element).__name__}")


def element_lanes(element: Element) -> np.ndarray:
    """One element's vector: SHAKE256(encoding) read as 1024 uint16 little-endian lanes."""
    return np.frombuffer(hashlib.shake_256(encode_element(element)).digest(DIGEST_BYTES), _LANE)


class _EntryEncoder:
    """encode_element for many elements, with the fields entries share encoded once.

    An entry's bytes are its token, four fields many entries share (list,
    kind, category, action), its own reference, then three more shared ones
    (dates, redress). A delta's entries share a few thousand combinations at
    most, so encoding each combination once takes an entry from ~4.4 µs to
    ~1.1 (docs/benchmarks.md); SHAKE256 (~5 µs) is then most of the cost.
    The bytes are encode_element's.
    """

    __slots__ = ("_shared",)

    def __init__(self) -> None:
        self._shared: dict[tuple, tuple[bytes, bytes]] = {}

    def __call__(self, element: Element) -> bytes:
        if not isinstance(element, Entry):
            return encode_element(element)
        key = (element.list_id, element.kind, element.category, element.action,
               element.valid_from, element.valid_until, element.redress)
        try:
            middle, tail = self._shared[key]
        except KeyError:
            middle, tail = self._shared[key] = _entry_shared(element)
        except TypeError:  # an unhashable field: encode_element says what is wrong with it
            return encode_element(element)
        token = element.token
        if type(token) is not bytes or len(token) != TOKEN_BYTES:
            token = _token(token)
        return b"".join((_ENTRY_PREFIX, token, middle, _text(element.reference), tail))


def _sum(elements: Iterable[Element]) -> np.ndarray:
    """Lane-wise sum mod 2^16 of many elements, a chunk at a time.

    uint16 sums wrap, which is exactly the mod 2^16 the lanes need.
    """
    total = np.zeros(LANES, np.uint16)
    encode = _EntryEncoder()
    shake = hashlib.shake_256
    chunk: list[bytes] = []

    def flush() -> None:
        block = np.frombuffer(b"".join([shake(data).digest(DIGEST_BYTES) for data in chunk]), _LANE)
        total[:] += block.reshape(-1, LANES).sum(axis=0, dtype=np.uint16)
        chunk.clear()

    for element in elements:
        chunk.append(encode(element))
        if len(chunk) == _CHUNK:
            flush()
    if chunk:
        flush()
    return total


class StateDigest:
    """The LtHash16 of a multiset of entries and clearances, updatable in place.

    Devices keep the full 2048 bytes (``to_bytes``) to update incrementally;
    envelopes carry the 32-byte ``checksum()``. The empty list's lanes are all
    zero.
    """

    __slots__ = ("_lanes",)

    def __init__(self, lanes: np.ndarray | None = None) -> None:
        if lanes is None:
            self._lanes = np.zeros(LANES, np.uint16)
        else:
            self._lanes = np.array(lanes, dtype=np.uint16, copy=True).reshape(LANES)

    @classmethod
    def of(cls, elements: Iterable[Element]) -> "StateDigest":
        """The digest of a whole list, from scratch."""
        return cls(_sum(elements))

    def add(self, element: Element) -> "StateDigest":
        self._lanes += element_lanes(element)  # uint16 arithmetic wraps: mod 2^16
        return self

    def remove(self, element: Element) -> "StateDigest":
        self._lanes -= element_lanes(element)
        return self

    def apply(self, adds: Iterable[Element] = (), removes: Iterable[Element] = ()) -> "StateDigest":
        """Add and remove many elements at once (a delta); cost is linear in their number.

        ``removes`` must be the elements as they were held, metadata included:
        a delta names removals by token, so the device looks their entries up
        before it deletes them.
        """
        self._lanes += _sum(adds)
        self._lanes -= _sum(removes)
        return self

    def copy(self) -> "StateDigest":
        return StateDigest(self._lanes)

    def to_bytes(self) -> bytes:
        """The 2048-byte lanes, uint16 little-endian, lane 0 first."""
        return self._lanes.astype(_LANE).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "StateDigest":
        if len(data) != DIGEST_BYTES:
            raise DigestError(f"a state digest is {DIGEST_BYTES} bytes, got {len(data)}")
        return cls(np.frombuffer(data, _LANE))

    def checksum(self) -> bytes:
        """SHA-256 of ``to_bytes()``: the 32 bytes an envelope signs and a screen shows."""
        return hashlib.sha256(self.to_bytes()).digest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StateDigest):
            return NotImplemented
        return bool(np.array_equal(self._lanes, other._lanes))

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"StateDigest(checksum={self.checksum().hex()[:16]}…)"
