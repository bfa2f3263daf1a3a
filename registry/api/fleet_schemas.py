"""The fleet's request and response shapes: devices, revoking, enrolment codes and their profiles."""

from __future__ import annotations

from marshmallow import fields, validate

from appliance.config import KNOWN_SCOPES
from registry.api.schemas import PageQuery, Reply, Request, StrictBoolean, StrictInteger, StrictNumber, line, text
from registry.devices import CODE_STATES, STATUS_ACTIVE, STATUS_DISABLED
from sync.enrolment import KIND_SCOPES, MAX_AGE_HOURS, MAX_LISTS


class ProfileOut(Reply):
    lists = fields.List(fields.String(), required=True)
    organisation = fields.String(required=True, metadata={"description": "empty: no organisation"})
    kind = fields.String(required=True, validate=validate.OneOf(sorted(KIND_SCOPES)))
    scopes = fields.List(fields.String(), required=True)
    max_age_hours = fields.Float(required=True)
    fail_closed = fields.Boolean(required=True)


class DeviceOut(Reply):
    device_id = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([STATUS_ACTIVE, STATUS_DISABLED]),
                           metadata={"description": "disabled: revoked"})
    enrolled_at = fields.Integer(required=True)
    lists = fields.List(fields.String(), required=True)
    org = fields.String(required=True, metadata={"description": "empty: no organisation"})
    profile = fields.Nested(ProfileOut, required=True, allow_none=True,
                            metadata={"description": "null for a device enrolled before profiles"})
    last_seen_at = fields.Integer(required=True, allow_none=True)
    health_at = fields.Integer(required=True, allow_none=True)
    lists_as_of = fields.Integer(required=True, allow_none=True,
                                 metadata={"description": "the stalest list's verified heartbeat, Unix seconds"})
    revoked_at = fields.Integer(required=True, allow_none=True)
    revoked_by = fields.String(required=True, allow_none=True)


class DevicePage(Reply):
    items = fields.List(fields.Nested(DeviceOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True)


class DeviceQuery(PageQuery):
    status = fields.String(validate=validate.OneOf([STATUS_ACTIVE, STATUS_DISABLED]))


class CodeIn(Request):
    """A device profile (sync/enrolment.py) and the code's lifetime, as IT's page takes them."""

    lists = fields.List(line(64), required=True, validate=validate.Length(1, MAX_LISTS),
                        metadata={"description": "the lists the device receives (GET /lists)"})
    organisation = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9-]{1,31}$"), metadata={
        "description": "e.g. DA; required of an IT admin scoped to organisations, and then one of theirs"})
    kind = fields.String(load_default="airline_counter", validate=validate.OneOf(sorted(KIND_SCOPES)))
    scopes = fields.List(fields.String(validate=validate.OneOf(sorted(KNOWN_SCOPES))), load_default=list,
                         validate=validate.Length(max=len(KNOWN_SCOPES) * 4),
                         metadata={"description": "only to override the kind's scopes"})
    max_age_hours = StrictNumber(load_default=24.0, validate=validate.Range(0.01, MAX_AGE_HOURS),
                                 metadata={"description": "lists are out of date after this long"})
    fail_closed = StrictBoolean(load_default=True,
                                metadata={"description": "with out-of-date lists a CLEAR becomes REFER"})
    ttl_hours = StrictInteger(load_default=24, validate=validate.Range(1, 24 * 30),
                              metadata={"description": "the code expires after this long"})
    reason = line(500, min_chars=0, load_default="", metadata={"description": "the audit log keeps it"})


class CodeWithdrawIn(Request):
    reason = line(500, min_chars=0, load_default="")


class RevokeIn(Request):
    reason = text(2000, min_chars=5, required=True, metadata={
        "description": "the audit log keeps it, e.g. counter 7 at FRA T1 stolen overnight, police ref. 2026-4411"})


class CodeQuery(PageQuery):
    state = fields.String(validate=validate.OneOf(CODE_STATES))


class CodeOut(Reply):
    code_id = fields.String(required=True, metadata={"description": "the first 16 hex digits of the code's hash"})
    state = fields.String(required=True, validate=validate.OneOf(CODE_STATES))
    profile = fields.Nested(ProfileOut, required=True)
    created_at = fields.Integer(required=True)
    created_by = fields.String(required=True)
    expires_at = fields.Integer(required=True)
    used_at = fields.Integer(required=True, allow_none=True)
    used_by = fields.String(required=True, allow_none=True, metadata={"description": "the device it enrolled"})
    withdrawn_at = fields.Integer(required=True, allow_none=True)
    withdrawn_by = fields.String(required=True, allow_none=True)


class IssuedCodeOut(CodeOut):
    code = fields.String(required=True, metadata={
        "description": "the one-time code: shown in this answer only, never again (only its hash is kept)"})


class CodePage(Reply):
    items = fields.List(fields.Nested(CodeOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    more = fields.Boolean(required=True)
