"""Authority list imports: a dry-run preview by one list admin, then one publish confirmed by another.

Issue 5, "Authority lists". The steps (docs/imports.md):

1. ``start``: a file is recorded (its format and column names); nothing else.
2. ``preview``: the file is streamed a batch of rows at a time. Each row is
   mapped (registry/importer.py) and compared, by the authority's reference,
   with the entries earlier imports of this list made: the same fingerprint
   is *unchanged*; a new or changed row is an *addition*, its tokens expanded
   now so that a row the token layer refuses is refused in the preview, not
   halfway through the apply. Every row lands in ``import_rows``, so the
   diff is worked out by the database and memory never holds the file.
   *Removals* are the active imported entries whose reference is in no row
   (a changed row's old entry too). Nothing is published.
3. ``apply``: a second, different list admin confirms; the staged rows are
   published as ONE version (``Registry.change``), in batches, with the
   import's record and audit record in the same transaction. If the list
   moved since the preview, the apply is refused: preview again.

Importing the same file again finds every row unchanged: the preview says
so and there is nothing to apply, so no version is made. Entries that came
from reports and reviews are never removed by an import, and a case that a
person lifted (an appeal) is never listed again by one: that row is refused.
"""

from __future__ import annotations

import json
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from appliance.records import TokenKind
from registry import db
from registry.audit import AuditLog
from registry.entries import STATUS_ACTIVE, STATUS_REMOVED, InvalidEntry, expand_entry
from registry.import_readers import (
    SNIFF_BYTES,
    BadRow,
    CountingReader,
    detect_delimiter,
    detect_format,
    header_columns,
    read_rows,
)
from registry.importer import (
    ImportMapping,
    ImportProblem,
    MappedRow,
    Refusal,
    fields_from_dict,
    fields_to_dict,
    map_row,
)
from registry.list_change import PreparedEntry, chunks, list_row
from registry.publish import Registry

UPLOADED, PREVIEWING, PREVIEWED, UNCHANGED = "uploaded", "previewing", "previewed", "unchanged"
APPLIED, DISCARDED, STALE, FAILED = "applied", "discarded", "stale", "failed"
ROW_ADD, ROW_KEEP, ROW_REFUSED, ROW_DUPLICATE = "add", "keep", "refused", "duplicate"
#: Rows mapped, looked up and staged per step; also entries published per step of an apply.
BATCH = 2_000
#: SQLite page cache of the connection that applies an import (KiB).
BULK_CACHE_KIB = 128 * 1024
#: Refused rows kept with an import once it is applied or discarded (all of them are counted).
KEPT_REFUSALS = 1_000
_KIND_BYTE = {TokenKind.DOCUMENT: b"D", TokenKind.PERSON: b"P"}
_BYTE_KIND = {v[0]: k for k, v in _KIND_BYTE.items()}

metadata = MetaData()

imports = Table(
    "imports", metadata,
    Column("import_id", String(32), primary_key=True),
    Column("list_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("file_format", String(8), nullable=False),  # csv | json | jsonl
    Column("delimiter", String(1)),
    Column("columns", Text, nullable=False),  # JSON list: the file's column names, for the mapping form
    Column("upload_path", Text),  # a web upload kept under the data dir until applied or discarded
    Column("created_by", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("mapping", Text),
    Column("previewed_by", Text),
    Column("previewed_at", BigInteger),
    Column("base_version", BigInteger),  # the list's version the preview was made against
    Column("token_key_id", String(16)),
    Column("file_sha256", String(64)),
    Column("file_bytes", BigInteger),
    Column("rows", BigInteger),
    Column("additions", BigInteger),
    Column("removals", BigInteger),
    Column("unchanged", BigInteger),
    Column("refused", BigInteger),
    Column("confirmed_by", Text),
    Column("applied_at", BigInteger),
    Column("applied_version", BigInteger),
    Column("failure", Text),
)

#: One row of the file per row: what the preview decided and, for an addition, the entry and its tokens.
import_rows = Table(
    "import_rows", metadata,
    Column("import_id", String(32), primary_key=True),
    Column("row_no", BigInteger, primary_key=True),  # the line (CSV, JSON lines) or item number (JSON array)
    Column("kind", String(10), nullable=False),  # add | keep | refused | duplicate
    Column("reference", Text),
    Column("fingerprint", String(64)),
    Column("entry_id", Integer),  # keep: the entry that stays; add: the entry a changed row replaces
    Column("fields", Text),  # add: the entry (registry/importer.py fields_to_dict)
    Column("tokens", LargeBinary),  # add: 13 bytes a token, kind letter + token
    Column("reason", Text),  # refused, duplicate
)
Index("ix_import_rows_reference", import_rows.c.import_id, import_rows.c.reference, import_rows.c.row_no)
Index("ix_import_rows_entry", import_rows.c.import_id, import_rows.c.entry_id)

Progress = Callable[[int], None]


class ImportRefused(ImportProblem):
    code = "import_refused"


class UnknownImport(ImportProblem):
    code = "unknown_import"


@dataclass(frozen=True)
class ImportRecord:
    """One import, as the history and the preview page show it."""

    import_id: str
    list_id: str
    status: str
    file_name: str
    file_format: str
    delimiter: str | None
    columns: tuple[str, ...]
    upload_path: str | None
    created_by: str
    created_at: int
    mapping: ImportMapping | None
    previewed_by: str | None
    previewed_at: int | None
    base_version: int | None
    token_key_id: str | None
    file_sha256: str | None
    file_bytes: int | None
    rows: int | None
    additions: int | None
    removals: int | None
    unchanged: int | None
    refused: int | None
    confirmed_by: str | None
    applied_at: int | None
    applied_version: int | None
    failure: str | None

    @classmethod
    def from_row(cls, row) -> "ImportRecord":
        values = row._asdict()
        values["columns"] = tuple(json.loads(values["columns"]))
        values["mapping"] = ImportMapping.from_dict(json.loads(values["mapping"])) if values["mapping"] else None
        return cls(**values)

    @property
    def counts(self) -> dict[str, int | None]:
        return {"rows": self.rows, "additions": self.additions, "removals": self.removals,
                "unchanged": self.unchanged, "refused": self.refused}

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("upload_path", "mapping", "columns")}
        out["mapping"] = self.mapping.to_dict() if self.mapping else None
        return out


@dataclass(frozen=True)
class RefusedRow:
    row_no: int
    reference: str | None
    reason: str


def _pack(tokens: Iterable[tuple[bytes, TokenKind]]) -> bytes:
    return b"".join(_KIND_BYTE[TokenKind(k)] + t for t, k in tokens)


def _unpack(blob: bytes) -> tuple[tuple[bytes, TokenKind], ...]:
    return tuple((blob[i + 1:i + 13], _BYTE_KIND[blob[i]]) for i in range(0, len(blob), 13))


@contextmanager
def _bulk_cache(conn) -> Iterator[None]:
    """A bigger SQLite page cache while one import is applied, then the connection's own again.

    A million-row import inserts some ten million index entries with random
    keys (tokens); with SQLite's default 2 MiB cache nearly every one
    misses. A fixed size keeps the apply's memory bounded whatever the file.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Imports:
    """Import runs of authority lists over the registry database; publishing goes through ``registry``."""

    def __init__(self, engine: Engine, registry: Registry, audit: AuditLog, *, clock: Callable[[], float] = time.time,
                 batch: int = BATCH) -> None:
        self.engine = engine
        self.registry = registry
        self.audit = audit
        self._clock = clock
        self._batch = batch
        metadata.create_all(engine)

    def _now(self, now: float | None) -> int:
        return int(self._clock() if now is None else now)

    # -- reading -----------------------------------------------------------------

    def get(self, import_id: str) -> ImportRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(imports).where(imports.c.import_id == import_id)).first()
        if row is None:
            raise UnknownImport(f"there is no import {import_id!r}")
        return ImportRecord.from_row(row)

    def history(self, list_id: str | None = None, *, status: str | None = None,
                limit: int = 100) -> list[ImportRecord]:
        """Newest first."""
        query = select(imports).order_by(imports.c.created_at.desc(), imports.c.import_id).limit(limit)
        if list_id is not None:
            query = query.where(imports.c.list_id == list_id)
        if status is not None:
            query = query.where(imports.c.status == status)
        with self.engine.connect() as conn:
            return [ImportRecord.from_row(row) for row in conn.execute(query)]

    def refusals(self, import_id: str, *, limit: int = 50, offset: int = 0) -> list[RefusedRow]:
        """Refused rows in file order."""
        r = import_rows.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(r.row_no, r.reference, r.reason).where(and_(
                r.import_id == import_id, r.kind.in_((ROW_REFUSED, ROW_DUPLICATE)))).order_by(r.row_no)
                .limit(limit).offset(offset))
            return [RefusedRow(row.row_no, row.reference, row.reason) for row in rows]

    def removal_sample(self, import_id: str, *, limit: int = 10) -> list[dict]:
        """The first entries a previewed import would withdraw (entry id, reference, name), to check by eye."""
        record = self.get(import_id)
        if record.status != PREVIEWED:
            return []
        e = db.entries.c
        with self.engine.connect() as conn:
            ids = [i for i, in conn.execute(self._removals(record).limit(limit))]
            rows = conn.execute(select(e.entry_id, e.reference, e.surnames, e.given_names)
                                .where(e.entry_id.in_(ids)).order_by(e.entry_id)) if ids else []
            return [row._asdict() for row in rows]

    def last_mapping(self, list_id: str) -> ImportMapping | None:
        """The mapping of the list's last applied import: the next file of the same authority likely fits it."""
        with self.engine.connect() as conn:
            text = conn.execute(select(imports.c.mapping).where(and_(
                imports.c.list_id == list_id, imports.c.status.in_((APPLIED, UNCHANGED))))
                .order_by(imports.c.previewed_at.desc()).limit(1)).scalar()
        return ImportMapping.from_dict(json.loads(text)) if text else None

    # -- 1. start ----------------------------------------------------------------

    def start(self, list_id: str, path: str | Path, *, file_name: str, by: str, keep_file: bool = False,
              file_format: str | None = None, import_id: str | None = None,
              now: float | None = None) -> ImportRecord:
        """Record a file to import: its format and column names. ``keep_file``: a web upload the import owns."""
        self.registry.current_version(list_id)  # UnknownList names the typo
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        detected = detect_format(file_name, head)
        fmt = file_format or detected
        delimiter = detect_delimiter(head) if fmt == "csv" else None
        with open(path, "rb") as fh:
            columns = header_columns(CountingReader(fh), fmt, delimiter=delimiter or ",")
        import_id = import_id or secrets.token_hex(8)
        with self.engine.begin() as conn:
            conn.execute(insert(imports).values(
                import_id=import_id, list_id=list_id, status=UPLOADED, file_name=file_name[:255], file_format=fmt,
                delimiter=delimiter, columns=json.dumps(columns, ensure_ascii=False),
                upload_path=str(path) if keep_file else None, created_by=by, created_at=self._now(now)))
        return self.get(import_id)

    # -- 2. preview ----------------------------------------------------------------

    def preview(self, import_id: str, mapping: ImportMapping, *, by: str, path: str | Path | None = None,
                progress: Progress | None = None, now: float | None = None) -> ImportRecord:
        """Stream the file, stage every row and count the diff; publishes nothing. ``progress(bytes read)``."""
        at = self._now(now)
        today = datetime.fromtimestamp(at, timezone.utc).date()
        record = self.get(import_id)
        if record.status not in (UPLOADED, PREVIEWED, UNCHANGED, FAILED, STALE):
            raise ImportRefused(f"import {import_id} is {record.status}; it cannot be previewed again")
        source = path or record.upload_path
        if source is None:
            raise ImportRefused(f"the file of import {import_id} is not kept; start a new import with the file")
        with self.engine.begin() as conn:
            lst = list_row(conn, record.list_id)
            conn.execute(delete(import_rows).where(import_rows.c.import_id == import_id))
            conn.execute(update(imports).where(imports.c.import_id == import_id).values(
                status=PREVIEWING, mapping=json.dumps(mapping.to_dict(), ensure_ascii=False), previewed_by=by,
                previewed_at=at, base_version=lst.current_version, token_key_id=lst.token_key_id, failure=None,
                rows=None, additions=None, removals=None, unchanged=None, refused=None))
        try:
            with open(source, "rb") as fh:
                counter = CountingReader(fh)
                rows = read_rows(counter, record.file_format, delimiter=record.delimiter or ",")
                for batch in _batches(rows, self._batch):
                    staged = self._stage(import_id, record.list_id, bytes(lst.token_key), batch, mapping, today)
                    with self.engine.begin() as conn:
                        conn.execute(insert(import_rows), staged)
                    if progress is not None:
                        progress(counter.position)
                counter.drain()
        except ImportProblem as exc:
            self._fail(import_id, exc.message)
            raise
        except OSError as exc:
            self._fail(import_id, f"the file cannot be read: {exc.strerror or exc}")
            raise ImportRefused(f"the file cannot be read: {exc.strerror or exc}") from None
        if progress is not None:
            progress(counter.position)
        with self.engine.begin() as conn:
            self._mark_duplicates(conn, import_id)
            counts = self._counts(conn, record)
            status = PREVIEWED if counts["additions"] or counts["removals"] else UNCHANGED
            if conn.execute(update(imports).where(and_(
                    imports.c.import_id == import_id, imports.c.status == PREVIEWING)).values(
                    status=status, file_sha256=counter.sha256.hexdigest(), file_bytes=counter.position,
                    **counts)).rowcount != 1:
                raise ImportRefused(f"import {import_id} was discarded while it was being previewed")
            self.audit.append(conn, actor=by, action="import.preview", subject=f"import:{import_id}",
                              reason=f"{record.file_name} onto list {record.list_id}", at=at,
                              after={"list_id": record.list_id, "status": status, "file_name": record.file_name,
                                     "file_sha256": counter.sha256.hexdigest(), "base_version": lst.current_version,
                                     "mapping": mapping.to_dict(), **counts})
        if status == UNCHANGED:
            self._prune_rows(import_id)
        return self.get(import_id)

    def _stage(self, import_id: str, list_id: str, key: bytes, batch: list, mapping: ImportMapping,
               today: date) -> list[dict]:
        mapped = [(row_no, Refusal(rec.reason) if isinstance(rec, BadRow) else map_row(rec, mapping, today=today))
                  for row_no, rec in batch]
        references = sorted({r.fields.reference if isinstance(r, MappedRow) else r.reference
                             for _, r in mapped} - {None})
        known = self._known(list_id, references)
        out = []
        for row_no, result in mapped:
            row = dict(import_id=import_id, row_no=row_no, kind=ROW_REFUSED, reference=None, fingerprint=None,
                       entry_id=None, fields=None, tokens=None, reason=None)
            if isinstance(result, Refusal):
                out.append({**row, "reference": result.reference, "reason": result.reason})
                continue
            reference = result.fields.reference
            row.update(reference=reference, fingerprint=result.fingerprint)
            history = known.get(reference, [])
            active = [h for h in history if h.status == STATUS_ACTIVE]
            same = next((h for h in active if h.fingerprint == result.fingerprint), None)
            lifted = next((h for h in history if h.status == STATUS_REMOVED and h.removed_by_import is None), None)
            if same is not None:
                out.append({**row, "kind": ROW_KEEP, "entry_id": same.entry_id})
            elif lifted is not None:
                on = datetime.fromtimestamp(lifted.removed_at or 0, timezone.utc).date()
                out.append({**row, "reason": f"case {reference!r} was lifted from this list on {on} by "
                                             f"{lifted.removed_by} (entry {lifted.entry_id}); an import never "
                                             "lists it again: that needs a new decision"})
            else:
                try:
                    tokens = expand_entry(key, result.fields)
                except InvalidEntry as exc:
                    out.append({**row, "reason": exc.message})
                    continue
                out.append({**row, "kind": ROW_ADD, "entry_id": active[0].entry_id if active else None,
                            "fields": json.dumps(fields_to_dict(result.fields), ensure_ascii=False),
                            "tokens": _pack(tokens)})
        return out

    def _known(self, list_id: str, references: list[str]) -> dict[str, list]:
        """Every entry earlier imports of this list made for these references, with its status."""
        s, e = db.imported_entries.c, db.entries.c
        out: dict[str, list] = {}
        with self.engine.connect() as conn:
            for part in chunks(references):
                for row in conn.execute(
                        select(s.entry_id, s.reference, s.fingerprint, s.removed_by_import, e.status, e.removed_by,
                               e.removed_at)
                        .select_from(db.imported_entries.join(db.entries, e.entry_id == s.entry_id))
                        .where(and_(s.list_id == list_id, s.reference.in_(part)))):
                    out.setdefault(row.reference, []).append(row)
        return out

    @staticmethod
    def _mark_duplicates(conn, import_id: str) -> None:
        """The first row of a reference decides; later rows with it are refused (they cannot all be the case)."""
        r = import_rows.c
        other = import_rows.alias("first")
        first = (select(func.min(other.c.row_no)).where(and_(
            other.c.import_id == import_id, other.c.reference == r.reference)).scalar_subquery())
        repeated = (select(r.reference).where(and_(r.import_id == import_id, r.reference.is_not(None)))
                    .group_by(r.reference).having(func.count() > 1))
        conn.execute(update(import_rows).where(and_(
            r.import_id == import_id, r.reference.in_(repeated), r.row_no > first)).values(
            kind=ROW_DUPLICATE, fields=None, tokens=None, entry_id=None,
            reason=literal("the same reference is on row ") + cast(first, String) + literal(", which is used")))

    def _removals(self, record: ImportRecord):
        """Active entries earlier imports of the list made, that no row keeps and no refused row holds on to."""
        s, e, r = db.imported_entries.c, db.entries.c, import_rows.c
        kept = select(r.row_no).where(and_(r.import_id == record.import_id, r.entry_id == s.entry_id,
                                           r.kind == ROW_KEEP)).exists()
        held = select(r.row_no).where(and_(r.import_id == record.import_id, r.reference == s.reference,
                                           r.kind == ROW_REFUSED)).exists()
        return (select(s.entry_id).select_from(db.imported_entries.join(db.entries, e.entry_id == s.entry_id))
                .where(and_(s.list_id == record.list_id, e.status == STATUS_ACTIVE, ~kept, ~held))
                .order_by(s.entry_id))

    def _counts(self, conn, record: ImportRecord) -> dict[str, int]:
        r = import_rows.c
        by_kind = dict(conn.execute(select(r.kind, func.count()).where(r.import_id == record.import_id)
                                    .group_by(r.kind)).all())
        removals = conn.execute(select(func.count()).select_from(self._removals(record).subquery())).scalar_one()
        return {"rows": sum(by_kind.values()), "additions": by_kind.get(ROW_ADD, 0), "removals": removals,
                "unchanged": by_kind.get(ROW_KEEP, 0),
                "refused": by_kind.get(ROW_REFUSED, 0) + by_kind.get(ROW_DUPLICATE, 0)}

    def _fail(self, import_id: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(imports).where(imports.c.import_id == import_id).values(status=FAILED, failure=reason))
        self._prune_rows(import_id, keep_refusals=0)

    # -- 3. apply ----------------------------------------------------------------

    def apply(self, import_id: str, *, confirmed_by: str, progress: Progress | None = None,
              now: float | None = None) -> ImportRecord:
        """Publish a previewed import as one version; ``confirmed_by`` must not be who previewed it.

        ``progress(entries done)`` counts removals, then additions.
        """
        record = self._applicable(self.get(import_id), confirmed_by)
        at = self._now(now)
        done = 0
        with self.registry.change(record.list_id, by=confirmed_by, now=at) as change, _bulk_cache(change.conn):
            conn = change.conn
            record = self._applicable(ImportRecord.from_row(conn.execute(
                select(imports).where(imports.c.import_id == import_id).with_for_update()).one()), confirmed_by)
            if (change.lst.current_version, change.lst.token_key_id) != (record.base_version, record.token_key_id):
                raise ImportRefused(f"list {record.list_id} moved from version {record.base_version} to "
                                    f"{change.lst.current_version} since the preview; preview the file again")
            removed = added = 0
            after = 0
            while True:  # keyset over entry ids: each batch starts where the last one ended
                ids = [i for i, in conn.execute(self._removals(record)
                                                .where(db.imported_entries.c.entry_id > after).limit(self._batch))]
                if not ids:
                    break
                after = ids[-1]
                change.remove(ids)
                conn.execute(update(db.imported_entries).where(db.imported_entries.c.entry_id.in_(ids))
                             .values(removed_by_import=import_id))
                removed += len(ids)
                done += len(ids)
                if progress is not None:
                    progress(done)
            r, last = import_rows.c, -1
            while True:
                rows = conn.execute(select(r.row_no, r.reference, r.fingerprint, r.fields, r.tokens).where(and_(
                    r.import_id == import_id, r.kind == ROW_ADD, r.row_no > last)).order_by(r.row_no)
                    .limit(self._batch)).all()
                if not rows:
                    break
                ids = change.add([PreparedEntry(fields_from_dict(json.loads(row.fields)), _unpack(bytes(row.tokens)))
                                  for row in rows])
                conn.execute(insert(db.imported_entries), [
                    dict(entry_id=i, list_id=record.list_id, reference=row.reference, fingerprint=row.fingerprint,
                         import_id=import_id) for i, row in zip(ids, rows)])
                added += len(rows)
                done += len(rows)
                last = rows[-1].row_no
                if progress is not None:
                    progress(done)
            if (added, removed) != (record.additions, record.removals):
                raise ImportRefused(f"import {import_id} no longer matches its preview ({added} additions and "
                                    f"{removed} removals now); preview the file again")
            conn.execute(update(imports).where(imports.c.import_id == import_id).values(
                status=APPLIED, confirmed_by=confirmed_by, applied_at=at, applied_version=change.version,
                upload_path=None))
            stale = and_(imports.c.list_id == record.list_id, imports.c.import_id != import_id,
                         imports.c.status.in_((PREVIEWED, UNCHANGED)))
            outdated = list(conn.execute(select(imports.c.import_id).where(stale)).scalars())
            conn.execute(update(imports).where(stale).values(status=STALE))  # their diffs are against an old version
            self.audit.append(conn, actor=confirmed_by, action="import.apply", subject=f"import:{import_id}",
                              reason=f"confirmed the preview by {record.previewed_by}", at=at,
                              before={"list_id": record.list_id, "version": record.base_version},
                              after={"list_id": record.list_id, "version": change.version,
                                     "previewed_by": record.previewed_by, "confirmed_by": confirmed_by,
                                     "file_name": record.file_name, "file_sha256": record.file_sha256,
                                     **record.counts})
        self._forget_upload(record)
        for done_with in (import_id, *outdated):
            self._prune_rows(done_with)
        return self.get(import_id)

    @staticmethod
    def _applicable(record: ImportRecord, confirmed_by: str) -> ImportRecord:
        if record.status == UNCHANGED:
            raise ImportRefused(f"import {record.import_id} changes nothing: the file matches the list as it "
                                "stands, so there is nothing to apply (no new version)")
        if record.status != PREVIEWED:
            raise ImportRefused(f"import {record.import_id} is {record.status}; only a previewed import can be applied")
        if not confirmed_by or confirmed_by == record.previewed_by:
            raise ImportRefused(f"two people: {record.previewed_by} made the preview, so a different list admin "
                                "must confirm it")
        return record

    # -- housekeeping ----------------------------------------------------------------

    def discard(self, import_id: str, *, by: str, now: float | None = None) -> ImportRecord:
        """Drop an import that will not be applied: its staged rows and kept file go."""
        record = self.get(import_id)
        if record.status in (APPLIED, DISCARDED):
            raise ImportRefused(f"import {import_id} is {record.status}; it cannot be discarded")
        with self.engine.begin() as conn:
            conn.execute(update(imports).where(imports.c.import_id == import_id).values(
                status=DISCARDED, upload_path=None))
            self.audit.append(conn, actor=by, action="import.discard", subject=f"import:{import_id}",
                              reason=f"{record.file_name} onto list {record.list_id}", at=self._now(now),
                              before={"status": record.status, **record.counts}, after={"status": DISCARDED})
        self._forget_upload(record)
        self._prune_rows(import_id)
        return self.get(import_id)

    def _forget_upload(self, record: ImportRecord) -> None:
        if record.upload_path:
            Path(record.upload_path).unlink(missing_ok=True)

    def _prune_rows(self, import_id: str, *, keep_refusals: int = KEPT_REFUSALS) -> None:
        """Staged additions are published or moot; keep the first refused rows for the history page."""
        r = import_rows.c
        with self.engine.begin() as conn:
            conn.execute(delete(import_rows).where(and_(
                r.import_id == import_id, r.kind.in_((ROW_ADD, ROW_KEEP)))))
            cutoff = conn.execute(select(r.row_no).where(r.import_id == import_id).order_by(r.row_no)
                                  .offset(keep_refusals).limit(1)).scalar()
            if cutoff is not None:
                conn.execute(delete(import_rows).where(and_(r.import_id == import_id, r.row_no >= cutoff)))
