"""The clearance pages (registry/web/clearance_pages.py) on the real app, through Flask's test client."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest
from click.testing import CliRunner

from appliance.records import Action
from registry.cli import registry as registry_cli
from registry.clearances import clearances
from registry.publish import DocumentRef, EntryFields
from registry.reports import Identity
from registry.server import create_app
from appliance.specimens.bcbp import EncLeg, EncPass, encode_bcbp
from appliance.specimens.mrz import MRZFields, encode

PASSWORD = "a long enough passphrase"
BORN = date(1970, 5, 17)
#: A namesake's passport: the listed Anna Eriksson's name and birth date, another country and number.
NAMESAKE_MRZ = "\n".join(encode(MRZFields("TD3", "P", "SWE", "91234567", "ERIKSSON", "ANNA", BORN, "F",
                                          date(2035, 1, 31), "SWE")))
REASON = "Born in Malmö; the listed person was born in Hamburg. Different face and passport."
NUMBER = re.compile(r"CLR-\d{4}-\d{4}")


@pytest.fixture
def app(tmp_path):
    data_dir = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    app.config["TESTING"] = True
    ui = app.extensions["gatecheck_ui"]
    for name, roles in (("rita", ["reviewer"]), ("otto", ["auditor"])):
        ui.accounts.create_user(name, PASSWORD, roles=roles, by="admin")
    registry = app.extensions["gatecheck_registry"].registry
    for list_id, name in (("nfl", "No-fly list"), ("hotel", "Hotel do-not-rent")):
        registry.create_list(list_id, name=name, authority="A", legal_basis="B", scopes=["air_travel"],
                             default_action=Action.DENY, by="admin")
    registry.add_entry("nfl", EntryFields(surnames="Eriksson", given_names="Anna", date_of_birth=BORN,
                                          reference="NFL-2024-0042", category="aviation-security"), by="admin")
    return app


def signed_in(app, username: str):
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": csrf(client, "/login")}).status_code == 302
    return client


def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def post_new(client, **fields):
    data = {"csrf_token": csrf(client, "/clearances/new"), "scan": NAMESAKE_MRZ, "action": "issue",
            "lists": ["nfl"], "reason": REASON}
    data.update(fields)
    return client.post("/clearances/new", data=data)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_reviewer_finds_the_list_a_namesake_is_referred_on_and_issues_a_clearance_from_a_scan(app):
    rita = signed_in(app, "rita")
    found = post_new(rita, action="check", lists=[])
    page = text(found)
    assert found.status_code == 200 and "ERIKSSON, ANNA, born 1970-05-17" in page and "P SWE 91234567" in page
    assert "entry 1 (ref. NFL-2024-0042" in page  # the hit, to compare with the traveller
    assert re.search(r'value="nfl" id="[^"]+"\s+checked', found.get_data(as_text=True))  # suggested
    assert "Cannot be cleared here: no active entry on Hotel do-not-rent" in page

    version = app.extensions["gatecheck_registry"].registry.current_version("nfl")
    issued = post_new(rita)
    assert issued.status_code == 302
    number = NUMBER.search(issued.headers["Location"]).group(0)
    assert app.extensions["gatecheck_registry"].registry.current_version("nfl") == version + 1
    detail = text(rita.get(issued.headers["Location"]))
    assert f"Clearance {number} issued and published on nfl" in detail
    assert "91234567" in detail and "2035-01-31" in detail  # the scan's expiry date is kept
    assert "clearance.issue" in detail and REASON in detail


def test_the_register_is_searchable_by_name_and_a_redress_number_opens_its_clearance(app):
    rita = signed_in(app, "rita")
    number = NUMBER.search(post_new(rita).headers["Location"]).group(0)
    assert number in text(rita.get("/clearances", query_string={"q": "eriks"}))
    assert "No clearances matching" in text(rita.get("/clearances", query_string={"q": "Lindqvist"}))
    spoken = number.lower().replace("-", " ")
    opened = rita.get("/clearances", query_string={"q": spoken})
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/clearances/{number}")
    assert rita.get(f"/clearances/{number.replace('-', '')}").headers["Location"].endswith(f"/clearances/{number}")
    assert number not in text(rita.get("/clearances", query_string={"status": "withdrawn"}))


def test_the_register_pages_and_sorts_on_the_server(app):
    ui = app.extensions["gatecheck_ui"]
    for i in range(26):
        ui.clearances.issue(Identity("Eriksson", "Anna", BORN, (DocumentRef("P", "SWE", f"9{i:07d}"),)),
                            lists=["nfl"], reason=REASON, by="rita")
    rita = signed_in(app, "rita")
    first = text(rita.get("/clearances", query_string={"sort": "number", "dir": "asc"}))
    second = text(rita.get("/clearances", query_string={"sort": "number", "dir": "asc", "page": "2"}))
    rows = [re.findall(r'<th scope="row"><a href="[^"]+">(CLR-\d{4}-\d{4})</a>', page) for page in (first, second)]
    assert [len(r) for r in rows] == [25, 1] and rows[0] + rows[1] == sorted(set(rows[0] + rows[1]))
    assert 'rel="next"' in first and 'aria-sort="ascending"' in first
    backwards = text(rita.get("/clearances", query_string={"sort": "number", "dir": "desc"}))
    assert re.findall(r'<th scope="row"><a href="[^"]+">(CLR-\d{4}-\d{4})</a>', backwards)[0] == rows[1][0]


def test_a_bad_clearance_is_refused_with_one_line_and_nothing_published(app):
    rita = signed_in(app, "rita")
    registry = app.extensions["gatecheck_registry"].registry
    boarding_pass = encode_bcbp(EncPass(name="ERIKSSON/ANNA", legs=[EncLeg(
        pnr="ABC123", from_airport="FRA", to_airport="LIS", carrier="DA", flight_number="0123", day_of_year=331,
        compartment="Y", seat="012A", sequence="0001", passenger_status="1")]))
    for fields, words in (
            ({"scan": "", "surnames": "Eriksson", "given_names": "Anna", "date_of_birth": "1970-05-17"},
             "Not issued: a clearance needs the traveller's document"),
            ({"scan": boarding_pass}, "Not issued: a clearance needs the traveller's surname and date of birth"),
            ({"lists": ["hotel"]}, "Not issued: not issued: no active entry on Hotel do-not-rent"),
            ({"reason": "ok"}, "Not issued: give the reason"),
            ({"days": "5000"}, "1 to 1095 days"),
            ({"scan": "not a travel document"}, "Not issued: ")):
        refused = post_new(rita, **fields)
        assert refused.status_code == 422 and words in text(refused), fields
    assert registry.current_version("nfl") == 1 and registry.current_version("hotel") == 0
    with app.extensions["gatecheck_ui"].engine.connect() as conn:
        assert conn.execute(clearances.select()).all() == []


def test_withdrawing_from_the_detail_page_publishes_the_removal_and_shows_in_the_history(app):
    rita = signed_in(app, "rita")
    where = post_new(rita).headers["Location"]
    number = NUMBER.search(where).group(0)
    no_reason = rita.post(f"{where}/withdraw", data={"csrf_token": csrf(rita, where), "reason": ""})
    assert "Not withdrawn: give the reason" in text(rita.get(no_reason.headers["Location"]))
    done = rita.post(f"{where}/withdraw", data={"csrf_token": csrf(rita, where),
                                                 "reason": "She was the listed person after all."})
    page = text(rita.get(done.headers["Location"]))
    assert f"Clearance {number} withdrawn" in page and "(withdrawn)" in page
    assert "clearance.withdraw" in page and "She was the listed person after all." in page
    assert app.extensions["gatecheck_registry"].registry.current_version("nfl") == 3
    assert "Withdraw the clearance" not in page


def test_an_auditor_reads_the_register_with_the_document_number_masked_and_cannot_withdraw(app):
    number = NUMBER.search(post_new(signed_in(app, "rita")).headers["Location"]).group(0)
    otto = signed_in(app, "otto")
    register = text(otto.get("/clearances"))
    assert number in register and "91234567" not in register and "******567" in register
    detail = text(otto.get(f"/clearances/{number}"))
    assert "ERIKSSON" in detail and "91234567" not in detail and "Withdraw the clearance" not in detail
    assert "Issue a clearance" not in register
    assert otto.post(f"/clearances/{number}/withdraw", data={"reason": "auditors may not"}).status_code in (400, 403)
    assert otto.get("/clearances/CLR-0000-0000").status_code == 404
