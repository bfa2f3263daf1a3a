"""Device request signatures: how a counter proves who it is to the registry.

The registry stores only each device's Ed25519 *public* key, so its
database alone cannot impersonate a device (issue 4, "Device endpoints").
Every request carries three headers (docs/registry-api.md):

    X-Gatecheck-Device:    <device id>
    X-Gatecheck-Timestamp: <Unix seconds, decimal integer>
    X-Gatecheck-Signature: <base64url, no padding, Ed25519 signature>

over the message

    b"GCREQ1\\n" + METHOD + b"\\n" + PATH_WITH_QUERY + b"\\n" + TIMESTAMP + b"\\n" + hex(sha256(body))

The timestamp bounds a replay to the skew window (300 s by default); within
it, a replayed GET returns public signed data and a replayed POST is
idempotent (incident reports by report id), so no nonce store is kept.

Pure: no I/O and no clock reads; ``timestamp`` and ``now`` come from the
caller. Shared by the registry (verify) and the sync agent (sign).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.errors import SyncError
from sync.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, key_id_for, raw_public_key, verify_signature

HEADER_DEVICE = "X-Gatecheck-Device"
HEADER_TIMESTAMP = "X-Gatecheck-Timestamp"
HEADER_SIGNATURE = "X-Gatecheck-Signature"
REQUEST_MAGIC = b"GCREQ1"
#: How far a request's timestamp may be from the registry's clock, in seconds.
DEFAULT_MAX_SKEW_SECONDS = 300

_DEVICE_ID = re.compile(r"[0-9a-f]{16}")
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_PATH = re.compile(r"/[\x21-\x7e]*")  # printable ASCII, no spaces: the request target as sent


class RequestAuthError(SyncError):
    """A device request the registry must refuse (HTTP 401)."""

    code = "unauthorized"


class MissingCredentials(RequestAuthError):
    """A request without (well-formed) device id, timestamp or signature headers."""

    code = "missing_credentials"


class StaleTimestamp(RequestAuthError):
    """A request signed too long ago or too far ahead: a replay or a wrong device clock."""

    code = "stale_timestamp"


class BadRequestSignature(RequestAuthError):
    """A signature that does not verify under the device's enrolled key."""

    code = "bad_signature"


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5, padding dropped as RFC 7515 §2 does)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, size: int, what: str) -> bytes:
    """Decode unpadded base64url of exactly ``size`` bytes; MissingCredentials otherwise."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MissingCredentials(f"{what} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MissingCredentials(f"{what} is not unpadded base64url") from None
    if len(data) != size or b64url_encode(data) != text:
        raise MissingCredentials(f"{what} must encode exactly {size} bytes")
    return data


def device_id_for(public_key: bytes) -> str:
    """A device's id: 16 hex characters of SHA-256 over its raw public key (as key ids are)."""
    return key_id_for(public_key)


def parse_public_key(text: str) -> bytes:
    """The raw 32-byte Ed25519 public key from its base64url form (enrolment)."""
    raw = b64url_decode(text, size=PUBLIC_KEY_BYTES, what="public key")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise MissingCredentials("public key is not an Ed25519 key") from None
    return raw


def signed_message(method: str, path_with_query: str, timestamp: str, body: bytes) -> bytes:
    """The exact bytes a device signs for one request."""
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise MissingCredentials(f"method {method!r} is not an HTTP method")
    if not isinstance(path_with_query, str) or not _PATH.fullmatch(path_with_query):
        raise MissingCredentials("path must be the request target as sent: printable ASCII starting with /")
    return b"\n".join([
        REQUEST_MAGIC, method.upper().encode("ascii"), path_with_query.encode("ascii"),
        timestamp.encode("ascii"), hashlib.sha256(bytes(body)).hexdigest().encode("ascii"),
    ])


def sign_request(private_key: Ed25519PrivateKey, method: str, path_with_query: str, timestamp: int,
                 body: bytes = b"", *, device_id: str | None = None) -> dict[str, str]:
    """The three authentication headers for one request.

    ``device_id`` defaults to :func:`device_id_for` the key's public half,
    which is what the registry assigns at enrolment.
    """
    if type(timestamp) is not int or timestamp < 0:
        raise MissingCredentials("timestamp must be a non-negative integer of Unix seconds")
    stamp = str(timestamp)
    signature = private_key.sign(signed_message(method, path_with_query, stamp, body))
    return {
        HEADER_DEVICE: device_id or device_id_for(raw_public_key(private_key)),
        HEADER_TIMESTAMP: stamp,
        HEADER_SIGNATURE: b64url_encode(signature),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    raise MissingCredentials(f"request has no {name} header")


def request_device_id(headers: Mapping[str, str]) -> str:
    """The claimed device id, checked for form only (look its key up, then verify_request)."""
    device_id = _header(headers, HEADER_DEVICE)
    if not _DEVICE_ID.fullmatch(device_id):
        raise MissingCredentials(f"{HEADER_DEVICE} must be 16 lowercase hex characters")
    return device_id


def verify_request(public_key_bytes: bytes, method: str, path_with_query: str, headers: Mapping[str, str],
                   body: bytes, now: float, *, max_skew: int = DEFAULT_MAX_SKEW_SECONDS) -> int:
    """Check one request's signature and timestamp; return the timestamp.

    Raises MissingCredentials, StaleTimestamp or BadRequestSignature (all
    RequestAuthError, a SyncError). The timestamp is checked before the
    signature so a stale request says why, but a bad signature is never
    reported as anything else.
    """
    request_device_id(headers)
    stamp = _header(headers, HEADER_TIMESTAMP)
    if not _TIMESTAMP.fullmatch(stamp):
        raise MissingCredentials(f"{HEADER_TIMESTAMP} must be Unix seconds as a decimal integer")
    signature = b64url_decode(_header(headers, HEADER_SIGNATURE), size=SIGNATURE_BYTES,
                              what=HEADER_SIGNATURE)
    message = signed_message(method, path_with_query, stamp, body)
    timestamp = int(stamp)
    if abs(now - timestamp) > max_skew:
        raise StaleTimestamp(
            f"request timestamp {timestamp} is {int(now - timestamp)} s off the registry clock "
            f"({int(now)}); at most {max_skew} s is accepted: check the device clock"
        )
    try:
        verify_signature(public_key_bytes, signature, message, "request")
    except SyncError as exc:
        raise BadRequestSignature(exc.message) from None
    return timestamp
