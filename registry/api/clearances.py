"""Namesake clearances over the API: find where a traveller could be cleared, issue, read, withdraw (issue 5).

The same ClearanceRegister as the pages (registry/web/clearance_pages.py),
so the same rules hold: a clearance is for one document, only on lists
whose active entries the traveller's name and date of birth hit, never
over a hit on the document itself; issuing and withdrawing publish at once.
Reviewers issue and withdraw; reviewers and auditors read, and auditors
see document numbers masked, as on the pages.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from flask import url_for
from sqlalchemy import select

from appliance.documents.errors import DocumentError
from appliance.verdict import mask_document_number
from registry.accounts import Role
from registry.api.errors import ApiError
from registry.api.operations import Reply, operation, paged
from registry.api.clearance_schemas import (
    ClearanceCheckIn,
    ClearanceDetail,
    ClearanceIn,
    ClearanceOut,
    ClearancePage,
    ClearanceQuery,
    ClearanceWithdrawIn,
    MatchesOut,
)
from registry.api.services import ui
from registry.clearance_policy import ClearanceError, ListMatch
from registry.clearances import (
    ACTIVE,
    ClearanceRecord,
    UnknownClearance,
    cleared_document,
    clearances,
    traveller_from_scan,
)
from registry.publish import DocumentRef
from registry.reports import Identity
from registry.web import listing
from registry.web.access import api_user
from registry.web.clearance_pages import REGISTER
from sync.identity import IdentityError

#: Who reads the register, and who sees its document numbers whole: as on the pages.
READERS, ISSUERS = (Role.REVIEWER, Role.AUDITOR), (Role.REVIEWER,)
#: A redress number as typed: ``CLR-1234-5678``, or with spaces, or without its prefix.
NUMBER = "<string(maxlength=32):number>"


def _traveller(body: dict) -> tuple[Identity, date | None]:
    """(identity, document expiry): from the scan when given (parsed here), else from the typed fields."""
    if "scan" in body:
        try:
            identity, expiry = traveller_from_scan(body["scan"].strip())
        except DocumentError as exc:
            raise ApiError(422, "invalid_scan", f"the scan cannot be read: {exc.message}") from None
        except IdentityError as exc:
            raise ApiError(422, "invalid_scan", f"the scan cannot be read: {exc}") from None
        return identity, body.get("document_expiry") or expiry
    typed, doc = body["traveller"], body["traveller"]["document"]
    identity = Identity(typed["surnames"].strip(), typed["given_names"].strip(), typed["date_of_birth"],
                        (DocumentRef(doc["document_class"], doc["issuer"], doc["number"].strip().upper()),))
    return identity, body.get("document_expiry")


def _traveller_out(identity: Identity, doc: DocumentRef, *, whole: bool) -> dict:
    return {"surnames": identity.surnames, "given_names": identity.given_names,
            "date_of_birth": identity.date_of_birth,
            "document": {"document_class": doc.document_class, "issuer": doc.issuer,
                         "number": doc.number if whole else mask_document_number(doc.number)}}


def _match_out(match: ListMatch) -> dict:
    return {**dataclasses.asdict(match), "eligible": match.eligible, "refusal": match.refusal}


def clearance_out(record: ClearanceRecord) -> dict:
    """The clearance as this user may see it: the document number whole for reviewers only."""
    out = {k: v for k, v in dataclasses.asdict(record).items() if k not in ("clearance_id", "traveller")}
    out["traveller"] = _traveller_out(record.traveller, record.document,
                                      whole=api_user().has_role(*ISSUERS))
    return out


def _record(number: str) -> ClearanceRecord:
    """The clearance, however its number was typed; an unknown or mistyped one is 404."""
    try:
        return ui().clearances.get(number)
    except (UnknownClearance, ClearanceError) as exc:
        raise ApiError(404, "unknown_clearance", exc.message) from None


@operation("POST", "/clearances/matches", summary="Where a traveller could be cleared", tag="clearances",
           roles=ISSUERS, body=ClearanceCheckIn, response=MatchesOut)
def clearance_matches(body: dict):
    """For every list: the active entries the traveller's name and date of birth hit, those that list the
    document itself, and whether a clearance may be issued there (`eligible`, else `refusal`). Changes
    nothing."""
    identity, expiry = _traveller(body)
    matches = ui().clearances.matches(identity)  # refuses a traveller without a usable document first
    return {"traveller": _traveller_out(identity, cleared_document(identity), whole=True),
            "document_expiry": expiry, "items": [_match_out(m) for m in matches]}


@operation("POST", "/clearances", summary="Issue a clearance", tag="clearances", roles=ISSUERS, body=ClearanceIn,
           status=201, response=ClearanceOut, errors=(503,))
def issue_clearance(body: dict):
    """One new redress number, published at once as an allow-token for the document on each of `lists`.
    Every list is checked first: one where the name and date of birth hit nothing, or that lists the
    document itself, refuses the whole clearance (422 `clearance`)."""
    identity, expiry = _traveller(body)
    record = ui().clearances.issue(identity, lists=body["lists"], reason=body["reason"], days=body["days"],
                                   document_expiry=expiry, by=api_user().username)
    return Reply(clearance_out(record),
                 headers={"Location": url_for("api.get_clearance", number=record.redress_number)})


@operation("GET", "/clearances", summary="The register of clearances", tag="clearances", roles=READERS,
           query=ClearanceQuery, response=ClearancePage)
def search_clearances(query: dict):
    """Newest first by default; `q` finds part of a redress number, a name or a document number."""
    page, per_page, sort = query["page"], query["per_page"], query["sort"]
    wanted = listing.ListQuery(page, " ".join(query.get("q", "").split()), sort.lstrip("-"),
                               listing.DESC if sort.startswith("-") else listing.ASC)
    stmt = select(clearances.c.redress_number)
    if "status" in query:
        stmt = stmt.where(clearances.c.status == query["status"])
    with ui().engine.connect() as conn:
        rows = conn.execute(listing.ordered(stmt, wanted, dataclasses.replace(REGISTER, page_size=per_page))).all()
    records = ui().clearances.records([row.redress_number for row in rows])
    return paged([clearance_out(r) for r in records], page, per_page)


@operation("GET", f"/clearances/{NUMBER}", summary="One clearance with its history", tag="clearances",
           roles=READERS, response=ClearanceDetail)
def get_clearance(number: str):
    """By redress number as the traveller quotes it: case, spaces, dashes and the prefix do not matter."""
    record = _record(number)
    history = ui().clearances.history(record.redress_number)
    return {**clearance_out(record), "history": [r.to_dict() for r in history]}


@operation("POST", f"/clearances/{NUMBER}/withdraw", summary="Withdraw a clearance", tag="clearances",
           roles=ISSUERS, body=ClearanceWithdrawIn, response=ClearanceOut, errors=(409, 503))
def withdraw_clearance(number: str, body: dict):
    """Taken off every list it is in force on; each removal is published at once."""
    record = _record(number)
    if record.status != ACTIVE:
        raise ApiError(409, "not_active", f"clearance {record.redress_number} is {record.status} already")
    return clearance_out(ui().clearances.withdraw(record.redress_number, by=api_user().username,
                                                  reason=body["reason"]))
