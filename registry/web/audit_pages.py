"""The audit log for auditors: browse it, export it, verify its chain (issue 5, "Audit").

The filters are the export's (registry/audit.py ``record_filter``): a range
of UTC days, a subject (``entry:42``, ``report:RPT-…``, ``user:sam``) and
who made the change. The download is the command's format
(``gatecheck registry audit export``), so an export from the page verifies
like one from the command. The search box narrows the page only, not the
download: a download is a run of whole records to check, not a search.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, Form, StringField
from wtforms.validators import Length, Optional

from registry.accounts import Role
from registry.audit import AuditRecord, audit_log, day_bounds, export_csv, export_jsonl, record_filter
from registry.web import listing, render_error
from registry.web.access import roles_required
from registry.web.auth import ui

bp = Blueprint("ui_audit", __name__)
FILTERS = ("since", "until", "subject", "actor")
FORMATS = {"jsonl": (export_jsonl, "application/x-ndjson"), "csv": (export_csv, "text/csv")}

_c = audit_log.c
AUDIT = listing.ListSpec(
    sorts={"record": _c.seq, "actor": _c.actor, "action": _c.action, "subject": _c.subject},
    default_sort="record", default_dir=listing.DESC, tiebreak=(_c.seq,),
    search=(_c.actor, _c.action, _c.subject, _c.reason))


class AuditFilter(Form):
    """The export's filters, read from the query string (a GET form: nothing changes, no CSRF token)."""

    since = DateField("From (UTC day)", validators=[Optional()])
    until = DateField("To (UTC day, inclusive)", validators=[Optional()])
    subject = StringField("Subject", validators=[Optional(), Length(max=200)],
                          description="Exactly, e.g. entry:42, report:RPT-20261127-0A1B2C3D, user:sam, list:da-ban")
    actor = StringField("Made by", validators=[Optional(), Length(max=200)],
                        description="A user name, or registry:expiry for the scheduled publish")

    def problem(self) -> str | None:
        """One line saying what is wrong with the filters, or None."""
        if not self.validate():
            return "; ".join(f"{self[name].label.text}: {errors[0]}" for name, errors in self.errors.items())
        if self.since.data and self.until.data and self.since.data > self.until.data:
            return "the range ends before it starts"
        return None

    def terms(self) -> dict:
        since, until = day_bounds(self.since.data, self.until.data)
        return {"since": since, "until": until, "subject": (self.subject.data or "").strip() or None,
                "actor": (self.actor.data or "").strip() or None}


class VerifyForm(FlaskForm):
    """Verifying reads the whole log: a POST, so no prefetch or crawler starts it."""


@bp.get("/audit")
@roles_required(Role.AUDITOR)
def audit_records():
    query = listing.parse(request.args, AUDIT, filters=FILTERS)
    filters = AuditFilter(request.args)
    problem = filters.problem()
    page, status = listing.Page([], False, query), 200
    if problem:
        status = 400
    else:
        stmt = select(audit_log).where(*record_filter(**filters.terms()))
        with ui().engine.connect() as conn:
            found = listing.fetch(conn, stmt, query, AUDIT)
        page = listing.Page([AuditRecord.from_row(row) for row in found.rows], found.more, query)
    return render_template("ui/audit.html", page=page, filters=filters, problem=problem, verify_form=VerifyForm(),
                           export={k: v for k, v in query.args().items() if k in FILTERS}), status


@bp.get("/audit/export")
@roles_required(Role.AUDITOR)
def export():
    filters = AuditFilter(request.args)
    problem = filters.problem()
    fmt = request.args.get("format", "jsonl")
    if fmt not in FORMATS:
        problem = f"format {fmt!r} is not one of: {', '.join(FORMATS)}"
    if problem:
        return render_error(400, "Cannot export", f"Not exported: {problem}.")
    write, mimetype = FORMATS[fmt]
    # Streamed without the request context: the generator needs only the engine, and a held
    # context would outlive the request if the client never reads the body.
    records = ui().audit.records(**filters.terms())
    name = "-".join(["audit", *(d.strftime("%Y%m%d") for d in (filters.since.data, filters.until.data) if d)])
    return Response(write(records), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{name}.{fmt}"', "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})


@bp.post("/audit/verify")
@roles_required(Role.AUDITOR)
def verify():
    if VerifyForm().validate_on_submit():
        count, problems = ui().audit.verify()
        if problems:
            flash(f"Audit log broken: {problems[0]}.", "error")
        else:
            head = ui().audit.head()
            flash(f"Audit log intact: {count:,} records" + (f", head {head.hash.hex()}." if head else "."), "status")
    return redirect(url_for("ui_audit.audit_records"))
