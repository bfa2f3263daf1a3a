"""The verdict rules: document + lookups + device profile + freshness -> verdict.

Pure: no I/O and no clock (``now`` is a parameter), so every rule has its own
unit test and the same inputs always give the same verdict. The rules and the
reason strings staff see are listed in docs/verdicts.md; the reason texts live
here as constants so the two cannot drift apart unnoticed.

The caller (appliance/checker.py) looks up the identity's tokens under every
in-scope list's key and passes what it found; ``decide`` only judges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Iterable

from appliance.documents.errors import DocumentError
from appliance.documents.model import Document
from appliance.records import Action, Clearance, Entry, ListInfo, TokenKind
from sync.identity import Identity, identity_from_document, normalise_document_number

DEFAULT_MAX_AGE = timedelta(hours=24)

#: The input channels the issue names; anything else is a caller bug.
CHANNELS = frozenset({"scanner", "camera", "manual"})

# Reason and note texts shown to staff (docs/verdicts.md lists them all).
REASON_DOCUMENT_HIT = "document listed on {list_name} ({category}, ref. {reference})"
REASON_PERSON_HIT = "possible match — verify identity"
REASON_CHECKS_FAILED = "document checks failed ({checks}) — verify the document by hand"
REASON_EXPIRED = "document expired on {expiry}"
REASON_WEAK_FALLBACK = "the document does not identify its holder reliably"
REASON_NOTHING_SCANNED = "nothing was scanned"
REASON_STALE = "deny-lists out of date (as of {as_of})"
REASON_NEVER_VERIFIED = "deny-lists out of date (no verified update yet)"
REASON_NO_LISTS = "no deny-list on this device covers {scopes}"
REASON_FAIL_OPEN = "{stale}; CLEAR kept by the fail-open policy"
NOTE_CLEARED = "cleared namesake on {list_name} (redress no. {redress_number})"
NOTE_CLEARANCE_EXPIRED = (
    "namesake clearance on {list_name} (redress no. {redress_number}) expired on {valid_until}")


class Verdict(StrEnum):
    """What the counter screen shows. CLEAR < REFER < DENY; UNREADABLE stands apart."""

    CLEAR = "CLEAR"
    REFER = "REFER"
    DENY = "DENY"
    UNREADABLE = "UNREADABLE"


_STRENGTH = {Verdict.CLEAR: 0, Verdict.REFER: 1, Verdict.DENY: 2}


def strength(verdict: Verdict | Action) -> int:
    """Order of CLEAR, REFER and DENY (an Action counts as the verdict of its name)."""
    return _STRENGTH[Verdict(verdict.value)]


def strongest(verdicts: Iterable[Verdict | Action]) -> Verdict:
    """Several matches: the strongest action wins; nothing at all is CLEAR."""
    best = Verdict.CLEAR
    for verdict in verdicts:
        if strength(verdict) > strength(best):
            best = Verdict(verdict.value)
    return best


@dataclass(frozen=True)
class DeviceProfile:
    """What this device checks: its sanction scopes and its freshness policy.

    An airline counter checks ``air_travel``, a hotel desk ``star_hotel``.
    ``fail_closed`` turns a CLEAR into REFER once the lists are older than
    ``max_age``; fail-open keeps the CLEAR and warns.
    """

    scopes: frozenset[str]
    max_age: timedelta = DEFAULT_MAX_AGE
    fail_closed: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")

    def covers(self, info: ListInfo) -> bool:
        """A list applies when one of its sanction scopes is one of the device's."""
        return not self.scopes.isdisjoint(info.scopes)


@dataclass(frozen=True)
class ListUsed:
    """Provenance of one in-scope list: which state of it the verdict was made against.

    Deliberately not a ListInfo: a decision must never carry a list's token key.
    """

    list_id: str
    name: str
    version: int
    state_digest: bytes
    heartbeat_at: datetime | None
    redress: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "digest": self.state_digest.hex()}


@dataclass(frozen=True)
class Freshness:
    """How old the snapshot is, counted from the stalest in-scope list's last heartbeat.

    ``as_of`` and ``age`` are None when some in-scope list was never verified
    or no list is in scope at all; the snapshot is then stale.
    """

    lists: tuple[ListUsed, ...]
    as_of: datetime | None
    age: timedelta | None
    stale: bool

    def reason(self, scopes: Iterable[str]) -> str | None:
        """The staff-facing sentence for a stale snapshot, None when fresh."""
        if not self.stale:
            return None
        if not self.lists:
            return REASON_NO_LISTS.format(scopes=", ".join(sorted(scopes)) or "no scope")
        if self.as_of is None:
            return REASON_NEVER_VERIFIED
        return REASON_STALE.format(as_of=f"{self.as_of:%Y-%m-%d %H:%M} UTC")

    def to_dict(self) -> dict[str, Any]:
        return {
            "lists": {used.list_id: used.to_dict() for used in self.lists},
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "age_seconds": None if self.age is None else int(self.age.total_seconds()),
            "stale": self.stale,
        }


def freshness(lists: Iterable[ListInfo], profile: DeviceProfile, now: datetime) -> Freshness:
    """The snapshot is only as fresh as its stalest in-scope list.

    A list never heartbeated is infinitely old, and a device with no list in
    scope has nothing to vouch for a CLEAR: both are stale. Naive datetimes
    are taken as UTC. A heartbeat ahead of ``now`` (clock skew) counts as age 0.
    """
    used = tuple(
        ListUsed(info.list_id, info.name, info.version, info.state_digest, info.heartbeat_at, info.redress)
        for info in sorted(lists, key=lambda info: info.list_id)
        if profile.covers(info)
    )
    if not used or any(u.heartbeat_at is None for u in used):
        return Freshness(used, None, None, True)
    as_of = min(_utc(u.heartbeat_at) for u in used)  # type: ignore[arg-type]
    age = max(timedelta(0), _utc(now) - as_of)
    return Freshness(used, as_of, age, age > profile.max_age)


@dataclass(frozen=True)
class Match:
    """One matched list entry, as staff and the journal see it.

    ``action`` is what the match asks of the counter: the entry's action for
    a document token, at most REFER for a person token (name + DOB).
    """

    list_id: str
    list_name: str
    action: Action
    kind: TokenKind
    category: str
    reference: str
    valid_until: date
    redress: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_id,
            "list_name": self.list_name,
            "action": self.action.value,
            "kind": self.kind.value,
            "category": self.category,
            "reference": self.reference,
            "valid_until": self.valid_until.isoformat(),
            "redress": self.redress,
        }


@dataclass(frozen=True)
class Decision:
    """A verdict with its reasons and provenance: the `gatecheck check` JSON (docs/verdicts.md)."""

    verdict: Verdict
    reasons: tuple[str, ...]
    matches: tuple[Match, ...]
    document: Document | None
    error: DocumentError | None
    freshness: Freshness
    channel: str
    operator: str | None
    decided_at: datetime
    masked_document_number: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def stale(self) -> bool:
        return self.freshness.stale

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "matches": [match.to_dict() for match in self.matches],
            "document": None if self.document is None else self.document.to_dict(),
            "error": None if self.error is None else self.error.to_dict()["error"],
            "snapshot": self.freshness.to_dict(),
            "channel": self.channel,
            "operator": self.operator,
            "masked_document_number": self.masked_document_number,
            "notes": list(self.notes),
            "decided_at": self.decided_at.isoformat(),
        }


def decide(
    *,
    document: Document | None,
    error: DocumentError | None,
    identity: Identity | None,
    entries: Iterable[Entry],
    clearances: Iterable[Clearance],
    lists: Iterable[ListInfo],
    profile: DeviceProfile,
    now: datetime,
    channel: str,
    operator: str | None,
) -> Decision:
    """Judge one scan. Exactly one of ``document`` and ``error`` is given.

    ``entries`` are what the identity's tokens found under the in-scope list
    keys, ``clearances`` what its document tokens found; entries of lists
    outside the profile (or unknown to the device) are ignored here anyway.
    ``identity`` defaults to the one the document asserts.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {sorted(CHANNELS)}")
    if document is not None and error is not None:
        raise ValueError("decide takes a parsed document or a parse error, not both")
    lists = list(lists)
    fresh = freshness(lists, profile, now)

    def decision(verdict: Verdict, reasons: list[str], **kw: Any) -> Decision:
        return Decision(
            verdict=verdict, reasons=tuple(_unique(reasons)), document=document, error=error,
            freshness=fresh, channel=channel, operator=operator, decided_at=now, **kw,
        )

    if document is None:
        reason = error.message if error is not None else REASON_NOTHING_SCANNED
        return decision(Verdict.UNREADABLE, [reason], matches=())

    if identity is None:
        identity = identity_from_document(document)
    today = now.date()
    in_scope = {used.list_id: used for used in fresh.lists}
    matches, notes = _matches(entries, clearances, in_scope, today)

    reasons: list[str] = []
    for match in matches:
        if match.kind is TokenKind.DOCUMENT:
            reasons.append(REASON_DOCUMENT_HIT.format(
                list_name=match.list_name, category=match.category, reference=match.reference))
        else:
            reasons.append(REASON_PERSON_HIT)
    problems = _document_problems(document, identity, today)
    reasons.extend(problems)

    verdict = strongest([m.action for m in matches] + ([Verdict.REFER] if problems else []))
    stale_reason = fresh.reason(profile.scopes)
    if stale_reason is not None:
        if verdict is Verdict.CLEAR and profile.fail_closed:
            verdict = Verdict.REFER
        elif verdict is Verdict.CLEAR:
            stale_reason = REASON_FAIL_OPEN.format(stale=stale_reason)
        reasons.append(stale_reason)

    return decision(
        verdict, reasons, matches=tuple(matches), notes=tuple(notes),
        masked_document_number=mask_document_number(identity.document_number or document.document_number),
    )


def _matches(
    entries: Iterable[Entry], clearances: Iterable[Clearance], in_scope: dict[str, ListUsed], today: date,
) -> tuple[list[Match], list[str]]:
    """In-force entries of in-scope lists as matches, strongest first, one per listed record.

    A listed person reached by several tokens (document, full name, short
    name) is one match, kept at its strongest. Person-token hits on a list
    where this document holds a valid clearance are dropped with a note.
    """
    valid_clearance: dict[str, Clearance] = {}
    lapsed_clearance: dict[str, Clearance] = {}
    for clearance in clearances:
        if clearance.list_id not in in_scope:
            continue
        if clearance.valid_until >= today:
            valid_clearance.setdefault(clearance.list_id, clearance)
        else:
            lapsed_clearance.setdefault(clearance.list_id, clearance)

    best: dict[tuple[str, str | bytes], Match] = {}
    cleared: list[str] = []
    lapsed: list[str] = []
    for entry in entries:
        used = in_scope.get(entry.list_id)
        if used is None or not entry.in_force(today):
            continue
        if entry.kind is TokenKind.PERSON:
            if entry.list_id in valid_clearance:
                cleared.append(entry.list_id)
                continue
            if entry.list_id in lapsed_clearance:
                lapsed.append(entry.list_id)
        action = entry.action if entry.kind is TokenKind.DOCUMENT else Action.REFER
        match = Match(
            list_id=entry.list_id, list_name=used.name, action=action, kind=entry.kind,
            category=entry.category, reference=entry.reference, valid_until=entry.valid_until,
            redress=entry.redress or used.redress,
        )
        key = (entry.list_id, entry.reference or entry.token)
        if key not in best or _rank(match) > _rank(best[key]):
            best[key] = match

    notes = [
        NOTE_CLEARED.format(list_name=in_scope[list_id].name,
                            redress_number=valid_clearance[list_id].redress_number)
        for list_id in _unique(cleared)
    ] + [
        NOTE_CLEARANCE_EXPIRED.format(
            list_name=in_scope[list_id].name, redress_number=lapsed_clearance[list_id].redress_number,
            valid_until=lapsed_clearance[list_id].valid_until.isoformat())
        for list_id in _unique(lapsed)
    ]
    matches = sorted(best.values(), key=lambda m: (-_rank(m)[0], -_rank(m)[1], m.list_id, m.reference))
    return matches, notes


def _rank(match: Match) -> tuple[int, int]:
    return strength(match.action), match.kind is TokenKind.DOCUMENT


def _document_problems(document: Document, identity: Identity, today: date) -> list[str]:
    """Failed checks, an expired document and a weak identity each earn a REFER."""
    problems: list[str] = []
    failed = [name.replace("_", " ") for name, ok in document.checks.items() if not ok]
    if failed:
        problems.append(REASON_CHECKS_FAILED.format(checks=", ".join(failed)))
    if document.expiry_date is not None and document.expiry_date < today:
        problems.append(REASON_EXPIRED.format(expiry=document.expiry_date.isoformat()))
    if identity.weak:
        problems.append(identity.weak_reason or REASON_WEAK_FALLBACK)
    return problems


def mask_document_number(number: str | None) -> str | None:
    """Six stars and at most the last 3 characters, always hiding at least 3.

    The journal and the screen history show only this, never the number.
    """
    normalised = normalise_document_number(number)
    if normalised is None:
        return None
    shown = max(0, min(3, len(normalised) - 3))
    return "******" + (normalised[-shown:] if shown else "")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))
