"""Appeals over the API: file one against an entry, work the open ones, uphold (lift) or dismiss.

The rules are registry/appeals.py's: one open appeal per entry, deadlines
from the list's policy, and whoever accepted the listing may not decide its
appeal. Upholding publishes the entry's removal at once.
"""

from __future__ import annotations

from flask import url_for

from registry.accounts import Role
from registry.api.entries import ENTRY_ID, ENTRY_READERS, appeal_out, entry_or_404
from registry.api.errors import ApiError
from registry.api.operations import Reply, operation, paged
from registry.api.schemas import AppealIn, AppealOut, AppealPage, DecisionIn, PageQuery
from registry.api.services import ui
from registry.appeals import OPEN, Appeal, AppealError
from registry.web.access import api_user

APPEAL_ID = "<int(min=1,max=2147483647):appeal_id>"


def _appeal(appeal_id: int) -> Appeal:
    try:
        return ui().appeals.get(appeal_id)
    except AppealError:  # get refuses only an unknown id
        raise ApiError(404, "unknown_appeal", f"there is no appeal {appeal_id}") from None


def _open(appeal_id: int) -> Appeal:
    appeal = _appeal(appeal_id)
    if appeal.status != OPEN:
        raise ApiError(409, "already_decided", f"appeal {appeal_id} is {appeal.status} already")
    return appeal


@operation("POST", f"/entries/{ENTRY_ID}/appeals", summary="File an appeal against an entry", tag="appeals",
           roles=[Role.REVIEWER], body=AppealIn, status=201, response=AppealOut, errors=(409,))
def file_appeal(entry_id: int, body: dict):
    """Staff record the traveller's appeal; the answer carries its decision deadline (`decide_by`)."""
    entry = entry_or_404(entry_id)
    if entry["status"] != "active":
        raise ApiError(409, "entry_not_active", f"entry {entry_id} is {entry['status']}; there is nothing to appeal")
    if any(a.status == OPEN for a in ui().appeals.of_entry(entry_id)):
        raise ApiError(409, "appeal_open", f"entry {entry_id} already has an open appeal")
    grounds = f"{body['grounds'].strip()}\n\n(Received: {body['received'].strip()})"  # as the pages record it
    appeal = ui().appeals.file(entry_id, grounds=grounds, filed_by=api_user().username)
    return Reply(appeal_out(appeal), headers={"Location": url_for("api.get_appeal", appeal_id=appeal.appeal_id)})


@operation("GET", "/appeals", summary="Open appeals, the nearest deadline first", tag="appeals",
           roles=ENTRY_READERS, query=PageQuery, response=AppealPage)
def open_appeals(query: dict):
    page, per_page = query["page"], query["per_page"]
    start = (page - 1) * per_page
    rows = ui().appeals.open_appeals()[start:start + per_page + 1]
    return paged([appeal_out(a) for a in rows], page, per_page)


@operation("GET", f"/appeals/{APPEAL_ID}", summary="One appeal", tag="appeals", roles=ENTRY_READERS,
           response=AppealOut)
def get_appeal(appeal_id: int):
    return appeal_out(_appeal(appeal_id))


@operation("POST", f"/appeals/{APPEAL_ID}/uphold", summary="Uphold an appeal: lift the entry", tag="appeals",
           roles=[Role.REVIEWER], body=DecisionIn, response=AppealOut, errors=(409, 503))
def uphold_appeal(appeal_id: int, body: dict):
    """The entry's removal is published to the devices at once; `corrected_in_version` is that version."""
    _open(appeal_id)
    return appeal_out(ui().appeals.uphold(appeal_id, reviewer=api_user().username, decision=body["decision"]))


@operation("POST", f"/appeals/{APPEAL_ID}/dismiss", summary="Dismiss an appeal: the entry stays", tag="appeals",
           roles=[Role.REVIEWER], body=DecisionIn, response=AppealOut, errors=(409,))
def dismiss_appeal(appeal_id: int, body: dict):
    _open(appeal_id)
    return appeal_out(ui().appeals.dismiss(appeal_id, reviewer=api_user().username, decision=body["decision"]))
