"""Paging, search and sort for the list views: the URL state alone, then the review queue and my reports."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

from registry.reports import Identity
from registry.web import listing
from tests.support.ui_world import make_app, signed_in, text

_t = Table("people", MetaData(), Column("id", Integer, primary_key=True), Column("name", String),
           Column("city", String))
SPEC = listing.ListSpec(sorts={"id": _t.c.id, "name": _t.c.name}, default_sort="id", tiebreak=(_t.c.id,),
                        search=(_t.c.name,), page_size=2)


@pytest.mark.parametrize("args, expected", [
    ({}, (1, "", "id", "asc")),
    ({"page": "3", "q": "  ann   lee ", "sort": "name", "dir": "desc"}, (3, "ann lee", "name", "desc")),
    ({"page": "-4", "sort": "password_hash", "dir": "sideways"}, (1, "", "id", "asc")),
    ({"page": "many"}, (1, "", "id", "asc")),
    ({"page": "9" * 40}, (listing.MAX_PAGE, "", "id", "asc")),
    ({"sort": "name", "dir": "up"}, (1, "", "name", "asc")),
])
def test_a_hand_edited_url_falls_back_to_defaults_instead_of_failing(args, expected):
    query = listing.parse(args, SPEC)
    assert (query.page, query.q, query.sort, query.dir) == expected


def test_links_keep_search_sort_and_filters_and_a_header_toggles_its_order():
    query = listing.parse({"q": "ann", "sort": "name", "page": "2", "city": "Lisbon"}, SPEC, filters=("city",))
    assert query.args(page=3) == {"city": "Lisbon", "q": "ann", "sort": "name", "dir": "asc", "page": 3}
    assert query.sort_args("name") == {"city": "Lisbon", "q": "ann", "sort": "name", "dir": "desc"}
    assert query.sort_args("id") == {"city": "Lisbon", "q": "ann"}  # the default order needs no arguments
    assert (query.aria_sort("name"), query.aria_sort("id")) == ("ascending", None)


def test_pages_are_stable_and_the_search_is_a_literal_substring():
    engine = create_engine("sqlite://")
    _t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(_t), [{"id": i, "name": n} for i, n in enumerate(["Ann", "ann_b", "Bo", "Annika", "100%"], 1)])
        by_name = [r.name for p in (1, 2, 3) for r in listing.fetch(
            conn, select(_t), listing.parse({"sort": "name", "page": str(p)}, SPEC), SPEC).rows]
        assert by_name == sorted(by_name, key=str) and len(by_name) == 5
        found = listing.fetch(conn, select(_t), listing.parse({"q": "ANN"}, SPEC), SPEC)
        assert [r.name for r in found.rows] == ["Ann", "ann_b"] and found.more
        assert [r.name for r in listing.fetch(conn, select(_t), listing.parse({"q": "n_"}, SPEC), SPEC).rows] == ["ann_b"]
        assert [r.name for r in listing.fetch(conn, select(_t), listing.parse({"q": "0%"}, SPEC), SPEC).rows] == ["100%"]


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def file_reports(app, names):
    queue = app.extensions["gatecheck_ui"].reports
    return [queue.file(reporter="mia", org="DA", list_id="da-ban", category="smoking_on_board",
                       identity=Identity(name, "", date(1970, 1, 1)), trip="DA 1", trip_date=date(2026, 11, 1),
                       narrative="Smoked in the lavatory.") for name in names]


def test_the_review_queue_is_searchable_sortable_and_paged(app):
    names = [f"TRAVELLER{n:02d}" for n in range(30)] + ["MÜLLER"]
    file_reports(app, names)
    sam = signed_in(app, "sam")
    first = text(sam.get("/review"))
    assert first.count('<th scope="row"><a href="/review/') == 25 and 'href="/review?page=2" rel="next"' in first
    second = text(sam.get("/review", query_string={"page": 2}))
    assert second.count('<th scope="row"><a href="/review/') == 6
    assert all((name in first) != (name in second) for name in names)  # each once, on one page
    assert "MÜLLER" in text(sam.get("/review", query_string={"q": "Müller"}))  # stored as JSON \\u escapes
    only = text(sam.get("/review", query_string={"q": "traveller07"}))
    assert "TRAVELLER07" in only and only.count('<th scope="row"><a href="/review/') == 1
    newest = text(sam.get("/review", query_string={"sort": "filed", "dir": "desc"}))
    assert 'aria-sort="descending"' in newest


def test_my_reports_search_finds_only_my_matching_reports(app):
    file_reports(app, ["ERIKSSON", "NAKAMURA"])
    mia = signed_in(app, "mia")
    page = text(mia.get("/reports/mine", query_string={"q": "nakamura"}))
    assert "NAKAMURA" in page and "ERIKSSON" not in page and re.search(r"Page 1: 1 reports", page)
    assert "No reports matching" in text(mia.get("/reports/mine", query_string={"q": "nobody"}))
