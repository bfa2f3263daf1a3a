"""Authority list imports' request and response shapes: the upload's query, the mapping, the preview."""

from __future__ import annotations

from marshmallow import fields, validate

from registry.api.schemas import PageQuery, Reply, Request, StrictInteger, line, text
from registry.importer import DEFAULTABLE as IMPORT_DEFAULTABLE
from registry.importer import FIELDS as IMPORT_FIELDS
from registry.importer import MAX_TERM_DAYS as IMPORT_MAX_TERM_DAYS


IMPORT_STATES = ["uploaded", "previewing", "previewed", "unchanged", "applied", "discarded", "stale", "failed"]


class ImportStartQuery(Request):
    list_id = line(64, required=True)
    file_name = line(255, load_default="upload", metadata={"description": "kept in the history; a .json name "
                                                                           "must hold JSON"})


class ImportMappingIn(Request):
    """docs/imports.md, "The mapping"; the registry checks it again (422 `bad_mapping` names the key)."""

    columns = fields.Dict(keys=fields.String(validate=validate.OneOf(sorted(IMPORT_FIELDS))),
                          values=line(500, min_chars=0), required=True,
                          metadata={"description": "entry field: the file's column; reference and surnames needed"})
    defaults = fields.Dict(keys=fields.String(validate=validate.OneOf(sorted(IMPORT_DEFAULTABLE))),
                           values=text(2000, min_chars=0), load_default=dict,
                           metadata={"description": "entry field: the value for rows that leave it empty"})
    term_days = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(1, IMPORT_MAX_TERM_DAYS),
                              metadata={"description": "the term of rows without an expiry; none: they are refused"})
    date_format = line(40, load_default="%Y-%m-%d", metadata={"description": "strptime, for every date column"})


class ImportQuery(PageQuery):
    list_id = line(64)
    status = fields.String(validate=validate.OneOf(IMPORT_STATES))


class ImportOut(Reply):
    import_id = fields.String(required=True)
    list_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(IMPORT_STATES))
    file_name = fields.String(required=True)
    file_format = fields.String(required=True, validate=validate.OneOf(["csv", "json", "jsonl"]))
    columns = fields.List(fields.String(), required=True, metadata={"description": "the file's column names"})
    created_by = fields.String(required=True)
    created_at = fields.Integer(required=True)
    mapping = fields.Dict(required=True, allow_none=True)
    previewed_by = fields.String(required=True, allow_none=True)
    previewed_at = fields.Integer(required=True, allow_none=True)
    base_version = fields.Integer(required=True, allow_none=True, metadata={"description": "previewed against"})
    file_sha256 = fields.String(required=True, allow_none=True)
    file_bytes = fields.Integer(required=True, allow_none=True)
    rows = fields.Integer(required=True, allow_none=True)
    additions = fields.Integer(required=True, allow_none=True)
    removals = fields.Integer(required=True, allow_none=True)
    unchanged = fields.Integer(required=True, allow_none=True)
    refused = fields.Integer(required=True, allow_none=True)
    confirmed_by = fields.String(required=True, allow_none=True)
    applied_at = fields.Integer(required=True, allow_none=True)
    applied_version = fields.Integer(required=True, allow_none=True)
    failure = fields.String(required=True, allow_none=True, metadata={"description": "why the file could not be read"})


class RefusedRowOut(Reply):
    row_no = fields.Integer(required=True, metadata={"description": "the line (CSV, JSON lines) or item number"})
    reference = fields.String(required=True, allow_none=True)
    reason = fields.String(required=True)


class RemovalOut(Reply):
    entry_id = fields.Integer(required=True)
    reference = fields.String(required=True)
    surnames = fields.String(required=True)
    given_names = fields.String(required=True, allow_none=True)


class ImportPreviewOut(ImportOut):
    refused_rows = fields.List(fields.Nested(RefusedRowOut), required=True,
                               metadata={"description": "the first refused rows, with reasons"})
    removal_sample = fields.List(fields.Nested(RemovalOut), required=True,
                                 metadata={"description": "the first entries the apply would withdraw"})


class ImportPage(Reply):
    items = fields.List(fields.Nested(ImportOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True)
