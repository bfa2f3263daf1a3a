"""A list's redress text: what a traveller is told on a DENY or REFER (issue 5, "Redress information").

The text says who to contact and what reference to quote. How it reaches a
counter today:

- an entry copies the list's text when it is added (the publishing core's
  ``entry_values``), and the text travels with each of the entry's tokens in
  the signed delta (sync/wire.py); the counter shows the entry's text
  (appliance/verdict.py);
- the list's own text reaches a device only with the list's description when
  the device enrols, and is shown only for an entry published with no text.

So a change here reaches the counters with the entries added from now on.
Entries already published keep the text they were published with until they
are published again, which needs a publishing-core addition
(docs/registry-ui.md, "What an edit reaches, honestly"). ``reach`` counts
them, so the page can say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, and_, case, func, select, update

from registry import db
from registry.audit import AuditLog
from registry.db import RegistryError
from registry.publish import STATUS_ACTIVE, UnknownList

MAX_REDRESS_CHARS = 1_000
MIN_REASON_CHARS = 5


class RedressError(RegistryError):
    code = "redress"


def check_redress(text: str) -> str:
    """The text as stored: trimmed, line ends made one kind; refused if empty or too long. Pure."""
    text = "\n".join(line.rstrip() for line in (text or "").strip().splitlines())
    if not text:
        raise RedressError("the redress text must say who the traveller should contact and what to quote")
    if len(text) > MAX_REDRESS_CHARS:
        raise RedressError(f"the redress text is {len(text):,} characters; at most {MAX_REDRESS_CHARS:,} fit a counter screen")
    return text


@dataclass(frozen=True)
class RedressReach:
    """Active entries of a list by the text they were published with."""

    current: int  # carry the list's text as it is now
    other: int  # carry an earlier text of the list, or one given for the entry itself


def reach(engine: Engine, list_id: str) -> RedressReach:
    e = db.entries.c
    with engine.connect() as conn:
        text = conn.execute(select(db.lists.c.redress).where(db.lists.c.list_id == list_id)).scalar()
        if text is None:
            raise UnknownList(f"no list {list_id!r} in the registry")
        total, current = conn.execute(select(func.count(), func.coalesce(func.sum(case((e.redress == text, 1),
                                                                                      else_=0)), 0))
                                      .where(and_(e.list_id == list_id, e.status == STATUS_ACTIVE))).one()
    return RedressReach(int(current), int(total) - int(current))


def set_redress(engine: Engine, audit: AuditLog, list_id: str, text: str, *, by: str, reason: str,
                clock=time.time) -> str:
    """Change the list's text, audited with before and after in the same transaction; returns the old text.

    The update is a compare-and-set on the text that was read, so two list
    admins saving at once cannot record a "before" that was not the text
    replaced.
    """
    text = check_redress(text)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_CHARS:
        raise RedressError("say why the redress text changes (the audit log keeps it)")
    lists = db.lists.c
    with engine.begin() as conn:
        old = conn.execute(select(lists.redress).where(lists.list_id == list_id)).scalar()
        if old is None:
            raise UnknownList(f"no list {list_id!r} in the registry")
        if old == text:
            raise RedressError("the redress text is unchanged")
        changed = conn.execute(update(db.lists).where(and_(lists.list_id == list_id, lists.redress == old))
                               .values(redress=text)).rowcount
        if changed != 1:
            raise RedressError("someone else changed the redress text meanwhile; reload the page")
        audit.append(conn, actor=by, action="list.redress", subject=f"list:{list_id}", reason=reason,
                     before={"redress": old}, after={"redress": text}, at=clock())
    return old
