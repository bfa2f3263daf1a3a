"""Appeals against list entries, and lifting (issue 5, "Lifecycle and redress").

An entry can carry an open appeal with two deadlines: decide it within the
list's calendar days, and, once upheld, publish the correction within its
working days (registry/review_policy.py, as the court defaulter rules
require). Upholding lifts the entry: its removal is published at once,
through the same sync core as an addition, so it reaches every counter as
fast. Dismissing keeps the entry and records why. Re-listing someone later is
a new report and a new decision, never an edit of the old entry. Every step
goes to the audit log.

The person who decides an appeal may not be the one who accepted the
listing: the same two-people rule as the listing itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable

from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, Text, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from registry import db
from registry.audit import AuditLog
from registry.publish import Registry
from registry.reports import ReportError, ReportQueue
from registry.review_policy import CategoryPolicy, ListPolicy, PolicyError, appeal_deadlines

OPEN, UPHELD, DISMISSED = "open", "upheld", "dismissed"
MAX_TEXT_CHARS = 5_000

metadata = MetaData()

appeals = Table(
    "appeals", metadata,
    Column("appeal_id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, nullable=False, index=True),
    Column("list_id", String(64), nullable=False),
    Column("filed_by", Text, nullable=False),  # who entered it: the traveller writes in, staff record it
    Column("grounds", Text, nullable=False),
    Column("filed_on", String(10), nullable=False),
    Column("decide_by", String(10), nullable=False),
    Column("status", String(16), nullable=False),
    Column("open_entry", Integer, unique=True),  # = entry_id while open: one open appeal per entry
    Column("decided_by", Text),
    Column("decided_on", String(10)),
    Column("decision", Text),
    Column("correct_by", String(10)),
    Column("corrected_in_version", BigInteger),
)


class AppealError(PolicyError):
    code = "appeal"


@dataclass(frozen=True)
class Appeal:
    appeal_id: int
    entry_id: int
    list_id: str
    filed_by: str
    grounds: str
    filed_on: date
    decide_by: date
    status: str
    decided_by: str | None
    decided_on: date | None
    decision: str | None
    correct_by: date | None
    corrected_in_version: int | None

    def overdue(self, today: date) -> bool:
        """Open past its decision deadline, or upheld without the correction published in time."""
        if self.status == OPEN:
            return today > self.decide_by
        return self.status == UPHELD and self.corrected_in_version is None and today > (self.correct_by or today)

    @classmethod
    def from_row(cls, row) -> "Appeal":
        """From a row of ``appeals`` (a page of a list view, say); extra columns in the row are ignored."""
        return _appeal(row)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _appeal(row) -> Appeal:
    return Appeal(row.appeal_id, row.entry_id, row.list_id, row.filed_by, row.grounds, date.fromisoformat(row.filed_on),
                  date.fromisoformat(row.decide_by), row.status, row.decided_by, _day(row.decided_on), row.decision,
                  _day(row.correct_by), row.corrected_in_version)


class Appeals:
    def __init__(self, engine: Engine, registry: Registry, reports: ReportQueue, audit: AuditLog | None = None, *,
                 clock=time.time, holidays: Iterable[date] = ()) -> None:
        self.engine = engine
        self.registry = registry
        self.reports = reports
        self.audit = audit or AuditLog(engine)
        self.clock = clock
        self.holidays = tuple(holidays)
        metadata.create_all(engine)

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), timezone.utc).date()

    def _entry(self, entry_id: int):
        with self.engine.connect() as conn:
            row = conn.execute(select(db.entries.c.list_id, db.entries.c.status, db.entries.c.created_by)
                               .where(db.entries.c.entry_id == entry_id)).first()
        if row is None:
            raise AppealError(f"no entry {entry_id}")
        return row

    def file(self, entry_id: int, *, grounds: str, filed_by: str) -> Appeal:
        entry = self._entry(entry_id)
        if entry.status != "active":
            raise AppealError(f"entry {entry_id} is {entry.status}; there is nothing to appeal")
        grounds = grounds.strip()
        if not grounds or len(grounds) > MAX_TEXT_CHARS:
            raise AppealError(f"an appeal states its grounds, in at most {MAX_TEXT_CHARS:,} characters")
        today = self._today()
        deadlines = appeal_deadlines(self._terms(entry.list_id), today, holidays=self.holidays)
        try:
            with self.engine.begin() as conn:
                appeal_id = conn.execute(insert(appeals).values(
                    entry_id=entry_id, list_id=entry.list_id, filed_by=filed_by, grounds=grounds,
                    filed_on=today.isoformat(), decide_by=deadlines.decide_by.isoformat(), status=OPEN,
                    open_entry=entry_id)).inserted_primary_key[0]
                self.audit.append(conn, actor=filed_by, action="appeal.file", subject=f"entry:{entry_id}",
                                  reason=grounds, after={"appeal_id": appeal_id, "decide_by": deadlines.decide_by},
                                  at=self.clock())
        except IntegrityError:
            raise AppealError(f"entry {entry_id} already has an open appeal") from None
        return self.get(appeal_id)

    def get(self, appeal_id: int) -> Appeal:
        with self.engine.connect() as conn:
            row = conn.execute(select(appeals).where(appeals.c.appeal_id == appeal_id)).first()
        if row is None:
            raise AppealError(f"no appeal {appeal_id}")
        return _appeal(row)

    def open_appeals(self) -> list[Appeal]:
        """Open appeals, the nearest deadline first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(appeals).where(appeals.c.status == OPEN).order_by(appeals.c.decide_by)).all()
        return [_appeal(r) for r in rows]

    def of_entry(self, entry_id: int) -> list[Appeal]:
        """Every appeal against one entry, the first filed first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(appeals).where(appeals.c.entry_id == entry_id)
                                .order_by(appeals.c.appeal_id)).all()
        return [_appeal(r) for r in rows]

    def terms(self, list_id: str) -> ListPolicy:
        """The list's appeal deadlines (its review policy, or the defaults for an imported list)."""
        return self._terms(list_id)

    def _terms(self, list_id: str) -> ListPolicy:
        """The list's appeal deadlines; the defaults for a list that takes no reports (an imported one)."""
        try:
            return self.reports.policy(list_id)
        except ReportError:
            return ListPolicy(list_id, (CategoryPolicy("listed", "Listed by the authority", 1, None),))

    def _removed_in(self, entry_id: int) -> int | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.entries.c.status, db.entries.c.removed_in_version)
                               .where(db.entries.c.entry_id == entry_id)).first()
        return row.removed_in_version if row is not None and row.status != "active" else None

    @staticmethod
    def _close(conn, appeal_id: int, **values) -> None:
        closed = conn.execute(update(appeals).where(and_(appeals.c.appeal_id == appeal_id, appeals.c.status == OPEN))
                              .values(open_entry=None, **values)).rowcount
        if closed != 1:
            raise AppealError(f"appeal {appeal_id} was decided by someone else meanwhile; reload it")

    def _decide(self, appeal_id: int, reviewer: str, decision: str) -> Appeal:
        appeal = self.get(appeal_id)
        if appeal.status != OPEN:
            raise AppealError(f"appeal {appeal_id} is {appeal.status} already")
        if self._entry(appeal.entry_id).created_by == reviewer:
            raise AppealError("you accepted this listing; another reviewer must decide the appeal")
        decision = decision.strip()
        if len(decision) < 5:
            raise AppealError("an appeal decision needs a reason the traveller can be told")
        return appeal

    def uphold(self, appeal_id: int, *, reviewer: str, decision: str) -> Appeal:
        """Lift the entry: its removal is published now, the correction deadline recorded and met."""
        appeal = self._decide(appeal_id, reviewer, decision)
        today = self._today()
        deadlines = appeal_deadlines(self._terms(appeal.list_id), appeal.filed_on, upheld_on=today,
                                     holidays=self.holidays)
        # A crash after the removal's publish, or a removal made another way,
        # leaves the entry gone and the appeal open: close it with that version.
        version = self._removed_in(appeal.entry_id) or self.registry.remove_entry(
            appeal.list_id, appeal.entry_id, by=reviewer)
        with self.engine.begin() as conn:
            self._close(conn, appeal_id, status=UPHELD, decided_by=reviewer, decided_on=today.isoformat(),
                        decision=decision.strip(), correct_by=deadlines.correct_by.isoformat(),
                        corrected_in_version=version)
            self.audit.append(conn, actor=reviewer, action="entry.lift", subject=f"entry:{appeal.entry_id}",
                              reason=decision.strip(), before={"status": "active"},
                              after={"status": "removed", "version": version, "appeal_id": appeal_id},
                              at=self.clock())
        return self.get(appeal_id)

    def dismiss(self, appeal_id: int, *, reviewer: str, decision: str) -> Appeal:
        appeal = self._decide(appeal_id, reviewer, decision)
        with self.engine.begin() as conn:
            self._close(conn, appeal_id, status=DISMISSED, decided_by=reviewer, decided_on=self._today().isoformat(),
                        decision=decision.strip())
            self.audit.append(conn, actor=reviewer, action="appeal.dismiss", subject=f"entry:{appeal.entry_id}",
                              reason=decision.strip(), after={"appeal_id": appeal_id}, at=self.clock())
        return self.get(appeal_id)
