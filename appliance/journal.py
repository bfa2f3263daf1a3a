"""The verdict journal: every verdict shown at the counter, hash-chained.

Each record holds what an audit needs (time, verdict, reasons, the list
versions and digests used, matched references, channel, operator) and a
masked document number, never the full one: the device must not keep a
plaintext document number (issue 3, "No plaintext").

Chain: ``hash = sha256(prev_hash + body)`` where ``prev_hash`` is the
previous record's hash as 64 hex characters (the first record uses 64
zeros) and ``body`` is the record's canonical JSON (sorted keys, no
whitespace, UTF-8) including its ``seq``, ``at`` and ``verdict``. Editing,
deleting or moving a record breaks the hash or a link; docs/journal.md.

Retention removes old records but leaves the chain checkable: each run of
removed seqs is kept in ``purged`` with the hash of its last record, which
is what the next surviving record's ``prev_hash`` names.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from appliance.journal_db import (
    JournalDbError,
    SharedConnection,
    canonical_json,
    immediate,
    parse_utc,
    utc_iso,
)
from appliance.verdict import Verdict, mask_document_number
from appliance.wal_flush import WalFlushFailed, WalFlusher

GENESIS = "0" * 64
VERDICTS = tuple(verdict.value for verdict in Verdict)
MAX_VISIBLE = 3  # characters of a document number a journal record may show
MIN_REDACTED = 6  # shorter numbers are not searched for in free text
CLEAR_DAYS = 30
MATCH_DAYS = 365
_MATCH_KEYS = ("list", "list_name", "action", "kind", "category", "reference")
#: With deferred sync, a WAL checkpoint every this many records (~3-4 WAL
#: pages each: about SQLite's default of 1000 pages), run by the flusher.
CHECKPOINT_EVERY = 256


class JournalError(JournalDbError):
    """A record the journal refuses, or a journal it cannot use."""


class UnmaskedDocumentNumber(JournalError):
    """The record would put a readable document number in the journal."""


@dataclass(frozen=True)
class JournalRecord:
    """One journaled verdict. ``seq`` doubles as the SSE event id."""

    seq: int
    at: datetime
    verdict: str
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    lists: dict[str, Any]
    matches: tuple[dict[str, Any], ...]
    channel: str | None
    operator: str | None
    masked_document_number: str | None
    snapshot_age_seconds: float | None
    stale: bool | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": utc_iso(self.at),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "lists": self.lists,
            "matches": [dict(m) for m in self.matches],
            "channel": self.channel,
            "operator": self.operator,
            "masked_document_number": self.masked_document_number,
            "snapshot_age_seconds": self.snapshot_age_seconds,
            "stale": self.stale,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class JournalReport:
    """What ``verify`` found: the first problem, or how much is intact."""

    ok: bool
    records: int
    purged: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    def line(self) -> str:
        if not self.ok:
            return f"journal broken: {self.problem}"
        kept = f"{self.records} record{'' if self.records == 1 else 's'}"
        purged = f" ({self.purged} purged by retention)" if self.purged else ""
        return f"journal ok: {kept}, chain intact{purged}"


def record_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


class Journal(SharedConnection):
    """The journal table of journal.db. ``path`` is the file or the data dir.

    By default every append is on disk when it returns (``synchronous=FULL``).
    With ``deferred_sync`` an append returns once committed to the WAL (safe
    from a killed process) and a background thread fsyncs it right after,
    many appends per fsync; ``wait_durable`` waits for that. The counter uses
    it to keep the disk off the verdict's path; docs/journal.md, "Durability".
    """

    def __init__(self, path: str | Path, *, create: bool = True, deferred_sync: bool = False) -> None:
        super().__init__(path, create=create)
        self._flusher: WalFlusher | None = None
        if deferred_sync:
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA wal_autocheckpoint = 0")  # the flusher checkpoints instead
            db_file = self.db.execute("PRAGMA database_list").fetchone()[2]
            self._flusher = WalFlusher(db_file, checkpoint_every=CHECKPOINT_EVERY)

    # -- writing ------------------------------------------------------------

    def append(self, record: Mapping[str, Any], *, at: datetime | None = None) -> JournalRecord:
        """Journal one verdict, committed before it is shown.

        ``record`` is a verdict dict (``Decision.to_dict()``). Only the audit
        fields are kept; the parsed ``document`` is dropped. Refuses a
        document number with more than three readable characters, and a
        record that would contain the document's full number anywhere.
        """
        at_text = utc_iso(at or _record_time(record) or datetime.now(timezone.utc))
        fields = _audit_fields(record)
        if self._flusher is not None:
            self._check_flusher()
        with self._lock, immediate(self.db):
            head_seq, head_hash = self._head()
            seq = head_seq + 1
            body_obj = {"seq": seq, "at": at_text, **fields}
            body = canonical_json(body_obj)
            digest = record_hash(head_hash, body)
            self.db.execute(
                "INSERT INTO journal (seq, at, verdict, body, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, body_obj["at"], fields["verdict"], body, head_hash, digest),
            )
            self.db.execute(
                "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (seq, digest),
            )
        if self._flusher is not None:
            self._flusher.request(seq)
        return _record(body, head_hash, digest)

    # -- durability ---------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        """Every record up to this seq is on disk (with FULL sync: the head)."""
        if self._flusher is None:
            return self.head()[0]
        return self._flusher.durable

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until record ``seq`` (already committed, by any process) is on disk.

        False if ``timeout`` passed first. Raises JournalError if the disk
        refused an fsync: nothing after that can be promised durable.
        """
        if self._flusher is None:
            return True
        # Never further than the head: a seq not yet appended must not count as synced.
        seq = min(seq, self.head()[0])
        try:
            return self._flusher.wait(seq, timeout)
        except WalFlushFailed as exc:
            raise JournalError(str(exc)) from None

    def flush(self) -> int:
        """Put every committed record on disk now; returns the head seq, now durable."""
        seq = self.head()[0]
        self.wait_durable(seq)
        return seq

    def _check_flusher(self) -> None:
        try:
            self._flusher.check()  # type: ignore[union-attr]
        except WalFlushFailed as exc:
            raise JournalError(str(exc)) from None

    def close(self) -> None:
        """Sync what is still pending, then close the connection."""
        if self._flusher is not None:
            self._flusher.close()
        super().close()

    def purge(self, now: datetime, clear_days: int = CLEAR_DAYS,
              match_days: int = MATCH_DAYS) -> int:
        """Remove CLEAR records older than ``clear_days``, all others older than ``match_days``.

        Returns how many were removed. Their seq runs and the hash of each
        run's last record are kept, so ``verify`` still links the survivors.
        """
        for name, days in (("clear_days", clear_days), ("match_days", match_days)):
            if isinstance(days, bool) or not isinstance(days, int) or days < 0:
                raise JournalError(f"{name} must be a whole number of days >= 0, not {days!r}")
        clear_cut = utc_iso(now - timedelta(days=clear_days))
        match_cut = utc_iso(now - timedelta(days=match_days))
        with self._lock, immediate(self.db):
            runs: list[list] = []  # [first, last, last_hash]
            for seq, digest in self.db.execute(
                "SELECT seq, hash FROM journal WHERE (verdict = 'CLEAR' AND at < ?) OR at < ? "
                "ORDER BY seq", (clear_cut, match_cut),
            ):
                if runs and runs[-1][1] == seq - 1:
                    runs[-1][1:] = [seq, digest]
                else:
                    runs.append([seq, seq, digest])
            removed = 0
            for first, last, last_hash in runs:
                removed += self.db.execute(
                    "DELETE FROM journal WHERE seq BETWEEN ? AND ?", (first, last)).rowcount
                self._add_purged_run(first, last, last_hash)
            if removed:
                self.db.execute(
                    "INSERT INTO purges (at, clear_days, match_days, removed) VALUES (?, ?, ?, ?)",
                    (utc_iso(now), clear_days, match_days, removed),
                )
        return removed

    def _add_purged_run(self, first: int, last: int, last_hash: str) -> None:
        # Merge with the runs just before and after, so purged stays one row per gap.
        before = self.db.execute(
            "SELECT first_seq FROM purged WHERE last_seq = ?", (first - 1,)).fetchone()
        if before:
            self.db.execute("DELETE FROM purged WHERE first_seq = ?", (before[0],))
            first = before[0]
        after = self.db.execute(
            "SELECT first_seq, last_seq, last_hash FROM purged WHERE first_seq = ?",
            (last + 1,)).fetchone()
        if after:
            self.db.execute("DELETE FROM purged WHERE first_seq = ?", (after[0],))
            last, last_hash = after[1], after[2]
        self.db.execute("INSERT INTO purged (first_seq, last_seq, last_hash) VALUES (?, ?, ?)",
                        (first, last, last_hash))

    # -- reading ------------------------------------------------------------

    def since(self, seq: int, limit: int = 100) -> list[JournalRecord]:
        """Records after ``seq``, oldest first: SSE replay from Last-Event-ID."""
        with self._lock:
            rows = self.db.execute(
                "SELECT body, prev_hash, hash FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit)).fetchall()
        return [_record(*row) for row in rows]

    def latest(self, n: int = 20) -> list[JournalRecord]:
        """The newest ``n`` records, newest first."""
        with self._lock:
            rows = self.db.execute(
                "SELECT body, prev_hash, hash FROM journal ORDER BY seq DESC LIMIT ?",
                (n,)).fetchall()
        return [_record(*row) for row in rows]

    def get(self, seq: int) -> JournalRecord | None:
        with self._lock:
            row = self.db.execute(
                "SELECT body, prev_hash, hash FROM journal WHERE seq = ?", (seq,)).fetchone()
        return _record(*row) if row else None

    def verdict_counts(self, since: datetime) -> dict[str, int]:
        """Records held at or after ``since``, per verdict (every verdict, 0 when none): the fleet's
        scan counts (sync/agent.py ``health()``). Purged records are not counted."""
        counts = dict.fromkeys(VERDICTS, 0)
        with self._lock:
            for verdict, n in self.db.execute(
                    "SELECT verdict, count(*) FROM journal WHERE at >= ? GROUP BY verdict", (utc_iso(since),)):
                if verdict in counts:
                    counts[verdict] = n
        return counts

    def count(self) -> int:
        """Records held now (purged ones not counted)."""
        with self._lock:
            return self.db.execute("SELECT count(*) FROM journal").fetchone()[0]

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record ever appended; (0, GENESIS) when none."""
        with self._lock:
            return self._head()

    def _head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    # -- checking -----------------------------------------------------------

    def verify(self) -> JournalReport:
        """Walk the chain from the first seq to the head; report the first break.

        Proves that every surviving record is unchanged and in place, and
        that every missing seq was removed by retention (``purged``). See
        docs/journal.md for what a hash chain cannot prove.
        """
        with self._lock:
            return self._verify()

    def _verify(self) -> JournalReport:
        conn = self.db.conn
        conn.execute("BEGIN")  # one consistent snapshot while appends go on
        try:
            return _Walk(self).run()
        except sqlite3.DatabaseError as exc:
            return JournalReport(False, 0, 0, 0, GENESIS,
                                 problem=f"journal database is damaged: {exc}")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")


def verdicts_since(data_dir: str | Path, since: datetime) -> dict[str, int] | None:
    """Another process's view of :meth:`Journal.verdict_counts`; None when there is no journal to read."""
    try:
        with Journal(data_dir, create=False) as journal:
            return journal.verdict_counts(since)
    except (JournalDbError, sqlite3.Error):
        return None


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


class _Walk:
    """One pass over survivors and purged runs in seq order, checking every link."""

    def __init__(self, journal: Journal) -> None:
        self.db = journal.db
        self.head_seq, self.head_hash = journal._head()
        if not isinstance(self.head_seq, int) or not isinstance(self.head_hash, str):
            raise sqlite3.DatabaseError("the chain_head row holds values of the wrong type")
        self.records = 0
        self.purged = 0

    def run(self) -> JournalReport:
        try:
            self._walk()
        except _Broken as broken:
            return JournalReport(False, self.records, self.purged, self.head_seq,
                                 self.head_hash, broken.seq, broken.problem)
        return JournalReport(True, self.records, self.purged, self.head_seq, self.head_hash)

    def _walk(self) -> None:
        runs = self.db.execute(
            "SELECT first_seq, last_seq, last_hash FROM purged ORDER BY first_seq").fetchall()
        rows = self.db.execute("SELECT seq, at, verdict, body, prev_hash, hash FROM journal "
                               "ORDER BY seq")
        expected, prev_hash, prev_name = 1, GENESIS, "the start of the journal"
        run_index = 0
        for row in rows:
            seq = row[0]
            while run_index < len(runs) and runs[run_index][0] <= seq:
                expected, prev_hash, prev_name = self._purged_run(runs[run_index], expected, seq)
                run_index += 1
            self._check_record(row, expected, prev_hash, prev_name)
            self.records += 1
            expected, prev_hash, prev_name = seq + 1, row[5], f"record {seq}"
        for run in runs[run_index:]:
            expected, prev_hash, prev_name = self._purged_run(run, expected, None)
        self._check_head(expected, prev_hash, prev_name)
        self._check_purge_log()

    def _purged_run(self, run, expected: int, next_record: int | None):
        first, last, last_hash = run
        if first > expected:
            raise _Broken(expected, _missing(expected, first - 1))
        if last < first:
            raise _Broken(first, f"purged run {first} to {last} is malformed")
        if first < expected:
            raise _Broken(first, f"purged runs overlap at record {first}")
        if next_record is not None and last >= next_record:
            raise _Broken(next_record,
                          f"record {next_record} is both present and recorded as purged")
        self.purged += last - first + 1
        return last + 1, last_hash, f"purged record {last}"

    def _check_record(self, row, expected: int, prev_hash: str, prev_name: str) -> None:
        seq, at, verdict, body, stored_prev, stored_hash = row
        if seq > expected:
            raise _Broken(expected, _missing(expected, seq - 1))
        if not all(isinstance(value, str) for value in row[1:]):
            raise _Broken(seq, f"record {seq} was altered: a column holds a non-text value")
        if record_hash(stored_prev, body) != stored_hash:
            raise _Broken(seq, f"record {seq} was altered: hash mismatch")
        try:
            data = json.loads(body)
        except ValueError:
            raise _Broken(seq, f"record {seq} was altered: its body is not JSON") from None
        hashed = data if isinstance(data, dict) else {}
        for column, value in (("seq", seq), ("at", at), ("verdict", verdict)):
            if hashed.get(column) != value:
                raise _Broken(seq, f"record {seq} was altered or moved: its {column} column says "
                                   f"{value!r} but the hashed record says {hashed.get(column)!r}")
        if stored_prev != prev_hash:
            raise _Broken(seq, f"record {seq} does not link to {prev_name}: prev_hash mismatch "
                               f"({prev_name} altered, replaced or reordered)")

    def _check_head(self, expected: int, prev_hash: str, prev_name: str) -> None:
        last = expected - 1
        if self.head_seq > last:
            raise _Broken(last + 1, _missing(last + 1, self.head_seq))
        if self.head_seq < last:
            raise _Broken(self.head_seq + 1, f"record {self.head_seq + 1} is past the journal "
                                             f"head ({self.head_seq}): added outside the journal")
        if prev_hash != self.head_hash:
            raise _Broken(last, f"{prev_name} was altered or replaced: it does not match the "
                                "journal head")

    def _check_purge_log(self) -> None:
        logged = self.db.execute("SELECT coalesce(sum(removed), 0) FROM purges").fetchone()[0]
        if logged != self.purged:
            raise _Broken(None, f"purge log accounts for {logged} records but {self.purged} "
                                "are recorded as purged")


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"record {first} is missing"
    return f"records {first} to {last} are missing"


def _record(body: str, prev_hash: str, digest: str) -> JournalRecord:
    data = json.loads(body)
    return JournalRecord(
        seq=data["seq"],
        at=parse_utc(data["at"]),
        verdict=data["verdict"],
        reasons=tuple(data.get("reasons", ())),
        notes=tuple(data.get("notes", ())),
        lists=data.get("lists", {}),
        matches=tuple(data.get("matches", ())),
        channel=data.get("channel"),
        operator=data.get("operator"),
        masked_document_number=data.get("masked_document_number"),
        snapshot_age_seconds=data.get("snapshot_age_seconds"),
        stale=data.get("stale"),
        prev_hash=prev_hash,
        hash=digest,
    )


def _record_time(record: Mapping[str, Any]) -> datetime | None:
    """When the verdict was made: the Decision's ``decided_at`` (or ``at``)."""
    value = record.get("decided_at", record.get("at"))
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return parse_utc(value)
        except ValueError:
            raise JournalError(f"record time {value!r} is not an ISO 8601 time") from None
    return None


def _audit_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the journal keeps, as plain JSON values; refuses plaintext numbers."""
    verdict = str(record.get("verdict") or "")
    if verdict not in VERDICTS:
        raise JournalError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    reasons = record.get("reasons") or []
    if not isinstance(reasons, (list, tuple)) or not all(isinstance(r, str) for r in reasons):
        raise JournalError("reasons must be a list of strings")
    snapshot = record.get("snapshot") if isinstance(record.get("snapshot"), Mapping) else {}
    lists = record.get("lists", snapshot.get("lists", {}))
    if not isinstance(lists, Mapping):
        raise JournalError("lists must map list id to its version and digest")
    notes = record.get("notes") or []
    if not isinstance(notes, (list, tuple)) or not all(isinstance(n, str) for n in notes):
        raise JournalError("notes must be a list of strings")
    matches = record.get("matches") or []
    if not isinstance(matches, (list, tuple)) or not all(isinstance(m, Mapping) for m in matches):
        raise JournalError("matches must be a list of objects")
    masked = _masked_number(record)
    fields = {
        "verdict": verdict,
        "reasons": list(reasons),
        "notes": list(notes),
        "lists": dict(lists),
        "matches": [{k: m[k] for k in _MATCH_KEYS if k in m} for m in matches],
        "channel": _optional_str(record.get("channel"), "channel"),
        "operator": _optional_str(record.get("operator"), "operator"),
        "masked_document_number": masked,
        "snapshot_age_seconds": snapshot.get("age_seconds"),
        "stale": snapshot.get("stale"),
    }
    try:
        plain = json.loads(json.dumps(fields, default=_plain, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise JournalError(f"record is not plain JSON data: {exc}") from None
    _redact_full_number(record, plain)
    return plain


def _masked_number(record: Mapping[str, Any]) -> str | None:
    """The caller's masked number (top level, or in the identity summary), checked."""
    value = record.get("masked_document_number")
    identity = record.get("identity")
    if value is None and isinstance(identity, Mapping):
        for key in ("masked_document_number", "document_number"):
            if identity.get(key) is not None:
                value = identity[key]
                break
    if value is None:
        return None
    if not isinstance(value, str):
        raise JournalError("masked_document_number must be a string")
    # Mask characters are anything not a letter or digit; 'X' is a real
    # document-number character, so it cannot count as a mask.
    visible = sum(ch.isalnum() for ch in value)
    if visible > MAX_VISIBLE:
        raise UnmaskedDocumentNumber(
            f"document number shows {visible} characters; the journal keeps at most "
            f"{MAX_VISIBLE} (mask the rest)")
    return value


def _redact_full_number(record: Mapping[str, Any], plain: dict[str, Any]) -> None:
    """Mask the document number wherever a reason or note repeats it.

    The verdict rules never put the number in their text; this guards the
    free text that comes from elsewhere (parser messages). It redacts rather
    than refuses, because a verdict that was shown must be journaled, and it
    skips numbers under 6 characters, which collide with ordinary text such
    as the year in "expired on 2012-04-15" and say little on their own.
    """
    document = record.get("document")
    number = document.get("document_number") if isinstance(document, Mapping) else None
    if not isinstance(number, str) or len(number.strip()) < MIN_REDACTED:
        return
    number = number.strip()
    whole = re.compile(r"(?<![A-Za-z0-9])" + re.escape(number) + r"(?![A-Za-z0-9])")
    masked = mask_document_number(number)
    for key in ("reasons", "notes"):
        plain[key] = [whole.sub(masked, text) for text in plain[key]]


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise JournalError(f"{name} must be a string")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return utc_iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")
