"""Registry key files and the online signer.

Two Ed25519 keys (docs/envelope.md, "Keys"): the **root**, kept offline,
signs only signing-key certificates and revocations; the **online signing
key** lives beside the registry and signs envelopes. Both are PKCS#8 PEM
files created with mode 0600 (the root optionally under a passphrase), and
a key file readable by group or others is refused on load, as ssh does.

Certificates and revocations are built by sync/keys.py, so their layout is
written once; this module adds the file handling and a :class:`Signer`
that refuses to sign outside its certificate's window (a device would
refuse such an envelope anyway; failing here makes it loud).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from registry.db import RegistryError
from sync.envelope import EnvelopeFields, sign_envelope
from sync.errors import SyncError
from sync.keys import (
    Revocation,
    SigningKeyCert,
    key_id_for,
    parse_cert,
    raw_public_key,
    sign_cert,
    sign_revocation,
    verify_signature,
)

PRIVATE_MODE = 0o600


class KeyFileError(RegistryError):
    """A key or certificate file that cannot be created, read or trusted."""

    code = "key_file"


class SigningError(RegistryError):
    """An envelope the signer will not sign (outside its certificate's window)."""

    code = "signing"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first byte on; never overwrite a key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; make it exact
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise KeyFileError(f"cannot write {path}: {exc.strerror}") from None


def generate_key_file(path: str | Path, *, passphrase: bytes | None = None) -> bytes:
    """Create a new Ed25519 private key at ``path`` (0600); return its raw public key."""
    key = Ed25519PrivateKey.generate()
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    _write_new(Path(path), pem, PRIVATE_MODE)
    return raw_public_key(key)


def load_key_file(path: str | Path, *, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Load a private key, refusing a file that group or others can read or write."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        pem = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise KeyFileError(f"{path} has mode {mode:04o}; a private key must be 0600")
    try:
        key = load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a readable private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def write_public_file(path: str | Path, data: bytes) -> None:
    """Write a public artefact (certificate, revocation, root public key); 0644, never overwritten."""
    _write_new(Path(path), data, 0o644)


def issue_cert(root_key: Ed25519PrivateKey, signing_public_key: bytes, *, not_before: int,
               not_after: int, sequence: int) -> bytes:
    """The root ceremony: certify an online signing key for a window (134 bytes)."""
    try:
        cert = SigningKeyCert.for_key(signing_public_key, not_before=not_before,
                                      not_after=not_after, sequence=sequence)
    except SyncError as exc:
        raise SigningError(f"cannot certify that key: {exc.message}") from None
    return sign_cert(cert, root_key)


def issue_revocation(root_key: Ed25519PrivateKey, key_id: str, *, revoked_at: int) -> bytes:
    """The root ceremony: withdraw a signing key for good (86 bytes)."""
    try:
        return sign_revocation(Revocation(key_id, revoked_at), root_key)
    except SyncError as exc:
        raise SigningError(f"cannot revoke {key_id!r}: {exc.message}") from None


@dataclass(frozen=True)
class Signer:
    """The online key and the root-signed certificate that lets devices trust it."""

    private_key: Ed25519PrivateKey
    cert_bytes: bytes
    cert: SigningKeyCert = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            cert, _ = parse_cert(self.cert_bytes)
        except SyncError as exc:
            raise KeyFileError(f"signing-key certificate is unusable: {exc.message}") from None
        if cert.public_key != raw_public_key(self.private_key):
            raise KeyFileError(f"certificate is for key {cert.key_id}, not for this signing key")
        object.__setattr__(self, "cert", cert)

    @classmethod
    def from_files(cls, key_path: str | Path, cert_path: str | Path) -> "Signer":
        try:
            cert_bytes = Path(cert_path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read {cert_path}: {exc.strerror}") from None
        return cls(load_key_file(key_path), cert_bytes)

    @property
    def key_id(self) -> str:
        return key_id_for(raw_public_key(self.private_key))

    def check_root(self, root_public_key: bytes) -> None:
        """Fail unless the certificate really is signed by ``root_public_key``."""
        cert, signature = parse_cert(self.cert_bytes)
        try:
            verify_signature(root_public_key, signature, cert.signed_bytes(), "signing-key certificate")
        except SyncError as exc:
            raise KeyFileError(exc.message) from None

    def sign(self, fields: EnvelopeFields) -> bytes:
        """Signed envelope bytes; refused unless issued_at is inside the cert window."""
        cert = self.cert
        if not cert.valid_at(fields.issued_at):
            raise SigningError(
                f"signing key {cert.key_id} may sign only from {cert.not_before} to {cert.not_after}, "
                f"not at {fields.issued_at}: rotate the key"
            )
        return sign_envelope(fields, self.private_key)
