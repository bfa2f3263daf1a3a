"""Reporters file reports and follow them; reviewers work the queue and decide (issue 5, "Reports", "Review")."""

from __future__ import annotations

from flask import Blueprint, Request, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from appliance.documents.errors import DocumentError
from registry.accounts import Role
from registry.db import RegistryError
from registry.publish import DocumentRef
from registry.reports import MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES, Evidence, Identity, ReportError, UnknownReport, identity_from_scan
from registry.web.access import roles_required
from registry.web.auth import ui
from registry.web.forms import AcceptForm, RejectForm, ReportForm, options

bp = Blueprint("ui_reports", __name__)
PAGE_SIZE = 25
#: The report form carries evidence: 5 files of 5 MiB and the fields. Everything else keeps the app's 64 KiB.
REPORT_FORM_MAX_BYTES = MAX_EVIDENCE_FILES * MAX_EVIDENCE_BYTES + 256 * 1024
REPORT_FORM_PATH = "/reports/new"


class UploadAwareRequest(Request):
    """The body limit is decided before anything reads the body (the CSRF check reads the form first)."""

    @property
    def max_content_length(self) -> int | None:
        if self.path == REPORT_FORM_PATH:
            return REPORT_FORM_MAX_BYTES
        return super().max_content_length


def _page() -> int:
    return max(1, request.args.get("page", 1, type=int) or 1)


def _category_choices() -> list[tuple[str, str]]:
    """"list|category" choices from every list that takes reports."""
    choices = []
    for summary in ui().list_summaries():
        try:
            policy = ui().reports.policy(summary["list_id"])
        except ReportError:
            continue
        choices += [(f"{policy.list_id}|{c.category}", f"{summary['name']}: {c.label}") for c in policy.categories]
    return choices


def _identity(form: ReportForm) -> Identity:
    """From the pasted scan when there is one (parsed here, server-side), else from the typed fields."""
    if form.scan.data and form.scan.data.strip():
        return identity_from_scan(form.scan.data.strip())
    documents = ()
    if form.document_class.data and form.document_number.data:
        if not form.issuer.data:
            raise ReportError("a document needs its issuing country")
        documents = (DocumentRef(form.document_class.data, form.issuer.data.upper(),
                                 form.document_number.data.strip().upper()),)
    return Identity((form.surnames.data or "").strip(), (form.given_names.data or "").strip(),
                    form.date_of_birth.data, documents)


@bp.route(REPORT_FORM_PATH, methods=["GET", "POST"])
@roles_required(Role.REPORTER)
def new_report():
    form = ReportForm()
    form.list_category.choices = options(_category_choices())
    if not form.list_category.choices:
        flash("No list takes reports yet: a list admin must set its categories.", "error")
    status = 200
    if form.validate_on_submit():
        list_id, _, category = form.list_category.data.partition("|")
        user = current_user.user
        try:
            files = [Evidence(f.filename or "evidence", f.read()) for f in form.evidence.data or [] if f and f.filename]
            report_id = ui().reports.file(
                reporter=user.username, org=min(user.orgs) if user.orgs else "", list_id=list_id, category=category,
                identity=_identity(form), trip=form.trip.data, trip_date=form.trip_date.data,
                narrative=form.narrative.data, attachments=files)
        except (RegistryError, DocumentError) as exc:
            flash(f"Not filed: {exc.message}", "error")
            status = 422
        else:
            flash(f"Report {report_id} filed. A reviewer will decide it; you can follow it here.", "status")
            return redirect(url_for("ui_reports.my_reports"))
    elif request.method == "POST":
        status = 422
    return render_template("ui/report_new.html", form=form), status


@bp.get("/reports/mine")
@roles_required(Role.REPORTER)
def my_reports():
    page = _page()
    reports = ui().reports.by_reporter(current_user.user.username, limit=PAGE_SIZE + 1,
                                       offset=(page - 1) * PAGE_SIZE)
    return render_template("ui/reports_mine.html", reports=reports[:PAGE_SIZE], page=page,
                           more=len(reports) > PAGE_SIZE)


def _visible(report) -> bool:
    """Reviewers scoped to organisations see only their organisations' reports."""
    return current_user.user.covers_org(report.org) if report.org else True


@bp.get("/review")
@roles_required(Role.REVIEWER)
def review_queue():
    page = _page()
    orgs = current_user.user.orgs or None  # a reviewer with no organisation sees every report
    waiting = ui().reports.queue(orgs=orgs, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template("ui/review_queue.html", reports=waiting[:PAGE_SIZE], page=page,
                           more=len(waiting) > PAGE_SIZE)


def _report_or_404(report_id: str):
    try:
        report = ui().reports.get(report_id)
    except UnknownReport:
        abort(404, description=f"There is no report {report_id}.")
    if not _visible(report):
        abort(404, description=f"There is no report {report_id}.")
    return report


@bp.get("/review/<report_id>")
@roles_required(Role.REVIEWER)
def review_report(report_id: str):
    report = _report_or_404(report_id)
    return render_template("ui/review_report.html", report=report, similar=ui().reports.similar(report),
                           evidence=ui().reports.evidence_of(report_id), accept_form=AcceptForm(),
                           reject_form=RejectForm(), policy=ui().reports.policy(report.list_id))


@bp.post("/review/<report_id>/accept")
@roles_required(Role.REVIEWER)
def accept(report_id: str):
    _report_or_404(report_id)
    form = AcceptForm()
    if form.validate_on_submit():
        try:
            report = ui().reports.accept(report_id, reviewer=current_user.user.username, days=form.days.data,
                                         permanent=form.permanent.data, reason=form.reason.data or "")
        except RegistryError as exc:
            flash(f"Not accepted: {exc.message}", "error")
            return redirect(url_for("ui_reports.review_report", report_id=report_id))
        if report.status == "accepted":
            flash(f"Report {report_id} accepted; entry {report.entry_id} is published to the devices.", "status")
        else:
            flash(f"Your approval of {report_id} is recorded; a second reviewer must approve it.", "status")
    else:
        flash("Not accepted: " + "; ".join(e for errors in form.errors.values() for e in errors), "error")
    return redirect(url_for("ui_reports.review_queue"))


@bp.post("/review/<report_id>/reject")
@roles_required(Role.REVIEWER)
def reject(report_id: str):
    _report_or_404(report_id)
    form = RejectForm()
    if form.validate_on_submit():
        try:
            ui().reports.reject(report_id, reviewer=current_user.user.username, reason=form.reason.data)
        except RegistryError as exc:
            flash(f"Not rejected: {exc.message}", "error")
            return redirect(url_for("ui_reports.review_report", report_id=report_id))
        flash(f"Report {report_id} rejected; the reporter sees your reason.", "status")
        return redirect(url_for("ui_reports.review_queue"))
    flash("Not rejected: a rejection needs a reason the reporter can read (5 characters or more).", "error")
    return redirect(url_for("ui_reports.review_report", report_id=report_id))


@bp.get("/review/<report_id>/evidence/<int:evidence_id>")
@roles_required(Role.REVIEWER)
def evidence(report_id: str, evidence_id: int):
    _report_or_404(report_id)
    item = ui().reports.evidence_file(report_id, evidence_id)
    if item is None:
        abort(404, description="No such evidence file.")
    filename, content_type, data = item
    safe = "".join(c for c in filename if c.isalnum() or c in "._-")[:100] or "evidence"
    return Response(data, mimetype=content_type, headers={
        "Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store"})
