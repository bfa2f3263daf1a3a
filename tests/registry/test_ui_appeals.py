"""Appeals through the pages: recorded by the redress desk, decided by another reviewer, lifting at once."""

from __future__ import annotations

import re
import time

import pytest

from registry.appeals import Appeals
from tests.support.ui_world import accepted_entry, csrf, make_app, signed_in, text

GROUNDS = {"received": "letter of 2026-11-20, customer relations case CR-4711",
           "grounds": "I was not on that flight; my passport was stolen in 2025."}


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def record_appeal(client, entry_id: int, **fields) -> int:
    response = client.post(f"/entries/{entry_id}/appeal",
                           data={"csrf_token": csrf(client, f"/entries/{entry_id}"), **GROUNDS, **fields})
    assert response.status_code == 302
    return int(re.search(r"/appeals/(\d+)$", response.headers["Location"]).group(1))


def decide(client, appeal_id: int, how: str, decision: str):
    return client.post(f"/appeals/{appeal_id}/{how}", follow_redirects=True,
                       data={"csrf_token": csrf(client, f"/appeals/{appeal_id}"), f"{how}-decision": decision})


def test_an_upheld_appeal_lifts_the_entry_and_publishes_its_removal_at_once(app):
    entry_id = accepted_entry(app, reviewer="sam")
    registry = app.extensions["gatecheck_registry"].registry
    lee = signed_in(app, "lee")
    appeal_id = record_appeal(lee, entry_id)
    page = text(lee.get(f"/appeals/{appeal_id}"))
    assert "customer relations case CR-4711" in page and "passport was stolen" in page
    version = registry.current_version("da-ban")

    upheld = decide(lee, appeal_id, "uphold", "Police report confirms the theft.")
    assert f"Appeal {appeal_id} upheld: entry {entry_id} is lifted, its removal published in version {version + 1}." \
        in text(upheld)
    assert registry.current_version("da-ban") == version + 1
    assert registry.updates_since("da-ban", version)  # the removal is there for devices to fetch now
    entry = text(lee.get(f"/entries/{entry_id}"))
    assert "(removed)" in entry and f"removal published in version {version + 1}" in entry
    assert "entry.lift" in entry and "Police report confirms the theft." in entry


def test_the_reviewer_who_accepted_the_listing_is_refused_in_one_line(app):
    entry_id = accepted_entry(app, reviewer="sam")
    sam = signed_in(app, "sam")
    appeal_id = record_appeal(sam, entry_id)  # recording an appeal against one's own listing is allowed
    assert "another reviewer must decide this appeal" in text(sam.get(f"/appeals/{appeal_id}"))
    refused = text(decide(sam, appeal_id, "uphold", "On reflection I was wrong."))
    assert "Not decided: you accepted this listing; another reviewer must decide the appeal" in refused
    assert "Traceback" not in refused
    assert app.extensions["gatecheck_ui"].appeals.get(appeal_id).status == "open"


def test_a_dismissal_keeps_the_entry_and_needs_a_reason(app):
    entry_id = accepted_entry(app, reviewer="sam")
    registry = app.extensions["gatecheck_registry"].registry
    lee = signed_in(app, "lee")
    appeal_id = record_appeal(lee, entry_id)
    version = registry.current_version("da-ban")
    assert "Not decided: a decision needs a reason" in text(decide(lee, appeal_id, "dismiss", "no"))
    dismissed = text(decide(lee, appeal_id, "dismiss", "CCTV shows the traveller at the gate."))
    assert f"Appeal {appeal_id} dismissed: entry {entry_id} stays listed." in dismissed
    assert registry.current_version("da-ban") == version
    assert "(active)" in text(lee.get(f"/entries/{entry_id}"))
    assert f"Appeal {appeal_id}<" in text(lee.get("/appeals", query_string={"view": "dismissed"}))
    assert f"Appeal {appeal_id}<" not in text(lee.get("/appeals"))


def test_a_second_open_appeal_on_one_entry_is_refused_in_one_line(app):
    entry_id = accepted_entry(app)
    lee = signed_in(app, "lee")
    record_appeal(lee, entry_id)
    response = lee.post(f"/entries/{entry_id}/appeal", follow_redirects=True,
                        data={"csrf_token": csrf(lee, "/appeals"), **GROUNDS})
    assert f"Not recorded: entry {entry_id} already has an open appeal" in text(response)


def test_open_appeals_show_both_deadlines_and_an_overdue_one_is_marked_in_words(app):
    ui = app.extensions["gatecheck_ui"]
    late_entry, fresh_entry = accepted_entry(app), accepted_entry(app)
    month_ago = time.time() - 30 * 86_400
    Appeals(ui.engine, ui.reports.registry, ui.reports, ui.audit, clock=lambda: month_ago).file(
        late_entry, grounds="Mistaken identity.", filed_by="lee")
    fresh = ui.appeals.file(fresh_entry, grounds="Mistaken identity.", filed_by="lee")
    page = text(signed_in(app, "ada").get("/appeals"))
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"<tr[^>]*>\s*<th scope=\"row\"><a href=\"/appeals/(\d+)\">.*?</tr>", page, re.S)}
    late = next(row for row in rows.values() if f"entry {late_entry}," in row)
    assert 'class="overdue"' in late and "overdue</strong>" in late
    assert 'class="overdue"' not in rows[fresh.appeal_id]
    assert str(fresh.decide_by) in rows[fresh.appeal_id] and "if upheld today" in rows[fresh.appeal_id]
    assert "Uphold" not in text(signed_in(app, "ada").get(f"/appeals/{fresh.appeal_id}"))  # auditors read only
