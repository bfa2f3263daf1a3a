"""Paging, search and sort for the registry's list views, on the server (issue 5, "Web UI").

Issue 5 asks that every list view be paginated, searchable and sortable, and
usable by keyboard and screen reader. The whole state of a view is in its
URL (``?page=&q=&sort=&dir=`` plus the view's own filters), so every state
is a plain link: it can be bookmarked, reloaded and followed with no script.

Reading the URL never fails. An unknown sort key, a bad direction or a page
number that is not a number falls back to the default, because a hand-edited
URL is not worth an error page. Sort keys are a whitelist of columns per
view, so the URL never reaches SQL as text. The search text is a literal
substring (LIKE wildcards are escaped) over the view's searchable columns.
A page is fetched as ``page_size + 1`` rows, so knowing whether there is a
next page costs no COUNT over a list of a million entries.

``ListQuery`` is pure; ``fetch`` is the one function that touches a database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from sqlalchemy import Connection, Select, or_
from sqlalchemy.sql.elements import ColumnElement

ASC, DESC = "asc", "desc"
PAGE_SIZE = 25
MAX_SEARCH_CHARS = 100
#: Beyond this, OFFSET would not fit the database's integer (and no one pages that far).
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class ListSpec:
    """What one view may be sorted and searched by.

    ``sorts`` maps a URL key to a column. ``tiebreak`` is a unique key
    appended to every ordering, so that rows with equal sort values keep
    one order from page to page and none is shown twice or skipped.
    """

    sorts: Mapping[str, ColumnElement]
    default_sort: str
    tiebreak: Sequence[ColumnElement]
    default_dir: str = ASC
    search: Sequence[ColumnElement] = ()
    page_size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        if self.default_sort not in self.sorts or self.default_dir not in (ASC, DESC) or not self.tiebreak:
            raise ValueError("a list view needs a known default sort, a direction and a unique tie-break")


@dataclass(frozen=True)
class ListQuery:
    """One view's page, search text, sort and filters, as read from the URL. Pure."""

    page: int
    q: str
    sort: str
    dir: str
    #: The view's own filters (list, status, dates, ...), kept in every link as they are.
    filters: tuple[tuple[str, str], ...] = ()
    default_sort: str = ""
    default_dir: str = ASC

    def args(self, **changes: Any) -> dict[str, Any]:
        """URL arguments of this view, with ``changes``; defaults are left out, so links stay short."""
        values: dict[str, Any] = dict(self.filters)
        values.update(q=self.q, page=self.page)
        if self.sort != self.default_sort or self.dir != self.default_dir:
            values.update(sort=self.sort, dir=self.dir)
        values.update(changes)
        return {k: v for k, v in values.items() if v not in (None, "") and not (k == "page" and v == 1)}

    def sort_args(self, key: str) -> dict[str, Any]:
        """The link of a column header: sort by it; on the sorted column, the other way. Back to page 1."""
        direction = (DESC if self.dir == ASC else ASC) if key == self.sort else ASC
        return replace(self, sort=key, dir=direction, page=1).args()

    def aria_sort(self, key: str) -> str | None:
        """The header's ``aria-sort``: only on the column the view is sorted by (WAI-ARIA 1.2, aria-sort)."""
        if key != self.sort:
            return None
        return "ascending" if self.dir == ASC else "descending"

    def filter(self, name: str) -> str:
        return dict(self.filters).get(name, "")

    @property
    def narrowed(self) -> bool:
        """True when a search text or a filter hides some rows (the view offers "Clear")."""
        return bool(self.q or any(value for _, value in self.filters))


def _page(value: str | None) -> int:
    try:
        page = int(value or 1)
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


def parse(args: Mapping[str, str], spec: ListSpec, *, filters: Sequence[str] = ()) -> ListQuery:
    """The view's state from request arguments; anything unreadable takes its default."""
    sort = args.get("sort") or spec.default_sort
    direction = args.get("dir") or spec.default_dir
    if sort not in spec.sorts:
        sort, direction = spec.default_sort, spec.default_dir
    if direction not in (ASC, DESC):
        direction = spec.default_dir
    q = " ".join((args.get("q") or "").split())[:MAX_SEARCH_CHARS]
    kept = tuple((name, (args.get(name) or "").strip()[:MAX_SEARCH_CHARS]) for name in filters)
    return ListQuery(_page(args.get("page")), q, sort, direction, kept, spec.default_sort, spec.default_dir)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains(columns: Sequence[ColumnElement], text: str) -> ColumnElement | None:
    """Any of ``columns`` contains ``text``, case-insensitively, as a literal (no wildcards).

    SQLite folds the case of ASCII letters only, so the text is also looked
    for in capitals and in small letters (``Müller`` finds ``MÜLLER``, as an
    MRZ writes it). Columns that hold JSON (a report's identity) store
    non-ASCII letters as ``\\u`` escapes, so each is looked for in that
    spelling too.
    """
    if not text or not columns:
        return None
    cases = {text, text.upper(), text.lower()}
    spellings = {_like(t) for t in cases} | {_like(json.dumps(t)[1:-1]) for t in cases}
    return or_(*(column.ilike(pattern, escape="\\") for column in columns for pattern in sorted(spellings)))


@dataclass(frozen=True)
class Page:
    rows: list
    more: bool
    query: ListQuery


def ordered(stmt: Select, query: ListQuery, spec: ListSpec) -> Select:
    """``stmt`` narrowed by the search text, sorted, and cut to the query's page (plus one row)."""
    found = contains(spec.search, query.q)
    if found is not None:
        stmt = stmt.where(found)
    column = spec.sorts[query.sort]
    order = [column.desc() if query.dir == DESC else column.asc()]
    order += [t.desc() if query.dir == DESC else t.asc() for t in spec.tiebreak]
    return stmt.order_by(*order).limit(spec.page_size + 1).offset((query.page - 1) * spec.page_size)


def fetch(conn: Connection, stmt: Select, query: ListQuery, spec: ListSpec) -> Page:
    rows = conn.execute(ordered(stmt, query, spec)).all()
    return Page(rows[:spec.page_size], len(rows) > spec.page_size, query)
