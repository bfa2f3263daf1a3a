"""Reports and their review: the queue every listing of a misbehaving traveller goes through (issue 5).

A report names a traveller (typed fields, or a scan parsed server-side with
the documents module), a trip, a category from the list's closed taxonomy,
a narrative and evidence. Reviewers accept or reject it under the rules in
registry/review_policy.py; accepting publishes an entry through the sync
core (registry/publish.py), whose authority reference is the report id.

Accepting is idempotent by that reference: should the process die between
the publish and the report's update, accepting again finds the published
entry instead of listing the traveller twice. Every step is audited.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from registry import db
from registry.audit import AuditLog
from registry.db import RegistryError
from registry.incident_routing import TRIAGE
from registry.publish import DocumentRef, EntryFields, Registry
from registry.review_policy import (
    Approval,
    CategoryPolicy,
    ListPolicy,
    Outcome,
    acceptance,
    rejection,
    sanction_term,
)

MAX_NARRATIVE_CHARS = 10_000
MAX_EVIDENCE_BYTES = 5 * 1024 * 1024
MAX_EVIDENCE_FILES = 5
#: Evidence is checked by its first bytes, not by the name or the declared type.
EVIDENCE_TYPES = {b"%PDF-": "application/pdf", b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}

PENDING, AWAITING_SECOND, ACCEPTED, REJECTED = "pending", "awaiting_second", "accepted", "rejected"
#: Held while the accepting reviewer's entry is published: a second accept cannot publish it too.
PUBLISHING = "publishing"
#: A publish takes well under a second; a claim older than this was left by a crash and may be taken over.
PUBLISH_LEASE_SECONDS = 120
UNDECIDED = (PENDING, AWAITING_SECOND, PUBLISHING)

metadata = MetaData()

list_policies = Table(
    "list_policies", metadata,
    Column("list_id", String(64), primary_key=True),
    Column("policy", Text, nullable=False),  # JSON, see _policy_json
)

reports = Table(
    "reports", metadata,
    Column("report_id", String(64), primary_key=True),
    Column("source", String(16), nullable=False),  # web | device | api
    Column("reporter", Text, nullable=False),
    Column("org", String(32), nullable=False, default=""),
    Column("list_id", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("identity", Text, nullable=False),  # JSON, see Identity
    Column("trip", Text, nullable=False),  # flight or stay, and its date
    Column("trip_date", String(10), nullable=False),
    Column("narrative", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", BigInteger),
    Column("decision_reason", Text),
    Column("entry_id", Integer),
    Column("claimed_at", BigInteger),  # when the final accept began publishing (PUBLISHING)
    Column("identity_key", String(200), nullable=False),  # for "similar earlier reports"
)

approvals = Table(
    "report_approvals", metadata,
    Column("report_id", String(64), primary_key=True),
    Column("reviewer", String(64), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("days", Integer),
    Column("permanent", Integer, nullable=False, default=0),
)

evidence = Table(
    "report_evidence", metadata,
    Column("evidence_id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", String(64), nullable=False, index=True),
    Column("filename", Text, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


class ReportError(RegistryError):
    code = "report"


class UnknownReport(ReportError):
    code = "unknown_report"


@dataclass(frozen=True)
class Identity:
    """Who a report is about, as the document or the reporter gives it."""

    surnames: str
    given_names: str = ""
    date_of_birth: date | None = None
    documents: tuple[DocumentRef, ...] = ()

    def key(self) -> str:
        """What makes two reports "about the same person" for the reviewer's queue."""
        if self.documents:
            d = self.documents[0]
            return f"doc:{d.document_class}:{d.issuer}:{d.number.upper()}"
        return f"name:{self.surnames.upper()}:{self.date_of_birth}"

    def to_dict(self) -> dict:
        return {"surnames": self.surnames, "given_names": self.given_names,
                "date_of_birth": self.date_of_birth.isoformat() if self.date_of_birth else None,
                "documents": [d.__dict__ for d in self.documents]}

    @classmethod
    def from_dict(cls, data: dict) -> "Identity":
        dob = data.get("date_of_birth")
        return cls(data["surnames"], data.get("given_names", ""), date.fromisoformat(dob) if dob else None,
                   tuple(DocumentRef(**d) for d in data.get("documents", ())))


def identity_from_scan(payload: bytes | str, *, today: date | None = None) -> Identity:
    """Parse a pasted or uploaded scan with the documents module; DocumentError says why not."""
    from appliance.documents.detect import parse_payload
    from sync.identity import identity_from_document

    doc = parse_payload(payload, today=today)
    canonical = identity_from_document(doc)
    documents = ()
    if canonical.document_number and canonical.issuer:
        documents = (DocumentRef(canonical.document_class.value, canonical.issuer, canonical.document_number),)
    return Identity((doc.surname or "").strip(), (doc.given_names or "").strip(), doc.date_of_birth, documents)


@dataclass(frozen=True)
class Evidence:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Report:
    report_id: str
    source: str
    reporter: str
    org: str
    list_id: str
    category: str
    identity: Identity
    trip: str
    trip_date: date
    narrative: str
    status: str
    created_at: int
    decided_by: str | None
    decided_at: int | None
    decision_reason: str | None
    entry_id: int | None


def _report(row) -> Report:
    return Report(row.report_id, row.source, row.reporter, row.org, row.list_id, row.category,
                  Identity.from_dict(json.loads(row.identity)), row.trip, date.fromisoformat(row.trip_date),
                  row.narrative, row.status, row.created_at, row.decided_by, row.decided_at,
                  row.decision_reason, row.entry_id)


def _policy_json(policy: ListPolicy) -> str:
    return json.dumps({
        "reviewers_required": policy.reviewers_required, "permanent_allowed": policy.permanent_allowed,
        "appeal_decide_days": policy.appeal_decide_days, "correction_working_days": policy.correction_working_days,
        "categories": [c.__dict__ for c in policy.categories]}, sort_keys=True)


def _policy(list_id: str, text: str) -> ListPolicy:
    data = json.loads(text)
    return ListPolicy(list_id, tuple(CategoryPolicy(**c) for c in data.pop("categories")), **data)


def _evidence_type(item: Evidence) -> str:
    if not item.data:
        raise ReportError(f"evidence {item.filename!r} is empty")
    if len(item.data) > MAX_EVIDENCE_BYTES:
        raise ReportError(f"evidence {item.filename!r} is {len(item.data):,} bytes; the limit is "
                          f"{MAX_EVIDENCE_BYTES // (1024 * 1024)} MiB per file")
    for magic, content_type in EVIDENCE_TYPES.items():
        if item.data.startswith(magic):
            return content_type
    raise ReportError(f"evidence {item.filename!r} is not a PDF, PNG or JPEG file")


class ReportQueue:
    """Filing, the review queue, and decisions, over the registry database."""

    def __init__(self, engine: Engine, registry: Registry, audit: AuditLog | None = None, *,
                 clock=time.time) -> None:
        self.engine = engine
        self.registry = registry
        self.audit = audit or AuditLog(engine)
        self.clock = clock
        metadata.create_all(engine)

    # -- list policy ---------------------------------------------------------

    def set_policy(self, policy: ListPolicy, *, by: str, reason: str = "") -> None:
        self.registry.current_version(policy.list_id)  # UnknownList names the typo
        text = _policy_json(policy)
        with self.engine.begin() as conn:
            old = conn.execute(select(list_policies.c.policy).where(list_policies.c.list_id == policy.list_id)).scalar()
            if old is None:
                conn.execute(insert(list_policies).values(list_id=policy.list_id, policy=text))
            else:
                conn.execute(update(list_policies).where(list_policies.c.list_id == policy.list_id).values(policy=text))
            self.audit.append(conn, actor=by, action="list.policy", subject=f"list:{policy.list_id}", reason=reason,
                              before=json.loads(old) if old else None, after=json.loads(text), at=self.clock())

    def policy(self, list_id: str) -> ListPolicy:
        with self.engine.connect() as conn:
            text = conn.execute(select(list_policies.c.policy).where(list_policies.c.list_id == list_id)).scalar()
        if text is None:
            raise ReportError(f"list {list_id} takes no reports yet: a list admin must set its categories")
        return _policy(list_id, text)

    def policies(self) -> list[ListPolicy]:
        """Every list that takes reports, by list id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(list_policies).order_by(list_policies.c.list_id)).all()
        return [_policy(r.list_id, r.policy) for r in rows]

    # -- filing --------------------------------------------------------------------

    def file(self, *, reporter: str, list_id: str, category: str, identity: Identity, trip: str,
             trip_date: date, narrative: str, org: str = "", source: str = "web",
             attachments: Iterable[Evidence] = (), report_id: str | None = None) -> str:
        """Put a report in the queue; returns its id. Every refusal names the field.

        A device's report may come under TRIAGE (registry/incident_routing.py)
        and without a birth date or document: the counter already has it,
        so the queue takes it and a reviewer categorises or rejects it.
        """
        policy = self.policy(list_id)
        from_device = source == "device"
        if not (from_device and category == TRIAGE):
            policy.category(category)  # PolicyError lists the taxonomy
        if not identity.surnames.strip():
            raise ReportError("a report needs the traveller's surname")
        if identity.date_of_birth is None and not identity.documents and not from_device:
            raise ReportError("a report needs the traveller's date of birth or a document number, "
                              "or it could never be matched at a counter")
        narrative = narrative.strip()
        if not narrative or len(narrative) > MAX_NARRATIVE_CHARS:
            raise ReportError(f"the narrative must say what happened, in at most {MAX_NARRATIVE_CHARS:,} characters")
        attachments = list(attachments)
        if len(attachments) > MAX_EVIDENCE_FILES:
            raise ReportError(f"at most {MAX_EVIDENCE_FILES} evidence files per report")
        types = [_evidence_type(item) for item in attachments]
        at = int(self.clock())
        report_id = report_id or f"RPT-{datetime.fromtimestamp(at, timezone.utc):%Y%m%d}-{secrets.token_hex(4).upper()}"
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(reports).values(
                    report_id=report_id, source=source, reporter=reporter, org=org, list_id=list_id,
                    category=category, identity=json.dumps(identity.to_dict(), sort_keys=True), trip=trip.strip(),
                    trip_date=trip_date.isoformat(), narrative=narrative, status=PENDING, created_at=at,
                    identity_key=identity.key()))
                for item, content_type in zip(attachments, types):
                    conn.execute(insert(evidence).values(report_id=report_id, filename=item.filename[:200],
                                                         content_type=content_type, size=len(item.data),
                                                         data=item.data))
                self.audit.append(conn, actor=reporter, action="report.file", subject=f"report:{report_id}",
                                  after={"list_id": list_id, "category": category, "source": source,
                                         "evidence": len(attachments)}, at=at)
        except IntegrityError:
            raise ReportError(f"report {report_id} exists") from None
        return report_id

    # -- reading -------------------------------------------------------------------

    def get(self, report_id: str) -> Report:
        with self.engine.connect() as conn:
            row = conn.execute(select(reports).where(reports.c.report_id == report_id)).first()
        if row is None:
            raise UnknownReport(f"no report {report_id}")
        return _report(row)

    def queue(self, *, orgs: Iterable[str] | None = None, limit: int = 50, offset: int = 0) -> list[Report]:
        """Reports waiting for a decision, oldest first; ``orgs`` limits them to those organisations'."""
        where = [reports.c.status.in_(UNDECIDED)]
        if orgs is not None:
            where.append(or_(reports.c.org.in_(list(orgs)), reports.c.org == ""))
        with self.engine.connect() as conn:
            rows = conn.execute(select(reports).where(and_(*where)).order_by(reports.c.created_at, reports.c.report_id)
                                .limit(limit).offset(offset)).all()
        return [_report(r) for r in rows]

    def by_reporter(self, reporter: str, *, limit: int = 50, offset: int = 0) -> list[Report]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(reports).where(reports.c.reporter == reporter)
                                .order_by(reports.c.created_at.desc()).limit(limit).offset(offset)).all()
        return [_report(r) for r in rows]

    def similar(self, report: Report) -> dict[str, list]:
        """Earlier reports about the same person, and entries already listing them."""
        ident = report.identity
        with self.engine.connect() as conn:
            earlier = conn.execute(select(reports).where(and_(
                reports.c.identity_key == ident.key(), reports.c.report_id != report.report_id))
                .order_by(reports.c.created_at)).all()
            e, d = db.entries.c, db.entry_documents.c
            matches = [func.upper(e.surnames) == ident.surnames.upper()] if ident.date_of_birth is None else [
                and_(func.upper(e.surnames) == ident.surnames.upper(), e.date_of_birth == ident.date_of_birth)]
            for doc in ident.documents:
                matches.append(e.entry_id.in_(select(d.entry_id).where(and_(
                    d.document_class == doc.document_class, d.issuer == doc.issuer, d.number == doc.number))))
            entries = conn.execute(select(e.entry_id, e.list_id, e.category, e.status, e.reference, e.valid_until)
                                   .where(or_(*matches)).order_by(e.entry_id)).all()
        return {"reports": [_report(r) for r in earlier], "entries": [r._asdict() for r in entries]}

    def evidence_of(self, report_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(evidence.c.evidence_id, evidence.c.filename, evidence.c.content_type,
                                       evidence.c.size).where(evidence.c.report_id == report_id)).all()
        return [r._asdict() for r in rows]

    def evidence_file(self, report_id: str, evidence_id: int) -> tuple[str, str, bytes] | None:
        """(filename, content type, bytes) of one evidence file of this report."""
        with self.engine.connect() as conn:
            row = conn.execute(select(evidence.c.filename, evidence.c.content_type, evidence.c.data).where(and_(
                evidence.c.report_id == report_id, evidence.c.evidence_id == evidence_id))).first()
        return None if row is None else (row.filename, row.content_type, bytes(row.data))

    # -- deciding ------------------------------------------------------------------

    def accept(self, report_id: str, *, reviewer: str, days: int | None = None, permanent: bool = False,
               reason: str = "") -> Report:
        """Approve; with enough approvals, publish the entry (idempotent by the report id)."""
        report = self.get(report_id)
        if report.status not in UNDECIDED:
            raise ReportError(f"report {report_id} is {report.status} already")
        if report.category == TRIAGE:
            raise ReportError(f"report {report_id} came from a counter without a list category: choose one first")
        policy = self.policy(report.list_id)
        at = int(self.clock())
        with self.engine.connect() as conn:
            earlier = [Approval(r.reviewer, r.days, bool(r.permanent)) for r in
                       conn.execute(select(approvals).where(approvals.c.report_id == report_id))]
        outcome = acceptance(policy, reporter=report.reporter, reviewer=reviewer, earlier=earlier)
        # The shorter term wins between two reviewers: neither can list for longer than they agreed to.
        terms = [sanction_term(policy, report.category, datetime.fromtimestamp(at, timezone.utc).date(),
                               days=a.days, permanent=a.permanent) for a in [*earlier, Approval(reviewer, days, permanent)]]
        term = min(terms, key=lambda t: t.valid_until)
        if outcome is Outcome.AWAITING_SECOND:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(approvals).values(report_id=report_id, reviewer=reviewer, at=at, days=days,
                                                          permanent=int(permanent)))
                    self._move(conn, report_id, AWAITING_SECOND)
                    self.audit.append(conn, actor=reviewer, action="report.approve", subject=f"report:{report_id}",
                                      reason=reason, after={"days": days, "permanent": permanent}, at=at)
            except IntegrityError:
                raise ReportError(f"your approval of {report_id} is recorded already") from None
            return self.get(report_id)
        self._claim(report_id, at)
        try:
            entry_id = self._published_entry(report) or self.registry.add_entry(report.list_id, EntryFields(
                surnames=report.identity.surnames, given_names=report.identity.given_names,
                date_of_birth=report.identity.date_of_birth, documents=report.identity.documents,
                reference=report.report_id, category=report.category, valid_from=term.valid_from,
                valid_until=term.valid_until), by=reviewer)
        except BaseException:
            with self.engine.begin() as conn:  # nothing was published: the report waits again
                conn.execute(update(reports).where(and_(reports.c.report_id == report_id,
                                                        reports.c.status == PUBLISHING))
                             .values(status=AWAITING_SECOND if earlier else PENDING, claimed_at=None))
            raise
        with self.engine.begin() as conn:
            self._move(conn, report_id, ACCEPTED, from_=(PUBLISHING,), decided_by=reviewer, decided_at=at,
                       decision_reason=reason, entry_id=entry_id, claimed_at=None)
            self.audit.append(conn, actor=reviewer, action="report.accept", subject=f"report:{report_id}",
                              reason=reason, before={"status": report.status},
                              after={"status": ACCEPTED, "entry_id": entry_id,
                                     "valid_until": term.valid_until.isoformat()}, at=at)
        return self.get(report_id)

    def categorise(self, report_id: str, category: str, *, reviewer: str, reason: str = "") -> Report:
        """Give a counter's TRIAGE report its category from the list's taxonomy, before any decision."""
        report = self.get(report_id)
        if report.category != TRIAGE:
            raise ReportError(f"report {report_id} has its category already ({report.category})")
        self.policy(report.list_id).category(category)  # PolicyError lists the taxonomy
        at = int(self.clock())
        c = reports.c
        with self.engine.begin() as conn:
            moved = conn.execute(update(reports).where(and_(
                c.report_id == report_id, c.category == TRIAGE, c.status == PENDING)).values(category=category)).rowcount
            if moved != 1:
                raise ReportError(f"report {report_id} was categorised or decided meanwhile; reload it")
            self.audit.append(conn, actor=reviewer, action="report.categorise", subject=f"report:{report_id}",
                              reason=reason, before={"category": TRIAGE}, after={"category": category}, at=at)
        return self.get(report_id)

    def _claim(self, report_id: str, at: int) -> None:
        """Take the report for the final accept, or refuse: one reviewer publishes, never two.

        A claim left by a process that died mid-publish lapses after
        PUBLISH_LEASE_SECONDS; the next accept then finds any entry that
        was published (by its reference) instead of publishing again.
        """
        c = reports.c
        with self.engine.begin() as conn:
            claimed = conn.execute(update(reports).where(and_(c.report_id == report_id, or_(
                c.status.in_((PENDING, AWAITING_SECOND)),
                and_(c.status == PUBLISHING, c.claimed_at < at - PUBLISH_LEASE_SECONDS))))
                .values(status=PUBLISHING, claimed_at=at)).rowcount
        if claimed != 1:
            raise ReportError(f"report {report_id} is being decided by someone else; reload it in a minute")

    @staticmethod
    def _move(conn, report_id: str, status: str, *, from_: tuple[str, ...] = (PENDING, AWAITING_SECOND),
              **values) -> None:
        """Change a report's status from one of ``from_``; refuse if someone decided it meanwhile."""
        moved = conn.execute(update(reports).where(and_(
            reports.c.report_id == report_id, reports.c.status.in_(from_)))
            .values(status=status, **values)).rowcount
        if moved != 1:
            raise ReportError(f"report {report_id} was decided by someone else meanwhile; reload it")

    def _published_entry(self, report: Report) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(db.entries.c.entry_id).where(and_(
                db.entries.c.list_id == report.list_id, db.entries.c.reference == report.report_id))).scalar()

    def reject(self, report_id: str, *, reviewer: str, reason: str) -> Report:
        report = self.get(report_id)
        if report.status not in (PENDING, AWAITING_SECOND):
            raise ReportError(f"report {report_id} is {report.status.replace('_', ' ')} already")
        reason = rejection(reporter=report.reporter, reviewer=reviewer, reason=reason)
        at = int(self.clock())
        with self.engine.begin() as conn:
            self._move(conn, report_id, REJECTED, decided_by=reviewer, decided_at=at, decision_reason=reason)
            self.audit.append(conn, actor=reviewer, action="report.reject", subject=f"report:{report_id}",
                              reason=reason, before={"status": report.status}, after={"status": REJECTED}, at=at)
        return self.get(report_id)

