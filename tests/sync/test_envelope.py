"""The envelope, certificate and revocation byte layouts (docs/envelope.md)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.envelope import (
    MAX_ENVELOPE_BYTES,
    MIN_ENVELOPE_BYTES,
    EnvelopeFields,
    Kind,
    heartbeat,
    parse_envelope,
    sign_envelope,
)
from sync.errors import MalformedEnvelope, SyncError, TooLarge
from sync.keys import (
    CERT_BYTES,
    REVOCATION_BYTES,
    KeyRing,
    Revocation,
    SigningKeyCert,
    key_id_for,
    parse_cert,
    parse_revocation,
    raw_public_key,
    sign_cert,
    sign_revocation,
)

KEY = Ed25519PrivateKey.generate()
DIGEST = hashlib.sha256(b"state").digest()
PAYLOAD_HASH = hashlib.sha256(b"payload").digest()


def delta_fields(**changes) -> EnvelopeFields:
    values = dict(
        kind=Kind.DELTA, list_id="eu-nofly", from_version=4, to_version=5, issued_at=1_700_000_000,
        valid_until=1_700_086_400, post_state_digest=DIGEST, payload_sha256=PAYLOAD_HASH, payload_size=7,
    )
    values.update(changes)
    return EnvelopeFields(**values)


def test_envelope_round_trips_every_field():
    fields = delta_fields()
    envelope = parse_envelope(sign_envelope(fields, KEY))
    assert EnvelopeFields(**{name: getattr(envelope, name) for name in fields.__dataclass_fields__}) == fields
    assert envelope.key_id == key_id_for(raw_public_key(KEY))
    Ed25519PublicKey.from_public_bytes(raw_public_key(KEY)).verify(envelope.signature, envelope.signed_bytes)


def test_signing_the_same_fields_twice_gives_identical_bytes_so_deltas_are_cacheable():
    assert sign_envelope(delta_fields(), KEY) == sign_envelope(delta_fields(), KEY)


def test_envelope_layout_matches_the_documented_offsets():
    data = sign_envelope(delta_fields(), KEY)
    key_id = hashlib.sha256(raw_public_key(KEY)).digest()[:8]
    expected_body = (
        b"GCENV1" + bytes([1, 8]) + b"eu-nofly"
        + struct.pack(">QQQQ", 4, 5, 1_700_000_000, 1_700_086_400)
        + DIGEST + PAYLOAD_HASH + struct.pack(">Q", 7) + key_id
    )
    assert data[:-64] == expected_body
    assert len(data) == 184 + len("eu-nofly")
    assert (MIN_ENVELOPE_BYTES, MAX_ENVELOPE_BYTES) == (185, 248)


def test_kind_can_be_given_by_name():
    assert delta_fields(kind="snapshot", from_version=0).kind is Kind.SNAPSHOT


def test_heartbeat_is_a_signed_statement_without_payload():
    fields = heartbeat("eu-nofly", 9, DIGEST, issued_at=100, valid_until=160)
    envelope = parse_envelope(sign_envelope(fields, KEY))
    assert (envelope.kind, envelope.from_version, envelope.to_version) == (Kind.HEARTBEAT, 9, 9)
    assert envelope.payload_sha256 == bytes(32) and envelope.payload_size == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"from_version": 5}, "forward"),
        ({"from_version": 6}, "forward"),
        ({"kind": Kind.SNAPSHOT}, "snapshot from_version"),
        ({"kind": Kind.HEARTBEAT, "to_version": 4}, "no payload"),
        ({"kind": Kind.HEARTBEAT, "to_version": 4, "payload_sha256": bytes(32)}, "no payload"),
        ({"kind": 7}, "unknown envelope kind"),
        ({"kind": "patch"}, "unknown envelope kind"),
        ({"valid_until": 1}, "before issued_at"),
        ({"list_id": ""}, "list id"),
        ({"list_id": "a b"}, "list id"),
        ({"list_id": "liste-é"}, "list id"),
        ({"list_id": "x" * 65}, "list id"),
        ({"from_version": -1}, "from_version"),
        ({"to_version": 2**64}, "to_version"),
        ({"issued_at": 1.5}, "issued_at"),
        ({"post_state_digest": DIGEST[:31]}, "32 bytes"),
    ],
)
def test_signer_refuses_fields_a_device_would_reject(changes, reason):
    with pytest.raises(MalformedEnvelope, match=reason):
        delta_fields(**changes)


def test_trailing_bytes_are_rejected():
    with pytest.raises(MalformedEnvelope, match="padded"):
        parse_envelope(sign_envelope(delta_fields(), KEY) + b"\x00")


def test_wrong_magic_is_rejected():
    data = bytearray(sign_envelope(delta_fields(), KEY))
    data[5] = ord("2")
    with pytest.raises(MalformedEnvelope, match="magic"):
        parse_envelope(bytes(data))


def test_signed_invariants_are_rechecked_when_parsing():
    data = bytearray(sign_envelope(delta_fields(), KEY))
    data[6] = Kind.HEARTBEAT  # a delta relabelled as a heartbeat
    with pytest.raises(MalformedEnvelope):
        parse_envelope(bytes(data))


def test_max_bytes_is_checked_before_anything_else():
    with pytest.raises(TooLarge):
        parse_envelope(b"not an envelope at all", max_bytes=8)


def test_non_bytes_input_is_malformed():
    with pytest.raises(MalformedEnvelope):
        parse_envelope("GCENV1")  # type: ignore[arg-type]


def test_key_id_is_first_eight_bytes_of_sha256_of_the_raw_public_key():
    raw = raw_public_key(KEY)
    assert key_id_for(raw) == hashlib.sha256(raw).hexdigest()[:16]


def test_certificate_round_trips_with_its_documented_layout():
    root = Ed25519PrivateKey.generate()
    cert = SigningKeyCert.for_key(raw_public_key(KEY), not_before=10, not_after=20, sequence=3)
    data = sign_cert(cert, root)
    assert len(data) == CERT_BYTES == 134
    assert data[:70] == b"GCKEY1" + bytes.fromhex(cert.key_id) + raw_public_key(KEY) + struct.pack(">QQQ", 10, 20, 3)
    assert parse_cert(data) == (cert, data[70:])
    assert KeyRing(raw_public_key(root)).add_cert(data) == cert


def test_revocation_round_trips_with_its_documented_layout():
    root = Ed25519PrivateKey.generate()
    revocation = Revocation(key_id_for(raw_public_key(KEY)), 1234)
    data = sign_revocation(revocation, root)
    assert len(data) == REVOCATION_BYTES == 86
    assert data[:22] == b"GCREV1" + bytes.fromhex(revocation.key_id) + struct.pack(">Q", 1234)
    assert parse_revocation(data) == (revocation, data[22:])


def test_certificate_whose_key_id_does_not_match_its_key_is_malformed():
    with pytest.raises(MalformedEnvelope, match="not the id"):
        SigningKeyCert("00" * 8, raw_public_key(KEY), 0, 1, 1)


def test_certificate_window_must_not_end_before_it_starts():
    with pytest.raises(MalformedEnvelope, match="before not_before"):
        SigningKeyCert.for_key(raw_public_key(KEY), not_before=20, not_after=10, sequence=1)


def test_root_key_cannot_be_certified_as_a_signing_key():
    root = Ed25519PrivateKey.generate()
    cert = SigningKeyCert.for_key(raw_public_key(root), not_before=0, not_after=10, sequence=1)
    with pytest.raises(MalformedEnvelope, match="root key"):
        KeyRing(raw_public_key(root)).add_cert(sign_cert(cert, root))


def test_adding_the_same_certificate_twice_is_idempotent():
    root = Ed25519PrivateKey.generate()
    ring = KeyRing(raw_public_key(root))
    data = sign_cert(SigningKeyCert.for_key(raw_public_key(KEY), not_before=0, not_after=10, sequence=1), root)
    assert ring.add_cert(data) == ring.add_cert(data)
    assert len(ring.certs) == 1


def test_keyring_refuses_a_pinned_root_that_is_not_32_bytes():
    with pytest.raises(MalformedEnvelope):
        KeyRing(b"\x00" * 31)


_u64 = st.integers(0, 2**64 - 1)


@st.composite
def valid_fields(draw):
    kind = draw(st.sampled_from(list(Kind)))
    to_version = draw(st.integers(1, 2**64 - 1))
    issued_at = draw(_u64)
    common = dict(
        list_id=draw(st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)),
        issued_at=issued_at,
        valid_until=draw(st.integers(issued_at, 2**64 - 1)),
        post_state_digest=draw(st.binary(min_size=32, max_size=32)),
    )
    if kind is Kind.HEARTBEAT:
        return EnvelopeFields(kind, from_version=to_version, to_version=to_version, **common)
    return EnvelopeFields(
        kind,
        from_version=0 if kind is Kind.SNAPSHOT else draw(st.integers(0, to_version - 1)),
        to_version=to_version,
        payload_sha256=draw(st.binary(min_size=32, max_size=32)),
        payload_size=draw(_u64),
        **common,
    )


@settings(max_examples=200, deadline=None)
@given(valid_fields())
def test_every_valid_envelope_round_trips(fields):
    envelope = parse_envelope(sign_envelope(fields, KEY))
    assert EnvelopeFields(**{name: getattr(envelope, name) for name in fields.__dataclass_fields__}) == fields


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_never_parsed_into_anything_but_sync_errors(data):
    for parse in (parse_envelope, parse_cert, parse_revocation):
        try:
            parse(data)
        except SyncError:
            pass
