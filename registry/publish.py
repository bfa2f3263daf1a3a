"""The publishing core: lists and entries in, signed immutable deltas out.

Every change to a list (entries added, removed or expired) is one
transaction that produces version N+1: the changed entries are expanded
into keyed tokens (sync/identity.py, registry/expansion.py), the list's
published token state is diffed on the affected tokens only, and the delta
N -> N+1 is encoded (sync/wire.py), its post-state digest computed
incrementally from version N's stored lanes (sync/digest.py), signed
(sync/envelope.py) and stored as bytes that never change again. A removal
takes exactly the same path as an addition, so it travels as fast.

Devices ask ``updates_since``; the registry answers with a bounded chain of
stored deltas or, when the device is too far behind, beyond retention or the
chain would be too big, one signed full snapshot. ``heartbeat`` says "still
at version N" with a fresh valid-until. Layout and policy: docs/registry.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sqlalchemy import Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from appliance.records import Action, Clearance, Entry, ListInfo, TokenKind
from registry import db
from registry.db import RegistryError
from registry.signing import Signer
from registry.snapshots import SnapshotFiles, SnapshotPayload, default_directory, snapshot_fields
from sync.digest import StateDigest
from sync.envelope import EnvelopeFields, Kind, heartbeat as heartbeat_fields, parse_envelope
from sync.identity import (
    DocumentClass,
    Identity,
    IdentityError,
    document_token,
    normalise_issuer,
    normalise_name,
)
from sync.wire import WireError, encode_delta

TOKEN_KEY_BYTES = 32
FOREVER = date(9999, 12, 31)
STATUS_ACTIVE, STATUS_REMOVED, STATUS_EXPIRED = "active", "removed", "expired"
_LIST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Rows per IN (...) clause: well under every backend's bound-parameter limit.
_CHUNK = 500
#: Estimated snapshot bytes per token, to compare a chain against (docs/wire-format.md, "Sizes").
_SNAPSHOT_BYTES_PER_TOKEN = 16
_ACTION_RANK = {Action.DENY: 0, Action.REFER: 1}


class UnknownList(RegistryError):
    code = "unknown_list"


class UnknownEntry(RegistryError):
    code = "unknown_entry"


class InvalidEntry(RegistryError):
    """Entry or list fields that cannot be stored or tokenised."""

    code = "invalid_entry"


class VersionAhead(RegistryError):
    """A device claims a version the registry never published."""

    code = "version_ahead"


class ConcurrentPublish(RegistryError):
    """Another writer published the same list at the same time; retry the change."""

    code = "concurrent_publish"


@dataclass(frozen=True)
class PublishConfig:
    """Retention and validity policy, in versions and seconds."""

    #: Deltas older than this many versions behind the head are pruned ...
    delta_retention_versions: int = 10_000
    #: ... and so are deltas published longer ago than this.
    delta_retention_seconds: int = 30 * 86_400
    #: A delta's signed valid_until; covers retention so a kept delta is servable.
    delta_validity_seconds: int = 31 * 86_400
    snapshot_validity_seconds: int = 7 * 86_400
    heartbeat_validity_seconds: int = 3_600
    #: An envelope that expires sooner than this is not served (rebuilt or replaced by a snapshot).
    min_remaining_validity_seconds: int = 3_600
    #: Longest chain of deltas served; further behind gets a snapshot.
    max_chain_deltas: int = 1_000
    #: Default bound on a chain's bytes (envelopes + payloads).
    max_response_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if type(value) is not int or value < 0:
                raise ValueError(f"PublishConfig.{name} must be a non-negative integer, got {value!r}")
        if self.delta_validity_seconds < self.delta_retention_seconds:
            raise ValueError("PublishConfig.delta_validity_seconds must cover delta_retention_seconds")


@dataclass(frozen=True)
class Name:
    """One Latin spelling of a name, as an authority or document gives it."""

    surnames: str
    given_names: str = ""


@dataclass(frozen=True)
class DocumentRef:
    """A listed document: class letter (sync.identity.DocumentClass), issuer (``DEU``, ``USA-CA``), number."""

    document_class: str
    issuer: str
    number: str


@dataclass(frozen=True)
class EntryFields:
    """What an authority lists about one person; ``None`` takes the list's default."""

    surnames: str
    reference: str
    category: str
    given_names: str = ""
    original_script: str | None = None
    latin_variants: tuple[Name, ...] = ()
    date_of_birth: date | None = None
    documents: tuple[DocumentRef, ...] = ()
    action: Action | None = None
    valid_from: date | None = None
    valid_until: date = FOREVER
    redress: str | None = None


@dataclass(frozen=True)
class Published:
    """One published version: what changed and the signed bytes that carry it."""

    list_id: str
    version: int
    envelope: bytes
    payload: bytes
    added: tuple[bytes, ...] = ()
    removed: tuple[bytes, ...] = ()
    entry_ids: tuple[int, ...] = ()
    cleared: tuple[bytes, ...] = ()
    uncleared: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class ClearanceChange:
    """Namesake clearances to publish on one list: (clearance, register id) pairs in, tokens out."""

    add: tuple[tuple[Clearance, int], ...] = ()
    remove: tuple[bytes, ...] = ()


def token_key_id(token_key: bytes) -> str:
    """Names a list's token key without revealing it (domain-separated SHA-256, 8 bytes)."""
    return hashlib.sha256(b"GCTKID1" + token_key).digest()[:8].hex()


def expand_entry(token_key: bytes, fields: EntryFields) -> list[tuple[bytes, TokenKind]]:
    """The tokens of one entry: a document token per document, a person token per name variant.

    Name variants come from registry/expansion.py; where that module is
    absent, from ``Identity.name_keys()`` of each spelling given.
    """
    out: dict[bytes, TokenKind] = {}
    try:
        for doc in fields.documents:
            country, _, region = doc.issuer.partition("-")
            issuer = normalise_issuer(country, region or None)
            out.setdefault(document_token(token_key, DocumentClass(doc.document_class), issuer, doc.number),
                           TokenKind.DOCUMENT)
        if fields.date_of_birth is not None:
            for token in _person_tokens(token_key, fields):
                out.setdefault(token, TokenKind.PERSON)
    except IdentityError as exc:
        raise InvalidEntry(f"entry {fields.reference!r}: {exc}") from None
    except ValueError as exc:  # DocumentClass(...) of an unknown letter
        raise InvalidEntry(f"entry {fields.reference!r}: {exc}") from None
    if not out:
        raise InvalidEntry(f"entry {fields.reference!r} yields no token: it needs a document or a date of birth")
    return list(out.items())


def _person_tokens(key: bytes, fields: EntryFields) -> list[bytes]:
    spellings = [Name(fields.surnames, fields.given_names), *fields.latin_variants]
    tokens: list[bytes] = []
    try:
        from registry.expansion import person_tokens_for_entry
    except ImportError:
        person_tokens_for_entry = None
    for i, name in enumerate(spellings):
        if person_tokens_for_entry is not None:
            script = fields.original_script if i == 0 else None
            found = person_tokens_for_entry(key, name.surnames, name.given_names, fields.date_of_birth,
                                            original_script=script)
        else:
            ident = Identity(DocumentClass.PASSPORT, None, None, normalise_name(name.surnames),
                             normalise_name(name.given_names), fields.date_of_birth)
            found = list(ident.tokens(key).persons)
        tokens.extend(t for t in found if t not in tokens)
    return tokens


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _device_entry(list_id: str, row) -> Entry:
    return Entry(bytes(row.token), list_id, TokenKind(row.kind), row.category, Action(row.action),
                 row.reference, row.valid_from, row.valid_until, row.redress)


class Registry:
    """Lists, entries and their signed publication, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, signer: Signer, *, config: PublishConfig | None = None,
                 clock: Callable[[], float] = time.time, snapshot_dir: str | os.PathLike | None = None,
                 on_publish: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.signer = signer
        self.config = config or PublishConfig()
        self._clock = clock
        #: Told the list id after each committed version (the server wakes its long-polls).
        self._on_publish = on_publish
        db.init_db(engine)
        self.snapshot_files = SnapshotFiles(Path(snapshot_dir) if snapshot_dir is not None
                                            else default_directory(engine))

    def _consistent_read(self):
        """A connection whose reads all see one committed state, however many statements.

        A snapshot must not mix version N's head with N+1's tokens, and it is
        read page by page. PostgreSQL's default READ COMMITTED gives each
        statement its own view, so the connection asks for REPEATABLE READ;
        Python's sqlite3 runs SELECTs outside any transaction, so the
        connection opens one itself (WAL: publishers go on meanwhile).
        """
        conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        elif self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        return conn

    def _now(self, now: float | None) -> int:
        return int(self._clock() if now is None else now)

    def _published(self, list_id: str) -> None:
        if self._on_publish is not None:
            self._on_publish(list_id)

    # -- lists ---------------------------------------------------------------

    def create_list(self, list_id: str, *, name: str, authority: str, legal_basis: str,
                    scopes: Sequence[str], default_action: Action, redress: str = "",
                    by: str, now: float | None = None) -> ListInfo:
        """A new, empty list at version 0 with a fresh random token key."""
        if not isinstance(list_id, str) or not _LIST_ID.fullmatch(list_id):
            raise InvalidEntry("list id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
        try:
            action = Action(default_action)
        except ValueError:
            raise InvalidEntry(f"default action {default_action!r} is not REFER or DENY") from None
        at = self._now(now)
        key = os.urandom(TOKEN_KEY_BYTES)
        empty = StateDigest()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(db.lists).values(
                    list_id=list_id, name=name, authority=authority, legal_basis=legal_basis,
                    scopes=json.dumps(list(scopes)), default_action=action.value, redress=redress,
                    token_key=key, token_key_id=token_key_id(key), current_version=0, created_at=at,
                ))
                conn.execute(insert(db.versions).values(
                    list_id=list_id, version=0, published_at=at, published_by=by,
                    digest=empty.to_bytes(), checksum=empty.checksum(), token_count=0,
                ))
        except IntegrityError:
            raise InvalidEntry(f"list {list_id!r} already exists") from None
        return self.list_info(list_id)

    def list_info(self, list_id: str) -> ListInfo:
        """The list as a device is enrolled with it (token key included)."""
        with self.engine.connect() as conn:
            row = self._list_row(conn, list_id)
            digest = conn.execute(select(db.versions.c.digest).where(and_(
                db.versions.c.list_id == list_id, db.versions.c.version == row.current_version))).scalar_one()
        return ListInfo(row.list_id, row.name, row.authority, row.legal_basis, tuple(json.loads(row.scopes)),
                        Action(row.default_action), bytes(row.token_key), row.current_version,
                        bytes(digest), redress=row.redress)

    def current_version(self, list_id: str) -> int:
        with self.engine.connect() as conn:
            return self._list_row(conn, list_id).current_version

    def tokens_of(self, entry_id: int) -> set[bytes]:
        """The tokens an entry expanded to when it was added."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.entry_tokens.c.token).where(db.entry_tokens.c.entry_id == entry_id))
            return {bytes(r.token) for r in rows}

    @staticmethod
    def _list_row(conn, list_id: str, *, lock: bool = False):
        query = select(db.lists).where(db.lists.c.list_id == list_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise UnknownList(f"no list {list_id!r} in the registry")
        return row

    # -- changes -------------------------------------------------------------

    def add_entry(self, list_id: str, fields: EntryFields, *, by: str, now: float | None = None) -> int:
        """Store one entry and publish the version that adds its tokens; returns the entry id."""
        return self.add_entries(list_id, [fields], by=by, now=now)[0]

    def add_entries(self, list_id: str, many: Sequence[EntryFields], *, by: str,
                    now: float | None = None) -> list[int]:
        """Store many entries as one change (one version); returns their ids in order."""
        at = self._now(now)
        today = datetime.fromtimestamp(at, timezone.utc).date()
        with self.engine.begin() as conn:
            lst = self._list_row(conn, list_id, lock=True)
            key = bytes(lst.token_key)
            ids: list[int] = []
            for fields in many:
                tokens = expand_entry(key, fields)
                entry_id = conn.execute(insert(db.entries).values(**self._entry_values(lst, fields, by, at, today))
                                        ).inserted_primary_key[0]
                for doc in fields.documents:
                    conn.execute(insert(db.entry_documents).values(
                        entry_id=entry_id, document_class=doc.document_class, issuer=doc.issuer,
                        number=doc.number))
                conn.execute(insert(db.entry_tokens), [
                    {"entry_id": entry_id, "token": t, "list_id": list_id, "kind": k.value} for t, k in tokens])
                ids.append(entry_id)
            self._publish(conn, lst, ids, by, at)
        self._published(list_id)
        return ids

    def remove_entry(self, list_id: str, entry_id: int, *, by: str, now: float | None = None) -> int:
        """Withdraw an entry and publish the version that removes its tokens; returns that version."""
        at = self._now(now)
        with self.engine.begin() as conn:
            lst = self._list_row(conn, list_id, lock=True)
            status = conn.execute(select(db.entries.c.status).where(and_(
                db.entries.c.entry_id == entry_id, db.entries.c.list_id == list_id))).scalar_one_or_none()
            if status is None:
                raise UnknownEntry(f"no entry {entry_id} on list {list_id!r}")
            if status != STATUS_ACTIVE:
                raise UnknownEntry(f"entry {entry_id} on list {list_id!r} is already {status}")
            conn.execute(update(db.entries).where(db.entries.c.entry_id == entry_id).values(
                status=STATUS_REMOVED, removed_by=by, removed_at=at, removed_in_version=lst.current_version + 1))
            version = self._publish(conn, lst, [entry_id], by, at).version
        self._published(list_id)
        return version

    def expire_entries(self, list_id: str, *, today: date, by: str = "registry:expiry",
                       now: float | None = None) -> Published | None:
        """Remove entries whose valid_until is before ``today`` in one version; None if none expired."""
        at = self._now(now)
        with self.engine.begin() as conn:
            lst = self._list_row(conn, list_id, lock=True)
            ids = list(conn.execute(select(db.entries.c.entry_id).where(and_(
                db.entries.c.list_id == list_id, db.entries.c.status == STATUS_ACTIVE,
                db.entries.c.valid_until < today))).scalars())
            if not ids:
                return None
            for chunk in _chunks(ids):
                conn.execute(update(db.entries).where(db.entries.c.entry_id.in_(chunk)).values(
                    status=STATUS_EXPIRED, removed_by=by, removed_at=at,
                    removed_in_version=lst.current_version + 1))
            published = self._publish(conn, lst, ids, by, at)
        self._published(list_id)
        return published

    def publish_clearances(self, list_id: str, change: ClearanceChange, *, by: str, now: float | None = None,
                           within: Callable[[object, int], None] | None = None) -> Published:
        """Publish namesake clearances added to or withdrawn from ``list_id`` as one version.

        A clearance is an allow-token for a cleared traveller's document
        under the list's key; it travels like an entry and is in the state
        digest. ``within(conn, version)`` runs inside the same transaction,
        so the register's rows and audit record commit with the version or
        not at all (registry/clearances.py).
        """
        at = self._now(now)
        with self.engine.begin() as conn:
            lst = self._list_row(conn, list_id, lock=True)
            for clearance, _ in change.add:
                if clearance.list_id != list_id:
                    raise InvalidEntry(f"a clearance of list {clearance.list_id!r} cannot be published on {list_id!r}")
            published = self._publish(conn, lst, (), by, at, change)
            if within is not None:
                within(conn, published.version)
        self._published(list_id)
        return published

    @staticmethod
    def _entry_values(lst, fields: EntryFields, by: str, at: int, today: date) -> dict:
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
            created_at=at, added_in_version=lst.current_version + 1,
        )

    # -- publishing ----------------------------------------------------------

    def _publish(self, conn, lst, entry_ids: Sequence[int], by: str, at: int,
                 clearances: ClearanceChange = ClearanceChange()) -> Published:
        """Version N+1 of ``lst`` from the changed entries and clearances, inside the caller's transaction."""
        list_id, old_version = lst.list_id, lst.current_version
        new_version = old_version + 1
        affected: set[bytes] = set()
        for chunk in _chunks(list(entry_ids)):
            affected.update(bytes(t) for t in conn.execute(
                select(db.entry_tokens.c.token).where(db.entry_tokens.c.entry_id.in_(chunk))).scalars())
        affected_list = sorted(affected)
        held = self._held(conn, list_id, affected_list)
        wanted = self._winners(conn, list_id, affected_list)
        adds = [e for t, (e, _) in wanted.items() if held.get(t) != e]
        removes = sorted(t for t in held if t not in wanted)
        replaced = [held[e.token] for e in adds if e.token in held]
        clear_adds, clear_removes, clear_taken = self._clearance_diff(conn, list_id, clearances)

        prev = conn.execute(select(db.versions).where(and_(
            db.versions.c.list_id == list_id, db.versions.c.version == old_version))).one()
        digest = StateDigest.from_bytes(bytes(prev.digest))
        digest.apply(adds=[*adds, *(c for c, _ in clear_adds)],
                     removes=[held[t] for t in removes] + replaced + clear_taken)
        try:
            payload = encode_delta(list_id, old_version, new_version, adds, removes,
                                   [c for c, _ in clear_adds], clear_removes)
        except WireError as exc:
            raise InvalidEntry(f"cannot encode the change: {exc.reason}") from None
        fields = EnvelopeFields(
            Kind.DELTA, list_id, old_version, new_version, at, at + self.config.delta_validity_seconds,
            digest.checksum(), hashlib.sha256(payload).digest(), len(payload))
        envelope = self.signer.sign(fields)

        gone = removes + [e.token for e in replaced]
        for chunk in _chunks(gone):
            conn.execute(delete(db.list_tokens).where(and_(
                db.list_tokens.c.list_id == list_id, db.list_tokens.c.token.in_(chunk))))
        if adds:
            conn.execute(insert(db.list_tokens), [self._token_row(e, wanted[e.token][1]) for e in adds])
        self._write_clearances(conn, list_id, clear_adds, [c.token for c in clear_taken])
        count = prev.token_count + len(adds) - len(replaced) - len(removes)
        conn.execute(insert(db.versions).values(
            list_id=list_id, version=new_version, published_at=at, published_by=by,
            digest=digest.to_bytes(), checksum=digest.checksum(), token_count=count))
        conn.execute(insert(db.deltas).values(
            list_id=list_id, from_version=old_version, to_version=new_version, published_at=at,
            valid_until=fields.valid_until, envelope=envelope, payload=payload))
        moved = conn.execute(update(db.lists).where(and_(
            db.lists.c.list_id == list_id, db.lists.c.current_version == old_version)
        ).values(current_version=new_version)).rowcount
        if moved != 1:
            raise ConcurrentPublish(f"list {list_id!r} moved past version {old_version} during this change")
        self._prune(conn, list_id, new_version, at)
        return Published(list_id, new_version, envelope, payload, tuple(e.token for e in adds),
                         tuple(removes), tuple(entry_ids), tuple(c.token for c, _ in clear_adds),
                         tuple(clear_removes))

    @staticmethod
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
        for chunk in _chunks(sorted({*wanted, *change.remove})):
            for row in conn.execute(select(lc.token, lc.redress_number, lc.valid_until).where(and_(
                    lc.list_id == list_id, lc.token.in_(chunk)))):
                held[bytes(row.token)] = Clearance(bytes(row.token), list_id, row.redress_number, row.valid_until)
        adds = [(c, cid) for t, (c, cid) in sorted(wanted.items()) if held.get(t) != c]
        removes = sorted(t for t in change.remove if t in held)
        taken = [held[t] for t in removes] + [held[c.token] for c, _ in adds if c.token in held]
        return adds, removes, taken

    @staticmethod
    def _write_clearances(conn, list_id: str, adds: Sequence[tuple[Clearance, int]], gone: Sequence[bytes]) -> None:
        lc = db.list_clearances.c
        for chunk in _chunks(list(gone)):
            conn.execute(delete(db.list_clearances).where(and_(lc.list_id == list_id, lc.token.in_(chunk))))
        if adds:
            conn.execute(insert(db.list_clearances), [
                {"list_id": list_id, "token": c.token, "clearance_id": cid, "redress_number": c.redress_number,
                 "valid_until": c.valid_until} for c, cid in adds])

    @staticmethod
    def _held(conn, list_id: str, tokens: Sequence[bytes]) -> dict[bytes, Entry]:
        held: dict[bytes, Entry] = {}
        for chunk in _chunks(tokens):
            for row in conn.execute(select(db.list_tokens).where(and_(
                    db.list_tokens.c.list_id == list_id, db.list_tokens.c.token.in_(chunk)))):
                held[bytes(row.token)] = _device_entry(list_id, row)
        return held

    @staticmethod
    def _winners(conn, list_id: str, tokens: Sequence[bytes]) -> dict[bytes, tuple[Entry, int]]:
        """For each token, (device entry, entry id) to hold: DENY first, then the longest valid, then the oldest.

        Several active entries may share a token (two authorities' cases, or
        namesakes with one birth date); the device holds a token once.
        """
        candidates: dict[bytes, list] = defaultdict(list)
        e, t = db.entries.c, db.entry_tokens.c
        for chunk in _chunks(tokens):
            query = (select(t.token, t.kind, e.entry_id, e.category, e.action, e.reference, e.valid_from,
                            e.valid_until, e.redress)
                     .select_from(db.entry_tokens.join(db.entries, e.entry_id == t.entry_id))
                     .where(and_(t.list_id == list_id, t.token.in_(chunk), e.status == STATUS_ACTIVE)))
            for row in conn.execute(query):
                candidates[bytes(row.token)].append(row)
        out: dict[bytes, tuple[Entry, int]] = {}
        for token, rows in candidates.items():
            best = min(rows, key=lambda r: (_ACTION_RANK[Action(r.action)], -r.valid_until.toordinal(), r.entry_id))
            out[token] = (_device_entry(list_id, best), best.entry_id)
        return out

    @staticmethod
    def _token_row(entry: Entry, entry_id: int) -> dict:
        return dict(list_id=entry.list_id, token=entry.token, entry_id=entry_id, kind=entry.kind.value,
                    category=entry.category, action=entry.action.value, reference=entry.reference,
                    valid_from=entry.valid_from, valid_until=entry.valid_until, redress=entry.redress)

    def _prune(self, conn, list_id: str, head: int, at: int) -> None:
        """Drop deltas outside the retention window; snapshots stay producible from list_tokens."""
        cfg = self.config
        conn.execute(delete(db.deltas).where(and_(
            db.deltas.c.list_id == list_id,
            (db.deltas.c.to_version <= head - cfg.delta_retention_versions)
            | (db.deltas.c.published_at < at - cfg.delta_retention_seconds))))

    # -- serving -------------------------------------------------------------

    def updates_since(self, list_id: str, version: int, *, max_bytes: int | None = None, full: bool = False,
                      now: float | None = None) -> list[tuple[bytes, bytes | SnapshotPayload]]:
        """(envelope, payload) pairs that take a device from ``version`` to the head.

        A delta's payload is bytes; a snapshot's is a file (SnapshotPayload), to stream.

        A chain of stored deltas when it is complete, fresh, signed by the
        current key, at most ``max_chain_deltas`` long, within ``max_bytes``
        and smaller than a snapshot would be; otherwise one signed snapshot.
        Empty when the device is current (answer with ``heartbeat``).
        ``full`` asks for the snapshot whatever the device holds: how a device
        whose state failed its digest check starts over (a chain cannot
        replace a state, it only moves one).
        """
        at = self._now(now)
        limit = self.config.max_response_bytes if max_bytes is None else max_bytes
        with self.engine.connect() as conn:
            lst = self._list_row(conn, list_id)
            head = lst.current_version
            if type(version) is not int or version < 0:
                raise VersionAhead(f"version must be a non-negative integer, got {version!r}")
            if version > head:
                raise VersionAhead(f"list {list_id!r} is at version {head}; the device claims {version}")
            if full:
                return [self.snapshot(list_id, now=at)]
            if version == head:
                return []
            count = conn.execute(select(db.versions.c.token_count).where(and_(
                db.versions.c.list_id == list_id, db.versions.c.version == head))).scalar_one()
            budget = min(limit, count * _SNAPSHOT_BYTES_PER_TOKEN + 512)
            chain = self._chain(conn, list_id, version, head, budget, at)
        return chain if chain is not None else [self.snapshot(list_id, now=at)]

    def _chain(self, conn, list_id: str, version: int, head: int, budget: int, at: int):
        if head - version > self.config.max_chain_deltas:
            return None
        d = db.deltas.c
        rows = conn.execute(select(d.from_version, d.to_version, d.valid_until, d.envelope, d.payload)
                            .where(and_(d.list_id == list_id, d.from_version >= version, d.to_version <= head))
                            .order_by(d.from_version))
        chain, expected, size = [], version, 0
        key_id = self.signer.key_id
        for row in rows:
            envelope = bytes(row.envelope)
            if row.from_version != expected or row.valid_until < at + self.config.min_remaining_validity_seconds:
                return None
            if parse_envelope(envelope).key_id != key_id:  # a rotated-out key: devices may distrust it
                return None
            size += len(envelope) + len(row.payload)
            if size > budget:
                return None
            chain.append((envelope, bytes(row.payload)))
            expected = row.to_version
        return chain if expected == head else None

    def snapshot(self, list_id: str, *, now: float | None = None) -> tuple[bytes, SnapshotPayload]:
        """A signed full snapshot at the head: (envelope, payload file), built once per version.

        Reused while it is at the head, valid for min_remaining_validity_seconds
        and signed by the current key; a stale envelope is re-signed over the
        same payload file (registry/snapshots.py). A build takes one list's
        build lock, so concurrent requests wait for one build instead of
        running several.
        """
        at = self._now(now)
        files = self.snapshot_files
        found = self._fresh_snapshot(list_id, self.current_version(list_id), at)
        if found is not None:
            return found
        with files.build_lock(list_id):
            with self._consistent_read() as conn:
                head = self._list_row(conn, list_id).current_version
                found = self._fresh_snapshot(list_id, head, at)  # built while this one waited
                if found is not None:
                    return found
                cached = files.cached(list_id, head)
                if cached is not None:  # the payload of this version is there; only its envelope is stale
                    old = cached[0]
                    checksum, sha256, size = old.post_state_digest, old.payload_sha256, old.payload_size
                else:
                    row = conn.execute(select(db.versions.c.digest, db.versions.c.checksum,
                                              db.versions.c.token_count).where(and_(
                        db.versions.c.list_id == list_id, db.versions.c.version == head))).one()
                    checksum = bytes(row.checksum)
                    try:
                        sha256, size = files.build(conn, list_id, head, bytes(row.digest), row.token_count)
                    except WireError as exc:
                        raise InvalidEntry(f"cannot encode the snapshot of {list_id!r}: {exc.reason}") from None
            envelope = self.signer.sign(snapshot_fields(
                list_id, head, checksum, sha256, size, issued_at=at,
                valid_until=at + self.config.snapshot_validity_seconds))
            files.write_envelope(list_id, head, envelope)
            files.remove_older(list_id, head)
        return envelope, SnapshotPayload(files.payload_path(list_id, head), size)

    def _fresh_snapshot(self, list_id: str, version: int, at: int) -> tuple[bytes, SnapshotPayload] | None:
        cached = self.snapshot_files.cached(list_id, version)
        if cached is None:
            return None
        envelope, raw, payload = cached
        if (envelope.valid_until < at + self.config.min_remaining_validity_seconds
                or envelope.key_id != self.signer.key_id):
            return None
        return raw, payload

    def heartbeat(self, list_id: str, *, now: float | None = None) -> bytes:
        """Signed "list L is at version N with digest D", valid for ``heartbeat_validity_seconds``."""
        at = self._now(now)
        with self.engine.connect() as conn:
            head = self._list_row(conn, list_id).current_version
            checksum = conn.execute(select(db.versions.c.checksum).where(and_(
                db.versions.c.list_id == list_id, db.versions.c.version == head))).scalar_one()
        return self.signer.sign(heartbeat_fields(
            list_id, head, bytes(checksum), issued_at=at, valid_until=at + self.config.heartbeat_validity_seconds))

    def delta_count(self, list_id: str) -> int:
        """How many deltas are kept for ``list_id`` (for monitoring and tests)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(db.deltas)
                                .where(db.deltas.c.list_id == list_id)).scalar_one()
