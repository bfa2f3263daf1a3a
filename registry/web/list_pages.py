"""Lists: who lists, on what basis, for which scopes, under what review policy, and the redress text.

The redress text is what a traveller is shown on a DENY or REFER: who to
contact and what reference to quote (issue 5, "Redress information"). List
admins edit it here, audited with before and after. The page says what an
edit reaches, because the text travels with each entry when the entry is
published (registry/list_redress.py): entries listed from now on carry the
new text; entries already published keep theirs.

IT admins re-key a list here when a device holding its key is lost
(registry/rekey.py): a reason and a ticked confirmation, because every
device then downloads the whole list again.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from registry import db
from registry.accounts import Role
from registry.db import RegistryError
from registry.list_redress import MAX_REDRESS_CHARS, MIN_REASON_CHARS, reach, set_redress
from registry.rekey import retired_keys, rotate_token_key
from registry.reports import ReportError
from registry.web import listing
from registry.web.access import roles_required, signed_in
from registry.web.auth import ui

bp = Blueprint("ui_lists", __name__)
#: Who sees a list's recent changes from the audit log on its page.
SEE_CHANGES = (Role.LIST_ADMIN, Role.AUDITOR)
RECENT_CHANGES = 10

_l, _v = db.lists.c, db.versions.c
LISTS = listing.ListSpec(
    sorts={"list": _l.list_id, "name": _l.name, "authority": _l.authority, "version": _l.current_version,
           "tokens": _v.token_count},
    default_sort="list", tiebreak=(_l.list_id,),
    search=(_l.list_id, _l.name, _l.authority, _l.legal_basis, _l.scopes))


class RedressForm(FlaskForm):
    redress = TextAreaField("Redress text", validators=[DataRequired(), Length(max=MAX_REDRESS_CHARS)],
                            description="Who the traveller should contact and what reference to quote.",
                            render_kw={"rows": 4, "maxlength": MAX_REDRESS_CHARS})
    reason = StringField("Why it changes", validators=[DataRequired(), Length(min=MIN_REASON_CHARS, max=500)],
                         description="Kept in the audit log with the text before and after.")


class RekeyForm(FlaskForm):
    reason = TextAreaField("Why (the audit log keeps it)", validators=[DataRequired(), Length(min=5, max=2000)],
                           description="e.g. counter 7 at FRA T1 stolen overnight with its lists, police ref. 2026-4411",
                           render_kw={"rows": 2})
    confirm = BooleanField("Yes: retire the current key; every device downloads the whole list again",
                           validators=[DataRequired()])


def _with_head():
    return (select(_l.list_id, _l.name, _l.authority, _l.legal_basis, _l.scopes, _l.default_action, _l.redress,
                   _l.token_key_id, _l.current_version, _l.created_at, _v.token_count, _v.published_at)
            .select_from(db.lists.outerjoin(db.versions, (_v.list_id == _l.list_id)
                                            & (_v.version == _l.current_version))))


@bp.get("/lists")
@signed_in
def lists():
    query = listing.parse(request.args, LISTS)
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, _with_head(), query, LISTS)
    return render_template("ui/lists.html", page=page, scopes={row.list_id: json.loads(row.scopes) for row in page.rows})


def _policy(list_id: str):
    try:
        return ui().reports.policy(list_id)
    except ReportError:
        return None  # an authority's list, imported: it takes no reports


@bp.get("/lists/<list_id>")
@signed_in
def list_detail(list_id: str):
    with ui().engine.connect() as conn:
        row = conn.execute(_with_head().where(_l.list_id == list_id)).first()
        if row is None:
            abort(404, description=f"There is no list {list_id}.")
        e = db.entries.c
        counts = dict(conn.execute(select(e.status, func.count()).where(e.list_id == list_id)
                                   .group_by(e.status)).all())
    user = current_user.user
    form = None
    if user.has_role(Role.LIST_ADMIN):
        form = RedressForm(formdata=None, data={"redress": row.redress})
    rekey_form = RekeyForm(formdata=None) if user.has_role(Role.IT_ADMIN) and not user.orgs else None
    changes = None
    if user.has_role(*SEE_CHANGES):
        changes = sorted(ui().audit.records(subject=f"list:{list_id}"), key=lambda r: -r.seq)[:RECENT_CHANGES]
    return render_template("ui/list.html", lst=row, scopes=json.loads(row.scopes), counts=counts,
                           policy=_policy(list_id), terms=ui().appeals.terms(list_id), reach=reach(ui().engine, list_id),
                           form=form, changes=changes, rekey_form=rekey_form,
                           retired=retired_keys(ui().engine, list_id),
                           can_see_entries=user.has_role(Role.REVIEWER, Role.AUDITOR))


@bp.post("/lists/<list_id>/redress")
@roles_required(Role.LIST_ADMIN)
def edit_redress(list_id: str):
    form = RedressForm()
    if not form.validate_on_submit():
        flash("Not saved: " + "; ".join(f"{form[name].label.text}: {e}" for name, errors in form.errors.items()
                                         for e in errors), "error")
        return redirect(url_for("ui_lists.list_detail", list_id=list_id))
    try:
        set_redress(ui().engine, ui().audit, list_id, form.redress.data, by=current_user.user.username,
                    reason=form.reason.data)
        waiting = reach(ui().engine, list_id).other
    except RegistryError as exc:
        flash(f"Not saved: {exc.message}", "error")
        return redirect(url_for("ui_lists.list_detail", list_id=list_id))
    note = ""
    if waiting:
        one = waiting == 1
        note = (f" The {waiting:,} active {'entry' if one else 'entries'} published before "
                f"{'keeps' if one else 'keep'} the text {'it was' if one else 'they were'} published with.")
    flash(f"Redress text of {list_id} saved. Entries listed from now on carry it to the counters.{note}", "status")
    return redirect(url_for("ui_lists.list_detail", list_id=list_id))


@bp.post("/lists/<list_id>/rekey")
@roles_required(Role.IT_ADMIN)
def rekey(list_id: str):
    """Rotate the list's token key; IT admins of every organisation only, since every organisation's devices move."""
    user = current_user.user
    back = redirect(url_for("ui_lists.list_detail", list_id=list_id))
    if user.orgs:
        flash("Not re-keyed: a list serves every organisation's devices, so only an IT admin of all "
              "organisations may re-key it.", "error")
        return back
    form = RekeyForm()
    if not form.validate_on_submit():
        problems = "; ".join(errors[0] for errors in form.errors.values())
        flash(f"Not re-keyed: {problems}. Tick the confirmation and give a reason.", "error")
        return back
    try:
        done = rotate_token_key(current_app.extensions["gatecheck_registry"].registry, list_id,
                                by=user.username, reason=form.reason.data, audit=ui().audit)
    except RegistryError as exc:
        flash(f"Not re-keyed: {exc.message}", "error")
        return back
    flash(f"{list_id} is re-keyed: key {done.old_key_id} is retired, version {done.version} carries "
          f"{done.tokens:,} tokens under key {done.new_key_id}. Devices take it as a full snapshot at their next "
          "poll.", "status")
    return back
