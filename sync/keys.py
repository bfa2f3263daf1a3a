"""Signing-key rotation under a pinned, offline root key.

The device pins one Ed25519 root public key. The root signs nothing but key
statements: a :class:`SigningKeyCert` that certifies an online signing key for
a time window, and a :class:`Revocation` that withdraws one for good. The
registry's online key signs envelopes (sync/envelope.py). Byte layouts are
fixed-width big-endian, specified in docs/envelope.md.

Pure: no I/O, no clock reads; times are Unix seconds passed in by the caller.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sync.errors import (
    BadSignature,
    ExpiredKey,
    MalformedEnvelope,
    RevokedKey,
    Rollback,
    UnknownKey,
)

CERT_MAGIC = b"GCKEY1"
REVOCATION_MAGIC = b"GCREV1"
KEY_ID_BYTES = 8
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
U64_MAX = 2**64 - 1

# magic, key_id, public_key, not_before, not_after, sequence
_CERT_BODY = struct.Struct(">6s8s32sQQQ")
CERT_BYTES = _CERT_BODY.size + SIGNATURE_BYTES  # 134
# magic, key_id, revoked_at
_REVOCATION_BODY = struct.Struct(">6s8sQ")
REVOCATION_BYTES = _REVOCATION_BODY.size + SIGNATURE_BYTES  # 86


def key_id_for(public_key: bytes) -> str:
    """Hex of the first 8 bytes of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES].hex()


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    """The 32 raw public-key bytes that key ids and certificates are built from."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def verify_signature(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    """Ed25519-verify ``message``, turning every failure into :class:`BadSignature`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature(f"{what}: signature does not verify under key {key_id_for(public_key)}") from exc


def _check_key_id(key_id: object) -> None:
    if not isinstance(key_id, str) or len(key_id) != 2 * KEY_ID_BYTES:
        raise MalformedEnvelope(f"key id must be {2 * KEY_ID_BYTES} lowercase hex characters")
    try:
        if bytes.fromhex(key_id).hex() != key_id:
            raise ValueError
    except ValueError:
        raise MalformedEnvelope(f"key id {key_id!r} is not lowercase hex") from None


def _check_u64(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise MalformedEnvelope(f"{name} must be an integer in 0..2^64-1")


@dataclass(frozen=True)
class SigningKeyCert:
    """Root's statement: this public key may sign envelopes from not_before to not_after.

    ``sequence`` orders re-issues for the same key: a later cert (say, one that
    shortens the window) replaces an earlier one, and the earlier one can never
    be replayed to win back the longer window.
    """

    key_id: str
    public_key: bytes
    not_before: int
    not_after: int
    sequence: int

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_BYTES:
            raise MalformedEnvelope(f"public key must be {PUBLIC_KEY_BYTES} raw bytes")
        if key_id_for(self.public_key) != self.key_id:
            raise MalformedEnvelope(f"key id {self.key_id} is not the id of the certified public key")
        for name in ("not_before", "not_after", "sequence"):
            _check_u64(name, getattr(self, name))
        if self.not_after < self.not_before:
            raise MalformedEnvelope("certificate not_after is before not_before")

    @classmethod
    def for_key(cls, public_key: bytes, *, not_before: int, not_after: int, sequence: int) -> SigningKeyCert:
        return cls(key_id_for(public_key), public_key, not_before, not_after, sequence)

    def valid_at(self, at: int, *, skew: int = 0) -> bool:
        return self.not_before - skew <= at <= self.not_after + skew

    def signed_bytes(self) -> bytes:
        return _CERT_BODY.pack(
            CERT_MAGIC, bytes.fromhex(self.key_id), self.public_key,
            self.not_before, self.not_after, self.sequence,
        )


@dataclass(frozen=True)
class Revocation:
    """Root's statement: nothing signed by this key is to be trusted, ever again.

    ``revoked_at`` is for the audit log only; revocation is total, because a
    compromised key can sign envelopes dated before its compromise.
    """

    key_id: str
    revoked_at: int

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)
        _check_u64("revoked_at", self.revoked_at)

    def signed_bytes(self) -> bytes:
        return _REVOCATION_BODY.pack(REVOCATION_MAGIC, bytes.fromhex(self.key_id), self.revoked_at)


def sign_cert(cert: SigningKeyCert, root_private_key: Ed25519PrivateKey) -> bytes:
    """The 134-byte signed certificate (offline root ceremony)."""
    body = cert.signed_bytes()
    return body + root_private_key.sign(body)


def sign_revocation(revocation: Revocation, root_private_key: Ed25519PrivateKey) -> bytes:
    """The 86-byte signed revocation (offline root ceremony)."""
    body = revocation.signed_bytes()
    return body + root_private_key.sign(body)


def parse_cert(data: bytes) -> tuple[SigningKeyCert, bytes]:
    """Split signed certificate bytes into the cert and its root signature (unverified)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedEnvelope("certificate must be bytes")
    data = bytes(data)
    if len(data) != CERT_BYTES:
        raise MalformedEnvelope(f"certificate must be exactly {CERT_BYTES} bytes, got {len(data)}")
    magic, key_id, public_key, not_before, not_after, sequence = _CERT_BODY.unpack_from(data)
    if magic != CERT_MAGIC:
        raise MalformedEnvelope("not a signing-key certificate (bad magic)")
    cert = SigningKeyCert(key_id.hex(), public_key, not_before, not_after, sequence)
    return cert, data[_CERT_BODY.size:]


def parse_revocation(data: bytes) -> tuple[Revocation, bytes]:
    """Split signed revocation bytes into the revocation and its root signature (unverified)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedEnvelope("revocation must be bytes")
    data = bytes(data)
    if len(data) != REVOCATION_BYTES:
        raise MalformedEnvelope(f"revocation must be exactly {REVOCATION_BYTES} bytes, got {len(data)}")
    magic, key_id, revoked_at = _REVOCATION_BODY.unpack_from(data)
    if magic != REVOCATION_MAGIC:
        raise MalformedEnvelope("not a key revocation (bad magic)")
    return Revocation(key_id.hex(), revoked_at), data[_REVOCATION_BODY.size:]


class KeyRing:
    """The signing keys this device trusts, as certified by its pinned root.

    In memory only: the agent persists every cert and revocation it has
    accepted and feeds them back in at boot, revocations included, so that a
    revoked key stays revoked across restarts.
    """

    def __init__(self, root_public_key: bytes) -> None:
        if not isinstance(root_public_key, bytes) or len(root_public_key) != PUBLIC_KEY_BYTES:
            raise MalformedEnvelope(f"root public key must be {PUBLIC_KEY_BYTES} raw bytes")
        try:
            Ed25519PublicKey.from_public_bytes(root_public_key)
        except ValueError as exc:
            raise MalformedEnvelope("root public key is not an Ed25519 key") from exc
        self.root_public_key = root_public_key
        self.root_key_id = key_id_for(root_public_key)
        self._certs: dict[str, SigningKeyCert] = {}
        self._revoked: dict[str, Revocation] = {}

    @property
    def certs(self) -> tuple[SigningKeyCert, ...]:
        return tuple(self._certs.values())

    @property
    def revocations(self) -> tuple[Revocation, ...]:
        return tuple(self._revoked.values())

    def add_cert(self, data: bytes) -> SigningKeyCert:
        """Verify a root-signed cert and trust its key; idempotent for the same cert."""
        cert, signature = parse_cert(data)
        verify_signature(self.root_public_key, signature, cert.signed_bytes(), "signing-key certificate")
        if cert.key_id == self.root_key_id:
            raise MalformedEnvelope("the root key cannot be certified as an online signing key")
        if cert.key_id in self._revoked:
            raise RevokedKey(f"signing key {cert.key_id} was revoked by the root; its certificate is refused")
        held = self._certs.get(cert.key_id)
        if held is not None:
            if cert == held:
                return held
            if cert.sequence <= held.sequence:
                raise Rollback(
                    f"certificate for key {cert.key_id} has sequence {cert.sequence}, "
                    f"but sequence {held.sequence} is already held"
                )
        self._certs[cert.key_id] = cert
        return cert

    def add_revocation(self, data: bytes) -> Revocation:
        """Verify a root-signed revocation and distrust the key for good; idempotent."""
        revocation, signature = parse_revocation(data)
        verify_signature(self.root_public_key, signature, revocation.signed_bytes(), "key revocation")
        self._revoked.setdefault(revocation.key_id, revocation)
        self._certs.pop(revocation.key_id, None)
        return self._revoked[revocation.key_id]

    def signing_key(self, key_id: str, at: int, *, skew: int = 0) -> SigningKeyCert:
        """The cert for ``key_id`` if it may sign at time ``at`` (± ``skew`` seconds)."""
        if key_id in self._revoked:
            raise RevokedKey(f"signing key {key_id} was revoked by the root")
        if key_id == self.root_key_id:
            raise UnknownKey("the root key signs only key certificates, never envelopes")
        cert = self._certs.get(key_id)
        if cert is None:
            raise UnknownKey(f"signing key {key_id} has no certificate from the pinned root {self.root_key_id}")
        if not cert.valid_at(at, skew=skew):
            when = "not valid before" if at < cert.not_before else "expired at"
            edge = cert.not_before if at < cert.not_before else cert.not_after
            raise ExpiredKey(f"signing key {key_id} is {when} {edge} (checked at {at})")
        return cert
