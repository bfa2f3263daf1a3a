"""One test per attack on list sync, named like python-tuf's tests: the name is the attack.

A small in-memory registry signs real envelopes with keys generated per test;
the trusted set is the real one. Payloads are opaque to the envelope, so here
a "list" is a set of tokens, a payload is their concatenation, and the digest
is a plain SHA-256 over the sorted tokens.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.envelope import EnvelopeFields, Kind, heartbeat, sign_envelope
from sync.errors import (
    BadSignature,
    BehindRegistry,
    DigestMismatch,
    ExpiredEnvelope,
    ExpiredKey,
    FreezeAttack,
    MalformedEnvelope,
    MixAndMatch,
    PayloadHashMismatch,
    RevokedKey,
    Rollback,
    SyncError,
    TooLarge,
    UnknownKey,
)
from sync.keys import KeyRing, Revocation, SigningKeyCert, raw_public_key, sign_cert, sign_revocation
from sync.trust import TrustConfig, TrustedListState, TrustedSet

T0 = 1_700_000_000
HOUR = 3600
DAY = 24 * HOUR
LIST = "eu-nofly"


def digest_of(tokens: set[bytes]) -> bytes:
    return hashlib.sha256(b"".join(sorted(tokens))).digest()


class Registry:
    """Signs envelopes the way the real registry will: versions, digests, payload hashes."""

    def __init__(self) -> None:
        self.root = Ed25519PrivateKey.generate()
        self.online = Ed25519PrivateKey.generate()
        self.certs = [self.certify(self.online, sequence=1)]
        self.tokens: set[bytes] = set()
        self.version = 0

    def certify(self, key, *, sequence, not_before=T0 - DAY, not_after=T0 + 365 * DAY, root=None) -> bytes:
        cert = SigningKeyCert.for_key(raw_public_key(key), not_before=not_before, not_after=not_after, sequence=sequence)
        return sign_cert(cert, root or self.root)

    def keyring(self) -> KeyRing:
        ring = KeyRing(raw_public_key(self.root))
        for cert in self.certs:
            ring.add_cert(cert)
        return ring

    def delta(self, added: list[bytes], *, at: int, valid_for: int = 30 * DAY, key=None) -> tuple[bytes, bytes]:
        before = self.version
        self.tokens |= set(added)
        self.version += 1
        payload = b"".join(added)
        fields = EnvelopeFields(
            Kind.DELTA, LIST, before, self.version, at, at + valid_for, digest_of(self.tokens),
            hashlib.sha256(payload).digest(), len(payload),
        )
        return sign_envelope(fields, key or self.online), payload

    def snapshot(self, *, at: int) -> tuple[bytes, bytes]:
        payload = b"".join(sorted(self.tokens))
        fields = EnvelopeFields(
            Kind.SNAPSHOT, LIST, 0, self.version, at, at + DAY, digest_of(self.tokens),
            hashlib.sha256(payload).digest(), len(payload),
        )
        return sign_envelope(fields, self.online), payload

    def heartbeat(self, *, at: int, valid_for: int = HOUR) -> bytes:
        fields = heartbeat(LIST, self.version, digest_of(self.tokens), issued_at=at, valid_until=at + valid_for)
        return sign_envelope(fields, self.online)


class Device:
    """Holds a token set and a trusted state, applying the way the agent will."""

    def __init__(self, registry: Registry, config: TrustConfig | None = None) -> None:
        self.trusted = TrustedSet(registry.keyring(), config)
        self.state = TrustedListState(LIST)
        self.tokens: set[bytes] = set()

    def receive(self, envelope: bytes, payload: bytes | None = None, *, now: int) -> None:
        update = self.trusted.verify_update(self.state, envelope, payload, now=now)
        staged = set() if update.replaces_state else set(self.tokens)
        if update.payload:
            staged |= {update.payload[i:i + 12] for i in range(0, len(update.payload), 12)}
        self.state = self.trusted.confirm(self.state, update, digest_of(staged))
        self.tokens = staged


def token(n: int) -> bytes:
    return n.to_bytes(12, "big")


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def device(registry: Registry) -> Device:
    return Device(registry)


def test_honest_chain_of_deltas_and_heartbeat_is_applied(registry, device):
    for step in range(3):
        device.receive(*registry.delta([token(step)], at=T0 + step), now=T0 + step)
    device.receive(registry.heartbeat(at=T0 + 10), now=T0 + 10)
    assert device.state.version == 3
    assert device.tokens == {token(0), token(1), token(2)}
    assert device.state.is_fresh(T0 + 10 + HOUR)
    assert not device.state.is_fresh(T0 + 11 + HOUR)


def test_replayed_old_delta_is_rejected(registry, device):
    first = registry.delta([token(1)], at=T0)
    device.receive(*first, now=T0)
    device.receive(*registry.delta([token(2)], at=T0 + 1), now=T0 + 1)
    with pytest.raises(Rollback):
        device.receive(*first, now=T0 + 2)
    assert device.state.version == 2


def test_replayed_latest_delta_is_rejected_as_already_applied(registry, device):
    delta = registry.delta([token(1)], at=T0)
    device.receive(*delta, now=T0)
    with pytest.raises(Rollback, match="already applied"):
        device.receive(*delta, now=T0 + 1)


def test_rollback_to_lower_version_is_rejected(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    old_snapshot = registry.snapshot(at=T0)
    device.receive(*registry.delta([token(2)], at=T0 + 1), now=T0 + 1)
    with pytest.raises(Rollback, match="below held version"):
        device.receive(*old_snapshot, now=T0 + 2)
    assert device.tokens == {token(1), token(2)}


def test_rollback_to_older_heartbeat_at_same_version_is_rejected(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    older = registry.heartbeat(at=T0 + 10)
    device.receive(registry.heartbeat(at=T0 + 20), now=T0 + 20)
    with pytest.raises(Rollback, match="older than the held"):
        device.receive(older, now=T0 + 21)


def test_freeze_old_heartbeat_after_valid_until_is_rejected(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    beat = registry.heartbeat(at=T0 + 10, valid_for=HOUR)
    device.receive(beat, now=T0 + 10)
    registry.delta([token(2)], at=T0 + 20)  # withheld by the attacker
    with pytest.raises(FreezeAttack):
        device.receive(beat, now=T0 + 10 + HOUR + TrustConfig().clock_skew_seconds + 1)
    assert not device.state.is_fresh(T0 + 10 + 2 * HOUR)


def test_mix_and_match_delta_for_wrong_from_version_is_rejected(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    registry.delta([token(2)], at=T0 + 1)  # 1 -> 2, never delivered
    skipping = registry.delta([token(3)], at=T0 + 2)  # 2 -> 3
    with pytest.raises(MixAndMatch, match="does not start at held version 1"):
        device.receive(*skipping, now=T0 + 3)


def test_mix_and_match_delta_for_another_list_is_rejected(registry, device):
    other = TrustedListState("hotel-watch")
    envelope, payload = registry.delta([token(1)], at=T0)
    with pytest.raises(MixAndMatch, match="not hotel-watch"):
        device.trusted.verify_update(other, envelope, payload, now=T0)


def test_tampered_payload_with_valid_envelope_is_rejected(registry, device):
    envelope, payload = registry.delta([token(1), token(2)], at=T0)
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    with pytest.raises(PayloadHashMismatch, match="SHA-256"):
        device.receive(envelope, tampered, now=T0)
    assert device.state.version == 0


def test_tampered_envelope_field_breaks_the_signature(registry, device):
    envelope, payload = registry.delta([token(1)], at=T0)
    to_version_byte = 6 + 1 + 1 + len(LIST) + 8 + 7
    tampered = bytearray(envelope)
    tampered[to_version_byte] ^= 0x02
    with pytest.raises(BadSignature):
        device.receive(bytes(tampered), payload, now=T0)


def test_envelope_signed_by_unknown_key_is_rejected(registry, device):
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKey):
        device.receive(*registry.delta([token(1)], at=T0, key=stranger), now=T0)


def test_envelope_signed_by_root_key_is_rejected(registry, device):
    with pytest.raises(UnknownKey, match="root key"):
        device.receive(*registry.delta([token(1)], at=T0, key=registry.root), now=T0)


def test_envelope_signed_by_expired_key_is_rejected(registry):
    short = Ed25519PrivateKey.generate()
    registry.certs.append(registry.certify(short, sequence=1, not_before=T0 - DAY, not_after=T0 + HOUR))
    device = Device(registry)
    envelope, payload = registry.delta([token(1)], at=T0, key=short)
    with pytest.raises(ExpiredKey, match="expired"):
        device.receive(envelope, payload, now=T0 + 2 * HOUR)


def test_envelope_backdated_into_an_expired_keys_window_is_rejected(registry):
    short = Ed25519PrivateKey.generate()
    registry.certs.append(registry.certify(short, sequence=1, not_before=T0, not_after=T0 + HOUR))
    device = Device(registry)
    # A stolen expired key signs an envelope dated inside its window, valid for a long time.
    envelope, payload = registry.delta([token(1)], at=T0 + 10, valid_for=30 * DAY, key=short)
    with pytest.raises(ExpiredKey):
        device.receive(envelope, payload, now=T0 + 10 * DAY)


def test_envelope_signed_by_revoked_key_is_rejected(registry, device):
    device.trusted.keyring.add_revocation(
        sign_revocation(Revocation(device.trusted.keyring.certs[0].key_id, T0), registry.root)
    )
    with pytest.raises(RevokedKey):
        device.receive(*registry.delta([token(1)], at=T0), now=T0)


def test_revoked_key_cannot_be_recertified_by_replaying_its_certificate(registry, device):
    ring = device.trusted.keyring
    ring.add_revocation(sign_revocation(Revocation(ring.certs[0].key_id, T0), registry.root))
    with pytest.raises(RevokedKey):
        ring.add_cert(registry.certs[0])
    with pytest.raises(RevokedKey):
        ring.add_cert(registry.certify(registry.online, sequence=99))


def test_replayed_older_certificate_cannot_restore_a_longer_key_window(registry, device):
    ring = device.trusted.keyring
    long_cert = registry.certs[0]
    ring.add_cert(registry.certify(registry.online, sequence=2, not_after=T0 + HOUR))
    with pytest.raises(Rollback):
        ring.add_cert(long_cert)
    with pytest.raises(ExpiredKey):
        device.receive(*registry.delta([token(1)], at=T0), now=T0 + 2 * HOUR)


def test_oversized_envelope_is_rejected_before_parsing(registry, device):
    endless = b"\xff" * (10 * 1024 * 1024)  # garbage: parsing it would say "bad magic"
    with pytest.raises(TooLarge):
        device.receive(endless, now=T0)


def test_oversized_payload_is_rejected_before_hashing(registry):
    device = Device(registry, TrustConfig(max_delta_bytes=24))
    envelope, payload = registry.delta([token(1)], at=T0)
    with pytest.raises(TooLarge):
        device.receive(envelope, payload + b"\x00" * 1_000_000, now=T0)


def test_envelope_announcing_a_payload_over_the_limit_is_rejected_before_download(registry):
    device = Device(registry, TrustConfig(max_delta_bytes=24))
    envelope, _ = registry.delta([token(n) for n in range(3)], at=T0)
    with pytest.raises(TooLarge, match="36 bytes"):
        device.trusted.check_envelope(device.state, envelope, now=T0)


def test_truncated_envelope_is_rejected(registry, device):
    envelope, payload = registry.delta([token(1)], at=T0)
    for cut in (0, 1, 7, len(envelope) // 2, len(envelope) - 1):
        with pytest.raises(MalformedEnvelope):
            device.receive(envelope[:cut], payload, now=T0)


def test_truncated_payload_is_rejected(registry, device):
    envelope, payload = registry.delta([token(1), token(2)], at=T0)
    with pytest.raises(PayloadHashMismatch, match="truncated"):
        device.receive(envelope, payload[:-5], now=T0)


def test_delta_without_its_payload_is_rejected(registry, device):
    envelope, _ = registry.delta([token(1)], at=T0)
    with pytest.raises(PayloadHashMismatch):
        device.receive(envelope, None, now=T0)


def test_digest_mismatch_after_apply_is_detected(registry, device):
    envelope, payload = registry.delta([token(1)], at=T0)
    update = device.trusted.verify_update(device.state, envelope, payload, now=T0)
    corrupted_store = {token(1), token(666)}
    with pytest.raises(DigestMismatch, match="fetch a full snapshot"):
        device.trusted.confirm(device.state, update, digest_of(corrupted_store))
    assert device.state == TrustedListState(LIST)


def test_snapshot_recovers_after_digest_mismatch_at_the_same_version(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    device.tokens.add(token(666))  # the store went bad behind the agent's back
    with pytest.raises(DigestMismatch):
        device.receive(*registry.delta([token(2)], at=T0 + 1), now=T0 + 1)
    device.receive(*registry.snapshot(at=T0 + 2), now=T0 + 2)
    assert device.tokens == {token(1), token(2)}
    assert device.state.version == 2


def test_snapshot_fast_forward_recovery_for_far_behind_device(registry, device):
    for step in range(50):
        registry.delta([token(step)], at=T0 + step)
    device.receive(*registry.snapshot(at=T0 + 60), now=T0 + 60)
    device.receive(*registry.delta([token(50)], at=T0 + 61), now=T0 + 61)
    assert device.state.version == 51
    assert len(device.tokens) == 51


def test_heartbeat_with_a_different_digest_at_the_held_version_is_detected(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    forked = heartbeat(LIST, 1, digest_of({token(9)}), issued_at=T0 + 1, valid_until=T0 + HOUR)
    with pytest.raises(DigestMismatch):
        device.receive(sign_envelope(forked, registry.online), now=T0 + 1)


def test_heartbeat_for_a_newer_version_reports_the_device_is_behind(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    registry.delta([token(2)], at=T0 + 1)
    with pytest.raises(BehindRegistry):
        device.receive(registry.heartbeat(at=T0 + 2), now=T0 + 2)
    assert device.state.heartbeat_issued_at is None


def test_expired_delta_is_rejected(registry, device):
    envelope, payload = registry.delta([token(1)], at=T0, valid_for=HOUR)
    with pytest.raises(ExpiredEnvelope):
        device.receive(envelope, payload, now=T0 + 2 * HOUR)


def test_clock_skew_within_allowance_is_accepted(registry):
    device = Device(registry, TrustConfig(clock_skew_seconds=120))
    beat_at = T0 + 1000
    device.receive(registry.heartbeat(at=beat_at, valid_for=60), now=beat_at - 119)  # device clock slow
    device.receive(registry.heartbeat(at=beat_at + 1, valid_for=60), now=beat_at + 1 + 60 + 119)  # fast


def test_clock_skew_beyond_allowance_is_rejected(registry):
    device = Device(registry, TrustConfig(clock_skew_seconds=120))
    beat_at = T0 + 1000
    with pytest.raises(ExpiredEnvelope, match="future"):
        device.receive(registry.heartbeat(at=beat_at, valid_for=60), now=beat_at - 121)
    with pytest.raises(FreezeAttack):
        device.receive(registry.heartbeat(at=beat_at, valid_for=60), now=beat_at + 60 + 121)


def test_key_rotation_by_root_is_accepted(registry, device):
    device.receive(*registry.delta([token(1)], at=T0), now=T0)
    new_key = Ed25519PrivateKey.generate()
    device.trusted.keyring.add_cert(registry.certify(new_key, sequence=1))
    device.trusted.keyring.add_revocation(
        sign_revocation(Revocation(device.trusted.keyring.certs[0].key_id, T0 + 1), registry.root)
    )
    device.receive(*registry.delta([token(2)], at=T0 + 2, key=new_key), now=T0 + 2)
    with pytest.raises(RevokedKey):
        device.receive(*registry.delta([token(3)], at=T0 + 3), now=T0 + 3)
    assert device.state.version == 2


def test_rotation_signed_by_non_root_is_rejected(registry, device):
    rogue = Ed25519PrivateKey.generate()
    with pytest.raises(BadSignature):
        device.trusted.keyring.add_cert(registry.certify(rogue, sequence=1, root=registry.online))
    with pytest.raises(BadSignature):
        device.trusted.keyring.add_revocation(
            sign_revocation(Revocation(device.trusted.keyring.certs[0].key_id, T0), rogue)
        )
    with pytest.raises(UnknownKey):
        device.receive(*registry.delta([token(1)], at=T0, key=rogue), now=T0)


def test_confirm_against_a_state_other_than_the_verified_one_is_rejected(registry, device):
    envelope, payload = registry.delta([token(1)], at=T0)
    update = device.trusted.verify_update(device.state, envelope, payload, now=T0)
    with pytest.raises(MixAndMatch):
        device.trusted.confirm(TrustedListState(LIST, version=7), update, update.expected_digest)


# --- fuzz: whatever arrives, only SyncError comes out -----------------------------------

_REGISTRY = Registry()
_DEVICE_TRUST = TrustedSet(_REGISTRY.keyring())
_GOOD, _GOOD_PAYLOAD = _REGISTRY.delta([token(1), token(2)], at=T0)
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _verify(envelope: bytes, payload: bytes | None) -> None:
    try:
        _DEVICE_TRUST.verify_update(TrustedListState(LIST), envelope, payload, now=T0)
    except SyncError as exc:
        assert exc.message
        return
    raise AssertionError("a changed envelope or payload was accepted")


@_SETTINGS
@given(st.binary(max_size=400), st.one_of(st.none(), st.binary(max_size=64)))
def test_random_bytes_only_raise_sync_errors(data, payload):
    _verify(data, payload)


@_SETTINGS
@given(st.data())
def test_mutated_envelope_only_raises_sync_errors(data):
    envelope = bytearray(_GOOD)
    for _ in range(data.draw(st.integers(1, 4))):
        choice = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        position = data.draw(st.integers(0, max(len(envelope) - 1, 0)))
        if choice == "flip" and envelope:
            envelope[position] ^= data.draw(st.integers(1, 255))
        elif choice == "cut":
            del envelope[position:position + data.draw(st.integers(1, 8))]
        else:
            envelope[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    if bytes(envelope) == _GOOD:
        return
    _verify(bytes(envelope), _GOOD_PAYLOAD)


@_SETTINGS
@given(st.binary(max_size=64))
def test_any_other_payload_under_a_valid_envelope_only_raises_sync_errors(payload):
    if payload == _GOOD_PAYLOAD:
        return
    _verify(_GOOD, payload)
