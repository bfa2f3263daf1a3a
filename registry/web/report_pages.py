"""Reporters file reports and follow them; reviewers work the queue and decide (issue 5, "Reports", "Review")."""

from __future__ import annotations

import io

from flask import Blueprint, Request, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import and_, or_, select

from appliance.documents.errors import DocumentError
from registry.accounts import Role
from registry.db import RegistryError
from registry.incident_routing import TRIAGE
from registry.publish import DocumentRef
from registry.reports import (
    MAX_EVIDENCE_BYTES,
    MAX_EVIDENCE_FILES,
    UNDECIDED,
    Evidence,
    Identity,
    ReportError,
    UnknownReport,
    identity_from_scan,
    reports,
)
from registry.web import listing
from registry.web.access import roles_required
from registry.web.auth import ui
from registry.web.forms import AcceptForm, CategoriseForm, RejectForm, ReportForm, options

bp = Blueprint("ui_reports", __name__)
_r = reports.c
#: The review queue: oldest first, so no report waits behind newer ones.
QUEUE = listing.ListSpec(
    sorts={"filed": _r.created_at, "report": _r.report_id, "list": _r.list_id, "category": _r.category,
           "reporter": _r.reporter, "status": _r.status},
    default_sort="filed", tiebreak=(_r.report_id,),
    search=(_r.report_id, _r.list_id, _r.category, _r.reporter, _r.identity, _r.trip))
#: A reporter's own reports: newest first.
MINE = listing.ListSpec(
    sorts={"filed": _r.created_at, "report": _r.report_id, "category": _r.category, "status": _r.status},
    default_sort="filed", default_dir=listing.DESC, tiebreak=(_r.report_id,),
    search=(_r.report_id, _r.list_id, _r.category, _r.identity, _r.trip, _r.decision_reason))
#: An uploaded scan: a payload file, or a photo of the barcode within the counter's image limit.
MAX_SCAN_UPLOAD_BYTES = 8 * 1024 * 1024
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
#: The report form carries evidence (5 files of 5 MiB), a scan and the fields. Everything else keeps 64 KiB.
REPORT_FORM_MAX_BYTES = MAX_EVIDENCE_FILES * MAX_EVIDENCE_BYTES + MAX_SCAN_UPLOAD_BYTES + 256 * 1024
REPORT_FORM_PATH = "/reports/new"


class UploadAwareRequest(Request):
    """The body limit is decided before anything reads the body (the CSRF check reads the form first)."""

    @property
    def max_content_length(self) -> int | None:
        if self.path == REPORT_FORM_PATH:
            return REPORT_FORM_MAX_BYTES
        return super().max_content_length


def _reports_page(stmt, spec: listing.ListSpec) -> listing.Page:
    """One page of reports for a list view; each row read whole through the queue (at most a page of them)."""
    query = listing.parse(request.args, spec)
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, stmt, query, spec)
    return listing.Page([ui().reports.get(row.report_id) for row in page.rows], page.more, query)


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


def _uploaded_scan(upload) -> bytes | None:
    """The payload of an uploaded scan: the file's bytes, or the barcode read from a PNG or JPEG photo."""
    if upload is None or not getattr(upload, "filename", None):
        return None
    data = upload.read(MAX_SCAN_UPLOAD_BYTES + 1)
    if not data:
        raise ReportError("the uploaded scan is empty")
    if len(data) > MAX_SCAN_UPLOAD_BYTES:
        raise ReportError(f"the uploaded scan is larger than {MAX_SCAN_UPLOAD_BYTES // (1024 * 1024)} MiB")
    if data.startswith(IMAGE_MAGIC):
        from appliance.web.inputs import InputRefused, payload_from_upload

        try:
            return payload_from_upload(io.BytesIO(data))  # the counter's own image path and limits
        except InputRefused as exc:
            raise ReportError(f"the uploaded photo: {exc.message}") from None
    return data  # the documents module refuses more than 16 KiB itself


def _identity(form: ReportForm) -> Identity:
    """From the pasted or uploaded scan when there is one (parsed here, server-side), else the typed fields."""
    if form.scan.data and form.scan.data.strip():
        return identity_from_scan(form.scan.data.strip())
    uploaded = _uploaded_scan(form.scan_file.data)
    if uploaded is not None:
        return identity_from_scan(uploaded)
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
    page = _reports_page(select(_r.report_id).where(_r.reporter == current_user.user.username), MINE)
    return render_template("ui/reports_mine.html", page=page)


def _visible(report) -> bool:
    """Reviewers scoped to organisations see only their organisations' reports."""
    return current_user.user.covers_org(report.org) if report.org else True


@bp.get("/review")
@roles_required(Role.REVIEWER)
def review_queue():
    where = [_r.status.in_(UNDECIDED)]
    orgs = current_user.user.orgs  # a reviewer with no organisation sees every report (ReportQueue.queue's rule)
    if orgs:
        where.append(or_(_r.org.in_(sorted(orgs)), _r.org == ""))
    page = _reports_page(select(_r.report_id).where(and_(*where)), QUEUE)
    return render_template("ui/review_queue.html", page=page)


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
    policy = ui().reports.policy(report.list_id)
    categorise_form = None
    if report.category == TRIAGE:
        categorise_form = CategoriseForm()
        categorise_form.category.choices = _category_options(policy)
    return render_template("ui/review_report.html", report=report, similar=ui().reports.similar(report),
                           evidence=ui().reports.evidence_of(report_id), accept_form=AcceptForm(),
                           reject_form=RejectForm(), categorise_form=categorise_form, policy=policy,
                           triage=TRIAGE)


@bp.post("/review/<report_id>/categorise")
@roles_required(Role.REVIEWER)
def categorise(report_id: str):
    """Give a counter's triage report its list category; only then can anyone accept it."""
    report = _report_or_404(report_id)
    form = CategoriseForm()
    form.category.choices = _category_options(ui().reports.policy(report.list_id))
    if not form.validate_on_submit():
        flash("Not categorised: " + "; ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("ui_reports.review_report", report_id=report_id))
    try:
        ui().reports.categorise(report_id, form.category.data, reviewer=current_user.user.username,
                                reason=form.reason.data or "")
    except RegistryError as exc:
        flash(f"Not categorised: {exc.message}", "error")
    else:
        flash(f"Report {report_id} is now under {form.category.data}; it can be decided.", "status")
    return redirect(url_for("ui_reports.review_report", report_id=report_id))


def _category_options(policy) -> list:
    return options([("", "Choose a category"), *((c.category, c.label) for c in policy.categories)])


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
