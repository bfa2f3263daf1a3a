"""The API's request and response shapes, as marshmallow schemas: one declaration validates and documents.

Request schemas refuse unknown fields (``additionalProperties: false`` in
the OpenAPI document) and take JSON types strictly: ``1`` is not a boolean,
``"5"`` is not an integer in a body. Response schemas ignore unknown keys,
so a later field never breaks a client that validates what it reads.
Single-line text refuses control characters, which have no place in a name
or a flight number and would only hide text from the reviewer. The fleet's,
the clearances' and the imports' shapes are in their own modules beside this
one (fleet_schemas.py, clearance_schemas.py, import_schemas.py).
"""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from registry.appeals import MAX_TEXT_CHARS
from registry.reports import MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES, MAX_NARRATIVE_CHARS

#: Unix seconds and versions fit a signed 64-bit column; larger numbers are refused, not overflowed.
MAX_INT = 2**63 - 1
#: Base64 text of the largest evidence file.
MAX_EVIDENCE_BASE64 = 4 * -(-MAX_EVIDENCE_BYTES // 3)
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class StrictBoolean(fields.Boolean):
    """Only JSON true and false (marshmallow would take 1, "yes", "on")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictInteger(fields.Integer):
    """Only JSON integers: not "5", not 5.0, not true."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictNumber(fields.Float):
    """Only JSON numbers: not "5", not true; never NaN or infinity."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def line(max_chars: int, *, min_chars: int = 1, **kwargs) -> fields.String:
    """One line of text: a name, a flight, a reason heading."""
    return fields.String(validate=[validate.Length(min_chars, max_chars),
                                   validate.Regexp(ONE_LINE, error="must be one line without control characters")],
                         **kwargs)


def text(max_chars: int, *, min_chars: int = 1, **kwargs) -> fields.String:
    """Free text that may span lines: a narrative, grounds, a decision."""
    return fields.String(validate=[validate.Length(min_chars, max_chars),
                                   validate.Regexp(MULTI_LINE, error="must not contain control characters")],
                         **kwargs)


class Request(Schema):
    class Meta:
        unknown = RAISE


class Reply(Schema):
    class Meta:
        unknown = EXCLUDE


# -- requests ---------------------------------------------------------------------

class DocumentIn(Request):
    document_class = fields.String(required=True, validate=validate.OneOf(["P", "I", "V", "D"]),
                                   metadata={"description": "P passport, I identity card, V visa, D driving licence"})
    issuer = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}(-[A-Z0-9]{1,3})?$"),
                           metadata={"description": "ISO 3166-1 alpha-3, with -XX for a state or province"})
    number = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9 -]{0,39}$"))


class IdentityIn(Request):
    surnames = line(200, required=True)
    given_names = line(200, min_chars=0, load_default="")
    date_of_birth = fields.Date(load_default=None, allow_none=True)
    documents = fields.List(fields.Nested(DocumentIn), load_default=list, validate=validate.Length(max=4))


class EvidenceIn(Request):
    filename = line(200, required=True)
    content_base64 = fields.String(required=True, validate=[
        validate.Length(max=MAX_EVIDENCE_BASE64, error=f"a file is at most {MAX_EVIDENCE_BYTES // (1024 * 1024)} MiB "
                                                      f"({MAX_EVIDENCE_BASE64:,} characters of base64)"),
        validate.Regexp(r"^[A-Za-z0-9+/]*={0,2}$", error="is not standard base64")],
        metadata={"description": f"the file in standard base64; PDF, PNG or JPEG (checked by its first bytes), "
                                 f"at most {MAX_EVIDENCE_BYTES // (1024 * 1024)} MiB"})


class FileReportIn(Request):
    list_id = line(64, required=True)
    category = line(64, required=True, metadata={"description": "one of the list's categories (GET /lists)"})
    identity = fields.Nested(IdentityIn, metadata={"description": "the traveller as typed fields; or give `scan`"})
    # A barcode's text carries separators (AAMVA: RS, GS, CR); only NUL is refused.
    scan = fields.String(validate=[validate.Length(1, 8192), validate.Regexp(r"^[^\x00]*$")], metadata={
        "description": "a pasted barcode or MRZ text, parsed on the server; or give `identity`"})
    trip = line(200, required=True, metadata={"description": "the flight or stay"})
    trip_date = fields.Date(required=True)
    narrative = text(MAX_NARRATIVE_CHARS, required=True)
    org = fields.String(validate=validate.Regexp(r"^[A-Z0-9][A-Z0-9-]{1,31}$"),
                        metadata={"description": "the organisation filing; default: the reporter's first"})
    evidence = fields.List(fields.Nested(EvidenceIn), load_default=list,
                           validate=validate.Length(max=MAX_EVIDENCE_FILES))

    @validates_schema
    def _one_identity(self, data, **kwargs) -> None:
        if ("identity" in data) == ("scan" in data):
            raise ValidationError("give the traveller either as `identity` (typed fields) or as `scan`, not both")


class AcceptIn(Request):
    days = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(1, 36_500),
                         metadata={"description": "a shorter term than the category's default; never above its maximum"})
    permanent = StrictBoolean(load_default=False)
    reason = text(2000, min_chars=0, load_default="")


class RejectIn(Request):
    reason = text(2000, min_chars=5, required=True, metadata={"description": "the reporter reads it"})


class AppealIn(Request):
    grounds = text(MAX_TEXT_CHARS - 300, required=True, metadata={"description": "the traveller's grounds"})
    received = line(200, required=True, metadata={
        "description": "how it reached you, e.g. letter of 2026-11-20, customer relations case CR-4711"})


class DecisionIn(Request):
    decision = text(MAX_TEXT_CHARS, min_chars=5, required=True, metadata={"description": "the traveller is told it"})


# -- query strings ----------------------------------------------------------------

class PageQuery(Request):
    page = fields.Integer(load_default=1, validate=validate.Range(1, 100_000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(1, 100))


class EntrySearchQuery(PageQuery):
    list_id = line(64)
    surname = line(200, metadata={"description": "the start of the surnames, any case (ASCII)"})
    date_of_birth = fields.Date()
    document_number = line(40)
    reference = line(200, metadata={"description": "the authority's reference; for a report's entry, the report id"})
    status = fields.String(validate=validate.OneOf(["active", "removed", "expired"]))
    sort = fields.String(load_default="entry_id", validate=validate.OneOf(
        ["entry_id", "-entry_id", "surnames", "-surnames", "valid_until", "-valid_until"]))


class AuditQuery(Request):
    from_ = fields.Date(data_key="from", metadata={"description": "first day, UTC"})
    to = fields.Date(metadata={"description": "last day, UTC, inclusive"})
    subject = line(200, metadata={"description": "e.g. entry:42, report:RPT-…, user:mia"})
    after_seq = fields.Integer(load_default=0, validate=validate.Range(0, MAX_INT),
                               metadata={"description": "continue after this record (the last page's next_after_seq)"})
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))

    @validates_schema
    def _range(self, data, **kwargs) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("`from` is after `to`")


# -- responses --------------------------------------------------------------------

class ErrorBody(Reply):
    code = fields.String(required=True)
    message = fields.String(required=True)


class Error(Reply):
    error = fields.Nested(ErrorBody, required=True)


class Me(Reply):
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    orgs = fields.List(fields.String(), required=True)


class CategoryOut(Reply):
    category = fields.String(required=True)
    label = fields.String(required=True)
    default_days = fields.Integer(required=True)
    max_days = fields.Integer(required=True, allow_none=True, metadata={"description": "null: no maximum"})


class ListOut(Reply):
    list_id = fields.String(required=True)
    name = fields.String(required=True)
    authority = fields.String(required=True)
    version = fields.Integer(required=True)
    takes_reports = fields.Boolean(required=True)
    reviewers_required = fields.Integer(required=True, allow_none=True)
    permanent_allowed = fields.Boolean(required=True, allow_none=True)
    categories = fields.List(fields.Nested(CategoryOut), required=True)


class ListsOut(Reply):
    items = fields.List(fields.Nested(ListOut), required=True)


class DocumentOut(Reply):
    document_class = fields.String(required=True)
    issuer = fields.String(required=True)
    number = fields.String(required=True)


class IdentityOut(Reply):
    surnames = fields.String(required=True)
    given_names = fields.String(required=True)
    date_of_birth = fields.Date(required=True, allow_none=True)
    documents = fields.List(fields.Nested(DocumentOut), required=True)


class EvidenceOut(Reply):
    evidence_id = fields.Integer(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)


REPORT_STATES = ["pending", "awaiting_second", "publishing", "accepted", "rejected"]


class ReportOut(Reply):
    report_id = fields.String(required=True)
    source = fields.String(required=True, metadata={"description": "web, device or api"})
    reporter = fields.String(required=True)
    org = fields.String(required=True)
    list_id = fields.String(required=True)
    category = fields.String(required=True)
    identity = fields.Nested(IdentityOut, required=True)
    trip = fields.String(required=True)
    trip_date = fields.Date(required=True)
    narrative = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(REPORT_STATES))
    created_at = fields.Integer(required=True, metadata={"description": "Unix seconds"})
    decided_by = fields.String(required=True, allow_none=True)
    decided_at = fields.Integer(required=True, allow_none=True)
    decision_reason = fields.String(required=True, allow_none=True)
    entry_id = fields.Integer(required=True, allow_none=True)
    evidence = fields.List(fields.Nested(EvidenceOut), required=True)


class EarlierReportOut(Reply):
    report_id = fields.String(required=True)
    list_id = fields.String(required=True)
    category = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(REPORT_STATES))
    trip = fields.String(required=True)
    trip_date = fields.Date(required=True)
    created_at = fields.Integer(required=True)
    decision_reason = fields.String(required=True, allow_none=True)


class SimilarEntryOut(Reply):
    entry_id = fields.Integer(required=True)
    list_id = fields.String(required=True)
    category = fields.String(required=True)
    status = fields.String(required=True)
    reference = fields.String(required=True)
    valid_until = fields.Date(required=True)


class SimilarOut(Reply):
    reports = fields.List(fields.Nested(EarlierReportOut), required=True)
    entries = fields.List(fields.Nested(SimilarEntryOut), required=True)


class ReportDetail(ReportOut):
    similar = fields.Nested(SimilarOut, metadata={
        "description": "reviewers only: earlier reports and existing entries for the same person"})


class ReportPage(Reply):
    items = fields.List(fields.Nested(ReportOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True, metadata={"description": "a next page exists"})


class NameOut(Reply):
    surnames = fields.String(required=True)
    given_names = fields.String(required=True)


class EntryOut(Reply):
    entry_id = fields.Integer(required=True)
    list_id = fields.String(required=True)
    surnames = fields.String(required=True)
    given_names = fields.String(required=True)
    original_script = fields.String(required=True, allow_none=True)
    latin_variants = fields.List(fields.Nested(NameOut), required=True)
    date_of_birth = fields.Date(required=True, allow_none=True)
    documents = fields.List(fields.Nested(DocumentOut), required=True)
    category = fields.String(required=True)
    action = fields.String(required=True)
    reference = fields.String(required=True)
    redress = fields.String(required=True)
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(required=True)
    status = fields.String(required=True)
    created_by = fields.String(required=True)
    created_at = fields.Integer(required=True)
    removed_by = fields.String(required=True, allow_none=True)
    removed_at = fields.Integer(required=True, allow_none=True)
    added_in_version = fields.Integer(required=True, allow_none=True)
    removed_in_version = fields.Integer(required=True, allow_none=True)


class EntryPage(Reply):
    items = fields.List(fields.Nested(EntryOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True)


class AppealOut(Reply):
    appeal_id = fields.Integer(required=True)
    entry_id = fields.Integer(required=True)
    list_id = fields.String(required=True)
    filed_by = fields.String(required=True)
    grounds = fields.String(required=True)
    filed_on = fields.Date(required=True)
    decide_by = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "upheld", "dismissed"]))
    decided_by = fields.String(required=True, allow_none=True)
    decided_on = fields.Date(required=True, allow_none=True)
    decision = fields.String(required=True, allow_none=True)
    correct_by = fields.Date(required=True, allow_none=True)
    corrected_in_version = fields.Integer(required=True, allow_none=True)
    overdue = fields.Boolean(required=True, metadata={"description": "past a deadline today"})


class AppealPage(Reply):
    items = fields.List(fields.Nested(AppealOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True)


class AuditRecordOut(Reply):
    seq = fields.Integer(required=True)
    at = fields.Integer(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    subject = fields.String(required=True)
    reason = fields.String(required=True)
    before = fields.String(required=True, allow_none=True, metadata={"description": "canonical JSON text"})
    after = fields.String(required=True, allow_none=True, metadata={"description": "canonical JSON text"})
    prev_hash = fields.String(required=True, metadata={"description": "hex"})
    hash = fields.String(required=True, metadata={"description": "hex; docs/audit.md gives the chain"})


class EntryDetail(EntryOut):
    appeals = fields.List(fields.Nested(AppealOut), required=True)
    history = fields.List(fields.Nested(AuditRecordOut), required=True, metadata={
        "description": "audit records of the entry and of the report it came from"})


class AuditPage(Reply):
    records = fields.List(fields.Nested(AuditRecordOut), required=True)
    next_after_seq = fields.Integer(required=True, allow_none=True, metadata={"description": "null: no more"})


class AuditVerifyOut(Reply):
    intact = fields.Boolean(required=True)
    records = fields.Integer(required=True)
    head_seq = fields.Integer(required=True, allow_none=True)
    head_hash = fields.String(required=True, allow_none=True)
    problems = fields.List(fields.String(), required=True)
