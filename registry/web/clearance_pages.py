"""The register of namesake clearances: reviewers issue and withdraw, auditors read (issue 5, "Clearances").

Issuing is two steps on one page: "Find the lists" shows, for every list,
the active entries the traveller's name and date of birth hit and whether a
clearance may be issued there (registry/clearance_policy.py); "Issue" checks
the same again and publishes. Rules and storage: registry/clearances.py.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional, Regexp

from appliance.documents.errors import DocumentError
from appliance.verdict import mask_document_number
from registry.accounts import Role
from registry.clearance_policy import (
    DEFAULT_TERM_DAYS,
    MAX_REASON_CHARS,
    MAX_TERM_DAYS,
    MIN_REASON_CHARS,
    ClearanceError,
)
from registry.clearances import STATES, UnknownClearance, clearances, traveller_from_scan
from registry.db import RegistryError
from registry.publish import DocumentRef
from registry.reports import Identity
from registry.web import listing
from registry.web.access import roles_required
from registry.web.auth import ui
from registry.web.forms import DOCUMENT_CLASSES, options

bp = Blueprint("ui_clearances", __name__)
_c = clearances.c
#: The register: newest first; searchable by redress number, name and document number.
REGISTER = listing.ListSpec(
    sorts={"issued": _c.issued_at, "number": _c.redress_number, "surname": _c.surnames,
           "until": _c.valid_until, "status": _c.status},
    default_sort="issued", default_dir=listing.DESC, tiebreak=(_c.clearance_id,),
    search=(_c.redress_number, _c.surnames, _c.given_names, _c.document_number))


class ClearanceForm(FlaskForm):
    """The traveller (a pasted scan, or typed), the lists, the term and the reason."""

    scan = TextAreaField("Scanned document (paste the MRZ or barcode text)", validators=[Optional(), Length(max=16384)],
                         render_kw={"rows": 4, "spellcheck": "false"})
    surnames = StringField("Surname(s)", validators=[Optional(), Length(max=120)])
    given_names = StringField("Given names", validators=[Optional(), Length(max=120)])
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    document_class = SelectField("Document type", choices=options(DOCUMENT_CLASSES), validators=[Optional()])
    issuer = StringField("Issuing country (3 letters)", validators=[
        Optional(), Regexp(r"^[A-Za-z]{3}(-[A-Za-z0-9]{1,3})?$", message="e.g. DEU, or USA-CA")])
    document_number = StringField("Document number", validators=[Optional(), Length(max=40)])
    document_expiry = DateField("Document expires on", validators=[Optional()],
                                description="The clearance ends then at the latest (a scan fills it in).")
    lists = SelectMultipleField("Lists")
    days = IntegerField(f"Term in days (empty: {DEFAULT_TERM_DAYS})", validators=[
        Optional(), NumberRange(min=1, max=MAX_TERM_DAYS, message=f"1 to {MAX_TERM_DAYS} days")])
    reason = TextAreaField("Reason: how the traveller was told apart from the listed person",
                           validators=[Optional(), Length(max=MAX_REASON_CHARS)], render_kw={"rows": 3})
    #: Which button was pressed: "check" finds the lists, "issue" issues.
    action = StringField(validators=[AnyOf(("check", "issue"))])


class WithdrawForm(FlaskForm):
    reason = TextAreaField("Reason for withdrawing", validators=[
        DataRequired(), Length(min=MIN_REASON_CHARS, max=MAX_REASON_CHARS)], render_kw={"rows": 2})


def _traveller(form: ClearanceForm):
    """(identity, document expiry): from the pasted scan when there is one, else from the typed fields."""
    if form.scan.data and form.scan.data.strip():
        identity, expiry = traveller_from_scan(form.scan.data.strip())
        return identity, form.document_expiry.data or expiry
    documents = ()
    if form.document_class.data or form.issuer.data or form.document_number.data:
        documents = (DocumentRef(form.document_class.data or "", (form.issuer.data or "").upper(),
                                 (form.document_number.data or "").strip()),)
    return Identity((form.surnames.data or "").strip(), (form.given_names.data or "").strip(),
                    form.date_of_birth.data, documents), form.document_expiry.data


@bp.get("/clearances")
@roles_required(Role.REVIEWER, Role.AUDITOR)
def register():
    query = listing.parse(request.args, REGISTER, filters=("status",))
    if query.q:  # a redress number read out on the phone goes straight to its clearance
        try:
            return redirect(url_for("ui_clearances.detail", number=ui().clearances.get(query.q).redress_number))
        except (UnknownClearance, ClearanceError):
            pass
    stmt = select(_c.redress_number)
    if query.filter("status") in STATES:
        stmt = stmt.where(_c.status == query.filter("status"))
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, stmt, query, REGISTER)
    rows = ui().clearances.records([row.redress_number for row in page.rows])
    return render_template("ui/clearances.html", page=listing.Page(rows, page.more, query), states=STATES,
                           mask=mask_document_number)


@bp.route("/clearances/new", methods=["GET", "POST"])
@roles_required(Role.REVIEWER)
def new():
    form = ClearanceForm()
    form.lists.choices = options((s["list_id"], s["name"]) for s in ui().list_summaries())
    matches, traveller, status = None, None, 200
    if form.validate_on_submit():
        try:
            identity, expiry = _traveller(form)
            matches = ui().clearances.matches(identity)
            traveller = (identity, expiry)
            if form.action.data == "check":
                form.lists.data = [m.list_id for m in matches if m.eligible]
                if not form.lists.data:
                    flash("No list refers this traveller by name and date of birth, or every one that does "
                          "is explained below: there is nothing to clear.", "error")
            else:
                record = ui().clearances.issue(
                    identity, lists=form.lists.data or [], reason=form.reason.data or "", days=form.days.data,
                    document_expiry=expiry, by=current_user.user.username)
                flash(f"Clearance {record.redress_number} issued and published on "
                      f"{', '.join(link.list_id for link in record.lists)}, until {record.valid_until}. "
                      "The traveller quotes this number.", "status")
                return redirect(url_for("ui_clearances.detail", number=record.redress_number))
        except (RegistryError, DocumentError) as exc:
            flash(f"{'Not issued' if form.action.data == 'issue' else 'Cannot clear'}: {exc.message}", "error")
            status = 422
    elif request.method == "POST":
        status = 422
    return render_template("ui/clearance_new.html", form=form, matches=matches, traveller=traveller,
                           default_days=DEFAULT_TERM_DAYS, max_days=MAX_TERM_DAYS), status


def _record_or_404(number: str):
    try:
        return ui().clearances.get(number)
    except (UnknownClearance, ClearanceError):
        abort(404, description=f"There is no clearance {number}.")


@bp.get("/clearances/<number>")
@roles_required(Role.REVIEWER, Role.AUDITOR)
def detail(number: str):
    record = _record_or_404(number)
    if record.redress_number != number:  # typed another way: one address per clearance
        return redirect(url_for("ui_clearances.detail", number=record.redress_number))
    return render_template("ui/clearance_detail.html", record=record,
                           history=ui().clearances.history(record.redress_number), withdraw_form=WithdrawForm(),
                           may_withdraw=current_user.user.has_role(Role.REVIEWER), mask=mask_document_number)


@bp.post("/clearances/<number>/withdraw")
@roles_required(Role.REVIEWER)
def withdraw(number: str):
    record = _record_or_404(number)
    form = WithdrawForm()
    if form.validate_on_submit():
        try:
            ui().clearances.withdraw(record.redress_number, by=current_user.user.username, reason=form.reason.data)
        except RegistryError as exc:
            flash(f"Not withdrawn: {exc.message}", "error")
        else:
            flash(f"Clearance {record.redress_number} withdrawn; the removal is published to the devices.", "status")
    else:
        flash(f"Not withdrawn: give the reason in {MIN_REASON_CHARS} to {MAX_REASON_CHARS:,} characters.", "error")
    return redirect(url_for("ui_clearances.detail", number=record.redress_number))

