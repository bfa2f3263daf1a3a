"""Appeals: record one for a traveller, see the deadlines, uphold or dismiss (issue 5, "Lifecycle and redress").

Who files: the traveller writes to the contact in the list's redress text
(an airline's customer relations or a hotel group's guest relations). The
person who records the appeal here is a reviewer on that desk, not the
reporter: a reporter is a party to the listing. The reviewer who accepted
the listing may record an appeal against it but never decide it; that rule
lives in registry/appeals.py, and its refusal is shown as one line.

Upholding lifts the entry: registry/appeals.py publishes its removal
through the sync core at once, so devices long-polling this process wake
immediately. Dismissing keeps the entry and records why.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from registry import db
from registry.accounts import Role
from registry.appeals import MAX_TEXT_CHARS, OPEN, UPHELD, Appeal, AppealError, appeals
from registry.db import RegistryError
from registry.review_policy import add_working_days
from registry.web import listing
from registry.web.access import roles_required
from registry.web.auth import ui
from registry.web.entry_pages import READERS, FileAppealForm

bp = Blueprint("ui_appeals", __name__)
VIEWS = (("open", "Open"), ("upheld", "Upheld"), ("dismissed", "Dismissed"), ("all", "All"))

_a, _e = appeals.c, db.entries.c
APPEALS = listing.ListSpec(
    sorts={"decide_by": _a.decide_by, "filed": _a.filed_on, "appeal": _a.appeal_id, "list": _a.list_id,
           "name": _e.surnames, "status": _a.status},
    default_sort="decide_by", tiebreak=(_a.appeal_id,),
    search=(_e.surnames, _e.given_names, _e.reference, _a.filed_by, _a.grounds, _a.decided_by))


class DecisionForm(FlaskForm):
    decision = TextAreaField("Decision, as the traveller will be told it",
                             validators=[DataRequired(), Length(min=5, max=MAX_TEXT_CHARS)], render_kw={"rows": 3})


def _today() -> date:
    return datetime.fromtimestamp(ui().appeals.clock(), timezone.utc).date()


def _correction_by(appeal: Appeal, today: date, terms: dict) -> date | None:
    """The correction deadline: recorded once upheld; for an open appeal, what it would be if upheld today."""
    if appeal.status == UPHELD:
        return appeal.correct_by
    if appeal.status != OPEN:
        return None
    if appeal.list_id not in terms:
        terms[appeal.list_id] = ui().appeals.terms(appeal.list_id).correction_working_days
    return add_working_days(today, terms[appeal.list_id], ui().appeals.holidays)


@bp.get("/appeals")
@roles_required(*READERS)
def appeal_list():
    query = listing.parse(request.args, APPEALS, filters=("view",))
    view = query.filter("view") if query.filter("view") in dict(VIEWS) else OPEN
    stmt = (select(appeals, _e.surnames, _e.given_names, _e.reference)
            .select_from(appeals.join(db.entries, _e.entry_id == _a.entry_id)))
    if view != "all":
        stmt = stmt.where(_a.status == view)
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, stmt, query, APPEALS)
    today, terms = _today(), {}
    rows = [{"appeal": Appeal.from_row(row), "surnames": row.surnames, "given_names": row.given_names,
             "reference": row.reference} for row in page.rows]
    for row in rows:
        row["correction_by"] = _correction_by(row["appeal"], today, terms)
        row["overdue"] = row["appeal"].overdue(today)
    return render_template("ui/appeals.html", page=page, rows=rows, view=view, views=VIEWS, today=today)


def _appeal_or_404(appeal_id: int) -> Appeal:
    try:
        return ui().appeals.get(appeal_id)
    except AppealError:
        abort(404, description=f"There is no appeal {appeal_id}.")


@bp.get("/appeals/<int:appeal_id>")
@roles_required(*READERS)
def appeal(appeal_id: int):
    found = _appeal_or_404(appeal_id)
    with ui().engine.connect() as conn:
        entry = conn.execute(select(_e.entry_id, _e.list_id, _e.surnames, _e.given_names, _e.reference, _e.status,
                                    _e.valid_until, _e.created_by).where(_e.entry_id == found.entry_id)).one()
    today = _today()
    user = current_user.user
    deciding = found.status == OPEN and user.has_role(Role.REVIEWER)
    return render_template("ui/appeal.html", appeal=found, entry=entry, today=today,
                           correction_by=_correction_by(found, today, {}), overdue=found.overdue(today),
                           own_listing=entry.created_by == user.username,
                           uphold_form=DecisionForm(prefix="uphold") if deciding else None,
                           dismiss_form=DecisionForm(prefix="dismiss") if deciding else None)


@bp.post("/entries/<int:entry_id>/appeal")
@roles_required(Role.REVIEWER)
def file_appeal(entry_id: int):
    form = FileAppealForm()
    if not form.validate_on_submit():
        flash("Not recorded: " + "; ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("ui_entries.entry", entry_id=entry_id))
    grounds = f"{form.grounds.data.strip()}\n\n(Received: {form.received.data.strip()})"
    try:
        filed = ui().appeals.file(entry_id, grounds=grounds, filed_by=current_user.user.username)
    except RegistryError as exc:
        flash(f"Not recorded: {exc.message}", "error")
        return redirect(url_for("ui_entries.entry", entry_id=entry_id))
    flash(f"Appeal {filed.appeal_id} recorded; it must be decided by {filed.decide_by}.", "status")
    return redirect(url_for("ui_appeals.appeal", appeal_id=filed.appeal_id))


def _decide(appeal_id: int, how: str):
    _appeal_or_404(appeal_id)
    form = DecisionForm(prefix=how)
    if not form.validate_on_submit():
        flash("Not decided: a decision needs a reason the traveller can be told (5 characters or more).", "error")
        return redirect(url_for("ui_appeals.appeal", appeal_id=appeal_id))
    decide = ui().appeals.uphold if how == "uphold" else ui().appeals.dismiss
    try:
        decided = decide(appeal_id, reviewer=current_user.user.username, decision=form.decision.data)
    except RegistryError as exc:
        flash(f"Not decided: {exc.message}", "error")
        return redirect(url_for("ui_appeals.appeal", appeal_id=appeal_id))
    if decided.status == UPHELD:
        flash(f"Appeal {appeal_id} upheld: entry {decided.entry_id} is lifted, its removal published in version "
              f"{decided.corrected_in_version}.", "status")
    else:
        flash(f"Appeal {appeal_id} dismissed: entry {decided.entry_id} stays listed.", "status")
    return redirect(url_for("ui_appeals.appeal", appeal_id=appeal_id))


@bp.post("/appeals/<int:appeal_id>/uphold")
@roles_required(Role.REVIEWER)
def uphold(appeal_id: int):
    return _decide(appeal_id, "uphold")


@bp.post("/appeals/<int:appeal_id>/dismiss")
@roles_required(Role.REVIEWER)
def dismiss(appeal_id: int):
    return _decide(appeal_id, "dismiss")
