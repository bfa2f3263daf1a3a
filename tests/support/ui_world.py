"""The real registry app with one list that takes reports and a person for each role, for the page tests.

mia reports for DA; sam (DA) and lee (every organisation) review; ada audits;
lin administers lists; ian is IT. ``accepted_entry`` takes a report through
the pages' own services to a published entry, as a reviewer's accept does.
"""

from __future__ import annotations

import re
from datetime import date

from click.testing import CliRunner
from flask import Flask

from appliance.records import Action
from registry.cli import registry as registry_cli
from registry.publish import DocumentRef
from registry.reports import Evidence, Identity
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from registry.server import create_app

PASSWORD = "a long enough passphrase"
TRAVELLER = Identity("ERIKSSON", "ANNA", date(1970, 5, 17), (DocumentRef("P", "DEU", "C01X00T47"),))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
PEOPLE = (("mia", ["reporter"], ["DA"]), ("sam", ["reviewer"], ["DA"]), ("lee", ["reviewer"], []),
          ("ada", ["auditor"], []), ("lin", ["list_admin"], []), ("ian", ["it_admin"], []))
REDRESS = "Write to Demo Air customer relations, quoting the reference."


def make_app(tmp_path, *, redress: str = REDRESS) -> Flask:
    data_dir = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    app.config["TESTING"] = True
    ui = app.extensions["gatecheck_ui"]
    for name, roles, orgs in PEOPLE:
        ui.accounts.create_user(name, PASSWORD, roles=roles, orgs=orgs, by="admin")
    app.extensions["gatecheck_registry"].registry.create_list(
        "da-ban", name="Demo Air ban", authority="Demo Air", legal_basis="Conditions of carriage",
        scopes=["air_travel"], default_action=Action.DENY, redress=redress, by="admin")
    ui.reports.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES), by="lin", reason="first taxonomy")
    return app


def accepted_entry(app: Flask, *, identity: Identity = TRAVELLER, reviewer: str = "sam", org: str = "DA",
                   category: str = "assault_of_crew") -> int:
    """File a report as mia and accept it; returns the published entry's id."""
    ui = app.extensions["gatecheck_ui"]
    report_id = ui.reports.file(reporter="mia", org=org, list_id="da-ban", category=category, identity=identity,
                                trip="DA 123 FRA-LIS", trip_date=date(2026, 11, 26),
                                narrative="Struck a cabin crew member.", attachments=[Evidence("log.png", PNG)])
    return ui.reports.accept(report_id, reviewer=reviewer, reason="crew statements agree").entry_id


def signed_in(app: Flask, username: str):
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": csrf(client, "/login")}).status_code == 302
    return client


def csrf(client, path: str) -> str:
    """The CSRF token of the first form on ``path`` (a form's prefix does not change the token)."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="(?:\w+-)?csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def text(response) -> str:
    return response.get_data(as_text=True)
