"""The trusted set: verify fetched bytes against the pinned keys and the held state.

Modelled on python-tuf's ``trusted_metadata_set``: a pure state machine. It
takes envelope and payload bytes that the agent has *already* fetched, checks
them in a fixed order (size, signature, key validity, time, version chain,
payload hash) and says what the agent may apply. It does no network, file or
database work and never reads the clock: ``now`` (Unix seconds) is passed in.

The flow the agent follows (docs/envelope.md, "Apply and confirm"):

1. ``check_envelope`` (optional) to learn ``payload_size`` and bound the download;
2. ``verify_update`` with the payload; on any :class:`SyncError` apply nothing;
3. apply ``update.payload`` in one store transaction and compute the digest;
4. ``confirm``; on :class:`DigestMismatch` roll the transaction back, log it
   loudly and fetch a full snapshot, which is accepted at any version >= held.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace

from sync.envelope import CHECKSUM_BYTES, MAX_ENVELOPE_BYTES, Envelope, Kind, parse_envelope
from sync.errors import (
    BehindRegistry,
    DigestMismatch,
    ExpiredEnvelope,
    ExpiredKey,
    FreezeAttack,
    MalformedEnvelope,
    MixAndMatch,
    PayloadHashMismatch,
    Rollback,
    TooLarge,
)
from sync.keys import KeyRing, verify_signature


@dataclass(frozen=True)
class TrustConfig:
    """Every byte and time limit the trusted set enforces, in one place."""

    max_envelope_bytes: int = MAX_ENVELOPE_BYTES
    max_delta_bytes: int = 16 * 1024 * 1024
    #: A 50 M-token snapshot is about 0.8 GiB (docs/wire-format.md); room for several times that.
    max_snapshot_bytes: int = 4 * 1024 * 1024 * 1024
    #: How far the device clock may be off the registry's, in seconds.
    clock_skew_seconds: int = 300

    def __post_init__(self) -> None:
        for name in ("max_envelope_bytes", "max_delta_bytes", "max_snapshot_bytes", "clock_skew_seconds"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"TrustConfig.{name} must be a non-negative integer, got {value!r}")

    def max_payload_bytes(self, kind: Kind) -> int:
        return self.max_snapshot_bytes if kind is Kind.SNAPSHOT else self.max_delta_bytes


@dataclass(frozen=True)
class TrustedListState:
    """What the device has verified about one list; the agent persists it.

    ``digest`` is the registry-signed digest the device confirmed at
    ``version`` (None before the first update). The heartbeat fields are the
    freshness proof: "current as of heartbeat_issued_at, until
    heartbeat_valid_until". Deltas and snapshots move the version on but do
    not extend freshness; the registry ends every answer with a heartbeat.
    """

    list_id: str
    version: int = 0
    digest: bytes | None = None
    heartbeat_issued_at: int | None = None
    heartbeat_valid_until: int | None = None

    def is_fresh(self, now: float, *, skew: int = 0) -> bool:
        """Whether a heartbeat still vouches that this version is current."""
        return self.heartbeat_valid_until is not None and now <= self.heartbeat_valid_until + skew


@dataclass(frozen=True)
class VerifiedUpdate:
    """An envelope (and payload) that passed every check against ``base``.

    The agent applies ``payload`` (nothing for a heartbeat; the whole list,
    replacing the old one, for a snapshot) and then calls ``confirm`` with the
    digest it computed; ``expected_digest`` is what it must equal.
    """

    envelope: Envelope
    payload: bytes | None
    base: TrustedListState

    @property
    def kind(self) -> Kind:
        return self.envelope.kind

    @property
    def to_version(self) -> int:
        return self.envelope.to_version

    @property
    def expected_digest(self) -> bytes:
        return self.envelope.post_state_digest

    @property
    def replaces_state(self) -> bool:
        return self.envelope.kind is Kind.SNAPSHOT


def _check_payload(envelope: Envelope, size: int, sha256: bytes) -> None:
    """Steps 16-17: the payload is exactly the signed size and has the signed SHA-256."""
    if size != envelope.payload_size:
        raise PayloadHashMismatch(
            f"payload is {size} bytes but the envelope signed {envelope.payload_size}: "
            "truncated or padded download"
        )
    if not hmac.compare_digest(sha256, envelope.payload_sha256):
        raise PayloadHashMismatch("payload SHA-256 differs from the signed envelope: tampered or corrupted")


class TrustedSet:
    """Verifies updates for any number of lists under one key ring."""

    def __init__(self, keyring: KeyRing, config: TrustConfig | None = None) -> None:
        self.keyring = keyring
        self.config = config or TrustConfig()

    def verify_signed(self, envelope_bytes: bytes, *, now: float) -> Envelope:
        """Size, structure, signing key and signature; nothing about list state."""
        skew = self.config.clock_skew_seconds
        envelope = parse_envelope(envelope_bytes, max_bytes=self.config.max_envelope_bytes)
        cert = self.keyring.signing_key(envelope.key_id, now, skew=skew)
        verify_signature(cert.public_key, envelope.signature, envelope.signed_bytes, f"envelope for {envelope.list_id}")
        if not cert.valid_at(envelope.issued_at):
            raise ExpiredKey(
                f"envelope issued at {envelope.issued_at} is outside the window "
                f"{cert.not_before}..{cert.not_after} of signing key {cert.key_id}"
            )
        return envelope

    def check_envelope(self, list_state: TrustedListState, envelope_bytes: bytes, *, now: float) -> Envelope:
        """Every check that needs no payload; lets the agent bound the payload download."""
        envelope = self.verify_signed(envelope_bytes, now=now)
        self._check_time(envelope, now)
        self._check_chain(list_state, envelope)
        limit = self.config.max_payload_bytes(envelope.kind)
        if envelope.payload_size > limit:
            raise TooLarge(f"{envelope.kind.name.lower()} payload is {envelope.payload_size} bytes, limit is {limit}")
        return envelope

    def verify_update(
        self,
        list_state: TrustedListState,
        envelope_bytes: bytes,
        payload_bytes: bytes | None = None,
        *,
        now: float,
    ) -> VerifiedUpdate:
        """Verify one fetched update against the held state; raise a SyncError or say what to apply."""
        envelope = self.check_envelope(list_state, envelope_bytes, now=now)
        if envelope.kind is Kind.HEARTBEAT:
            if payload_bytes:
                raise PayloadHashMismatch("a heartbeat carries no payload, but one was supplied")
            return VerifiedUpdate(envelope, None, list_state)
        if payload_bytes is None:
            raise PayloadHashMismatch(f"{envelope.kind.name.lower()} envelope needs its payload")
        if not isinstance(payload_bytes, (bytes, bytearray, memoryview)):
            raise MalformedEnvelope("payload must be bytes")
        payload_bytes = bytes(payload_bytes)
        limit = self.config.max_payload_bytes(envelope.kind)
        if len(payload_bytes) > limit:
            raise TooLarge(f"payload is {len(payload_bytes)} bytes, limit is {limit}")
        _check_payload(envelope, len(payload_bytes), hashlib.sha256(payload_bytes).digest())
        return VerifiedUpdate(envelope, payload_bytes, list_state)

    def verify_streamed(self, list_state: TrustedListState, envelope_bytes: bytes, *, payload_size: int,
                        payload_sha256: bytes, now: float) -> VerifiedUpdate:
        """verify_update for a payload that went to disk: its size and SHA-256, taken while it arrived.

        A snapshot of millions of entries is streamed to a file (bounded by
        check_envelope's payload_size) and hashed on the way; the agent
        reads it back only after this passes. ``payload`` of the result is None.
        """
        envelope = self.check_envelope(list_state, envelope_bytes, now=now)
        if envelope.kind is Kind.HEARTBEAT:
            raise PayloadHashMismatch("a heartbeat carries no payload, but one was supplied")
        _check_payload(envelope, payload_size, payload_sha256)
        return VerifiedUpdate(envelope, None, list_state)

    def confirm(self, list_state: TrustedListState, update: VerifiedUpdate, computed_digest: bytes) -> TrustedListState:
        """The new trusted state, once the applied state's digest equals the signed one.

        On :class:`DigestMismatch` the held state is unchanged: the agent must
        roll back its transaction and fetch a full snapshot.
        """
        if update.base != list_state:
            raise MixAndMatch("update was verified against a different list state; verify it again")
        if not isinstance(computed_digest, bytes) or len(computed_digest) != CHECKSUM_BYTES:
            raise DigestMismatch(f"computed digest must be {CHECKSUM_BYTES} bytes")
        expected = update.expected_digest
        if not hmac.compare_digest(computed_digest, expected):
            raise DigestMismatch(
                f"list {list_state.list_id} at version {update.to_version}: applied state digest "
                f"{computed_digest.hex()[:16]}… differs from signed {expected.hex()[:16]}…; "
                "roll back and fetch a full snapshot"
            )
        envelope = update.envelope
        new_state = replace(list_state, version=envelope.to_version, digest=expected)
        if envelope.kind is Kind.HEARTBEAT:
            new_state = replace(
                new_state,
                heartbeat_issued_at=envelope.issued_at,
                heartbeat_valid_until=envelope.valid_until,
            )
        return new_state

    def _check_time(self, envelope: Envelope, now: float) -> None:
        skew = self.config.clock_skew_seconds
        if envelope.issued_at > now + skew:
            raise ExpiredEnvelope(
                f"envelope issued at {envelope.issued_at} is in the future (device clock {int(now)}, "
                f"allowed skew {skew}s): check the device clock"
            )
        if envelope.valid_until + skew < now:
            if envelope.kind is Kind.HEARTBEAT:
                raise FreezeAttack(
                    f"heartbeat for {envelope.list_id} at version {envelope.to_version} expired at "
                    f"{envelope.valid_until}: an old heartbeat replayed to hide newer versions"
                )
            raise ExpiredEnvelope(f"envelope for {envelope.list_id} expired at {envelope.valid_until}")

    def _check_chain(self, held: TrustedListState, envelope: Envelope) -> None:
        """Rollback and mix-and-match rules (issue 4, "Verification")."""
        if envelope.list_id != held.list_id:
            raise MixAndMatch(f"envelope is for list {envelope.list_id}, not {held.list_id}")
        if envelope.to_version < held.version:
            raise Rollback(f"envelope goes to version {envelope.to_version}, below held version {held.version}")
        if envelope.kind is Kind.DELTA:
            if envelope.to_version == held.version:
                raise Rollback(f"delta to version {envelope.to_version} is already applied: replayed")
            if envelope.from_version != held.version:
                raise MixAndMatch(
                    f"delta {envelope.from_version}->{envelope.to_version} does not start at held version {held.version}"
                )
        elif envelope.kind is Kind.HEARTBEAT:
            if held.heartbeat_issued_at is not None and envelope.issued_at < held.heartbeat_issued_at:
                raise Rollback(
                    f"heartbeat issued at {envelope.issued_at} is older than the held one from {held.heartbeat_issued_at}"
                )
            if envelope.to_version > held.version:
                raise BehindRegistry(
                    f"registry is at version {envelope.to_version}, device holds {held.version}: fetch the missing updates"
                )
            if held.digest is not None and not hmac.compare_digest(held.digest, envelope.post_state_digest):
                raise DigestMismatch(
                    f"heartbeat digest for version {held.version} differs from the held one; fetch a full snapshot"
                )
