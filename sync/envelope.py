"""The signed envelope: what the registry vouches for about one list update.

An envelope says "list L goes from version F to version T; afterwards its
digest is D; the payload that does it has this SHA-256 and size; trust this
until valid_until". A heartbeat is the same statement with no payload:
"list L is at version N with digest D, valid until T". The payload itself is
opaque here (sync/wire.py owns it); only its hash is signed.

The layout is fixed big-endian binary with one length-prefixed field, so there
is exactly one encoding of every envelope (docs/envelope.md). Parsing is
strict: any deviation is :class:`MalformedEnvelope`, never IndexError.

Pure: no I/O, no clock reads. Signatures are *checked* in sync/trust.py,
against the key ring, before anything acts on the payload.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.errors import MalformedEnvelope, TooLarge
from sync.keys import SIGNATURE_BYTES, U64_MAX, key_id_for, raw_public_key

ENVELOPE_MAGIC = b"GCENV1"
CHECKSUM_BYTES = 32
SHA256_BYTES = 32
MAX_LIST_ID_BYTES = 64
ZERO_HASH = bytes(SHA256_BYTES)
_LIST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")

_HEAD = struct.Struct(">6sBB")  # magic, kind, len(list_id)
# from_version, to_version, issued_at, valid_until, post_state_digest,
# payload_sha256, payload_size, key_id
_TAIL = struct.Struct(">QQQQ32s32sQ8s")
MIN_ENVELOPE_BYTES = _HEAD.size + 1 + _TAIL.size + SIGNATURE_BYTES  # 185
MAX_ENVELOPE_BYTES = _HEAD.size + MAX_LIST_ID_BYTES + _TAIL.size + SIGNATURE_BYTES  # 248


class Kind(IntEnum):
    """What an envelope carries; the wire byte is the enum value."""

    DELTA = 1  # changes from from_version to to_version
    SNAPSHOT = 2  # the whole list at to_version (from_version is 0: "from empty")
    HEARTBEAT = 3  # no payload: "still at to_version" (from_version == to_version)

    @classmethod
    def parse(cls, value: object) -> Kind:
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise MalformedEnvelope(f"unknown envelope kind {value!r}") from None
        try:
            return cls(value)
        except ValueError:
            raise MalformedEnvelope(f"unknown envelope kind {value!r}") from None


@dataclass(frozen=True)
class EnvelopeFields:
    """The statement the registry signs, before it is signed.

    Times are Unix seconds (UTC). ``post_state_digest`` is the 32-byte
    checksum of the list digest after applying (``StateDigest.checksum()``,
    sync/digest.py); ``payload_sha256``/``payload_size``
    are all-zero for a heartbeat.
    """

    kind: Kind
    list_id: str
    from_version: int
    to_version: int
    issued_at: int
    valid_until: int
    post_state_digest: bytes
    payload_sha256: bytes = ZERO_HASH
    payload_size: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind.parse(self.kind))
        _check_fields(self)

    @property
    def is_heartbeat(self) -> bool:
        return self.kind is Kind.HEARTBEAT


@dataclass(frozen=True)
class Envelope(EnvelopeFields):
    """A parsed envelope: the fields, who signed them, and the exact signed bytes."""

    key_id: str = ""
    signature: bytes = b""
    signed_bytes: bytes = b""


def heartbeat(list_id: str, version: int, digest: bytes, *, issued_at: int, valid_until: int) -> EnvelopeFields:
    """The fields of "list L is at version N with digest D, valid until T"."""
    return EnvelopeFields(Kind.HEARTBEAT, list_id, version, version, issued_at, valid_until, digest)


def _check_fields(f: EnvelopeFields) -> None:
    """One rule set, shared by signer and parser, so nothing signable is unparseable."""
    if not isinstance(f.list_id, str) or not _LIST_ID.fullmatch(f.list_id.encode("ascii", "replace")):
        raise MalformedEnvelope("list id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    for name in ("from_version", "to_version", "issued_at", "valid_until", "payload_size"):
        value = getattr(f, name)
        if type(value) is not int or not 0 <= value <= U64_MAX:
            raise MalformedEnvelope(f"{name} must be an integer in 0..2^64-1")
    for name in ("post_state_digest", "payload_sha256"):
        value = getattr(f, name)
        if not isinstance(value, bytes) or len(value) != CHECKSUM_BYTES:
            raise MalformedEnvelope(f"{name} must be {CHECKSUM_BYTES} bytes")
    if f.valid_until < f.issued_at:
        raise MalformedEnvelope(f"valid_until {f.valid_until} is before issued_at {f.issued_at}")
    if f.kind is Kind.DELTA and not f.from_version < f.to_version:
        raise MalformedEnvelope(f"delta must go forward, not {f.from_version} -> {f.to_version}")
    if f.kind is Kind.SNAPSHOT and f.from_version != 0:
        raise MalformedEnvelope("snapshot from_version must be 0 (a snapshot starts from empty)")
    if f.kind is Kind.HEARTBEAT:
        if f.from_version != f.to_version:
            raise MalformedEnvelope("heartbeat from_version must equal to_version")
        if f.payload_sha256 != ZERO_HASH or f.payload_size != 0:
            raise MalformedEnvelope("heartbeat must carry no payload (zero hash, zero size)")


def _signed_body(f: EnvelopeFields, key_id: bytes) -> bytes:
    list_id = f.list_id.encode("ascii")
    return (
        _HEAD.pack(ENVELOPE_MAGIC, f.kind, len(list_id))
        + list_id
        + _TAIL.pack(
            f.from_version, f.to_version, f.issued_at, f.valid_until,
            f.post_state_digest, f.payload_sha256, f.payload_size, key_id,
        )
    )


def sign_envelope(fields: EnvelopeFields, private_key: Ed25519PrivateKey) -> bytes:
    """The canonical signed envelope bytes; the key id is derived from ``private_key``."""
    if not isinstance(fields, EnvelopeFields):
        raise TypeError("sign_envelope needs EnvelopeFields")
    key_id = bytes.fromhex(key_id_for(raw_public_key(private_key)))
    body = _signed_body(fields, key_id)
    return body + private_key.sign(body)


def parse_envelope(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Strictly decode envelope bytes. The signature is carried, not checked.

    ``max_bytes`` is enforced before anything is read, so a never-ending
    response costs nothing to refuse.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedEnvelope("envelope must be bytes")
    if len(data) > max_bytes:
        raise TooLarge(f"envelope is {len(data)} bytes, limit is {max_bytes}")
    data = bytes(data)
    if len(data) < MIN_ENVELOPE_BYTES:
        raise MalformedEnvelope(f"envelope is truncated: {len(data)} bytes, at least {MIN_ENVELOPE_BYTES} needed")
    magic, kind, list_len = _HEAD.unpack_from(data)
    if magic != ENVELOPE_MAGIC:
        raise MalformedEnvelope("not a Gatecheck envelope (bad magic)")
    expected = _HEAD.size + list_len + _TAIL.size + SIGNATURE_BYTES
    if len(data) != expected:
        raise MalformedEnvelope(
            f"envelope is {len(data)} bytes but its list id length says {expected}: truncated or padded"
        )
    list_id = data[_HEAD.size:_HEAD.size + list_len]
    if not _LIST_ID.fullmatch(list_id):
        raise MalformedEnvelope("list id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    tail_at = _HEAD.size + list_len
    (from_version, to_version, issued_at, valid_until, digest,
     payload_sha256, payload_size, key_id) = _TAIL.unpack_from(data, tail_at)
    signed_end = tail_at + _TAIL.size
    return Envelope(
        kind=Kind.parse(kind),
        list_id=list_id.decode("ascii"),
        from_version=from_version,
        to_version=to_version,
        issued_at=issued_at,
        valid_until=valid_until,
        post_state_digest=digest,
        payload_sha256=payload_sha256,
        payload_size=payload_size,
        key_id=key_id.hex(),
        signature=data[signed_end:],
        signed_bytes=data[:signed_end],
    )

