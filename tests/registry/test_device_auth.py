"""Device request signatures (sync/device_auth.py): pure, plain values and hypothesis."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.device_auth import (
    HEADER_DEVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    BadRequestSignature,
    MissingCredentials,
    RequestAuthError,
    StaleTimestamp,
    b64url_decode,
    b64url_encode,
    device_id_for,
    parse_public_key,
    sign_request,
    signed_message,
    verify_request,
)
from sync.errors import SyncError
from sync.keys import raw_public_key

NOW = 1_750_000_000
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = raw_public_key(KEY)
PATH = "/v1/lists/nfl/updates?since=3&wait=30"

methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])
paths = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80).map(lambda s: "/" + s)
bodies = st.binary(max_size=512)


def test_message_layout_is_the_contract():
    body = b'{"a":1}'
    assert signed_message("post", "/v1/health", "1750000000", body) == (
        b"GCREQ1\nPOST\n/v1/health\n1750000000\n" + hashlib.sha256(body).hexdigest().encode())


@settings(max_examples=200, deadline=None)
@given(method=methods, path=paths, body=bodies, skew=st.integers(-300, 300))
def test_signed_request_verifies_within_the_skew_window(method, path, body, skew):
    headers = sign_request(KEY, method, path, NOW + skew, body)
    assert verify_request(PUBLIC, method, path, headers, body, NOW) == NOW + skew


@settings(max_examples=200, deadline=None)
@given(method=methods, path=paths, body=bodies, other=bodies)
def test_changed_body_breaks_the_signature(method, path, body, other):
    headers = sign_request(KEY, method, path, NOW, body)
    if other != body:
        with pytest.raises(BadRequestSignature):
            verify_request(PUBLIC, method, path, headers, other, NOW)


def test_changed_path_or_method_breaks_the_signature():
    headers = sign_request(KEY, "GET", PATH, NOW)
    with pytest.raises(BadRequestSignature):
        verify_request(PUBLIC, "GET", PATH.replace("since=3", "since=0"), headers, b"", NOW)
    with pytest.raises(BadRequestSignature):
        verify_request(PUBLIC, "POST", PATH, headers, b"", NOW)


def test_changed_timestamp_header_breaks_the_signature():
    headers = sign_request(KEY, "GET", PATH, NOW)
    headers[HEADER_TIMESTAMP] = str(NOW + 1)
    with pytest.raises(BadRequestSignature):
        verify_request(PUBLIC, "GET", PATH, headers, b"", NOW)


def test_signature_by_another_key_is_refused():
    other = Ed25519PrivateKey.generate()
    headers = sign_request(other, "GET", PATH, NOW, device_id=device_id_for(PUBLIC))
    with pytest.raises(BadRequestSignature):
        verify_request(PUBLIC, "GET", PATH, headers, b"", NOW)


@pytest.mark.parametrize("offset", [301, -301, 86_400, -10 * 86_400])
def test_timestamp_outside_the_window_is_stale_and_says_so(offset):
    headers = sign_request(KEY, "GET", PATH, NOW + offset)
    with pytest.raises(StaleTimestamp, match="check the device clock"):
        verify_request(PUBLIC, "GET", PATH, headers, b"", NOW)


def test_skew_window_is_configurable():
    headers = sign_request(KEY, "GET", PATH, NOW - 20)
    with pytest.raises(StaleTimestamp):
        verify_request(PUBLIC, "GET", PATH, headers, b"", NOW, max_skew=10)


@pytest.mark.parametrize("header", [HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_SIGNATURE])
def test_missing_header_is_missing_credentials(header):
    headers = sign_request(KEY, "GET", PATH, NOW)
    del headers[header]
    with pytest.raises(MissingCredentials, match=header):
        verify_request(PUBLIC, "GET", PATH, headers, b"", NOW)


@pytest.mark.parametrize("header,value", [
    (HEADER_TIMESTAMP, "1750000000.5"), (HEADER_TIMESTAMP, "-5"), (HEADER_TIMESTAMP, "017"),
    (HEADER_TIMESTAMP, " 1750000000"), (HEADER_SIGNATURE, "AAAA="), (HEADER_SIGNATURE, "short"),
    (HEADER_SIGNATURE, "+/" * 43), (HEADER_DEVICE, "DEVICE"), (HEADER_DEVICE, "0123456789ABCDEF"),
])
def test_malformed_header_is_missing_credentials(header, value):
    headers = sign_request(KEY, "GET", PATH, NOW)
    headers[header] = value
    with pytest.raises(MissingCredentials):
        verify_request(PUBLIC, "GET", PATH, headers, b"", NOW)


def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in sign_request(KEY, "GET", PATH, NOW).items()}
    assert verify_request(PUBLIC, "GET", PATH, headers, b"", NOW) == NOW


def test_device_id_is_derived_from_the_public_key():
    headers = sign_request(KEY, "GET", PATH, NOW)
    assert headers[HEADER_DEVICE] == device_id_for(PUBLIC) == hashlib.sha256(PUBLIC).hexdigest()[:16]


def test_every_refusal_is_a_sync_error_with_a_reason():
    assert issubclass(RequestAuthError, SyncError)
    for cls in (MissingCredentials, StaleTimestamp, BadRequestSignature):
        assert issubclass(cls, RequestAuthError)
    with pytest.raises(SyncError) as info:
        verify_request(PUBLIC, "GET", PATH, {}, b"", NOW)
    assert info.value.message and info.value.to_dict()["error"]["code"] == "missing_credentials"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_base64url_round_trips_without_padding(data):
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text, size=32, what="key") == data


def test_public_key_parses_from_base64url_and_refuses_wrong_length():
    assert parse_public_key(b64url_encode(PUBLIC)) == PUBLIC
    for bad in (b64url_encode(PUBLIC[:31]), b64url_encode(PUBLIC) + "A", "", "not base64!", None):
        with pytest.raises(MissingCredentials):
            parse_public_key(bad)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_SIGNATURE, "X-Other"]),
                       st.text(max_size=100)), bodies)
def test_arbitrary_headers_never_escape_as_anything_but_auth_errors(headers, body):
    with pytest.raises(RequestAuthError):
        verify_request(PUBLIC, "GET", PATH, headers, body, NOW)
