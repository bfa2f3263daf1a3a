"""A re-keyed list's new token key, as the device fetches it and checks it against the signed snapshot.

When the registry rotates a list's token key (registry/rekey.py), every
token of the list changes and the next version comes as a full snapshot
whose header carries ``token_key_hash`` of the key its tokens are under
(docs/wire-format.md). The snapshot is signed (its SHA-256 is in the
envelope); the key comes from ``GET /v1/lists/<id>/key`` (docs/registry-api.md)
and is trusted only if its hash is the one the signed snapshot names. A
device that installed new-key tokens and kept its old key would miss every
hit: a DENY would become CLEAR without a sound. So a snapshot whose key
cannot be fetched or does not match is refused whole, and the store keeps
the state it had.

Pure: bytes in, a key or one :class:`TokenKeyRefused` line out. The agent
(sync/agent.py) does the fetching.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re

from sync.errors import SyncError
from sync.identity import MIN_KEY_BYTES, token_key_hash, token_key_id

#: A token key is 16-64 bytes (the enrolment answer's bound, sync/enrolment.py).
MAX_KEY_BYTES = 64
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class TokenKeyRefused(SyncError):
    """A snapshot under a token key the device cannot obtain or verify; nothing was installed."""

    code = "token_key_refused"


def key_path(list_id: str) -> str:
    return f"/v1/lists/{list_id}/key"


def parse_key_answer(body: bytes, *, list_id: str) -> bytes:
    """The key in the registry's JSON answer for ``list_id``; TokenKeyRefused names what is wrong."""
    try:
        answer = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise TokenKeyRefused(f"the registry's token key answer for list {list_id} is not JSON") from None
    if not isinstance(answer, dict) or answer.get("list_id") != list_id:
        raise TokenKeyRefused(f"the registry's token key answer is not for list {list_id}")
    text = answer.get("token_key")
    problem = TokenKeyRefused(f"the registry's token key for list {list_id} is not unpadded base64url "
                              f"of {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes")
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise problem
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise problem from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise problem
    return key


def check_key(list_id: str, version: int, key: bytes, expected_hash: bytes) -> bytes:
    """``key`` if it is the key the signed snapshot of ``version`` names; TokenKeyRefused otherwise."""
    if not hmac.compare_digest(token_key_hash(key), bytes(expected_hash)):
        raise TokenKeyRefused(
            f"snapshot of version {version} refused: its tokens are under token key {bytes(expected_hash)[:8].hex()},"
            f" but the registry handed out key {token_key_id(key)}; the store keeps the state it had")
    return key
