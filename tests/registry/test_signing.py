"""Registry key files and the online signer (registry/signing.py)."""

from __future__ import annotations

import os
import stat

import pytest

from registry.signing import (
    KeyFileError,
    Signer,
    SigningError,
    generate_key_file,
    issue_cert,
    issue_revocation,
    load_key_file,
    write_public_file,
)
from sync.envelope import heartbeat, parse_envelope
from sync.errors import ExpiredKey, RevokedKey
from sync.keys import KeyRing, key_id_for
from sync.trust import TrustedSet

T0 = 1_750_000_000
DIGEST = bytes(32)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def keys(tmp_path):
    root_pub = generate_key_file(tmp_path / "root.pem", passphrase=b"offline ceremony")
    signing_pub = generate_key_file(tmp_path / "signing.pem")
    root = load_key_file(tmp_path / "root.pem", passphrase=b"offline ceremony")
    cert = issue_cert(root, signing_pub, not_before=T0 - 60, not_after=T0 + 86_400, sequence=1)
    write_public_file(tmp_path / "signing.cert", cert)
    return tmp_path, root, root_pub, signing_pub, cert


def test_root_and_signing_key_files_are_owner_only(keys):
    tmp_path, *_ = keys
    assert _mode(tmp_path / "root.pem") == 0o600
    assert _mode(tmp_path / "signing.pem") == 0o600


def test_key_files_are_owner_only_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        generate_key_file(tmp_path / "k.pem")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k.pem") == 0o600


def test_existing_key_file_is_never_overwritten(keys):
    tmp_path, *_ = keys
    before = (tmp_path / "signing.pem").read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key_file(tmp_path / "signing.pem")
    assert (tmp_path / "signing.pem").read_bytes() == before


def test_group_readable_key_file_is_refused(keys):
    tmp_path, *_ = keys
    os.chmod(tmp_path / "signing.pem", 0o640)
    with pytest.raises(KeyFileError, match="must be 0600"):
        load_key_file(tmp_path / "signing.pem")


def test_root_key_file_is_unreadable_without_its_passphrase(keys):
    tmp_path, *_ = keys
    with pytest.raises(KeyFileError, match="not a readable private key"):
        load_key_file(tmp_path / "root.pem")
    with pytest.raises(KeyFileError, match="not a readable private key"):
        load_key_file(tmp_path / "root.pem", passphrase=b"wrong")


def test_garbage_key_file_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "junk.pem"
    path.write_bytes(b"not a key")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError):
        load_key_file(path)


def test_certificate_issued_by_root_lets_a_device_trust_the_signer(keys):
    tmp_path, _, root_pub, signing_pub, _ = keys
    signer = Signer.from_files(tmp_path / "signing.pem", tmp_path / "signing.cert")
    signer.check_root(root_pub)
    ring = KeyRing(root_pub)
    ring.add_cert((tmp_path / "signing.cert").read_bytes())
    envelope = signer.sign(heartbeat("nfl", 0, DIGEST, issued_at=T0, valid_until=T0 + 60))
    assert parse_envelope(envelope).key_id == key_id_for(signing_pub) == signer.key_id
    assert TrustedSet(ring).verify_signed(envelope, now=T0).to_version == 0


def test_signer_refuses_to_sign_outside_its_certificate_window(keys):
    tmp_path, *_ = keys
    signer = Signer.from_files(tmp_path / "signing.pem", tmp_path / "signing.cert")
    with pytest.raises(SigningError, match="rotate the key"):
        signer.sign(heartbeat("nfl", 0, DIGEST, issued_at=T0 + 86_401, valid_until=T0 + 90_000))


def test_certificate_for_another_key_cannot_be_paired_with_the_signing_key(keys):
    tmp_path, root, _, _, _ = keys
    other_pub = generate_key_file(tmp_path / "other.pem")
    cert = issue_cert(root, other_pub, not_before=T0, not_after=T0 + 60, sequence=1)
    with pytest.raises(KeyFileError, match="not for this signing key"):
        Signer(load_key_file(tmp_path / "signing.pem"), cert)


def test_certificate_from_another_root_fails_the_root_check(keys, tmp_path_factory):
    tmp_path, *_ = keys
    other_root_pub = generate_key_file(tmp_path_factory.mktemp("other") / "root.pem")
    signer = Signer.from_files(tmp_path / "signing.pem", tmp_path / "signing.cert")
    with pytest.raises(KeyFileError, match="does not verify"):
        signer.check_root(other_root_pub)


def test_expired_certificate_is_refused_by_the_device(keys):
    tmp_path, root, root_pub, signing_pub, _ = keys
    ring = KeyRing(root_pub)
    ring.add_cert(issue_cert(root, signing_pub, not_before=T0 - 100, not_after=T0 - 10, sequence=1))
    signer = Signer(load_key_file(tmp_path / "signing.pem"),
                    issue_cert(root, signing_pub, not_before=T0 - 100, not_after=T0 - 10, sequence=1))
    envelope = signer.sign(heartbeat("nfl", 0, DIGEST, issued_at=T0 - 20, valid_until=T0 + 60))
    with pytest.raises(ExpiredKey):
        TrustedSet(ring).verify_signed(envelope, now=T0 + 1_000)


def test_revocation_issued_by_root_makes_the_device_distrust_the_key(keys):
    tmp_path, root, root_pub, signing_pub, cert = keys
    ring = KeyRing(root_pub)
    ring.add_cert(cert)
    ring.add_revocation(issue_revocation(root, key_id_for(signing_pub), revoked_at=T0))
    signer = Signer.from_files(tmp_path / "signing.pem", tmp_path / "signing.cert")
    with pytest.raises(RevokedKey):
        TrustedSet(ring).verify_signed(signer.sign(heartbeat("nfl", 0, DIGEST, issued_at=T0, valid_until=T0 + 9)),
                                       now=T0)


def test_public_files_are_world_readable_and_not_overwritten(keys):
    tmp_path, *_ = keys
    assert _mode(tmp_path / "signing.cert") == 0o644
    with pytest.raises(KeyFileError):
        write_public_file(tmp_path / "signing.cert", b"x")


def test_the_registry_database_holding_plaintext_names_is_private(tmp_path):
    import stat

    from registry.db import init_db, make_engine

    path = tmp_path / "registry.db"
    init_db(make_engine(f"sqlite:///{path}"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
