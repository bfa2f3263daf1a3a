"""The publishing core: lists and entries in, signed immutable deltas out.

Every change to a list (entries added, removed or expired, clearances, a
whole authority import) is one transaction that produces version N+1
(``Registry.change``, registry/list_change.py): the changed entries are
expanded into keyed tokens (registry/entries.py), the list's published token
state is settled on the affected tokens only, a batch at a time, and the
delta N -> N+1 is encoded (sync/wire.py), its post-state digest computed
incrementally from version N's stored lanes (sync/digest.py), signed
(sync/envelope.py) and stored as bytes that never change again. A removal
takes exactly the same path as an addition, so it travels as fast.

Devices ask ``updates_since``; the registry answers with a bounded chain of
stored deltas or, when the device is too far behind, beyond retention, the
chain would be too big or a version was too big to carry a delta, one signed
full snapshot. ``heartbeat`` says "still at version N" with a fresh
valid-until. Layout and policy: docs/registry.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sqlalchemy import Engine, and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from appliance.records import Action, ListInfo
from registry import db
from registry.db import RegistryError
from registry.entries import (  # noqa: F401  (re-exported: the package's entry model)
    FOREVER,
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_REMOVED,
    DocumentRef,
    EntryFields,
    InvalidEntry,
    Name,
    expand_entry,
    token_key_id,
)
from registry.list_change import (  # noqa: F401  (re-exported)
    ClearanceChange,
    ConcurrentPublish,
    ListChange,
    PreparedEntry,
    Published,
    UnknownEntry,
    UnknownList,
    list_row,
)
from registry.signing import Signer
from registry.snapshots import SnapshotFiles, SnapshotPayload, default_directory, snapshot_fields
from sync.digest import StateDigest
from sync.envelope import heartbeat as heartbeat_fields, parse_envelope
from sync.identity import token_key_hash
from sync.wire import WireError

TOKEN_KEY_BYTES = 32
_LIST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Estimated snapshot bytes per token, to compare a chain against (docs/wire-format.md, "Sizes").
_SNAPSHOT_BYTES_PER_TOKEN = 16


class VersionAhead(RegistryError):
    """A device claims a version the registry never published."""

    code = "version_ahead"


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
    #: A version that changes more tokens than this is stored without a delta (devices take the
    #: snapshot), so publishing holds at most this many changed tokens in memory.
    max_delta_tokens: int = 200_000

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if type(value) is not int or value < 0:
                raise ValueError(f"PublishConfig.{name} must be a non-negative integer, got {value!r}")
        if self.delta_validity_seconds < self.delta_retention_seconds:
            raise ValueError("PublishConfig.delta_validity_seconds must cover delta_retention_seconds")

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
        return list_row(conn, list_id, lock=lock)

    # -- changes -------------------------------------------------------------

    @contextmanager
    def change(self, list_id: str, *, by: str, now: float | None = None) -> Iterator[ListChange]:
        """One change to ``list_id``: one transaction, one version, however many entries.

        The list row is locked for the whole change. Add, remove and clear
        through the yielded ``ListChange`` (in batches for big changes; each
        batch is settled at once, so memory stays bounded); leaving the block
        signs and stores version N+1 and commits, then wakes long-polls.
        An exception, or ``cancel()``, rolls everything back: no version.
        The caller's own rows (an import's records, audit) go through
        ``change.conn`` and commit with the version or not at all.
        """
        at = self._now(now)
        with self.engine.begin() as conn:
            change = ListChange(conn, list_row(conn, list_id, lock=True), by=by, at=at, config=self.config)
            yield change
            if change.cancelled:
                conn.rollback()
                return
            change.finish(self.signer)
        self._published(list_id)

    def add_entry(self, list_id: str, fields: EntryFields, *, by: str, now: float | None = None) -> int:
        """Store one entry and publish the version that adds its tokens; returns the entry id."""
        return self.add_entries(list_id, [fields], by=by, now=now)[0]

    def add_entries(self, list_id: str, many: Sequence[EntryFields], *, by: str,
                    now: float | None = None) -> list[int]:
        """Store many entries as one change (one version); returns their ids in order."""
        with self.change(list_id, by=by, now=now) as change:
            ids = change.add(many)
        return ids

    def remove_entry(self, list_id: str, entry_id: int, *, by: str, now: float | None = None,
                     within: Callable[[object, int], None] | None = None) -> int:
        """Withdraw an entry and publish the version that removes its tokens; returns that version.

        ``within(conn, version)`` runs in the same transaction (the caller's audit record).
        """
        with self.change(list_id, by=by, now=now) as change:
            status = change.conn.execute(select(db.entries.c.status).where(and_(
                db.entries.c.entry_id == entry_id, db.entries.c.list_id == list_id))).scalar_one_or_none()
            if status is None:
                raise UnknownEntry(f"no entry {entry_id} on list {list_id!r}")
            if status != STATUS_ACTIVE:
                raise UnknownEntry(f"entry {entry_id} on list {list_id!r} is already {status}")
            change.remove([entry_id])
            if within is not None:
                within(change.conn, change.version)
        return change.version

    def expire_entries(self, list_id: str, *, today: date, by: str = "registry:expiry",
                       now: float | None = None) -> Published | None:
        """Remove entries whose valid_until is before ``today`` in one version; None if none expired."""
        with self.change(list_id, by=by, now=now) as change:
            ids = list(change.conn.execute(select(db.entries.c.entry_id).where(and_(
                db.entries.c.list_id == list_id, db.entries.c.status == STATUS_ACTIVE,
                db.entries.c.valid_until < today))).scalars())
            if ids:
                change.remove(ids, status=STATUS_EXPIRED)
            else:
                change.cancel()
        return None if change.cancelled else replace(change.published, entry_ids=tuple(ids))

    def publish_clearances(self, list_id: str, change: ClearanceChange, *, by: str, now: float | None = None,
                           within: Callable[[object, int], None] | None = None) -> Published:
        """Publish namesake clearances added to or withdrawn from ``list_id`` as one version.

        A clearance is an allow-token for a cleared traveller's document
        under the list's key; it travels like an entry and is in the state
        digest. ``within(conn, version)`` runs inside the same transaction,
        so the register's rows and audit record commit with the version or
        not at all (registry/clearances.py).
        """
        with self.change(list_id, by=by, now=now) as publishing:
            publishing.clear(change)
            if within is not None:
                within(publishing.conn, publishing.version)
        return publishing.published

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
                lst = self._list_row(conn, list_id)
                head = lst.current_version
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
                        sha256, size = files.build(conn, list_id, head, bytes(row.digest), row.token_count,
                                                   token_key_hash=token_key_hash(bytes(lst.token_key)))
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
