"""IT's pages for the fleet: the devices, one device, revoking it, and enrolment codes (issue 5, "Fleet (IT)").

IT admins act; auditors may look. An IT admin scoped to organisations sees
and acts on only those organisations' devices and codes (a device of
another organisation answers 404, as a report does). Listings are searched,
sorted and paged in SQL (registry/web/listing.py); the device list can sort
by staleness because ``record_health`` keeps each device's stalest verified
heartbeat in a column. What a health report says is read by
registry/fleet.py, which never trusts its shape.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, StopValidation
from wtforms.widgets import CheckboxInput, ListWidget

from appliance.config import KNOWN_SCOPES
from appliance.web.forms import options
from registry.accounts import Role
from registry.db import RegistryError
from registry.devices import (
    CODE_STATES,
    CODE_UNUSED,
    STATUS_ACTIVE,
    STATUS_DISABLED,
    code_id_for,
    code_info,
    device_lists,
    device_of,
    devices,
    enrolment_codes,
    lists_of,
)
from registry.fleet import age_text, fleet_row
from registry.web import listing
from registry.web.access import roles_required
from registry.web.auth import ui
from sync.enrolment import AIRLINE_COUNTER, CUSTOM, HOTEL_DESK, MAX_AGE_HOURS, EnrolmentError, EnrolmentProfile

bp = Blueprint("ui_devices", __name__)
IT, READERS = (Role.IT_ADMIN,), (Role.IT_ADMIN, Role.AUDITOR)
#: No contact for this long and a device counts as gone silent. Devices poll
#: every few seconds and report health every 5 minutes, so a quarter of an
#: hour is three missed reports. App config DEVICE_SILENT_SECONDS overrides it.
SILENT_AFTER_SECONDS = 15 * 60
KINDS = ((AIRLINE_COUNTER, "Airline check-in counter (checks air_travel lists)"),
         (HOTEL_DESK, "Hotel front desk (checks star_hotel lists)"),
         (CUSTOM, "Other: the scopes ticked below"))
DEVICE_STATUSES = (("", "Any status"), (STATUS_ACTIVE, "Active"), (STATUS_DISABLED, "Revoked"))

_d, _c = devices.c, enrolment_codes.c
DEVICES = listing.ListSpec(
    sorts={"name": func.lower(_d.name), "device": _d.device_id, "org": func.coalesce(_d.org, ""),
           "contact": func.coalesce(_d.last_seen_at, 0),  # never heard from sorts first
           "lists": func.coalesce(_d.lists_as_of, 0),  # never verified sorts first: the stalest
           "enrolled": _d.enrolled_at, "status": _d.status},
    default_sort="contact", tiebreak=(_d.device_id,), search=(_d.name, _d.device_id, _d.org))
CODES = listing.ListSpec(
    sorts={"created": _c.created_at, "expires": _c.expires_at, "org": func.coalesce(_c.org, ""),
           "by": _c.created_by},
    default_sort="created", default_dir=listing.DESC, tiebreak=(_c.code_sha256,),
    search=(_c.created_by, _c.org, _c.used_by, _c.lists, _c.code_sha256))


def _now() -> float:
    return current_app.extensions["gatecheck_registry"].clock()


def _silent_after() -> float:
    return current_app.config.get("DEVICE_SILENT_SECONDS", SILENT_AFTER_SECONDS)


def _orgs() -> frozenset[str] | None:
    """The organisations the user may see; None for a user scoped to none (every organisation)."""
    return current_user.user.orgs or None


def _in_scope(column):
    orgs = _orgs()
    return () if orgs is None else (column.in_(sorted(orgs)),)


def _heads() -> dict[str, int]:
    return {summary["list_id"]: summary["current_version"] for summary in ui().list_summaries()}


# -- devices -------------------------------------------------------------------------

@bp.get("/devices")
@roles_required(*READERS)
def device_list():
    query = listing.parse(request.args, DEVICES, filters=("status", "silent", "list"))
    now, silent_after = _now(), _silent_after()
    where = list(_in_scope(_d.org))
    if query.filter("status") in (STATUS_ACTIVE, STATUS_DISABLED):
        where.append(_d.status == query.filter("status"))
    if query.filter("silent"):
        where += [_d.status == STATUS_ACTIVE,
                  func.coalesce(_d.last_seen_at, _d.enrolled_at) < int(now - silent_after)]
    if query.filter("list"):
        where.append(_d.device_id.in_(select(device_lists.c.device_id).where(
            device_lists.c.list_id == query.filter("list"))))
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, select(devices).where(*where), query, DEVICES)
        subscribed = lists_of(conn, [row.device_id for row in page.rows])
    heads = _heads()
    rows = [fleet_row(device_of(row, tuple(subscribed.get(row.device_id, ()))), row.health, heads, now=now,
                      silent_after=silent_after) for row in page.rows]
    return render_template("ui/devices.html", page=page, rows=rows, heads=heads, statuses=DEVICE_STATUSES,
                           silent_minutes=int(silent_after // 60), age=age_text)


def _device_or_404(device_id: str):
    with ui().engine.connect() as conn:
        row = conn.execute(select(devices).where(_d.device_id == device_id, *_in_scope(_d.org))).first()
        if row is None:
            abort(404, description=f"There is no device {device_id}.")
        return row, device_of(row, tuple(lists_of(conn, [device_id]).get(device_id, ())))


class RevokeForm(FlaskForm):
    reason = TextAreaField("Why (the audit log keeps it)", validators=[DataRequired(), Length(min=5, max=2000)],
                           description="e.g. counter 7 at FRA T1 stolen overnight, police ref. 2026-4411",
                           render_kw={"rows": 2})
    confirm = BooleanField("Yes: refuse every further request from this device", validators=[DataRequired()])


@bp.get("/devices/<device_id>")
@roles_required(*READERS)
def device_detail(device_id: str):
    row, device = _device_or_404(device_id)
    item = fleet_row(device, row.health, _heads(), now=_now(), silent_after=_silent_after())
    trail = list(ui().audit.records(subject=f"device:{device_id}"))
    return render_template("ui/devices_detail.html", row=item, device=device, trail=trail, form=RevokeForm(),
                           silent_minutes=int(_silent_after() // 60), age=age_text)


@bp.post("/devices/<device_id>/revoke")
@roles_required(*IT)
def revoke(device_id: str):
    _, device = _device_or_404(device_id)
    form = RevokeForm()
    if not form.validate_on_submit():
        problems = "; ".join(errors[0] for errors in form.errors.values())
        flash(f"Not revoked: {problems}. Tick the confirmation and give a reason.", "error")
    elif not device.active:
        flash(f"Device {device_id} was already revoked.", "status")
    else:
        ui().devices.revoke(device_id, by=current_user.user.username, reason=form.reason.data)
        flash(f"Device {device.name} ({device_id}) is revoked: the registry refuses it from the next second.",
              "status")
    return redirect(url_for("ui_devices.device_detail", device_id=device_id))


# -- enrolment codes -------------------------------------------------------------------

class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _one_or_more(form, field) -> None:
    if not field.data:
        raise StopValidation("Tick at least one list.")


class CodeForm(FlaskForm):
    """A device profile and the code's lifetime; the lists and organisations are set per request."""

    organisation = StringField("Organisation", validators=[Optional(), Length(max=32)],
                               description="Its code, e.g. DA for Demo Air. IT admins of that organisation will see the device.")
    kind = RadioField("Kind of device", choices=options(KINDS), default=AIRLINE_COUNTER,
                      validators=[InputRequired()])
    scopes = MultiCheckboxField("Sanction scopes (only to override the kind's)",
                                choices=options((s, s) for s in sorted(KNOWN_SCOPES)), validators=[Optional()])
    # Not DataRequired: its HTML "required" on every checkbox would make a browser demand all of them.
    lists = MultiCheckboxField("Lists the device receives", validators=[_one_or_more])
    max_age_hours = FloatField("Lists are out of date after (hours)", default=24,
                               validators=[InputRequired(), NumberRange(min=0.01, max=MAX_AGE_HOURS)])
    fail_closed = RadioField("With out-of-date lists", default="closed", validators=[InputRequired()], choices=options((
        ("closed", "Fail closed: a CLEAR becomes REFER"), ("open", "Fail open: keep CLEAR and warn staff"))))
    ttl_hours = IntegerField("The code expires after (hours)", default=24,
                             validators=[InputRequired(), NumberRange(min=1, max=24 * 30)])
    reason = StringField("Why (optional; the audit log keeps it)", validators=[Optional(), Length(max=500)],
                         description="e.g. replacement for counter 7 at FRA T1")


def _code_form() -> CodeForm:
    form = CodeForm()
    form.lists.choices = options((s["list_id"], f"{s['name']} ({s['list_id']})") for s in ui().list_summaries())
    orgs = _orgs()
    if orgs is not None:  # a scoped IT admin issues codes for their own organisations only
        form.organisation.validators = [DataRequired(), Length(max=32)]
        form.organisation.description = f"One of yours: {', '.join(sorted(orgs))}."
    return form


@bp.route("/enrolment-codes/new", methods=["GET", "POST"])
@roles_required(*IT)
def new_code():
    form = _code_form()
    status = 200
    if form.validate_on_submit():
        org = (form.organisation.data or "").strip().upper()
        try:
            if _orgs() is not None and org not in _orgs():
                raise EnrolmentError(f"you may issue codes for {', '.join(sorted(_orgs()))} only")
            profile = EnrolmentProfile.build(form.lists.data, organisation=org, kind=form.kind.data,
                                             scopes=form.scopes.data or (), max_age_hours=form.max_age_hours.data,
                                             fail_closed=form.fail_closed.data == "closed")
            ttl = form.ttl_hours.data * 3600
            code = ui().devices.issue_code(profile, ttl_seconds=ttl, by=current_user.user.username,
                                           reason=form.reason.data or "")
        except (RegistryError, EnrolmentError) as exc:
            flash(f"No code issued: {exc.message.removeprefix('profile: ')}", "error")
            status = 422
        else:
            issued = ui().devices.code(code_id_for(code))
            response = current_app.make_response(render_template(
                "ui/enrolment_code_issued.html", code=code, info=issued, kinds=dict(KINDS)))
            response.headers["Cache-Control"] = "no-store"  # shown once: not from a cache or the back button
            return response
    elif request.method == "POST":
        status = 422
    return render_template("ui/enrolment_code_new.html", form=form), status


class WithdrawForm(FlaskForm):
    reason = StringField("Why", validators=[Optional(), Length(max=500)])


@bp.get("/enrolment-codes")
@roles_required(*READERS)
def code_list():
    query = listing.parse(request.args, CODES, filters=("state",))
    now = int(_now())
    states = {
        "used": _c.used_at.is_not(None),
        "withdrawn": (_c.used_at.is_(None)) & _c.withdrawn_at.is_not(None),
        "expired": (_c.used_at.is_(None)) & _c.withdrawn_at.is_(None) & (_c.expires_at < now),
        "unused": (_c.used_at.is_(None)) & _c.withdrawn_at.is_(None) & (_c.expires_at >= now),
    }
    where = list(_in_scope(_c.org))
    if query.filter("state") in states:
        where.append(states[query.filter("state")])
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, select(enrolment_codes).where(*where), query, CODES)
    codes = [code_info(row) for row in page.rows]
    return render_template("ui/enrolment_codes.html", page=page, codes=codes, now=now, states=CODE_STATES,
                           unused=CODE_UNUSED, kinds=dict(KINDS), form=WithdrawForm())


@bp.post("/enrolment-codes/<code_id>/withdraw")
@roles_required(*IT)
def withdraw_code(code_id: str):
    form = WithdrawForm()
    info = ui().devices.code(code_id)
    if info is None or (_orgs() is not None and info.profile.organisation not in _orgs()):
        flash(f"There is no enrolment code {code_id}.", "error")
    elif not form.validate_on_submit():
        flash("Not withdrawn: the form expired; try again.", "error")
    else:
        try:
            ui().devices.withdraw_code(code_id, by=current_user.user.username, reason=form.reason.data or "")
        except RegistryError as exc:
            flash(f"Not withdrawn: {exc.message}", "error")
        else:
            flash(f"Enrolment code {code_id} is withdrawn: no device can enrol with it.", "status")
    return redirect(url_for("ui_devices.code_list"))
