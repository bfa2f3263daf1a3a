"""The one exception family for sync verification.

Every refusal by the envelope parser, the key ring or the trusted set is a
:class:`SyncError` subclass whose ``message`` a person can read in a log or on
``gatecheck sync status``. Nothing else escapes: not IndexError, not
ValueError, not cryptography's InvalidSignature.
"""

from __future__ import annotations


class SyncError(Exception):
    """An update, key or envelope the device must not trust."""

    code = "sync_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class MalformedEnvelope(SyncError):
    """Bytes that are not a well-formed envelope, certificate or revocation."""

    code = "malformed"


class TooLarge(SyncError):
    """More bytes than the configured limit; refused before parsing."""

    code = "too_large"


class BadSignature(SyncError):
    """A signature that does not verify under the key it names."""

    code = "bad_signature"


class UnknownKey(SyncError):
    """A signing key the root has never certified to this device."""

    code = "unknown_key"


class ExpiredKey(SyncError):
    """A certified signing key used outside its not_before..not_after window."""

    code = "expired_key"


class RevokedKey(SyncError):
    """A signing key the root has revoked; nothing it signs is trusted."""

    code = "revoked_key"


class ExpiredEnvelope(SyncError):
    """An envelope past its valid_until, or issued in the device's future."""

    code = "expired"


class FreezeAttack(ExpiredEnvelope):
    """An old heartbeat replayed after its valid_until, to hide newer versions."""

    code = "freeze"


class Rollback(SyncError):
    """An envelope older than what the device holds (lower version or issued_at)."""

    code = "rollback"


class MixAndMatch(SyncError):
    """An envelope that does not chain onto the held state (wrong list or from-version)."""

    code = "mix_and_match"


class BehindRegistry(SyncError):
    """A heartbeat for a newer version than held: deltas are missing, fetch them."""

    code = "behind"


class PayloadHashMismatch(SyncError):
    """A payload whose size or SHA-256 differs from what the envelope signed."""

    code = "payload_hash_mismatch"


class DigestMismatch(SyncError):
    """The state after apply is not the state the registry signed: roll back, fetch a snapshot."""

    code = "digest_mismatch"
