"""Entries: find them, and see one whole, with its history (issue 5, "Lifecycle and redress").

An entry page says what the entry lists, which versions published and
withdrew it, the report and decisions that made it, its appeals and its
audit trail. There is no edit form: re-listing someone is a new report and
a new decision, never an edit of the old entry, so the history stays true.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import and_, or_, select
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from registry import db
from registry.accounts import Role
from registry.appeals import MAX_TEXT_CHARS
from registry.reports import approvals, reports
from registry.web import listing
from registry.web.access import roles_required
from registry.web.auth import ui

bp = Blueprint("ui_entries", __name__)
READERS = (Role.REVIEWER, Role.AUDITOR)
#: Who sees document numbers whole: reviewers, who compare them with the
#: traveller's document when deciding an appeal or a clearance. Everyone
#: else sees the last characters only: enough to tell two documents apart,
#: too little to use (data minimisation, GDPR Art. 5(1)(c)).
FULL_DOCUMENTS = frozenset({Role.REVIEWER})
SHOWN_CHARS = 3
STATUSES = (("", "Any status"), ("active", "Active"), ("removed", "Removed (lifted)"), ("expired", "Expired"))

_e = db.entries.c
ENTRIES = listing.ListSpec(
    sorts={"entry": _e.entry_id, "name": _e.surnames, "list": _e.list_id, "reference": _e.reference,
           "until": _e.valid_until, "status": _e.status},
    default_sort="entry", default_dir=listing.DESC, tiebreak=(_e.entry_id,),
    search=(_e.surnames, _e.given_names, _e.original_script, _e.reference))


def mask_document(number: str) -> str:
    """``C01X00T47`` -> ``T47``: the last characters only (the template marks the rest as hidden). Pure."""
    return number[-SHOWN_CHARS:] if len(number) > SHOWN_CHARS else ""


class FileAppealForm(FlaskForm):
    """An appeal as the redress desk received it: the traveller's grounds and how they reached us."""

    received = StringField("How it reached you", validators=[DataRequired(), Length(max=200)],
                           description="e.g. letter of 2026-11-20, customer relations case CR-4711")
    grounds = TextAreaField("The traveller's grounds", validators=[DataRequired(), Length(max=MAX_TEXT_CHARS - 300)],
                            render_kw={"rows": 5})


@bp.get("/entries")
@roles_required(*READERS)
def entries():
    query = listing.parse(request.args, ENTRIES, filters=("list", "status"))
    where = []
    if query.filter("list"):
        where.append(_e.list_id == query.filter("list"))
    if query.filter("status"):
        where.append(_e.status == query.filter("status"))
    stmt = select(_e.entry_id, _e.list_id, _e.surnames, _e.given_names, _e.date_of_birth, _e.category, _e.action,
                  _e.reference, _e.valid_until, _e.status).where(*where)
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, stmt, query, ENTRIES)
    return render_template("ui/entries.html", page=page, lists=ui().list_summaries(), statuses=STATUSES)


@dataclass(frozen=True)
class Source:
    """A report an entry came from, with its approvals; ``report`` None when the user may not see it."""

    report_id: str
    report: object | None
    approvals: list


def _sources(conn, entry) -> list[Source]:
    r = reports.c
    ids = conn.execute(select(r.report_id).where(or_(
        r.entry_id == entry.entry_id, and_(r.list_id == entry.list_id, r.report_id == entry.reference)))
        .order_by(r.report_id)).scalars().all()
    found = []
    for report_id in ids:
        report = ui().reports.get(report_id)  # reports are never deleted
        if report.org and not current_user.user.covers_org(report.org):
            found.append(Source(report_id, None, []))  # another organisation's: named, not shown
            continue
        given = conn.execute(select(approvals).where(approvals.c.report_id == report_id)
                             .order_by(approvals.c.at)).all()
        found.append(Source(report_id, report, [row._asdict() for row in given]))
    return found


def _version(conn, list_id: str, version: int | None) -> dict | None:
    if version is None:
        return None
    v = db.versions.c
    row = conn.execute(select(v.version, v.published_at, v.published_by).where(and_(
        v.list_id == list_id, v.version == version))).first()
    return row._asdict() if row is not None else {"version": version, "published_at": None, "published_by": None}


@bp.get("/entries/<int:entry_id>")
@roles_required(*READERS)
def entry(entry_id: int):
    with ui().engine.connect() as conn:
        row = conn.execute(select(db.entries, db.lists.c.name.label("list_name"))
                           .select_from(db.entries.join(db.lists, db.lists.c.list_id == _e.list_id))
                           .where(_e.entry_id == entry_id)).first()
        if row is None:
            abort(404, description=f"There is no entry {entry_id}.")
        d = db.entry_documents.c
        documents = conn.execute(select(d.document_class, d.issuer, d.number).where(d.entry_id == entry_id)
                                 .order_by(d.document_id)).all()
        added = _version(conn, row.list_id, row.added_in_version)
        removed = _version(conn, row.list_id, row.removed_in_version)
        sources = _sources(conn, row)
    full = current_user.user.has_role(*FULL_DOCUMENTS)
    shown = [{"document_class": doc.document_class, "issuer": doc.issuer,
              "number": doc.number if full else None, "last": mask_document(doc.number)} for doc in documents]
    subjects = [f"entry:{entry_id}"] + [f"report:{s.report_id}" for s in sources if s.report is not None]
    trail = sorted((record for subject in subjects for record in ui().audit.records(subject=subject)),
                   key=lambda record: record.seq)
    appeals = ui().appeals.of_entry(entry_id)
    can_appeal = (current_user.user.has_role(Role.REVIEWER) and row.status == "active"
                  and not any(a.status == "open" for a in appeals))
    return render_template("ui/entry.html", entry=row, variants=json.loads(row.latin_variants or "[]"),
                           documents=shown, full_documents=full, added=added, removed=removed, sources=sources,
                           appeals=appeals, trail=trail, appeal_form=FileAppealForm() if can_appeal else None)
