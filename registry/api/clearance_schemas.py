"""Namesake clearances' request and response shapes: the traveller, the matches, the register."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from registry.api.schemas import (
    AuditRecordOut,
    DocumentIn,
    DocumentOut,
    PageQuery,
    Reply,
    Request,
    StrictInteger,
    line,
    text,
)
from registry.clearance_policy import MAX_REASON_CHARS, MAX_TERM_DAYS, MIN_REASON_CHARS
from registry.clearances import STATES as CLEARANCE_STATES


class TravellerIn(Request):
    """The namesake and the one document the clearance is for."""

    surnames = line(200, required=True)
    given_names = line(200, min_chars=0, load_default="")
    date_of_birth = fields.Date(required=True)
    document = fields.Nested(DocumentIn, required=True)


class ClearanceCheckIn(Request):
    traveller = fields.Nested(TravellerIn, metadata={"description": "typed fields; or give `scan`"})
    scan = fields.String(validate=[validate.Length(1, 8192), validate.Regexp(r"^[^\x00]*$")], metadata={
        "description": "the traveller's document as pasted MRZ or barcode text, parsed on the server; "
                       "its expiry date bounds the clearance"})

    @validates_schema
    def _one_traveller(self, data, **kwargs) -> None:
        if ("traveller" in data) == ("scan" in data):
            raise ValidationError("give the traveller either as `traveller` (typed fields) or as `scan`, not both")


class ClearanceIn(ClearanceCheckIn):
    lists = fields.List(line(64), required=True, validate=validate.Length(1, 64), metadata={
        "description": "where it applies: lists whose entries the traveller's name and date of birth hit "
                       "(POST /clearances/matches)"})
    reason = text(MAX_REASON_CHARS, min_chars=MIN_REASON_CHARS, required=True,
                  metadata={"description": "how the traveller was told apart from the listed person"})
    days = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(1, MAX_TERM_DAYS),
                         metadata={"description": "the term; default a year"})
    document_expiry = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "the clearance ends then at the latest; a scan supplies it"})


class ClearanceWithdrawIn(Request):
    reason = text(MAX_REASON_CHARS, min_chars=MIN_REASON_CHARS, required=True)


CLEARANCE_SORTS = ["issued", "number", "surname", "until", "status"]


class ClearanceQuery(PageQuery):
    q = line(100, metadata={"description": "part of the redress number, a name or the document number"})
    status = fields.String(validate=validate.OneOf(CLEARANCE_STATES))
    sort = fields.String(load_default="-issued", validate=validate.OneOf(
        CLEARANCE_SORTS + [f"-{s}" for s in CLEARANCE_SORTS]), metadata={"description": "`-` for descending"})


class MatchedEntryOut(Reply):
    entry_id = fields.Integer(required=True)
    reference = fields.String(required=True)
    category = fields.String(required=True)
    valid_until = fields.Date(required=True)


class ListMatchOut(Reply):
    list_id = fields.String(required=True)
    name = fields.String(required=True)
    eligible = fields.Boolean(required=True, metadata={"description": "a clearance may be issued on this list"})
    refusal = fields.String(required=True, allow_none=True, metadata={"description": "why not, when not"})
    entries = fields.List(fields.Nested(MatchedEntryOut), required=True,
                          metadata={"description": "active entries the name and date of birth hit"})
    document_entries = fields.List(fields.Nested(MatchedEntryOut), required=True,
                                   metadata={"description": "entries listing the document itself"})
    cleared_by = fields.String(required=True, allow_none=True,
                               metadata={"description": "the clearance this document already holds there"})


class TravellerOut(Reply):
    surnames = fields.String(required=True)
    given_names = fields.String(required=True)
    date_of_birth = fields.Date(required=True)
    document = fields.Nested(DocumentOut, required=True)


class MatchesOut(Reply):
    traveller = fields.Nested(TravellerOut, required=True, metadata={"description": "as read, in canonical form"})
    document_expiry = fields.Date(required=True, allow_none=True)
    items = fields.List(fields.Nested(ListMatchOut), required=True)


class ClearedOnOut(Reply):
    list_id = fields.String(required=True)
    published_in_version = fields.Integer(required=True)
    withdrawn_in_version = fields.Integer(required=True, allow_none=True)
    open = fields.Boolean(required=True, metadata={"description": "in force on this list now"})


class ClearanceOut(Reply):
    redress_number = fields.String(required=True, metadata={"description": "CLR-dddd-dddd; the traveller quotes it"})
    traveller = fields.Nested(TravellerOut, required=True, metadata={
        "description": "the document number is masked for anyone but a reviewer"})
    document_expiry = fields.Date(required=True, allow_none=True)
    reason = fields.String(required=True)
    valid_until = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CLEARANCE_STATES))
    issued_by = fields.String(required=True)
    issued_at = fields.Integer(required=True)
    ended_by = fields.String(required=True, allow_none=True)
    ended_at = fields.Integer(required=True, allow_none=True)
    end_reason = fields.String(required=True, allow_none=True)
    lists = fields.List(fields.Nested(ClearedOnOut), required=True)


class ClearanceDetail(ClearanceOut):
    history = fields.List(fields.Nested(AuditRecordOut), required=True)


class ClearancePage(Reply):
    items = fields.List(fields.Nested(ClearanceOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True)
