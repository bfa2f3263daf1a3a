"""The re-key button on a list's page: IT admins of every organisation, a reason and a ticked confirmation.

The real app and Flask's test client (tests/support/ui_world.py); what the
button does is checked where it matters, in the list's key and version and
the audit log.
"""

from __future__ import annotations

import pytest

from registry.rekey import retired_keys
from tests.support.ui_world import accepted_entry, csrf, make_app, signed_in, text

REASON = "Counter 7 at FRA T1 stolen overnight with its store, police ref. 2026-4411"


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    accepted_entry(app)
    app.extensions["gatecheck_ui"].accounts.create_user("ida", "a long enough passphrase", roles=["it_admin"],
                                                        orgs=["DA"], by="admin")
    return app


def rekey(client, **fields):
    data = {"csrf_token": csrf(client, "/lists/da-ban"), "reason": REASON, "confirm": "y", **fields}
    return client.post("/lists/da-ban/rekey", data=data, follow_redirects=True)


def key_of(app) -> tuple[bytes, int]:
    info = app.extensions["gatecheck_registry"].registry.list_info("da-ban")
    return info.token_key, info.version


def test_an_it_admin_rekeys_a_list_from_its_page_and_the_old_key_is_listed_as_retired(app):
    before = key_of(app)
    ian = signed_in(app, "ian")
    assert "Re-key the list" in text(ian.get("/lists/da-ban"))
    page = text(rekey(ian))
    key, version = key_of(app)
    assert key != before[0] and version == before[1] + 1
    [retired] = retired_keys(app.extensions["gatecheck_ui"].engine, "da-ban")
    assert f"da-ban is re-keyed: key {retired.key_id} is retired, version {version} carries" in page
    assert "Retired keys" in page and retired.key_id in page and key.hex() not in page
    [record] = [r for r in app.extensions["gatecheck_ui"].audit.records(subject="list:da-ban")
                if r.action == "list.rekey"]
    assert (record.actor, record.reason) == ("ian", REASON)


def test_without_the_confirmation_or_a_reason_nothing_is_rekeyed(app):
    before = key_of(app)
    ian = signed_in(app, "ian")
    assert "Not re-keyed" in text(rekey(ian, confirm=""))
    assert "Not re-keyed" in text(rekey(ian, reason=""))
    assert key_of(app) == before


def test_the_button_is_for_it_admins_of_every_organisation_only(app):
    before = key_of(app)
    for name in ("lin", "lee", "ada"):  # list admin, reviewer, auditor: no button, and the POST is refused
        client = signed_in(app, name)
        assert "Re-key the list" not in text(client.get("/lists/da-ban"))
        assert rekey(client).status_code == 403
    ida = signed_in(app, "ida")  # an IT admin scoped to DA: the list serves every organisation's devices
    assert "Re-key the list" not in text(ida.get("/lists/da-ban"))
    assert "only an IT admin of all organisations may re-key it" in text(rekey(ida))
    assert key_of(app) == before
