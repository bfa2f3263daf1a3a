"""The entry pages: one entry whole with its history, and the entries search (the real app, Flask's test client)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from registry.reports import Identity
from tests.support.ui_world import accepted_entry, make_app, signed_in, text


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def test_an_entry_page_shows_what_it_lists_where_it_came_from_and_its_audit_trail(app):
    entry_id = accepted_entry(app)
    page = text(signed_in(app, "lee").get(f"/entries/{entry_id}"))
    assert "ERIKSSON, ANNA" in page and "1970-05-17" in page and "P DEU" in page and "C01X00T47" in page
    assert "Demo Air ban" in page and "assault_of_crew" in page and "DENY" in page
    assert "published in version 1" in page
    assert re.search(r"Approved</dt><dd>by sam|Decision</dt><dd>accepted by sam", page)
    assert "crew statements agree" in page and "Write to Demo Air customer relations" in page
    for action in ("report.file", "report.accept"):
        assert action in page
    # Re-listing is a new decision: the only form on an entry page records an appeal.
    forms = set(re.findall(r'<form method="post" action="([^"]+)"', page)) - {"/logout"}
    assert forms == {f"/entries/{entry_id}/appeal"}


def test_an_auditor_sees_document_numbers_masked_to_the_last_three_characters(app):
    entry_id = accepted_entry(app)
    page = text(signed_in(app, "ada").get(f"/entries/{entry_id}"))
    assert "C01X00T47" not in page and "T47" in page
    assert "number masked: last 3 characters shown" in page
    assert "Record an appeal" not in page  # auditors read, they do not record appeals


def test_a_reviewer_of_another_organisation_sees_the_entry_but_not_the_report_behind_it(app):
    entry_id = accepted_entry(app, org="HX", reviewer="lee")
    page = text(signed_in(app, "sam").get(f"/entries/{entry_id}"))  # sam reviews for DA only
    assert "from another organisation: not shown to you" in page
    assert "Struck a cabin crew member" not in page and "report.file" not in page


def test_entries_search_by_name_reference_list_and_status(app):
    first = accepted_entry(app)
    second = accepted_entry(app, identity=Identity("NAKAMURA", "KEN", date(1980, 1, 2)))
    registry = app.extensions["gatecheck_registry"].registry
    registry.remove_entry("da-ban", first, by="lee")
    lee = signed_in(app, "lee")
    found = text(lee.get("/entries", query_string={"q": "nakamura"}))
    assert "NAKAMURA" in found and "ERIKSSON" not in found
    active = text(lee.get("/entries", query_string={"status": "active", "list": "da-ban"}))
    assert f"Entry {second}<" in active and f"Entry {first}<" not in active
    removed = text(lee.get("/entries", query_string={"status": "removed"}))
    assert f"Entry {first}<" in removed and f"Entry {second}<" not in removed
    report_id = re.search(r"RPT-\d{8}-[0-9A-F]{8}", text(lee.get(f"/entries/{second}"))).group(0)
    assert f"Entry {second}<" in text(lee.get("/entries", query_string={"q": report_id.lower()}))


def test_search_text_is_literal_so_a_like_wildcard_matches_nothing(app):
    accepted_entry(app)
    page = text(signed_in(app, "lee").get("/entries", query_string={"q": "%"}))
    assert "No entries matching" in page and "ERIKSSON" not in page


def test_an_unknown_entry_is_a_page_saying_so(app):
    response = signed_in(app, "lee").get("/entries/999")
    assert response.status_code == 404 and "There is no entry 999." in text(response)
