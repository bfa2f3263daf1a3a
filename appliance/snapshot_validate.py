"""Checks that keep malformed input out of the snapshot store, before any write starts.

A batch is validated whole before its transaction begins, so a bad entry
anywhere in it refuses the batch without touching the file.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Iterable

from appliance import snapshot_codec as codec
from appliance.records import Action, Batch, ListInfo, TokenKind
from appliance.snapshot_errors import SnapshotError, VersionMismatch
from sync.identity import MIN_KEY_BYTES


_KINDS = tuple(TokenKind)
_ACTIONS = tuple(Action)


def _check_token(token) -> None:
    if not isinstance(token, (bytes, bytearray)) or len(token) != codec.TOKEN_BYTES:
        raise SnapshotError(f"a token is {codec.TOKEN_BYTES} bytes, got {token!r}")


def unique_tokens(tokens: Iterable[bytes]) -> list[bytes]:
    """The tokens once each, in order; anything that is not a 12-byte token is refused."""
    wanted: dict[bytes, None] = {}
    for token in tokens:
        _check_token(token)
        wanted[bytes(token)] = None
    return list(wanted)


def is_date(value) -> bool:
    """A calendar date; a datetime (a date subclass) is not one."""
    return isinstance(value, date) and not isinstance(value, datetime)


def validate_list_info(info: ListInfo) -> None:
    """Refuse list metadata the store cannot hold, with the reason."""
    if not info.list_id or not isinstance(info.list_id, str):
        raise SnapshotError("a list needs a non-empty text id")
    if not isinstance(info.token_key, (bytes, bytearray)) or len(info.token_key) < MIN_KEY_BYTES:
        raise SnapshotError(f"list {info.list_id!r}: token key must be at least {MIN_KEY_BYTES} bytes")
    if isinstance(info.scopes, str) or not all(isinstance(s, str) and s for s in info.scopes):
        raise SnapshotError(f"list {info.list_id!r}: scopes must be a sequence of names")
    if info.default_action not in tuple(Action):
        raise SnapshotError(f"list {info.list_id!r}: unknown default action {info.default_action!r}")


def validate_batch(batch: Batch, *, replacement: bool = False) -> None:
    """Refuse a malformed batch before the transaction starts.

    A replacement (a full snapshot installed for recovery) may land on any
    version at or past the held one; a delta moves exactly one step.
    """
    where = f"batch for list {batch.list_id!r}"
    if batch.token_key is not None:
        if not replacement:
            raise SnapshotError(f"{where}: a new token key comes only with a full snapshot, never with a delta")
        if not isinstance(batch.token_key, (bytes, bytearray)) or len(batch.token_key) < MIN_KEY_BYTES:
            raise SnapshotError(f"{where}: token key must be at least {MIN_KEY_BYTES} bytes")
    if replacement:
        if batch.remove or batch.remove_clearances:
            raise SnapshotError(f"{where}: a replacement lists what the list holds, not removals")
        if batch.to_version < batch.from_version:
            raise VersionMismatch(
                f"{where} would take the list back from version {batch.from_version} to {batch.to_version}"
            )
    elif batch.to_version != batch.from_version + 1:
        raise VersionMismatch(
            f"{where} goes from version {batch.from_version} to {batch.to_version}; one step is N to N+1"
        )
    # Written out per field, not with helpers: a delta carries 100,000 entries
    # and this loop runs inside its 5 s budget (docs/benchmarks.md).
    for token in (*batch.remove, *batch.remove_clearances):
        _check_token(token)
    for entry in batch.add:
        _check_token(entry.token)
        if entry.list_id != batch.list_id:
            raise SnapshotError(f"{where} adds an entry for list {entry.list_id!r}")
        if entry.kind not in _KINDS or entry.action not in _ACTIONS:
            raise SnapshotError(f"{where}: entry {entry.token.hex()} has an unknown kind or action")
        if not (is_date(entry.valid_from) and is_date(entry.valid_until)):
            raise SnapshotError(f"{where}: entry {entry.token.hex()} needs valid-from and valid-until dates")
        if not (isinstance(entry.category, str) and isinstance(entry.reference, str)
                and isinstance(entry.redress, str)):
            raise SnapshotError(f"{where}: entry {entry.token.hex()} has a non-text category,"
                                " reference or redress")
    for clearance in batch.add_clearances:
        _check_token(clearance.token)
        if clearance.list_id != batch.list_id:
            raise SnapshotError(f"{where} adds a clearance for list {clearance.list_id!r}")
        if not is_date(clearance.valid_until) or not isinstance(clearance.redress_number, str):
            raise SnapshotError(f"{where}: clearance {clearance.token.hex()} needs a redress number"
                                " and a valid-until date")
