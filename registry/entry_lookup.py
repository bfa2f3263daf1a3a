"""Reading list entries as people see them: one entry with its documents, and a search. Read-only.

The publishing core (registry/publish.py) writes entries and turns them into
tokens; reviewers, list admins and auditors need to find and read them in
plaintext (the API, and the entry pages). Nothing here changes a row.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import Engine, func, select

from registry import db

#: Sort keys a search accepts; a leading "-" sorts descending. The entry id breaks ties.
SORTS = {"entry_id": db.entries.c.entry_id, "surnames": db.entries.c.surnames,
         "valid_until": db.entries.c.valid_until}


def _like_prefix(text: str) -> str:
    escaped = text.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class EntryLookup:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, entry_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.entries).where(db.entries.c.entry_id == entry_id)).first()
            return None if row is None else self._with_documents(conn, [row])[0]

    def search(self, *, list_id: str | None = None, surname: str | None = None,
               date_of_birth: date | None = None, document_number: str | None = None,
               reference: str | None = None, status: str | None = None, sort: str = "entry_id",
               limit: int = 25, offset: int = 0) -> list[dict]:
        """Entries matching every given filter; ``surname`` matches the start, in any (ASCII) case."""
        e, d = db.entries.c, db.entry_documents.c
        where = []
        if list_id is not None:
            where.append(e.list_id == list_id)
        if surname is not None:
            where.append(func.upper(e.surnames).like(_like_prefix(surname), escape="\\"))
        if date_of_birth is not None:
            where.append(e.date_of_birth == date_of_birth)
        if document_number is not None:
            where.append(e.entry_id.in_(select(d.entry_id).where(
                func.upper(d.number) == document_number.strip().upper())))
        if reference is not None:
            where.append(e.reference == reference)
        if status is not None:
            where.append(e.status == status)
        column = SORTS[sort.lstrip("-")]
        order = [column.desc(), e.entry_id.desc()] if sort.startswith("-") else [column, e.entry_id]
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.entries).where(*where).order_by(*order)
                                .limit(limit).offset(offset)).all()
            return self._with_documents(conn, rows)

    @staticmethod
    def _with_documents(conn, rows) -> list[dict]:
        d = db.entry_documents.c
        documents: dict[int, list[dict]] = {}
        ids = [row.entry_id for row in rows]
        if ids:
            for doc in conn.execute(select(db.entry_documents).where(d.entry_id.in_(ids))
                                    .order_by(d.document_id)):
                documents.setdefault(doc.entry_id, []).append(
                    {"document_class": doc.document_class, "issuer": doc.issuer, "number": doc.number})
        out = []
        for row in rows:
            entry = row._asdict()
            entry["latin_variants"] = [{"surnames": s, "given_names": g} for s, g in
                                       json.loads(row.latin_variants or "[]")]
            entry["documents"] = documents.get(row.entry_id, [])
            out.append(entry)
        return out
