"""Incident reports ("flag a passenger") waiting, durably, for the registry.

A report is queued at the counter, sent by the sync agent (issue 4) and
done once the registry acknowledges it: queued -> sent -> acknowledged.
Each report has a client-generated uuid4, so a retried form submission or
a resend after a crash never makes a second report: enqueueing an id
again is a no-op, and reusing an id for different content is refused.
``enqueue`` returns only after the commit is synced (journal.db runs with
``synchronous=FULL``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from appliance.journal_db import (
    JournalDbError,
    SharedConnection,
    canonical_json,
    immediate,
    parse_utc,
    utc_iso,
)

STATES = ("queued", "sent", "acknowledged")


class OutboxError(JournalDbError):
    """A report the outbox refuses, or an outbox it cannot use."""


class ConflictingReport(OutboxError):
    """The id is already queued with different content."""


class UnknownReport(OutboxError):
    """No report with that id."""


@dataclass(frozen=True)
class OutboxItem:
    """One report and where it is on its way to the registry."""

    report_id: str
    report: dict[str, Any]
    state: str
    created_at: datetime
    sent_at: datetime | None
    acknowledged_at: datetime | None
    attempts: int  # delivery attempts so far: each mark_sent or mark_failed is one
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return utc_iso(moment) if moment else None

        return {
            "report_id": self.report_id,
            "report": self.report,
            "state": self.state,
            "created_at": iso(self.created_at),
            "sent_at": iso(self.sent_at),
            "acknowledged_at": iso(self.acknowledged_at),
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


#: What an acknowledged report keeps on the device: enough to show its state.
SCRUBBED_KEYS = frozenset({"kind", "category", "flight", "flight_date", "reporter", "scan_seq"})

_COLUMNS = "report_id, body, state, created_at, sent_at, acknowledged_at, attempts, last_error"


class Outbox(SharedConnection):
    """The outbox table of journal.db. ``path`` is the file or the data dir.

    Safe to share between threads (the counter's WSGI server): calls are
    serialised on one connection.
    """

    def enqueue(self, report: Mapping[str, Any], report_id: str | None = None, *,
                at: datetime | None = None) -> str:
        """Queue ``report`` under ``report_id`` (a new uuid4 when None); returns the id.

        The report is on disk when this returns. The same id with the same
        content is accepted again without a second row.
        """
        if not isinstance(report, Mapping):
            raise OutboxError("a report must be a JSON object")
        report_id = _normalise_id(report_id) if report_id is not None else str(uuid.uuid4())
        try:
            body = json.dumps(dict(report), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise OutboxError(f"report is not plain JSON data: {exc}") from None
        if json.loads(body) != report:
            raise OutboxError("report would not read back the same (use lists, not tuples, "
                              "and string keys)")
        created = _time(at)
        with self._lock, immediate(self.db):
            inserted = self.db.execute(
                "INSERT INTO outbox (report_id, body, state, created_at) VALUES (?, ?, 'queued', ?) "
                "ON CONFLICT (report_id) DO NOTHING",
                (report_id, body, created),
            ).rowcount
            if not inserted:
                stored, state = self.db.execute(
                    "SELECT body, state FROM outbox WHERE report_id = ?", (report_id,)).fetchone()
                if state == "acknowledged":  # delivered and scrubbed: a late retry changes nothing
                    return report_id
                if canonical_json(json.loads(stored)) != canonical_json(json.loads(body)):
                    raise ConflictingReport(
                        f"report {report_id} is already queued with different content")
        return report_id

    def mark_sent(self, report_id: str, at: datetime | None = None) -> None:
        """The registry received the report; it stays pending until acknowledged."""
        self._transition(report_id, "UPDATE outbox SET state = 'sent', sent_at = ?, "
                         "attempts = attempts + 1 WHERE report_id = ? AND state = 'queued'",
                         _time(at))

    def mark_acknowledged(self, report_id: str, at: datetime | None = None) -> None:
        """The registry acknowledged the report: it leaves the queue, and the device forgets who.

        The registry now holds the report; the device keeps only what the
        counter needs to show its state (SCRUBBED_KEYS), never the traveller's
        name, date of birth, document number or the narrative about them.
        """
        report_id = _normalise_id(report_id)
        with self._lock, immediate(self.db):
            row = self.db.execute("SELECT body, state FROM outbox WHERE report_id = ?",
                                  (report_id,)).fetchone()
            if row is None:
                self._require(report_id)
            if row[1] == "acknowledged":
                return
            kept = {k: v for k, v in json.loads(row[0]).items() if k in SCRUBBED_KEYS}
            self.db.execute(
                "UPDATE outbox SET state = 'acknowledged', acknowledged_at = ?, body = ? "
                "WHERE report_id = ?",
                (_time(at), json.dumps({**kept, "scrubbed": True}, ensure_ascii=False), report_id))

    def mark_failed(self, report_id: str, reason: str) -> None:
        """A delivery attempt failed: the report stays pending, the attempt is counted."""
        self._transition(report_id, "UPDATE outbox SET attempts = attempts + 1, last_error = ? "
                         "WHERE report_id = ? AND state != 'acknowledged'", str(reason))

    def _transition(self, report_id: str, sql: str, value: Any) -> None:
        # A transition that does not apply (a late "sent" after the
        # acknowledgement) leaves the report as it is; only an unknown id fails.
        report_id = _normalise_id(report_id)
        with self._lock, immediate(self.db):
            if not self.db.execute(sql, (value, report_id)).rowcount:
                self._require(report_id)

    def state(self, report_id: str) -> str:
        """"queued", "sent" or "acknowledged"; UnknownReport for an id never queued."""
        with self._lock:
            return self._require(_normalise_id(report_id))

    def _require(self, report_id: str) -> str:
        row = self.db.execute(
            "SELECT state FROM outbox WHERE report_id = ?", (report_id,)).fetchone()
        if row is None:
            raise UnknownReport(f"no report {report_id} in the outbox")
        return row[0]

    def get(self, report_id: str) -> OutboxItem | None:
        with self._lock:
            row = self.db.execute(f"SELECT {_COLUMNS} FROM outbox WHERE report_id = ?",
                                  (_normalise_id(report_id),)).fetchone()
        return _item(row) if row else None

    def pending(self, limit: int = 100) -> list[OutboxItem]:
        """Reports not yet acknowledged (queued or sent), oldest first."""
        with self._lock:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state != 'acknowledged' "
                "ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [_item(row) for row in rows]

    def recent(self, n: int = 20) -> list[OutboxItem]:
        """The newest ``n`` reports in any state, newest first (for the counter screen)."""
        with self._lock:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        return [_item(row) for row in rows]

    def depth(self) -> int:
        """How many reports the registry has not acknowledged yet."""
        with self._lock:
            return self.db.execute(
                "SELECT count(*) FROM outbox WHERE state != 'acknowledged'").fetchone()[0]


def _normalise_id(report_id: str) -> str:
    try:
        return str(uuid.UUID(str(report_id)))
    except ValueError:
        raise OutboxError(f"report id {report_id!r} is not a UUID") from None


def _time(at: datetime | None) -> str:
    return utc_iso(at or datetime.now(timezone.utc))


def _item(row) -> OutboxItem:
    report_id, body, state, created, sent, acked, attempts, error = row
    return OutboxItem(
        report_id=report_id,
        report=json.loads(body),
        state=state,
        created_at=parse_utc(created),
        sent_at=parse_utc(sent) if sent else None,
        acknowledged_at=parse_utc(acked) if acked else None,
        attempts=attempts,
        last_error=error,
    )
