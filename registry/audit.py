"""The registry's audit log: every change, append-only, each record chained to the one before.

Issue 5, "Audit": who, when, what, why, before and after, in the registry
database, each record carrying the hash of the previous one. The record is
written in the same transaction as the change it describes, so a change
without its record (or the reverse) cannot be committed. Editing or
deleting any record, or inserting one in the middle, breaks the chain at
that point, and ``verify`` names the first record that no longer fits.

The hash is SHA-256 over the previous record's hash and a canonical JSON of
the record (sorted keys, no spaces, UTF-8). docs/audit.md gives the layout,
so an auditor can check an export with any SHA-256 tool. A chain is not a
signature: someone with write access to the whole database could rewrite
every later record too. Exports therefore carry the head hash, which an
auditor keeps; a later export must extend it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, time as day_time, timezone
from typing import Any, Iterable, Iterator

from sqlalchemy import BigInteger, Column, Connection, Engine, Integer, LargeBinary, MetaData, String, Table, Text
from sqlalchemy import and_, insert, select

from registry.db import RegistryError

GENESIS = bytes(32)
HASH_DOMAIN = b"GCAUDIT1\n"
MAX_ACTOR_CHARS = 200

metadata = MetaData()

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", Text, nullable=False),  # e.g. "entry:42", "list:nfl", "device:1f2e..."
    Column("reason", Text, nullable=False),
    Column("before", Text),  # canonical JSON, None when the subject did not exist
    Column("after", Text),  # canonical JSON, None when the subject is gone
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)


class AuditError(RegistryError):
    code = "audit_error"


def canonical_json(value: Any) -> str | None:
    """The one JSON text of ``value``: sorted keys, no spaces, dates as ISO strings."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class AuditRecord:
    """One change. ``before``/``after`` are canonical JSON texts (or None)."""

    seq: int
    at: int
    actor: str
    action: str
    subject: str
    reason: str
    before: str | None
    after: str | None
    prev_hash: bytes
    hash: bytes

    def body(self) -> dict[str, Any]:
        """The fields the hash covers, as exported."""
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                "subject": self.subject, "reason": self.reason, "before": self.before, "after": self.after}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "prev_hash": self.prev_hash.hex(), "hash": self.hash.hex()}

    @classmethod
    def from_row(cls, row) -> "AuditRecord":
        """From a row of ``audit_log`` (a page of the log read by the web UI, say)."""
        return cls(row.seq, row.at, row.actor, row.action, row.subject, row.reason, row.before, row.after,
                   bytes(row.prev_hash), bytes(row.hash))


def record_hash(prev_hash: bytes, body: dict[str, Any]) -> bytes:
    """SHA-256(domain || previous hash || canonical JSON of the body): pure, docs/audit.md."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(HASH_DOMAIN + prev_hash + text.encode("utf-8")).digest()


def chain_problems(records: Iterable[AuditRecord], *, expect_prev: bytes = GENESIS,
                   expect_seq: int = 1) -> list[str]:
    """Why a run of records is not an unbroken chain; [] when it is. Pure.

    ``expect_prev``/``expect_seq`` continue a chain from a known record (an
    auditor's kept head hash), so a range can be checked on its own.
    """
    problems: list[str] = []
    prev, seq = expect_prev, expect_seq
    for record in records:
        if record.seq != seq:
            problems.append(f"record {record.seq}: expected record {seq} next (a record is missing or inserted)")
        if record.prev_hash != prev:
            problems.append(f"record {record.seq}: does not point at the record before it")
        if record_hash(record.prev_hash, record.body()) != record.hash:
            problems.append(f"record {record.seq}: its content does not match its hash (edited)")
        if problems:
            return problems  # everything after the first break is unanchored
        prev, seq = record.hash, record.seq + 1
    return problems


def record_filter(*, since: int | None = None, until: int | None = None, subject: str | None = None,
                  actor: str | None = None) -> list:
    """The WHERE terms of an export's filters: one definition for the command, the page and its download."""
    c = audit_log.c
    where = []
    if since is not None:
        where.append(c.at >= since)
    if until is not None:
        where.append(c.at <= until)
    if subject is not None:
        where.append(c.subject == subject)
    if actor is not None:
        where.append(c.actor == actor)
    return where


def day_bounds(first: date | None, last: date | None) -> tuple[int | None, int | None]:
    """Unix seconds from the start of ``first`` to the end of ``last`` (UTC days, inclusive)."""
    since = None if first is None else int(datetime.combine(first, day_time.min, timezone.utc).timestamp())
    until = None if last is None else int(datetime.combine(last, day_time.max, timezone.utc).timestamp())
    return since, until


#: The columns of a CSV export, in order: the hashed body, then the links (as in the JSON lines).
EXPORT_FIELDS = ("seq", "at", "actor", "action", "subject", "reason", "before", "after", "prev_hash", "hash")
#: A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_jsonl(records: Iterable[AuditRecord]) -> Iterator[str]:
    """One JSON object per line, with its hashes, so an export can be checked on its own (docs/audit.md)."""
    for record in records:
        yield json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"


def export_csv(records: Iterable[AuditRecord]) -> Iterator[str]:
    """The same records as CSV, for reading in a spreadsheet.

    Free text that a spreadsheet would run as a formula is prefixed with an
    apostrophe, so such a cell no longer matches its hash: verify from the
    JSON lines, read from the CSV.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(EXPORT_FIELDS)
    for record in records:
        row = record.to_dict()
        yield line(["'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else ("" if v is None else v)
                    for v in (row[name] for name in EXPORT_FIELDS)])


class AuditLog:
    """The audit table: append inside the caller's transaction, read, verify, export."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    @staticmethod
    def append(conn: Connection, *, actor: str, action: str, subject: str, reason: str = "",
               before: Any = None, after: Any = None, at: float | None = None) -> AuditRecord:
        """Chain one record onto the log, in ``conn``'s open transaction.

        Two writers that read the same head both try to insert the same
        ``seq``; the primary key lets one commit and the other's transaction
        fail (IntegrityError), so the chain never forks.
        """
        if not actor or len(actor) > MAX_ACTOR_CHARS:
            raise AuditError(f"an audit record needs who made the change (1-{MAX_ACTOR_CHARS} characters)")
        head = conn.execute(select(audit_log.c.seq, audit_log.c.hash)
                            .order_by(audit_log.c.seq.desc()).limit(1)).first()
        seq, prev = (head.seq + 1, bytes(head.hash)) if head is not None else (1, GENESIS)
        body = {"seq": seq, "at": int(time.time() if at is None else at), "actor": actor, "action": action,
                "subject": subject, "reason": reason, "before": canonical_json(before),
                "after": canonical_json(after)}
        digest = record_hash(prev, body)
        conn.execute(insert(audit_log).values(**body, prev_hash=prev, hash=digest))
        return AuditRecord(**body, prev_hash=prev, hash=digest)

    def records(self, *, since: int | None = None, until: int | None = None, subject: str | None = None,
                actor: str | None = None, batch: int = 1000) -> Iterator[AuditRecord]:
        """Records in order, filtered by time (Unix seconds, inclusive), subject and actor; read in batches."""
        c = audit_log.c
        where = record_filter(since=since, until=until, subject=subject, actor=actor)
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(audit_log).where(and_(c.seq > last, *where))
                                    .order_by(c.seq).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield AuditRecord.from_row(row)
            last = rows[-1].seq

    def verify(self) -> tuple[int, list[str]]:
        """(records checked, problems): the whole chain from the first record."""
        count = 0

        def counted() -> Iterator[AuditRecord]:
            nonlocal count
            for record in self.records():
                count += 1
                yield record

        problems = chain_problems(counted())
        return count, problems

    def head(self) -> AuditRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).first()
        return None if row is None else AuditRecord.from_row(row)
