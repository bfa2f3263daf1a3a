"""One change to one list, built a batch at a time inside one transaction: version N+1.

Every publish goes through ``ListChange``: one entry accepted by a reviewer
and a million-row authority import alike (docs/registry.md, "Publishing").
Entries are added and withdrawn in batches; after each batch the tokens it
touches are *settled*: the entry a device should hold is chosen from the
active entries, the list's published token rows are rewritten, and the state
digest moves by the difference. Memory and each step's work are bounded by
the batch, not by the change, and inserts go in with executemany.

Settling a token twice is harmless, because the winner is read from the
entries as they stand: a token settled by an earlier batch is unchanged the
second time. So batches may share tokens, and a token removed by one batch
and re-added by a later one ends up as the later one says.

The delta N -> N+1 is kept in memory only while it is small
(``PublishConfig.max_delta_tokens``). A bigger change is published with its
version, digest and token rows but no delta; a device behind it finds a gap
in the chain and takes the snapshot instead (``Registry.updates_since``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Iterable, Sequence

from sqlalchemy import and_, delete, func, insert, select, update

from appliance.records import Action, Clearance, Entry, TokenKind
from registry import db
from registry.db import RegistryError
from registry.entries import STATUS_ACTIVE, STATUS_REMOVED, EntryFields, InvalidEntry, expand_entry
from sync.digest import StateDigest
from sync.envelope import EnvelopeFields, Kind
from sync.wire import WireError, encode_delta

if TYPE_CHECKING:
    from registry.publish import PublishConfig
    from registry.signing import Signer

#: Rows per IN (...) clause: well under every backend's bound-parameter limit.
CHUNK = 500
#: Entries inserted per executemany when a caller hands over more at once.
ADD_BATCH = 2_000
_ACTION_RANK = {Action.DENY: 0, Action.REFER: 1}


def precedence(row) -> tuple:
    """Which of a token's active entries a device holds: DENY first, then the longest valid, then the oldest."""
    return (_ACTION_RANK[Action(row.action)], -row.valid_until.toordinal(), row.entry_id)


class UnknownList(RegistryError):
    code = "unknown_list"


class UnknownEntry(RegistryError):
    code = "unknown_entry"


class ConcurrentPublish(RegistryError):
    """Another writer published the same list at the same time; retry the change."""

    code = "concurrent_publish"


@dataclass(frozen=True)
class Published:
    """One published version: what changed and the signed bytes that carry it.

    ``envelope`` and ``payload`` are empty when the change was too big for a
    delta (devices take the snapshot). ``added``/``removed`` are the delta's
    tokens; ``entry_ids`` the entries the call changed, where it tracks them.
    """

    list_id: str
    version: int
    envelope: bytes
    payload: bytes
    added: tuple[bytes, ...] = ()
    removed: tuple[bytes, ...] = ()
    entry_ids: tuple[int, ...] = ()
    cleared: tuple[bytes, ...] = ()
    uncleared: tuple[bytes, ...] = ()

    @property
    def has_delta(self) -> bool:
        return bool(self.envelope)


@dataclass(frozen=True)
class ClearanceChange:
    """Namesake clearances to publish on one list: (clearance, register id) pairs in, tokens out."""

    add: tuple[tuple[Clearance, int], ...] = ()
    remove: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class PreparedEntry:
    """An entry whose tokens were already expanded under the list's current key (an import's preview)."""

    fields: EntryFields
    tokens: tuple[tuple[bytes, TokenKind], ...]


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def device_entry(list_id: str, row) -> Entry:
    return Entry(bytes(row.token), list_id, TokenKind(row.kind), row.category, Action(row.action),
                 row.reference, row.valid_from, row.valid_until, row.redress)


def list_row(conn, list_id: str, *, lock: bool = False):
    query = select(db.lists).where(db.lists.c.list_id == list_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise UnknownList(f"no list {list_id!r} in the registry")
    return row


def entry_values(lst, fields: EntryFields, by: str, at: int, today: date, version: int) -> dict:
    """The ``entries`` row of a new entry, with the list's defaults filled in; refuses what cannot be stored."""
    try:
        action = Action(fields.action or lst.default_action)
    except ValueError:
        raise InvalidEntry(f"action {fields.action!r} is not REFER or DENY") from None
    valid_from = fields.valid_from or today
    if fields.valid_until < valid_from:
        raise InvalidEntry(f"entry {fields.reference!r} is valid until {fields.valid_until}, before {valid_from}")
    if not fields.reference or not fields.category:
        raise InvalidEntry("an entry needs the authority's reference and a category")
    variants = [[n.surnames, n.given_names] for n in fields.latin_variants]
    return dict(
        list_id=lst.list_id, surnames=fields.surnames, given_names=fields.given_names,
        original_script=fields.original_script, latin_variants=json.dumps(variants, ensure_ascii=False),
        date_of_birth=fields.date_of_birth, category=fields.category, action=action.value,
        reference=fields.reference, redress=lst.redress if fields.redress is None else fields.redress,
        valid_from=valid_from, valid_until=fields.valid_until, status=STATUS_ACTIVE, created_by=by,
        created_at=at, added_in_version=version,
    )


class ListChange:
    """Version N+1 of one list in the making, inside the caller's open transaction.

    ``add``/``remove``/``clear`` as often as needed, then ``finish`` once
    (``Registry.change`` does both ends). ``cancel`` abandons it unpublished.
    """

    def __init__(self, conn, lst, *, by: str, at: int, config: "PublishConfig") -> None:
        self.conn, self.lst, self.by, self.at = conn, lst, by, at
        self.list_id = lst.list_id
        self.version = lst.current_version + 1
        self.today = datetime.fromtimestamp(at, timezone.utc).date()
        self.config = config
        self.cancelled = False
        self.published: Published | None = None
        prev = conn.execute(select(db.versions.c.digest, db.versions.c.token_count).where(and_(
            db.versions.c.list_id == self.list_id, db.versions.c.version == lst.current_version))).one()
        self._digest = StateDigest.from_bytes(bytes(prev.digest))
        self._count = prev.token_count
        #: Tokens this change has altered so far: what the device held before, and what it will hold.
        self._before: dict[bytes, Entry | None] = {}
        self._after: dict[bytes, Entry | None] = {}
        self._delta_kept = True
        self._clearances = ClearanceChange()

    # -- what changes ------------------------------------------------------------

    def add(self, entries: Sequence[EntryFields | PreparedEntry]) -> list[int]:
        """Store new entries and settle their tokens; returns their ids in order."""
        ids: list[int] = []
        key = bytes(self.lst.token_key)
        for batch in chunks(list(entries), ADD_BATCH):
            prepared = [e if isinstance(e, PreparedEntry) else PreparedEntry(e, tuple(expand_entry(key, e)))
                        for e in batch]
            rows = [entry_values(self.lst, p.fields, self.by, self.at, self.today, self.version) for p in prepared]
            new_ids = list(self.conn.execute(
                insert(db.entries).returning(db.entries.c.entry_id, sort_by_parameter_order=True), rows).scalars())
            documents = [{"entry_id": i, "document_class": d.document_class, "issuer": d.issuer, "number": d.number}
                         for i, p in zip(new_ids, prepared) for d in p.fields.documents]
            if documents:
                self.conn.execute(insert(db.entry_documents), documents)
            self.conn.execute(insert(db.entry_tokens), [
                {"entry_id": i, "token": t, "list_id": self.list_id, "kind": TokenKind(k).value}
                for i, p in zip(new_ids, prepared) for t, k in p.tokens])
            fresh = {t: (Entry(t, self.list_id, TokenKind(k), row["category"], Action(row["action"]), row["reference"],
                               row["valid_from"], row["valid_until"], row["redress"]), i)
                     for i, p, row in zip(new_ids, prepared, rows) for t, k in p.tokens}
            self._settle(sorted(fresh), fresh)
            ids += new_ids
        return ids

    def remove(self, entry_ids: Sequence[int], *, status: str = STATUS_REMOVED) -> None:
        """Withdraw entries (``removed`` or ``expired``) and settle their tokens. Callers check they are active."""
        e = db.entries.c
        tokens: set[bytes] = set()
        for batch in chunks(list(entry_ids)):
            self.conn.execute(update(db.entries).where(e.entry_id.in_(batch)).values(
                status=status, removed_by=self.by, removed_at=self.at, removed_in_version=self.version))
            tokens.update(bytes(t) for t in self.conn.execute(
                select(db.entry_tokens.c.token).where(db.entry_tokens.c.entry_id.in_(batch))).scalars())
        self._settle(sorted(tokens))

    def clear(self, change: ClearanceChange) -> None:
        """Namesake clearances to publish with this version (a register: few enough to hold)."""
        for clearance, _ in change.add:
            if clearance.list_id != self.list_id:
                raise InvalidEntry(f"a clearance of list {clearance.list_id!r} cannot be published on {self.list_id!r}")
        self._clearances = ClearanceChange(self._clearances.add + change.add, self._clearances.remove + change.remove)

    def cancel(self) -> None:
        """Publish nothing: the transaction is rolled back and no version is made."""
        self.cancelled = True

    # -- settling tokens ---------------------------------------------------------

    def _settle(self, tokens: Sequence[bytes], fresh: dict[bytes, tuple[Entry, int]] | None = None) -> None:
        """Make each token's published row what its active entries say, and move the digest with it.

        ``fresh``: tokens of entries just added, with their device entries.
        A fresh token that no other entry of the list has (most of an
        import's) is held by nobody and won by its entry, which one light
        count tells without reading the published rows or the entries.
        """
        for batch in chunks(tokens):
            alone = self._alone(batch, fresh) if fresh else set()
            others = [t for t in batch if t not in alone] if alone else batch
            held = self._held(others) if others else {}
            wanted = self._winners(others) if others else {}
            wanted.update((t, fresh[t]) for t in alone)
            adds = [e for t, (e, _) in wanted.items() if held.get(t) != e]
            removes = [t for t in held if t not in wanted]
            replaced = [held[e.token] for e in adds if e.token in held]
            self._digest.apply(adds=adds, removes=[held[t] for t in removes] + replaced)
            gone = removes + [e.token for e in replaced]
            if gone:
                self.conn.execute(delete(db.list_tokens).where(and_(
                    db.list_tokens.c.list_id == self.list_id, db.list_tokens.c.token.in_(gone))))
            if adds:
                self.conn.execute(insert(db.list_tokens), [_token_row(e, wanted[e.token][1]) for e in adds])
            self._count += len(adds) - len(replaced) - len(removes)
            if self._delta_kept:
                for token in [*removes, *(e.token for e in adds)]:
                    self._before.setdefault(token, held.get(token))
                    self._after[token] = wanted[token][0] if token in wanted else None
                if len(self._after) > self.config.max_delta_tokens:
                    self._delta_kept = False  # devices take the snapshot; stop holding the delta
                    self._before.clear()
                    self._after.clear()

    def _alone(self, tokens: Sequence[bytes], fresh: dict[bytes, tuple[Entry, int]]) -> set[bytes]:
        t = db.entry_tokens.c
        shared = set(bytes(token) for token in self.conn.execute(
            select(t.token).where(and_(t.list_id == self.list_id, t.token.in_(tokens)))
            .group_by(t.token).having(func.count() > 1)).scalars())
        return {token for token in tokens if token in fresh and token not in shared}

    def _held(self, tokens: Sequence[bytes]) -> dict[bytes, Entry]:
        lt = db.list_tokens.c
        rows = self.conn.execute(select(db.list_tokens).where(and_(lt.list_id == self.list_id, lt.token.in_(tokens))))
        return {bytes(row.token): device_entry(self.list_id, row) for row in rows}

    def _winners(self, tokens: Sequence[bytes]) -> dict[bytes, tuple[Entry, int]]:
        """For each token, (device entry, entry id) to hold: DENY first, then the longest valid, then the oldest.

        Several active entries may share a token (two authorities' cases, or
        namesakes with one birth date); the device holds a token once.
        """
        candidates: dict[bytes, list] = defaultdict(list)
        e, t = db.entries.c, db.entry_tokens.c
        query = (select(t.token, t.kind, e.entry_id, e.category, e.action, e.reference, e.valid_from,
                        e.valid_until, e.redress)
                 .select_from(db.entry_tokens.join(db.entries, e.entry_id == t.entry_id))
                 .where(and_(t.list_id == self.list_id, t.token.in_(tokens), e.status == STATUS_ACTIVE)))
        for row in self.conn.execute(query):
            candidates[bytes(row.token)].append(row)
        out: dict[bytes, tuple[Entry, int]] = {}
        for token, rows in candidates.items():
            best = min(rows, key=precedence)
            out[token] = (device_entry(self.list_id, best), best.entry_id)
        return out

    # -- the version ---------------------------------------------------------------

    def finish(self, signer: "Signer") -> Published:
        """Store version N+1 (lanes, count, the signed delta when kept) and move the list to it."""
        conn, list_id, old, new, at = self.conn, self.list_id, self.version - 1, self.version, self.at
        clear_adds, clear_removes, clear_taken = _clearance_diff(conn, list_id, self._clearances)
        self._digest.apply(adds=[c for c, _ in clear_adds], removes=clear_taken)
        _write_clearances(conn, list_id, clear_adds, [c.token for c in clear_taken])
        adds = [e for t, e in self._after.items() if e is not None and e != self._before[t]]
        removes = sorted(t for t, e in self._after.items() if e is None and self._before[t] is not None)
        envelope = payload = b""
        if self._delta_kept:
            try:
                payload = encode_delta(list_id, old, new, adds, removes, [c for c, _ in clear_adds], clear_removes)
            except WireError as exc:
                raise InvalidEntry(f"cannot encode the change: {exc.reason}") from None
            fields = EnvelopeFields(
                Kind.DELTA, list_id, old, new, at, at + self.config.delta_validity_seconds,
                self._digest.checksum(), hashlib.sha256(payload).digest(), len(payload))
            envelope = signer.sign(fields)
            conn.execute(insert(db.deltas).values(
                list_id=list_id, from_version=old, to_version=new, published_at=at,
                valid_until=fields.valid_until, envelope=envelope, payload=payload))
        conn.execute(insert(db.versions).values(
            list_id=list_id, version=new, published_at=at, published_by=self.by,
            digest=self._digest.to_bytes(), checksum=self._digest.checksum(), token_count=self._count))
        moved = conn.execute(update(db.lists).where(and_(
            db.lists.c.list_id == list_id, db.lists.c.current_version == old)
        ).values(current_version=new)).rowcount
        if moved != 1:
            raise ConcurrentPublish(f"list {list_id!r} moved past version {old} during this change")
        self._prune(new)
        self.published = Published(list_id, new, envelope, payload, tuple(e.token for e in adds), tuple(removes),
                                   (), tuple(c.token for c, _ in clear_adds), tuple(clear_removes))
        return self.published

    def _prune(self, head: int) -> None:
        """Drop deltas outside the retention window; snapshots stay producible from list_tokens."""
        cfg, d = self.config, db.deltas.c
        self.conn.execute(delete(db.deltas).where(and_(
            d.list_id == self.list_id,
            (d.to_version <= head - cfg.delta_retention_versions)
            | (d.published_at < self.at - cfg.delta_retention_seconds))))


def _token_row(entry: Entry, entry_id: int) -> dict:
    return dict(list_id=entry.list_id, token=entry.token, entry_id=entry_id, kind=entry.kind.value,
                category=entry.category, action=entry.action.value, reference=entry.reference,
                valid_from=entry.valid_from, valid_until=entry.valid_until, redress=entry.redress)


def _clearance_diff(conn, list_id: str, change: ClearanceChange):
    """(to add with ids, tokens to withdraw, held clearances they take out of the state).

    An add equal to what is held is no change; an add that differs
    replaces it (the device upserts, the digest swaps the element).
    """
    wanted = {c.token: (c, cid) for c, cid in change.add}
    if len(wanted) != len(change.add) or wanted.keys() & set(change.remove):
        raise InvalidEntry("a clearance token appears twice in one change")
    lc = db.list_clearances.c
    held: dict[bytes, Clearance] = {}
    for batch in chunks(sorted({*wanted, *change.remove})):
        for row in conn.execute(select(lc.token, lc.redress_number, lc.valid_until).where(and_(
                lc.list_id == list_id, lc.token.in_(batch)))):
            held[bytes(row.token)] = Clearance(bytes(row.token), list_id, row.redress_number, row.valid_until)
    adds = [(c, cid) for t, (c, cid) in sorted(wanted.items()) if held.get(t) != c]
    removes = sorted(t for t in change.remove if t in held)
    taken = [held[t] for t in removes] + [held[c.token] for c, _ in adds if c.token in held]
    return adds, removes, taken


def _write_clearances(conn, list_id: str, adds: Sequence[tuple[Clearance, int]], gone: Sequence[bytes]) -> None:
    lc = db.list_clearances.c
    for batch in chunks(list(gone)):
        conn.execute(delete(db.list_clearances).where(and_(lc.list_id == list_id, lc.token.in_(batch))))
    if adds:
        conn.execute(insert(db.list_clearances), [
            {"list_id": list_id, "token": c.token, "clearance_id": cid, "redress_number": c.redress_number,
             "valid_until": c.valid_until} for c, cid in adds])
