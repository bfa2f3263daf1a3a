"""What the on-device snapshot holds: lists, entries and clearances.

Plain values shared by the store (appliance/snapshot.py), the verdict rules
(appliance/verdict.py) and, later, the sync agent. Nothing here names a
listed person: entries are keyed by the keyed-hash tokens of sync/identity.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Action(StrEnum):
    """What a list entry asks the counter to do. Ordered: DENY is strongest."""

    REFER = "REFER"
    DENY = "DENY"


class TokenKind(StrEnum):
    """Which identity token an entry is keyed by (docs/token-layout.md)."""

    DOCUMENT = "document"
    PERSON = "person"


@dataclass(frozen=True)
class ListInfo:
    """One deny-list as the device knows it, with the state of its last verified update.

    ``token_key`` is the list's HMAC key: the device needs it to turn a scanned
    document into this list's tokens. ``heartbeat_at`` is when the registry
    last proved the list current (a signed delta or heartbeat); freshness is
    counted from it.
    """

    list_id: str
    name: str
    authority: str
    legal_basis: str
    scopes: tuple[str, ...]
    default_action: Action
    token_key: bytes
    version: int = 0
    state_digest: bytes = b""
    signed_at: datetime | None = None
    valid_until: datetime | None = None
    heartbeat_at: datetime | None = None
    redress: str = ""


@dataclass(frozen=True)
class Entry:
    """One token of one listed person or document, with what a match means."""

    token: bytes
    list_id: str
    kind: TokenKind
    category: str
    action: Action
    reference: str  # the authority's reference (case number)
    valid_from: date
    valid_until: date
    redress: str = ""  # text or redress id shown to the traveller

    def in_force(self, today: date) -> bool:
        """Entries past valid-until are ignored on the device, before sync removes them."""
        return self.valid_from <= today <= self.valid_until


@dataclass(frozen=True)
class Clearance:
    """An allow-token: this document was cleared as a namesake on this list.

    ``token`` is the cleared traveller's *document* token under the list's key;
    it suppresses person-token (name + DOB) hits on that list only.
    """

    token: bytes
    list_id: str
    redress_number: str
    valid_until: date


@dataclass(frozen=True)
class Batch:
    """One signed change to one list: version N to N+1 (applied atomically).

    ``token_key``: a full snapshot of a re-keyed list carries its new key, so
    the list's key and its tokens change in one commit; None keeps the key.
    Deltas never carry one (a re-key version has no delta).
    """

    list_id: str
    from_version: int
    to_version: int
    add: tuple[Entry, ...] = ()
    remove: tuple[bytes, ...] = ()
    add_clearances: tuple[Clearance, ...] = ()
    remove_clearances: tuple[bytes, ...] = ()
    state_digest: bytes = b""
    signed_at: datetime | None = None
    valid_until: datetime | None = None
    extra: dict = field(default_factory=dict)
    token_key: bytes | None = None
