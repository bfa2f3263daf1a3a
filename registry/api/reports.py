"""Reports over the API: an incident system files them, reviewers work the queue and decide (issue 5).

The same ReportQueue as the pages, so the same rules hold: the identity
comes as typed fields or as a scan parsed here with the documents module;
evidence is size-limited and type-checked by its first bytes; the reporter
never decides their own report; terms follow the list's policy. A reviewer
scoped to organisations sees only theirs: another organisation's report
answers 404, as on the pages, so its existence is not confirmed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

from flask import Response, url_for

from appliance.documents.errors import DocumentError
from registry.accounts import Role, User
from registry.api.errors import ApiError
from registry.api.operations import Reply, operation, paged
from registry.api.schemas import (
    MAX_EVIDENCE_BASE64,
    AcceptIn,
    FileReportIn,
    PageQuery,
    RejectIn,
    ReportDetail,
    ReportOut,
    ReportPage,
)
from registry.api.services import ui
from registry.publish import DocumentRef
from registry.reports import (
    ACCEPTED,
    MAX_EVIDENCE_FILES,
    PUBLISHING,
    REJECTED,
    Evidence,
    Identity,
    Report,
    UnknownReport,
    identity_from_scan,
)
from registry.web.access import api_user
from sync.identity import IdentityError

#: Five evidence files in base64 and the rest of the report; every other operation keeps the app's 64 KiB.
REPORT_MAX_BODY = MAX_EVIDENCE_FILES * (MAX_EVIDENCE_BASE64 + 1024) + 256 * 1024
REPORT_ID = "<string(maxlength=64):report_id>"
EVIDENCE_TYPES = ("application/pdf", "image/png", "image/jpeg")


def report_out(report: Report, *, similar: bool = False) -> dict:
    out = dataclasses.asdict(report)
    out["evidence"] = ui().reports.evidence_of(report.report_id)
    if similar:
        out["similar"] = ui().reports.similar(report)
    return out


def _not_found(report_id: str) -> ApiError:
    return ApiError(404, "unknown_report", f"there is no report {report_id}")


def _get(report_id: str) -> Report:
    try:
        return ui().reports.get(report_id)
    except UnknownReport:
        raise _not_found(report_id) from None


def _reviews(user: User, report: Report) -> bool:
    """A reviewer scoped to organisations reviews only their organisations' reports."""
    return user.has_role(Role.REVIEWER) and (not report.org or user.covers_org(report.org))


def reviewable(report_id: str) -> Report:
    report = _get(report_id)
    if not _reviews(api_user(), report):
        raise _not_found(report_id)
    return report


def _identity(body: dict) -> Identity:
    """From the scan when given (parsed here, server-side), else from the typed fields."""
    if "scan" in body:
        try:
            return identity_from_scan(body["scan"].strip())
        except DocumentError as exc:
            raise ApiError(422, "invalid_scan", f"the scan cannot be read: {exc.message}") from None
        except IdentityError as exc:
            raise ApiError(422, "invalid_scan", f"the scan cannot be read: {exc}") from None
    typed = body["identity"]
    documents = tuple(DocumentRef(d["document_class"], d["issuer"], d["number"].strip().upper())
                      for d in typed["documents"])
    return Identity(typed["surnames"].strip(), typed["given_names"].strip(), typed["date_of_birth"], documents)


def _evidence(items: list[dict]) -> list[Evidence]:
    files = []
    for item in items:
        try:
            data = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "invalid_evidence", f"evidence {item['filename']!r} is not valid base64") from None
        files.append(Evidence(item["filename"], data))
    return files


def _org(user: User, requested: str | None) -> str:
    if requested is None:
        return min(user.orgs) if user.orgs else ""
    if not user.covers_org(requested):
        raise ApiError(403, "forbidden", f"you do not file for organisation {requested}")
    return requested


@operation("POST", "/reports", summary="File a report", tag="reports", roles=[Role.REPORTER], body=FileReportIn,
           status=201, response=ReportOut, max_body=REPORT_MAX_BODY)
def file_report(body: dict):
    """The traveller as typed `identity` or as a `scan`; evidence as base64 (PDF, PNG or JPEG, at most 5 files
    of 5 MiB). A refused report says why in one line and stores nothing."""
    user = api_user()
    report_id = ui().reports.file(
        reporter=user.username, org=_org(user, body.get("org")), list_id=body["list_id"],
        category=body["category"], identity=_identity(body), trip=body["trip"], trip_date=body["trip_date"],
        narrative=body["narrative"], source="api", attachments=_evidence(body["evidence"]))
    return Reply(report_out(ui().reports.get(report_id)),
                 headers={"Location": url_for("api.get_report", report_id=report_id)})


@operation("GET", "/me/reports", summary="Your reports, newest first", tag="reports", roles=[Role.REPORTER],
           query=PageQuery, response=ReportPage)
def my_reports(query: dict):
    """Each with its status and, once decided, the reviewer's reason."""
    page, per_page = query["page"], query["per_page"]
    rows = ui().reports.by_reporter(api_user().username, limit=per_page + 1, offset=(page - 1) * per_page)
    return paged([report_out(r) for r in rows], page, per_page)


@operation("GET", "/review-queue", summary="Reports waiting for a decision, oldest first", tag="review",
           roles=[Role.REVIEWER], query=PageQuery, response=ReportPage)
def review_queue(query: dict):
    page, per_page = query["page"], query["per_page"]
    rows = ui().reports.queue(orgs=api_user().orgs or None, limit=per_page + 1, offset=(page - 1) * per_page)
    return paged([report_out(r) for r in rows], page, per_page)


@operation("GET", f"/reports/{REPORT_ID}", summary="One report", tag="reports",
           roles=[Role.REPORTER, Role.REVIEWER], response=ReportDetail)
def get_report(report_id: str):
    """A reviewer also gets `similar`: earlier reports and existing entries for the same person. A reporter
    sees only their own reports."""
    user = api_user()
    report = _get(report_id)
    if _reviews(user, report):
        return report_out(report, similar=True)
    if report.reporter == user.username:
        return report_out(report)
    raise _not_found(report_id)


@operation("GET", f"/reports/{REPORT_ID}/evidence/<int(min=1,max=2147483647):evidence_id>",
           summary="Download one evidence file", tag="review", roles=[Role.REVIEWER], response=EVIDENCE_TYPES)
def get_evidence(report_id: str, evidence_id: int):
    reviewable(report_id)
    item = ui().reports.evidence_file(report_id, evidence_id)
    if item is None:
        raise ApiError(404, "unknown_evidence", f"report {report_id} has no evidence file {evidence_id}")
    filename, content_type, data = item
    safe = "".join(c for c in filename if c.isalnum() or c in "._-")[:100] or "evidence"
    return Response(data, mimetype=content_type, headers={
        "Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff"})


def _undecided(report: Report) -> None:
    """A decided report answers 409; the queue's own checks still hold for a race."""
    if report.status in (ACCEPTED, REJECTED):
        raise ApiError(409, "already_decided", f"report {report.report_id} is {report.status} already")
    if report.status == PUBLISHING:
        raise ApiError(409, "being_decided", f"report {report.report_id} is being published by another "
                                             f"reviewer's accept; read it again in a minute")


@operation("POST", f"/reports/{REPORT_ID}/accept", summary="Accept a report", tag="review", roles=[Role.REVIEWER],
           body=AcceptIn, response=ReportOut, errors=(409, 503))
def accept_report(report_id: str, body: dict):
    """With enough approvals the entry is published to the devices at once (`status` accepted, `entry_id`);
    on a two-reviewer list the first approval answers `awaiting_second`. The term is the category's default,
    or `days` when shorter; `permanent` only where the list and category allow it."""
    _undecided(reviewable(report_id))
    decided = ui().reports.accept(report_id, reviewer=api_user().username, days=body["days"],
                                  permanent=body["permanent"], reason=body["reason"])
    return report_out(decided)


@operation("POST", f"/reports/{REPORT_ID}/reject", summary="Reject a report", tag="review", roles=[Role.REVIEWER],
           body=RejectIn, response=ReportOut, errors=(409,))
def reject_report(report_id: str, body: dict):
    """The reason is shown to the reporter."""
    _undecided(reviewable(report_id))
    return report_out(ui().reports.reject(report_id, reviewer=api_user().username, reason=body["reason"]))
