"""The audit log over the API, for auditors: records by date range or subject, and the chain check.

Records come in log order, a page at a time after a ``seq`` cursor, so an
export of a long range is read in pages without ever holding it whole. Each
record carries its hashes, so a page can be checked on its own
(docs/audit.md); `/audit/verify` checks the whole chain as
`gatecheck registry audit verify` does.
"""

from __future__ import annotations

from sqlalchemy import select

from registry.accounts import Role
from registry.api.operations import operation
from registry.api.schemas import AuditPage, AuditQuery, AuditVerifyOut
from registry.api.services import ui
from registry.audit import AuditRecord, audit_log, day_bounds, record_filter


@operation("GET", "/audit", summary="Audit records by date range or subject", tag="audit", roles=[Role.AUDITOR],
           query=AuditQuery, response=AuditPage)
def audit_records(query: dict):
    """`from` and `to` are UTC days, inclusive; pass the answer's `next_after_seq` as `after_seq` for the next
    page."""
    since, until = day_bounds(query.get("from_"), query.get("to"))
    where = record_filter(since=since, until=until, subject=query.get("subject"))
    limit = query["limit"]
    with ui().engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.seq > query["after_seq"], *where)
                            .order_by(audit_log.c.seq).limit(limit + 1)).all()
    records = [AuditRecord.from_row(row).to_dict() for row in rows[:limit]]
    return {"records": records, "next_after_seq": records[-1]["seq"] if len(rows) > limit else None}


@operation("GET", "/audit/verify", summary="Check the whole audit chain", tag="audit", roles=[Role.AUDITOR],
           response=AuditVerifyOut)
def audit_verify():
    """Keep `head_hash`: a later export must extend it (a chain is not a signature)."""
    count, problems = ui().audit.verify()
    head = ui().audit.head()
    return {"intact": not problems, "records": count, "head_seq": head.seq if head else None,
            "head_hash": head.hash.hex() if head else None, "problems": problems}
