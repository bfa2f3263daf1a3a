"""The list pages: what each list is, its review policy, and its redress text (the real app, Flask's test client).

A redress edit is checked where it matters, in the signed delta a device
fetches: the next entry carries the new text, entries published before keep
theirs, and the page says exactly that.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from registry import db
from registry.reports import Identity
from sync.wire import decode_delta
from tests.support.ui_world import REDRESS, accepted_entry, csrf, make_app, signed_in, text

NEW_REDRESS = "Write to the Demo Air Redress Office, PO Box 12, quoting the reference on your boarding refusal."


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def edit_redress(client, **fields):
    data = {"csrf_token": csrf(client, "/lists/da-ban"), "redress": NEW_REDRESS,
            "reason": "new postal address of the redress office", **fields}
    return client.post("/lists/da-ban/redress", data=data, follow_redirects=True)


def published_redress(app, since: int) -> list[str]:
    """The redress texts of the tokens added by the deltas after version ``since``: what devices receive."""
    frames = app.extensions["gatecheck_registry"].registry.updates_since("da-ban", since)
    return [entry.redress for _, payload in frames
            for entry in decode_delta(payload, max_bytes=1 << 20, max_entries=10_000).adds]


def test_a_list_page_shows_authority_basis_scopes_version_policy_and_redress(app):
    accepted_entry(app)
    page = text(signed_in(app, "mia").get("/lists/da-ban"))
    for fact in ("Demo Air", "Conditions of carriage", "air_travel", "DENY", "Assault of crew", "1825",
                 "within 15 calendar days", "within 3 working days", REDRESS, "1 active"):
        assert fact in page, fact
    assert "Change the redress text" not in page  # only list admins edit it
    listed = text(signed_in(app, "mia").get("/lists", query_string={"q": "demo air"}))
    assert "Demo Air ban" in listed and "air_travel" in listed


def test_a_list_admin_changes_the_redress_text_and_new_entries_carry_it_to_the_devices(app):
    first = accepted_entry(app)
    lin = signed_in(app, "lin")
    saved = text(edit_redress(lin))
    assert ("Redress text of da-ban saved. Entries listed from now on carry it to the counters. "
            "The 1 active entry published before keeps the text it was published with.") in saved
    registry = app.extensions["gatecheck_registry"].registry
    version = registry.current_version("da-ban")
    second = accepted_entry(app, identity=Identity("NAKAMURA", "KEN", date(1980, 1, 2)))
    assert set(published_redress(app, version)) == {NEW_REDRESS}
    with app.extensions["gatecheck_ui"].engine.connect() as conn:
        held = dict(conn.execute(db.list_tokens.select().with_only_columns(
            db.list_tokens.c.entry_id, db.list_tokens.c.redress).distinct()).all())
    assert held == {first: REDRESS, second: NEW_REDRESS}  # the first entry's tokens keep the old text

    record = [r for r in app.extensions["gatecheck_ui"].audit.records(subject="list:da-ban")
              if r.action == "list.redress"][-1]
    assert record.actor == "lin" and record.reason == "new postal address of the redress office"
    assert json.loads(record.before) == {"redress": REDRESS} and json.loads(record.after) == {"redress": NEW_REDRESS}
    page = text(lin.get("/lists/da-ban"))
    assert "Active entries: 1 with this text, 1 with an earlier text or one of their own" in page and "list.redress" in page


@pytest.mark.parametrize("fields, message", [
    ({"reason": ""}, "Why it changes: This field is required."),
    ({"redress": "   "}, "Redress text: This field is required."),
    ({"redress": "x" * 1001}, "Field cannot be longer than 1000 characters."),
    ({"redress": REDRESS}, "Not saved: the redress text is unchanged"),
])
def test_a_bad_redress_edit_is_refused_in_one_line_and_nothing_changes(app, fields, message):
    page = text(edit_redress(signed_in(app, "lin"), **fields))
    assert message in page and "Traceback" not in page
    assert app.extensions["gatecheck_registry"].registry.list_info("da-ban").redress == REDRESS
    assert not [r for r in app.extensions["gatecheck_ui"].audit.records() if r.action == "list.redress"]


def test_an_unknown_list_is_a_page_saying_so(app):
    response = signed_in(app, "lin").get("/lists/no-such-list")
    assert response.status_code == 404 and "There is no list no-such-list." in text(response)
