"""The counter screen: the verdict, the traveller, the matches, recent scans and the forms.

Every page here needs a signed-in operator, and the flag form one who is a
reporter (access.py). Forms post here (CSRF-checked)
and redirect back to the screen (post/redirect/get), so a reload never
scans twice. New scans arrive in the open page through /api/events; the page
then fetches /live, the same HTML fragment the screen is built from.
"""

from __future__ import annotations

import uuid
from datetime import date

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from appliance.outbox import ConflictingReport, OutboxError
from appliance.web.access import NOT_A_REPORTER, is_reporter, operator_required, reporter_required
from appliance.web.forms import FLAG_CATEGORIES, FlagForm, ImageForm, ManualEntryForm
from appliance.web.inputs import InputRefused, accepts_image, payload_from_upload
from appliance.web.present import freshness_view, history_row, scan_view
from sync.identity import DocumentClass, identity_from_document

bp = Blueprint("counter", __name__)

HISTORY = 12


def _state():
    return current_app.extensions["gatecheck"]


def _since() -> int:
    return int(session.get("since_seq", 0))


def _live_context(seq: int | None = None) -> dict:
    """The verdict shown (``seq``, else this session's newest scan) and the session's history."""
    state = _state()
    since = _since()
    history = [r for r in state.journal.latest(HISTORY) if r.seq > since]
    # The screen shows only verdicts already on disk (state.settled): at most one fsync's wait.
    if history and not state.settled(max(history[0].seq, seq or 0)):
        durable = state.journal.durable_seq
        history = [r for r in history if r.seq <= durable]
        seq = seq if seq is not None and seq <= durable else None
    if seq is None:
        seq = history[0].seq if history else None
    shown = None
    if seq is not None and seq > since:
        record = state.journal.get(seq)
        if record is not None:
            lists = {info.list_id: info for info in state.lists()}
            shown = scan_view(state.detail(seq), record, lists)
    return {"shown": shown, "history": [history_row(r) for r in history]}


def _page_context() -> dict:
    state = _state()
    status = state.status()
    return {
        "fresh": freshness_view(status),
        "status": status,
        "head_seq": status["journal"]["head_seq"],
        "can_flag": is_reporter(),
        "not_a_reporter": NOT_A_REPORTER,
    }


@bp.route("/", methods=["GET"])
@operator_required
def screen():
    seq = request.args.get("scan", type=int)
    return render_template(
        "screen.html", **_page_context(), **_live_context(seq),
        manual_form=ManualEntryForm(), image_form=ImageForm(),
    )


@bp.route("/live", methods=["GET"])
@operator_required
def live():
    """The live region alone (verdict panel, traveller, matches, history) for the page's script."""
    seq = request.args.get("seq", type=int)
    return render_template("_live.html", **_live_context(seq))


@bp.route("/manual", methods=["POST"])
@operator_required
def manual():
    form = ManualEntryForm()
    if not form.validate_on_submit():
        return render_template("screen.html", **_page_context(), **_live_context(),
                               manual_form=form, image_form=ImageForm(), manual_open=True), 400
    scan = _state().check(channel="manual", manual=form.to_manual(), operator=current_user.id)
    return redirect(url_for("counter.screen", scan=scan.seq))


@bp.route("/image", methods=["POST"])
@operator_required
@accepts_image
def image():
    form = ImageForm()
    if not form.validate_on_submit():
        return render_template("screen.html", **_page_context(), **_live_context(),
                               manual_form=ManualEntryForm(), image_form=form, image_open=True), 400
    try:
        payload = payload_from_upload(form.image.data)
    except InputRefused as exc:
        flash(f"Image not checked: {exc.message}.", "error")
        return redirect(url_for("counter.screen"))
    scan = _state().check(payload, channel="camera", operator=current_user.id)
    return redirect(url_for("counter.screen", scan=scan.seq))


def _prefill(form: FlagForm) -> int | None:
    """Fill the passenger and flight from this session's last scan, if it is still held."""
    scan = _state().last_scan(_since())
    if scan is None or scan.decision.document is None:
        return None
    doc = scan.decision.document
    form.surname.data = doc.surname
    form.given_names.data = doc.given_names
    form.date_of_birth.data = doc.date_of_birth
    form.document_number.data = doc.document_number
    form.issuing_country.data = doc.issuing_country
    document_class = identity_from_document(doc).document_class
    if document_class is not DocumentClass.BOARDING_PASS:
        form.document_class.data = document_class.value
    for leg in doc.legs or []:
        if leg.carrier and leg.flight_number:
            form.flight.data = f"{leg.carrier} {leg.flight_number.lstrip('0') or '0'}"
            form.flight_date.data = leg.flight_date
            break
    if form.flight_date.data is None:
        form.flight_date.data = date.today()
    form.scan_seq.data = str(scan.seq)
    return scan.seq


def _reports():
    return _state().reports_by(current_user.id)


@bp.route("/flag", methods=["GET", "POST"])
@reporter_required
def flag():
    """Flag a passenger: a closed list of categories, queued in the outbox until acknowledged."""
    form = FlagForm()
    if request.method == "GET":
        form.report_id.data = str(uuid.uuid4())  # client-generated: a resubmit never duplicates
        prefilled = _prefill(form)
        return render_template("flag.html", **_page_context(), form=form, prefilled=prefilled,
                               reports=_reports(), categories=dict(FLAG_CATEGORIES))
    if form.validate_on_submit():
        try:
            report_id = _state().outbox.enqueue(form.to_report(current_user.id), form.report_id.data)
        except ConflictingReport:
            # Not the outbox's message: it would confirm a report id that may be someone else's.
            form.report_id.errors = ["This form was already sent with other details: "
                                     "open the form again to file another report."]
        except OutboxError as exc:
            form.report_id.errors = [exc.message]
        else:
            flash("Report queued: it will be sent to the registry when the device is online.", "info")
            return redirect(url_for("counter.report", report_id=report_id))
    return render_template("flag.html", **_page_context(), form=form, prefilled=None,
                           reports=_reports(), categories=dict(FLAG_CATEGORIES)), 400


@bp.route("/reports/<report_id>", methods=["GET"])
@operator_required
def report(report_id: str):
    """One report and its state: queued, sent or acknowledged.

    Only the reporter who filed it sees it, and only while still a reporter;
    everyone else gets the same 404 as for an id that does not exist.
    """
    item = _state().report_of(report_id, current_user.id) if is_reporter() else None
    if item is None:
        abort(404)
    return render_template("report.html", **_page_context(), item=item, reports=_reports(),
                           categories=dict(FLAG_CATEGORIES))
