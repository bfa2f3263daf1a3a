"""The register of namesake clearances (issue 5, "Clearances for namesakes").

A traveller who is referred again and again because their name and date of
birth match a listed person can be cleared by a reviewer. The clearance gets
a redress number (registry/clearance_policy.py) and is published, through
``Registry.publish_clearances``, as an allow-token for the traveller's
*document* on each list it applies to. A counter that scans that document
then drops that list's name + DOB hits and shows CLEAR with a note quoting
the number (appliance/verdict.py); a hit on the document itself still
counts.

The register is separate from the lists: its own tables, with their own
``MetaData`` as registry/devices.py does. The traveller's name, birth date
and document number are kept here in plaintext, in the registry database and
nowhere else; what leaves the registry is the token and the redress number.
Issuing, withdrawing and expiring each commit the register's rows and the
audit record in the publishing transaction (``within``), so a clearance is
never in force without its record, nor recorded without being published.
A clearance on several lists is published list by list, one version each.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable, Iterable, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from appliance.records import Clearance
from appliance.verdict import mask_document_number
from registry import db
from registry.audit import AuditLog, AuditRecord
from registry.clearance_policy import (
    REDRESS_DIGITS,
    ClearanceError,
    ListMatch,
    MatchedEntry,
    clearance_reason,
    clearance_term,
    parse_redress_number,
    redress_number,
)
from registry.publish import STATUS_ACTIVE, ClearanceChange, ConcurrentPublish, DocumentRef, Registry
from registry.reports import Identity, identity_from_scan
from sync.identity import (
    DocumentClass,
    IdentityError,
    document_token,
    normalise_document_number,
    normalise_issuer,
    normalise_name,
)
from sync.identity import Identity as TokenIdentity

ACTIVE, WITHDRAWN, EXPIRED = "active", "withdrawn", "expired"
STATES = (ACTIVE, WITHDRAWN, EXPIRED)
EXPIRY_ACTOR = "registry:expiry"
#: Tries per publish: a lost race (another publish on the list, a redress number drawn twice) is tried again.
_ATTEMPTS = 3

metadata = MetaData()

#: One clearance: who was cleared, which document, why, until when. Plaintext, and only here.
clearances = Table(
    "clearances", metadata,
    Column("clearance_id", Integer, primary_key=True, autoincrement=False),
    Column("redress_number", String(16), nullable=False, unique=True),
    Column("surnames", Text, nullable=False),
    Column("given_names", Text, nullable=False),
    Column("date_of_birth", Date, nullable=False),
    Column("document_class", String(1), nullable=False),
    Column("issuer", String(16), nullable=False),
    Column("document_number", Text, nullable=False),
    Column("document_expiry", Date),
    Column("reason", Text, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("status", String(16), nullable=False),  # active | withdrawn | expired
    Column("issued_by", Text, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("ended_by", Text),
    Column("ended_at", BigInteger),
    Column("end_reason", Text),
)

#: The lists a clearance is published on. ``open_document`` holds the document's
#: key while the clearance is in force there: one clearance per document per list.
clearance_lists = Table(
    "clearance_lists", metadata,
    Column("clearance_id", Integer, primary_key=True),
    Column("list_id", String(64), primary_key=True),
    Column("token", LargeBinary(12), nullable=False),
    Column("open_document", Text),
    Column("matched_entries", Text, nullable=False),  # JSON: the entry ids the name + DOB hit when issued
    Column("published_in_version", BigInteger, nullable=False),
    Column("withdrawn_in_version", BigInteger),
    UniqueConstraint("list_id", "open_document", name="uq_clearance_lists_open_document"),
)


class UnknownClearance(ClearanceError):
    code = "unknown_clearance"


@dataclass(frozen=True)
class ClearedOn:
    """One list a clearance was published on, and whether it still is."""

    list_id: str
    published_in_version: int
    withdrawn_in_version: int | None
    open: bool


@dataclass(frozen=True)
class ClearanceRecord:
    clearance_id: int
    redress_number: str
    traveller: Identity  # with the one cleared document
    document_expiry: date | None
    reason: str
    valid_until: date
    status: str
    issued_by: str
    issued_at: int
    ended_by: str | None
    ended_at: int | None
    end_reason: str | None
    lists: tuple[ClearedOn, ...]

    @property
    def document(self) -> DocumentRef:
        return self.traveller.documents[0]


def traveller_from_scan(payload: str | bytes, *, today: date | None = None) -> tuple[Identity, date | None]:
    """The traveller and their document's expiry date, from a pasted scan (DocumentError says why not)."""
    from appliance.documents.detect import parse_payload

    return identity_from_scan(payload, today=today), parse_payload(payload, today=today).expiry_date


def cleared_document(identity: Identity) -> DocumentRef:
    """The one document a clearance is for, in canonical form; a clearance without one is refused."""
    if not identity.surnames.strip() or identity.date_of_birth is None:
        raise ClearanceError("a clearance needs the traveller's surname and date of birth: "
                             "it is for a namesake of a listed person")
    if not identity.documents:
        raise ClearanceError("a clearance needs the traveller's document (type, issuing country and number): "
                             "it is published as an allow-token for that document")
    doc = identity.documents[0]
    try:
        cls = DocumentClass(doc.document_class)
        country, _, region = doc.issuer.strip().upper().partition("-")
        issuer = normalise_issuer(country, region or None)
    except (ValueError, IdentityError) as exc:
        raise ClearanceError(f"the document cannot be cleared: {exc}") from None
    number = normalise_document_number(doc.number)
    if cls is DocumentClass.BOARDING_PASS or not number or issuer is None:
        raise ClearanceError("a clearance needs a passport, ID card, visa or licence with its number and issuer")
    return DocumentRef(cls.value, issuer, number)


def _document_key(doc: DocumentRef) -> str:
    return f"{doc.document_class}:{doc.issuer}:{doc.number}"


def _tokens(key: bytes, identity: Identity, doc: DocumentRef) -> tuple[bytes, tuple[bytes, ...]]:
    """(document token, person tokens) under one list's key, made as a counter makes them from the scan."""
    ident = TokenIdentity(DocumentClass(doc.document_class), doc.issuer, doc.number,
                          normalise_name(identity.surnames), normalise_name(identity.given_names),
                          identity.date_of_birth)
    try:
        found = ident.tokens(key)
    except IdentityError as exc:
        raise ClearanceError(f"the traveller cannot be matched: {exc}") from None
    return document_token(key, doc.document_class, doc.issuer, doc.number), found.persons


class ClearanceRegister:
    """Issue, withdraw and expire clearances; read the register. Publishes through ``registry``."""

    def __init__(self, engine: Engine, registry: Registry, audit: AuditLog | None = None, *,
                 clock: Callable[[], float] = time.time, serials: Callable[[], int] | None = None) -> None:
        self.engine = engine
        self.registry = registry
        self.audit = audit or AuditLog(engine)
        self.clock = clock
        #: Where redress numbers come from: random, so a number says nothing about how many were issued.
        self.serials = serials or (lambda: secrets.randbelow(10 ** (REDRESS_DIGITS - 1)))
        metadata.create_all(engine)

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), timezone.utc).date()

    # -- matching ------------------------------------------------------------

    def matches(self, identity: Identity) -> list[ListMatch]:
        """For every list: the active entries the traveller's name + DOB hit there, and what stands in the way.

        The lists where ``eligible`` holds are the ones to suggest; on the
        others a clearance is refused, with ``refusal`` saying why.
        """
        doc = cleared_document(identity)
        today = self._today()
        out = []
        with self.engine.connect() as conn:
            for lst in conn.execute(select(db.lists.c.list_id, db.lists.c.name, db.lists.c.token_key)
                                    .order_by(db.lists.c.list_id)).all():
                doc_token, persons = _tokens(bytes(lst.token_key), identity, doc)
                cleared_by = conn.execute(
                    select(clearances.c.redress_number)
                    .select_from(clearance_lists.join(clearances,
                                                      clearances.c.clearance_id == clearance_lists.c.clearance_id))
                    .where(and_(clearance_lists.c.list_id == lst.list_id,
                                clearance_lists.c.open_document == _document_key(doc)))).scalar()
                out.append(ListMatch(lst.list_id, lst.name, self._hits(conn, lst.list_id, persons, today),
                                     self._hits(conn, lst.list_id, (doc_token,), today), cleared_by))
        return out

    @staticmethod
    def _hits(conn, list_id: str, tokens: Sequence[bytes], today: date) -> tuple[MatchedEntry, ...]:
        """Active entries of ``list_id`` in force today that one of ``tokens`` reaches."""
        e, t = db.entries.c, db.entry_tokens.c
        rows = conn.execute(
            select(e.entry_id, e.reference, e.category, e.valid_until).distinct()
            .select_from(db.entry_tokens.join(db.entries, e.entry_id == t.entry_id))
            .where(and_(t.list_id == list_id, t.token.in_(list(tokens)), e.status == STATUS_ACTIVE,
                        e.valid_from <= today, e.valid_until >= today))
            .order_by(e.entry_id)).all()
        return tuple(MatchedEntry(r.entry_id, r.reference, r.category, r.valid_until) for r in rows)

    # -- issuing -------------------------------------------------------------

    def issue(self, identity: Identity, *, lists: Iterable[str], reason: str, by: str, days: int | None = None,
              document_expiry: date | None = None) -> ClearanceRecord:
        """Issue one clearance, with one new redress number, and publish it on each of ``lists``.

        Every list is checked before anything is published; a list the
        traveller's name + DOB does not hit, or that lists the document
        itself, refuses the whole clearance.
        """
        doc = cleared_document(identity)
        identity = Identity(identity.surnames.strip(), identity.given_names.strip(), identity.date_of_birth, (doc,))
        reason = clearance_reason(reason)
        wanted = list(dict.fromkeys(lists))
        if not wanted:
            raise ClearanceError("choose the list(s) the clearance applies to")
        valid_until = clearance_term(self._today(), days=days, document_expiry=document_expiry)
        found = {m.list_id: m for m in self.matches(identity)}
        for list_id in wanted:
            if list_id not in found:
                raise ClearanceError(f"there is no list {list_id!r}")
            if found[list_id].refusal:
                raise ClearanceError(f"not issued: {found[list_id].refusal}")

        record: ClearanceRecord | None = None
        for i, list_id in enumerate(wanted):
            try:
                record = self._publish_issue(identity, doc, found[list_id], record, reason=reason,
                                             valid_until=valid_until, document_expiry=document_expiry, by=by)
            except ClearanceError as exc:
                if record is None:
                    raise
                done = ", ".join(wanted[:i])
                raise ClearanceError(f"clearance {record.redress_number} is in force on {done} only: on "
                                     f"{list_id}, {exc.message}") from None
        assert record is not None
        return record

    def _publish_issue(self, identity: Identity, doc: DocumentRef, match: ListMatch, record: ClearanceRecord | None,
                       *, reason: str, valid_until: date, document_expiry: date | None, by: str) -> ClearanceRecord:
        """Publish the clearance on one list; the first list's transaction also creates the register row."""
        for attempt in range(_ATTEMPTS):
            if record is None:
                with self.engine.connect() as conn:
                    clearance_id = (conn.execute(select(func.max(clearances.c.clearance_id))).scalar() or 0) + 1
                number = redress_number(self.serials())
            else:
                clearance_id, number = record.clearance_id, record.redress_number
            key = bytes(self.registry.list_info(match.list_id).token_key)
            token, _ = _tokens(key, identity, doc)
            at = int(self.clock())

            def within(conn, version: int) -> None:
                held = conn.execute(select(db.lists.c.token_key).where(db.lists.c.list_id == match.list_id)).scalar()
                if held is None or bytes(held) != key:  # re-keyed since the token was made (registry/rekey.py)
                    raise ConcurrentPublish(f"list {match.list_id!r} was re-keyed meanwhile")
                if record is None:
                    conn.execute(insert(clearances).values(
                        clearance_id=clearance_id, redress_number=number, surnames=identity.surnames,
                        given_names=identity.given_names, date_of_birth=identity.date_of_birth,
                        document_class=doc.document_class, issuer=doc.issuer, document_number=doc.number,
                        document_expiry=document_expiry, reason=reason, valid_until=valid_until, status=ACTIVE,
                        issued_by=by, issued_at=at))
                entry_ids = [e.entry_id for e in match.entries]
                conn.execute(insert(clearance_lists).values(
                    clearance_id=clearance_id, list_id=match.list_id, token=token, open_document=_document_key(doc),
                    matched_entries=json.dumps(entry_ids), published_in_version=version))
                self.audit.append(conn, actor=by, action="clearance.issue", subject=f"clearance:{number}",
                                  reason=reason, before=None, at=at, after={
                                      "list_id": match.list_id, "version": version, "status": ACTIVE,
                                      "valid_until": valid_until, "matched_entries": entry_ids,
                                      "document": f"{doc.document_class} {doc.issuer} "
                                                  f"{mask_document_number(doc.number)}"})

            change = ClearanceChange(add=((Clearance(token, match.list_id, number, valid_until), clearance_id),))
            try:
                self.registry.publish_clearances(match.list_id, change, by=by, within=within)
            except (IntegrityError, ConcurrentPublish):
                # Lost a race: another issue took this id or number, or the same document meanwhile.
                again = {m.list_id: m for m in self.matches(identity)}[match.list_id]
                if again.refusal:
                    raise ClearanceError(again.refusal) from None
                if attempt + 1 == _ATTEMPTS:
                    raise ClearanceError("the registry was busy publishing; try again") from None
                continue
            return self.get(number)
        raise AssertionError("unreachable")

    # -- withdrawing and expiry ------------------------------------------------

    def withdraw(self, number: str, *, by: str, reason: str) -> ClearanceRecord:
        """Withdraw a clearance from every list it is in force on; each removal is published at once."""
        record = self.get(number)
        if record.status != ACTIVE:
            raise ClearanceError(f"clearance {record.redress_number} is {record.status} already")
        reason = clearance_reason(reason)
        for link in record.lists:
            if link.open:
                self._close(record, link.list_id, status=WITHDRAWN, action="clearance.withdraw", by=by, reason=reason)
        return self.get(record.redress_number)

    def expire(self, *, today: date | None = None, by: str = EXPIRY_ACTOR) -> list[str]:
        """Withdraw every clearance whose valid-until is before ``today``; one version per list touched.

        Counters already ignore a lapsed clearance (it shows as an expired
        note); this takes it out of the published state and the register.
        Returns the redress numbers that ended. The lead schedules it.
        """
        today = today or self._today()
        c, cl = clearances.c, clearance_lists.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(cl.list_id, c.redress_number)
                                .select_from(clearance_lists.join(clearances, c.clearance_id == cl.clearance_id))
                                .where(and_(cl.open_document.is_not(None), c.status == ACTIVE, c.valid_until < today))
                                .order_by(cl.list_id, c.clearance_id)).all()
        by_list: dict[str, list[str]] = {}
        for row in rows:
            by_list.setdefault(row.list_id, []).append(row.redress_number)
        for list_id, numbers in by_list.items():
            self._close_many([self.get(n) for n in numbers], list_id, status=EXPIRED, action="clearance.expire",
                             by=by, reason="its term ended")
        return sorted({n for numbers in by_list.values() for n in numbers})

    def _close(self, record: ClearanceRecord, list_id: str, **kw) -> None:
        self._close_many([record], list_id, **kw)

    def _close_many(self, records: Sequence[ClearanceRecord], list_id: str, *, status: str, action: str, by: str,
                    reason: str) -> None:
        """Take ``records`` off ``list_id`` in one published version, register and audit in its transaction."""
        ids = [r.clearance_id for r in records]
        lc = db.list_clearances.c
        with self.engine.connect() as conn:
            held = [bytes(t) for t in conn.execute(select(lc.token).where(and_(
                lc.list_id == list_id, lc.clearance_id.in_(ids)))).scalars()]
        at = int(self.clock())

        def within(conn, version: int | None) -> None:
            cl, c = clearance_lists.c, clearances.c
            for record in records:
                moved = conn.execute(update(clearance_lists).where(and_(
                    cl.clearance_id == record.clearance_id, cl.list_id == list_id, cl.open_document.is_not(None)))
                    .values(open_document=None, withdrawn_in_version=version)).rowcount
                if moved != 1:
                    raise ClearanceError(f"clearance {record.redress_number} was withdrawn from {list_id} "
                                         "by someone else meanwhile; reload it")
                still_open = conn.execute(select(func.count()).select_from(clearance_lists).where(and_(
                    cl.clearance_id == record.clearance_id, cl.open_document.is_not(None)))).scalar_one()
                if not still_open:
                    conn.execute(update(clearances).where(c.clearance_id == record.clearance_id).values(
                        status=status, ended_by=by, ended_at=at, end_reason=reason))
                self.audit.append(conn, actor=by, action=action, subject=f"clearance:{record.redress_number}",
                                  reason=reason, at=at, before={"list_id": list_id, "status": ACTIVE,
                                                                "valid_until": record.valid_until},
                                  after={"list_id": list_id, "version": version,
                                         "status": status if not still_open else ACTIVE})

        if not held:  # not in the published state (nothing to publish): the register catches up alone
            with self.engine.begin() as conn:
                within(conn, None)
            return
        for attempt in range(_ATTEMPTS):
            try:
                self.registry.publish_clearances(list_id, ClearanceChange(remove=tuple(held)), by=by, within=within)
                return
            except (IntegrityError, ConcurrentPublish):
                if attempt + 1 == _ATTEMPTS:
                    raise ClearanceError("the registry was busy publishing; try again") from None

    # -- reading ---------------------------------------------------------------

    def get(self, number: str) -> ClearanceRecord:
        """The clearance with this redress number, however it was typed."""
        normal = parse_redress_number(number)
        with self.engine.connect() as conn:
            row = conn.execute(select(clearances).where(clearances.c.redress_number == normal)).first()
            if row is None:
                raise UnknownClearance(f"no clearance {normal}")
            links = conn.execute(select(clearance_lists).where(clearance_lists.c.clearance_id == row.clearance_id)
                                 .order_by(clearance_lists.c.list_id)).all()
        return _record(row, links)

    def records(self, numbers: Sequence[str]) -> list[ClearanceRecord]:
        """Several clearances by redress number, in the order given (a page of the register)."""
        if not numbers:
            return []
        with self.engine.connect() as conn:
            rows = {r.redress_number: r for r in conn.execute(
                select(clearances).where(clearances.c.redress_number.in_(list(numbers))))}
            links: dict[int, list] = {}
            for link in conn.execute(select(clearance_lists).where(clearance_lists.c.clearance_id.in_(
                    [r.clearance_id for r in rows.values()])).order_by(clearance_lists.c.list_id)):
                links.setdefault(link.clearance_id, []).append(link)
        return [_record(rows[n], links.get(rows[n].clearance_id, [])) for n in numbers if n in rows]

    def history(self, number: str) -> list[AuditRecord]:
        """Every audit record of this clearance, oldest first."""
        return list(self.audit.records(subject=f"clearance:{parse_redress_number(number)}"))


def _record(row, links) -> ClearanceRecord:
    traveller = Identity(row.surnames, row.given_names, row.date_of_birth,
                         (DocumentRef(row.document_class, row.issuer, row.document_number),))
    return ClearanceRecord(
        row.clearance_id, row.redress_number, traveller, row.document_expiry, row.reason, row.valid_until,
        row.status, row.issued_by, row.issued_at, row.ended_by, row.ended_at, row.end_reason,
        tuple(ClearedOn(link.list_id, link.published_in_version, link.withdrawn_in_version,
                        link.open_document is not None) for link in links))
