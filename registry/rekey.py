"""Re-keying a list: a new token key, every token made again under it, one version every device takes whole.

Issue 5, "Revoke and re-key": a counter lost with its store holds each of
its lists' token keys, and with a key anyone can test a name and birth date
against the list offline. Rotating the key makes what the device holds
useless for every later version. ``rotate_token_key`` does it as one
transaction, like every publish (docs/registry.md):

1. lock the list row and draw a new random key;
2. expand every active entry again under it, a batch at a time
   (``entry_tokens`` rewritten, entry ids unchanged; withdrawn entries keep
   the tokens they were published with, as history);
3. rebuild ``list_tokens`` in token order from the active entries, with the
   same precedence as a publish (``list_change.precedence``), and the state
   digest from nothing: every element is new;
4. make each published namesake clearance's allow-token again from the
   register's plaintext document (registry/clearances.py);
5. store version N+1 **without a delta**, and drop the list's old deltas:
   no chain of deltas crosses a key change, so every device behind N+1
   gets the snapshot, whose header names the key (sync/snapshot_wire.py);
6. retire the old key: the list row holds the new key only, and
   ``retired_token_keys`` keeps the old key's id, when and by whom; the
   audit record says who, why, and the old and new key ids (never key bytes).

On SQLite the connection runs with ``secure_delete`` (freed space is zeroed,
not left holding the old key) and, after the commit, the WAL is truncated so
no old page survives in it; ``Rekeyed.wal_truncated`` says whether that
checkpoint got through (a reader still open can hold it back). Then the
snapshot is built, so the first device to ask does not wait for it.
Memory is bounded by a batch of entries and a page of token rows.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from appliance.records import Clearance, TokenKind
from registry import db
from registry.audit import AuditLog
from registry.clearances import clearance_lists, clearances
from registry.clearances import metadata as clearance_metadata
from registry.db import RegistryError
from registry.entries import STATUS_ACTIVE, DocumentRef, EntryFields, InvalidEntry, Name, expand_entry
from registry.list_change import ConcurrentPublish, chunks, device_entry, list_row, precedence
from registry.publish import TOKEN_KEY_BYTES, Registry
from sync.digest import StateDigest
from sync.identity import DocumentClass, IdentityError, document_token, token_key_id

#: Active entries expanded per step; their tokens go in with one executemany.
ENTRY_BATCH = 2_000
#: Published token rows read per keyset page (as a snapshot build reads them).
PAGE_ROWS = 20_000
MIN_REASON_CHARS = 5

metadata = MetaData()

#: Keys a list no longer uses. The key itself is gone from the database; its id names it in the audit log.
retired_token_keys = Table(
    "retired_token_keys", metadata,
    Column("list_id", String(64), primary_key=True),
    Column("key_id", String(16), primary_key=True),
    Column("retired_at", BigInteger, nullable=False),
    Column("retired_by", Text, nullable=False),
    Column("last_version", BigInteger, nullable=False),  # the last version whose tokens were under it
    Column("replaced_by", String(16), nullable=False),  # the id of the key that followed
)


class RekeyError(RegistryError):
    code = "rekey"


@dataclass(frozen=True)
class Rekeyed:
    """What one rotation did; ``seconds`` is the transaction's wall time, without the snapshot build."""

    list_id: str
    old_key_id: str
    new_key_id: str
    version: int
    entries: int
    tokens: int
    clearances: int
    seconds: float
    wal_truncated: bool | None  # None: not an SQLite database
    snapshot_seconds: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RetiredKey:
    list_id: str
    key_id: str
    retired_at: int
    retired_by: str
    last_version: int
    replaced_by: str


def retired_keys(engine, list_id: str) -> list[RetiredKey]:
    """The keys a list used before, oldest first."""
    metadata.create_all(engine)
    r = retired_token_keys.c
    with engine.connect() as conn:
        rows = conn.execute(select(retired_token_keys).where(r.list_id == list_id).order_by(r.last_version)).all()
    return [RetiredKey(row.list_id, row.key_id, row.retired_at, row.retired_by, row.last_version, row.replaced_by)
            for row in rows]


def rotate_token_key(registry: Registry, list_id: str, *, by: str, reason: str, audit: AuditLog | None = None,
                     now: float | None = None, build_snapshot: bool = True) -> Rekeyed:
    """Give ``list_id`` a new token key and publish its tokens under it as version N+1 (no delta)."""
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_CHARS:
        raise RekeyError("say why the list is re-keyed (e.g. which device was lost); the audit log keeps it")
    engine = registry.engine
    audit = audit or AuditLog(engine)
    metadata.create_all(engine)
    clearance_metadata.create_all(engine)  # the register's tables, even where no clearance was ever issued
    at = int(registry._clock() if now is None else now)
    started = time.perf_counter()
    key = os.urandom(TOKEN_KEY_BYTES)
    with engine.connect() as conn:
        scrub = _secure_delete(conn, True)
        try:
            with conn.begin():
                done = _rotate(conn, list_id, key, by=by, reason=reason, at=at, audit=audit)
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            raise RekeyError("the registry database stayed busy with another publish; nothing was re-keyed, "
                             "try again") from None
        finally:
            if scrub is not None:
                _secure_delete(conn, scrub)
    seconds = time.perf_counter() - started
    registry._published(list_id)  # wake long-polls: every device behind the new version asks at once
    truncated = _truncate_wal(engine)
    built = None
    if build_snapshot:
        began = time.perf_counter()
        registry.snapshot(list_id)
        built = time.perf_counter() - began
    return Rekeyed(list_id, done["old"], token_key_id(key), done["version"], done["entries"], done["tokens"],
                   done["clearances"], seconds, truncated, built)


# -- the transaction -------------------------------------------------------------------

def _rotate(conn, list_id: str, key: bytes, *, by: str, reason: str, at: int, audit: AuditLog) -> dict:
    lst = list_row(conn, list_id, lock=True)
    old_id, new_id = lst.token_key_id, token_key_id(key)
    old, new = lst.current_version, lst.current_version + 1
    entries = _expand_active(conn, list_id, key)
    digest = StateDigest()
    conn.execute(delete(db.list_tokens).where(db.list_tokens.c.list_id == list_id))
    tokens = 0
    for rows in _active_token_rows(conn, list_id):
        held = [(device_entry(list_id, winner), winner.entry_id) for winner in _winners(rows)]
        conn.execute(insert(db.list_tokens), [_token_row(entry, entry_id) for entry, entry_id in held])
        digest.apply(adds=[entry for entry, _ in held])
        tokens += len(held)
    cleared = _remake_clearances(conn, list_id, key)
    digest.apply(adds=cleared)
    conn.execute(insert(db.versions).values(
        list_id=list_id, version=new, published_at=at, published_by=by,
        digest=digest.to_bytes(), checksum=digest.checksum(), token_count=tokens))
    moved = conn.execute(update(db.lists).where(and_(db.lists.c.list_id == list_id,
                                                     db.lists.c.current_version == old))
                         .values(current_version=new, token_key=key, token_key_id=new_id)).rowcount
    if moved != 1:
        raise ConcurrentPublish(f"list {list_id!r} moved past version {old} during the re-key")
    # Deltas under the old key lead only up to the retired version; with none from it, no chain crosses.
    conn.execute(delete(db.deltas).where(db.deltas.c.list_id == list_id))
    conn.execute(insert(retired_token_keys).values(list_id=list_id, key_id=old_id, retired_at=at, retired_by=by,
                                                   last_version=old, replaced_by=new_id))
    audit.append(conn, actor=by, action="list.rekey", subject=f"list:{list_id}", reason=reason, at=at,
                 before={"token_key_id": old_id, "version": old},
                 after={"token_key_id": new_id, "version": new, "entries": entries, "tokens": tokens,
                        "clearances": len(cleared)})
    return {"old": old_id, "version": new, "entries": entries, "tokens": tokens, "clearances": len(cleared)}


def _expand_active(conn, list_id: str, key: bytes) -> int:
    """Every active entry's tokens made again under ``key``, a batch at a time; returns how many entries."""
    e, d, t = db.entries.c, db.entry_documents.c, db.entry_tokens.c
    last, count = 0, 0
    while True:
        rows = conn.execute(select(e.entry_id, e.surnames, e.given_names, e.original_script, e.latin_variants,
                                   e.date_of_birth, e.category, e.reference)
                            .where(and_(e.list_id == list_id, e.status == STATUS_ACTIVE, e.entry_id > last))
                            .order_by(e.entry_id).limit(ENTRY_BATCH)).all()
        if not rows:
            return count
        ids = [row.entry_id for row in rows]
        documents: dict[int, list[DocumentRef]] = {}
        for part in chunks(ids):
            for doc in conn.execute(select(d.entry_id, d.document_class, d.issuer, d.number)
                                    .where(d.entry_id.in_(part)).order_by(d.document_id)):
                documents.setdefault(doc.entry_id, []).append(DocumentRef(doc.document_class, doc.issuer, doc.number))
        new_rows = []
        for row in rows:
            try:
                expanded = expand_entry(key, _fields(row, documents.get(row.entry_id, ())))
            except InvalidEntry as exc:
                raise RekeyError(f"entry {row.entry_id} cannot be tokenised again, so nothing was re-keyed: "
                                 f"{exc.message}") from None
            new_rows += [{"entry_id": row.entry_id, "token": token, "list_id": list_id, "kind": TokenKind(kind).value}
                         for token, kind in expanded]
        for part in chunks(ids):
            conn.execute(delete(db.entry_tokens).where(t.entry_id.in_(part)))
        conn.execute(insert(db.entry_tokens), new_rows)
        count += len(rows)
        last = ids[-1]


def _fields(row, documents: Sequence[DocumentRef]) -> EntryFields:
    """What expansion needs of a stored entry: its names, birth date and documents."""
    variants = tuple(Name(s, g) for s, g in json.loads(row.latin_variants or "[]"))
    return EntryFields(surnames=row.surnames, given_names=row.given_names, original_script=row.original_script,
                       latin_variants=variants, date_of_birth=row.date_of_birth, documents=tuple(documents),
                       category=row.category, reference=row.reference)


def _active_token_rows(conn, list_id: str) -> Iterator[list]:
    """(token, entry) rows of the list's active entries in token order, a page at a time, never splitting a token.

    Keyset pagination on the token (``token > last``, valid on SQLite and
    PostgreSQL); a page that ends inside one token's rows gives that token
    to the next page.
    """
    e, t = db.entries.c, db.entry_tokens.c
    query = (select(t.token, t.kind, e.entry_id, e.category, e.action, e.reference, e.valid_from, e.valid_until,
                    e.redress)
             .select_from(db.entry_tokens.join(db.entries, e.entry_id == t.entry_id))
             .order_by(t.token, e.entry_id))
    active = and_(t.list_id == list_id, e.status == STATUS_ACTIVE)
    last = None
    while True:
        where = active if last is None else and_(active, t.token > last)
        rows = conn.execute(query.where(where).limit(PAGE_ROWS)).all()
        if len(rows) < PAGE_ROWS:
            if rows:
                yield rows
            return
        tail = rows[-1].token
        whole = [row for row in rows if row.token != tail]
        if not whole:  # one token with a page of entries: read it alone
            whole = conn.execute(query.where(and_(active, t.token == tail))).all()
        last = whole[-1].token
        yield whole


def _winners(rows: list) -> Iterator:
    """For each token of a token-ordered page, the entry a device holds."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i].token != rows[start].token:
            yield min(rows[start:i], key=precedence)
            start = i


def _token_row(entry, entry_id: int) -> dict:
    return dict(list_id=entry.list_id, token=entry.token, entry_id=entry_id, kind=entry.kind.value,
                category=entry.category, action=entry.action.value, reference=entry.reference,
                valid_from=entry.valid_from, valid_until=entry.valid_until, redress=entry.redress)


def _remake_clearances(conn, list_id: str, key: bytes) -> list[Clearance]:
    """Each published clearance's allow-token again, from the register's document; the register's links too.

    The register is small (people cleared by hand), so it is read whole.
    """
    lc, c, cl = db.list_clearances.c, clearances.c, clearance_lists.c
    documents = {row.clearance_id: row for row in conn.execute(
        select(c.clearance_id, c.redress_number, c.document_class, c.issuer, c.document_number)
        .select_from(clearances.join(clearance_lists, cl.clearance_id == c.clearance_id))
        .where(cl.list_id == list_id))}

    def token_of(clearance_id: int) -> bytes:
        row = documents.get(clearance_id)
        if row is None:
            raise RekeyError(f"clearance {clearance_id} is published on list {list_id!r} but not in the register; "
                             "its token cannot be made again, so nothing was re-keyed")
        try:
            return document_token(key, DocumentClass(row.document_class), row.issuer, row.document_number)
        except (IdentityError, ValueError) as exc:
            raise RekeyError(f"clearance {row.redress_number}: {exc}; nothing was re-keyed") from None

    published = conn.execute(select(lc.clearance_id, lc.redress_number, lc.valid_until)
                             .where(lc.list_id == list_id)).all()
    remade = [(Clearance(token_of(row.clearance_id), list_id, row.redress_number, row.valid_until), row.clearance_id)
              for row in published]
    for clearance_id in documents:
        conn.execute(update(clearance_lists).where(and_(cl.clearance_id == clearance_id, cl.list_id == list_id))
                     .values(token=token_of(clearance_id)))
    conn.execute(delete(db.list_clearances).where(lc.list_id == list_id))
    if remade:
        conn.execute(insert(db.list_clearances), [
            {"list_id": list_id, "token": clr.token, "clearance_id": cid, "redress_number": clr.redress_number,
             "valid_until": clr.valid_until} for clr, cid in remade])
    return [clr for clr, _ in remade]


# -- SQLite: no copy of the old key left behind --------------------------------------

def _secure_delete(conn, on: bool) -> bool | None:
    """Set SQLite's secure_delete on this connection; returns the setting it had (None: not SQLite)."""
    if conn.dialect.name != "sqlite":
        return None
    before = bool(conn.exec_driver_sql("PRAGMA secure_delete").scalar())
    conn.exec_driver_sql(f"PRAGMA secure_delete = {1 if on else 0}")
    conn.commit()  # end SQLAlchemy's autobegun transaction: the re-key begins its own
    return before


def _truncate_wal(engine) -> bool | None:
    """Copy the WAL into the database and empty it, so no page with the old key stays there."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]
    return busy == 0
