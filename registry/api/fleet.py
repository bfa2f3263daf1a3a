"""The fleet over the API, for IT: devices, revoking one, and one-time enrolment codes (issue 5, "Fleet (IT)").

The same DeviceRegistry as IT's pages (registry/web/device_pages.py), so
the same rules hold: a code is bound to a device profile
(sync/enrolment.py), stored only as its hash and shown once, in the 201
answer that issues it; only an unused code can be withdrawn; a revoked
device is refused by the registry within a second. An IT admin scoped to
organisations sees and acts on only those organisations' devices and codes:
another organisation's answers 404, as on the pages, so its existence is
not confirmed. Re-keying a list is not here: it is the list admins' work.
"""

from __future__ import annotations

import dataclasses

from flask import current_app, url_for
from sqlalchemy import select

from registry.accounts import Role
from registry.api.errors import ApiError
from registry.api.operations import Reply, operation, paged
from registry.api.fleet_schemas import (
    CodeIn,
    CodeOut,
    CodePage,
    CodeQuery,
    CodeWithdrawIn,
    DeviceOut,
    DevicePage,
    DeviceQuery,
    IssuedCodeOut,
    RevokeIn,
)
from registry.api.services import ui
from registry.devices import (
    CODE_UNUSED,
    CodeInfo,
    Device,
    code_id_for,
    code_info,
    device_of,
    devices,
    enrolment_codes,
    lists_of,
)
from registry.publish import UnknownList
from registry.web import listing
from registry.web.access import api_user
from registry.web.device_pages import CODES
from sync.enrolment import EnrolmentError, EnrolmentProfile

IT = (Role.IT_ADMIN,)
DEVICE_ID = "<string(maxlength=16):device_id>"
CODE_ID = "<string(maxlength=16):code_id>"
_d, _c = devices.c, enrolment_codes.c


def _now() -> float:
    return current_app.extensions["gatecheck_registry"].clock()


def _orgs() -> frozenset[str] | None:
    """The organisations this IT admin acts for; None for one scoped to none (every organisation)."""
    return api_user().orgs or None


def _in_scope(column) -> tuple:
    orgs = _orgs()
    return () if orgs is None else (column.in_(sorted(orgs)),)


def device_out(device: Device) -> dict:
    return device.to_dict()


def code_out(info: CodeInfo) -> dict:
    return info.to_dict(_now())


def _device(device_id: str) -> Device:
    with ui().engine.connect() as conn:
        row = conn.execute(select(devices).where(_d.device_id == device_id, *_in_scope(_d.org))).first()
        if row is None:
            raise ApiError(404, "unknown_device", f"there is no device {device_id}")
        return device_of(row, tuple(lists_of(conn, [device_id]).get(device_id, ())))


def _code(code_id: str) -> CodeInfo:
    info = ui().devices.code(code_id)
    orgs = _orgs()
    if info is None or (orgs is not None and info.profile.organisation not in orgs):
        raise ApiError(404, "unknown_code", f"there is no enrolment code {code_id}")
    return info


# -- devices ---------------------------------------------------------------------------

@operation("GET", "/devices", summary="Enrolled devices", tag="fleet", roles=IT, query=DeviceQuery,
           response=DevicePage)
def list_devices(query: dict):
    """In enrolment order, with their profile, lists, status and when each was last seen."""
    page, per_page = query["page"], query["per_page"]
    stmt = select(devices).where(*_in_scope(_d.org))
    if "status" in query:
        stmt = stmt.where(_d.status == query["status"])
    stmt = stmt.order_by(_d.enrolled_at, _d.device_id).limit(per_page + 1).offset((page - 1) * per_page)
    with ui().engine.connect() as conn:
        rows = conn.execute(stmt).all()
        subscribed = lists_of(conn, [row.device_id for row in rows])
    return paged([device_out(device_of(r, tuple(subscribed.get(r.device_id, ())))) for r in rows], page, per_page)


@operation("GET", f"/devices/{DEVICE_ID}", summary="One device", tag="fleet", roles=IT, response=DeviceOut)
def get_device(device_id: str):
    return device_out(_device(device_id))


@operation("POST", f"/devices/{DEVICE_ID}/revoke", summary="Revoke a device", tag="fleet", roles=IT,
           body=RevokeIn, response=DeviceOut, errors=(409,))
def revoke_device(device_id: str, body: dict):
    """The registry refuses every further request from the device within a second (lost or stolen)."""
    device = _device(device_id)
    if not device.active:
        raise ApiError(409, "already_revoked", f"device {device_id} was revoked already")
    ui().devices.revoke(device_id, by=api_user().username, reason=body["reason"])
    return device_out(_device(device_id))


# -- enrolment codes -------------------------------------------------------------------

def _profile(body: dict) -> EnrolmentProfile:
    """The checked profile; a scoped IT admin names one of their own organisations."""
    org = body.get("organisation", "").strip().upper()
    orgs = _orgs()
    if orgs is not None and org not in orgs:
        raise ApiError(403, "forbidden", f"you issue codes for organisation {', '.join(sorted(orgs))} only; "
                                         "name it as `organisation`")
    try:
        return EnrolmentProfile.build(body["lists"], organisation=org, kind=body["kind"], scopes=body["scopes"],
                                      max_age_hours=body["max_age_hours"], fail_closed=body["fail_closed"])
    except EnrolmentError as exc:
        raise ApiError(422, "invalid_enrolment", exc.message) from None


@operation("POST", "/enrolment-codes", summary="Issue a one-time enrolment code", tag="fleet", roles=IT,
           body=CodeIn, status=201, response=IssuedCodeOut)
def issue_code(body: dict):
    """The answer carries the `code` itself, this once: only its hash is kept, and no later answer has it.
    Every list must exist and share a sanction scope with the device."""
    profile = _profile(body)
    try:
        code = ui().devices.issue_code(profile, ttl_seconds=body["ttl_hours"] * 3600, by=api_user().username,
                                       reason=body["reason"])
    except UnknownList as exc:  # a field of the body, not the path: the rules refuse it
        raise ApiError(422, "unknown_list", exc.message) from None
    info = ui().devices.code(code_id_for(code))
    return Reply({**code_out(info), "code": code},
                 headers={"Location": url_for("api.get_code", code_id=info.code_id)})


@operation("GET", "/enrolment-codes", summary="Enrolment codes, newest first (never the code)", tag="fleet",
           roles=IT, query=CodeQuery, response=CodePage)
def list_codes(query: dict):
    page, per_page = query["page"], query["per_page"]
    now = int(_now())
    states = {
        "used": _c.used_at.is_not(None),
        "withdrawn": _c.used_at.is_(None) & _c.withdrawn_at.is_not(None),
        "expired": _c.used_at.is_(None) & _c.withdrawn_at.is_(None) & (_c.expires_at < now),
        CODE_UNUSED: _c.used_at.is_(None) & _c.withdrawn_at.is_(None) & (_c.expires_at >= now),
    }
    stmt = select(enrolment_codes).where(*_in_scope(_c.org))
    if "state" in query:
        stmt = stmt.where(states[query["state"]])
    wanted = listing.ListQuery(page, "", CODES.default_sort, CODES.default_dir)  # the pages' order: newest first
    with ui().engine.connect() as conn:
        rows = conn.execute(listing.ordered(stmt, wanted, dataclasses.replace(CODES, page_size=per_page))).all()
    return paged([code_out(code_info(row)) for row in rows], page, per_page)


@operation("GET", f"/enrolment-codes/{CODE_ID}", summary="One enrolment code (never the code)", tag="fleet",
           roles=IT, response=CodeOut)
def get_code(code_id: str):
    return code_out(_code(code_id))


@operation("POST", f"/enrolment-codes/{CODE_ID}/withdraw", summary="Withdraw an unused enrolment code",
           tag="fleet", roles=IT, body=CodeWithdrawIn, response=CodeOut, errors=(409,))
def withdraw_code(code_id: str, body: dict):
    """No device can enrol with it afterwards (handed to the wrong person, say)."""
    info = _code(code_id)
    state = info.state(_now())
    if state != CODE_UNUSED:
        raise ApiError(409, "not_unused", f"enrolment code {code_id} is {state}; only an unused code can be withdrawn")
    return code_out(ui().devices.withdraw_code(code_id, by=api_user().username, reason=body["reason"]))
