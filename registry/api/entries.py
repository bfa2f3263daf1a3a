"""Entries over the API: find them, and read one with its appeals and history (issue 5, "Lifecycle").

The same readers as the entry pages (registry/web/entry_pages.py):
reviewers and auditors. Only reviewers see document numbers whole; anyone
else gets their last characters, enough to tell two documents apart
(data minimisation, as on the pages).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from registry.api.errors import ApiError
from registry.api.operations import operation, paged
from registry.api.schemas import EntryDetail, EntryPage, EntrySearchQuery
from registry.api.services import api, ui
from registry.appeals import Appeal
from registry.reports import UnknownReport
from registry.web.access import api_user
from registry.web.entry_pages import FULL_DOCUMENTS, READERS, mask_document

ENTRY_READERS = READERS
ENTRY_ID = "<int(min=1,max=2147483647):entry_id>"


def appeal_out(appeal: Appeal) -> dict:
    today = datetime.fromtimestamp(ui().appeals.clock(), timezone.utc).date()  # the appeals' own clock
    return {**dataclasses.asdict(appeal), "overdue": appeal.overdue(today)}


def entry_or_404(entry_id: int) -> dict:
    entry = api().entries.get(entry_id)
    if entry is None:
        raise ApiError(404, "unknown_entry", f"there is no entry {entry_id}")
    return entry


def shown(entry: dict) -> dict:
    """The entry as this user may see it: document numbers masked for all but reviewers."""
    if api_user().has_role(*FULL_DOCUMENTS):
        return entry
    return {**entry, "documents": [{**d, "number": mask_document(d["number"])} for d in entry["documents"]]}


def _history(entry: dict) -> list[dict]:
    """The entry's audit records, and those of the report it came from (its reference), in log order."""
    audit = ui().audit
    records = list(audit.records(subject=f"entry:{entry['entry_id']}"))
    try:
        ui().reports.get(entry["reference"])
    except UnknownReport:
        pass
    else:
        records += audit.records(subject=f"report:{entry['reference']}")
    return [r.to_dict() for r in sorted(records, key=lambda r: r.seq)]


@operation("GET", "/entries", summary="Search entries", tag="entries", roles=ENTRY_READERS,
           query=EntrySearchQuery, response=EntryPage)
def search_entries(query: dict):
    """Every given filter must match; `surname` matches the start of the surnames."""
    page, per_page = query.pop("page"), query.pop("per_page")
    rows = api().entries.search(**query, limit=per_page + 1, offset=(page - 1) * per_page)
    return paged([shown(row) for row in rows], page, per_page)


@operation("GET", f"/entries/{ENTRY_ID}", summary="One entry with its appeals and history", tag="entries",
           roles=ENTRY_READERS, response=EntryDetail)
def get_entry(entry_id: int):
    entry = entry_or_404(entry_id)
    return {**shown(entry), "appeals": [appeal_out(a) for a in ui().appeals.of_entry(entry_id)],
            "history": _history(entry)}
