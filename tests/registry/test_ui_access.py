"""Every registry route against every role and anonymous access; sign-in, CSRF and throttling.

The app is the real one (registry/server.py's factory with the people's
pages), on a registry data directory made by `gatecheck registry init`.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from appliance.records import Action
from registry.accounts import Accounts, Role
from registry.clearance_policy import redress_number
from registry.clearances import ClearanceRegister
from registry.publish import DocumentRef, EntryFields
from registry.reports import Evidence, Identity
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from registry.cli import registry as registry_cli
from registry.server import create_app
from registry.web import access
from registry.web.throttle import MAX_PER_ACCOUNT
from sync.device_auth import device_id_for
from sync.keys import raw_public_key

PASSWORD = "a long enough passphrase"
#: What each people's route must allow: a change here is a deliberate access decision.
REPORTER, REVIEWER = frozenset({Role.REPORTER}), frozenset({Role.REVIEWER})
EXPECTED = {
    "ui_auth.login": access.PUBLIC,
    "ui_auth.logout": frozenset(Role),
    "ui_pages.dashboard": frozenset(Role),
    "ui_reports.new_report": REPORTER,
    "ui_reports.my_reports": REPORTER,
    "ui_reports.review_queue": REVIEWER,
    "ui_reports.review_report": REVIEWER,
    "ui_reports.accept": REVIEWER,
    "ui_reports.reject": REVIEWER,
    "ui_reports.categorise": REVIEWER,
    "ui_reports.evidence": REVIEWER,
    "ui_clearances.register": frozenset({Role.REVIEWER, Role.AUDITOR}),
    "ui_clearances.detail": frozenset({Role.REVIEWER, Role.AUDITOR}),
    "ui_clearances.new": REVIEWER,
    "ui_clearances.withdraw": REVIEWER,
}
REPORT = "RPT-MATRIX-1"
#: How each route is called in the matrix (method, path).
CALLS = {"ui_auth.login": ("GET", "/login"), "ui_auth.logout": ("POST", "/logout"),
         "ui_pages.dashboard": ("GET", "/"), "ui_reports.new_report": ("GET", "/reports/new"),
         "ui_reports.my_reports": ("GET", "/reports/mine"), "ui_reports.review_queue": ("GET", "/review"),
         "ui_reports.review_report": ("GET", f"/review/{REPORT}"),
         "ui_reports.accept": ("POST", f"/review/{REPORT}/accept"),
         "ui_reports.reject": ("POST", f"/review/{REPORT}/reject"),
         "ui_reports.categorise": ("POST", f"/review/{REPORT}/categorise"),
         "ui_reports.evidence": ("GET", f"/review/{REPORT}/evidence/1")}
CLEARANCE = redress_number(1234567)
CALLS.update({"ui_clearances.register": ("GET", "/clearances"), "ui_clearances.new": ("GET", "/clearances/new"),
              "ui_clearances.detail": ("GET", f"/clearances/{CLEARANCE}"),
              "ui_clearances.withdraw": ("POST", f"/clearances/{CLEARANCE}/withdraw")})
#: Entries, appeals, lists and the audit log (entry 1 and its open appeal 1 are made by the fixture).
PAGE_READERS = frozenset({Role.REVIEWER, Role.AUDITOR})
PEOPLE_PAGES = {
    "ui_entries.entries": (PAGE_READERS, "GET", "/entries"),
    "ui_entries.entry": (PAGE_READERS, "GET", "/entries/1"),
    "ui_appeals.appeal_list": (PAGE_READERS, "GET", "/appeals"),
    "ui_appeals.appeal": (PAGE_READERS, "GET", "/appeals/1"),
    "ui_appeals.file_appeal": (REVIEWER, "POST", "/entries/1/appeal"),
    "ui_appeals.uphold": (REVIEWER, "POST", "/appeals/1/uphold"),
    "ui_appeals.dismiss": (REVIEWER, "POST", "/appeals/1/dismiss"),
    "ui_lists.lists": (frozenset(Role), "GET", "/lists"),
    "ui_lists.list_detail": (frozenset(Role), "GET", "/lists/da-ban"),
    "ui_lists.edit_redress": (frozenset({Role.LIST_ADMIN}), "POST", "/lists/da-ban/redress"),
    "ui_lists.rekey": (frozenset({Role.IT_ADMIN}), "POST", "/lists/da-ban/rekey"),
    "ui_audit.audit_records": (frozenset({Role.AUDITOR}), "GET", "/audit"),
    "ui_audit.export": (frozenset({Role.AUDITOR}), "GET", "/audit/export"),
    "ui_audit.verify": (frozenset({Role.AUDITOR}), "POST", "/audit/verify"),
}
EXPECTED.update({endpoint: row[0] for endpoint, row in PEOPLE_PAGES.items()})
CALLS.update({endpoint: row[1:] for endpoint, row in PEOPLE_PAGES.items()})
#: The people's JSON API (registry/api/): access, method, path. Same roles; a token opens it, never a session.
ENTRY_READERS, API = frozenset({Role.REVIEWER, Role.AUDITOR}), "/api/v1"
API_ROUTES = {
    "api.openapi_document": (access.PUBLIC, "GET", f"{API}/openapi.json"),
    "api.me": (frozenset(Role), "GET", f"{API}/me"), "api.lists": (frozenset(Role), "GET", f"{API}/lists"),
    "api.file_report": (REPORTER, "POST", f"{API}/reports"), "api.my_reports": (REPORTER, "GET", f"{API}/me/reports"),
    "api.get_report": (REPORTER | REVIEWER, "GET", f"{API}/reports/{REPORT}"),
    "api.review_queue": (REVIEWER, "GET", f"{API}/review-queue"),
    "api.get_evidence": (REVIEWER, "GET", f"{API}/reports/{REPORT}/evidence/1"),
    "api.accept_report": (REVIEWER, "POST", f"{API}/reports/{REPORT}/accept"),
    "api.reject_report": (REVIEWER, "POST", f"{API}/reports/{REPORT}/reject"),
    "api.search_entries": (ENTRY_READERS, "GET", f"{API}/entries"),
    "api.get_entry": (ENTRY_READERS, "GET", f"{API}/entries/1"),
    "api.file_appeal": (REVIEWER, "POST", f"{API}/entries/1/appeals"),
    "api.open_appeals": (ENTRY_READERS, "GET", f"{API}/appeals"),
    "api.get_appeal": (ENTRY_READERS, "GET", f"{API}/appeals/1"),
    "api.uphold_appeal": (REVIEWER, "POST", f"{API}/appeals/1/uphold"),
    "api.dismiss_appeal": (REVIEWER, "POST", f"{API}/appeals/1/dismiss"),
    "api.audit_records": (frozenset({Role.AUDITOR}), "GET", f"{API}/audit"),
    "api.audit_verify": (frozenset({Role.AUDITOR}), "GET", f"{API}/audit/verify"),
    "api.list_devices": (frozenset({Role.IT_ADMIN}), "GET", f"{API}/devices"),
    "api.get_device": (frozenset({Role.IT_ADMIN}), "GET", f"{API}/devices/0123456789abcdef"),
    "api.revoke_device": (frozenset({Role.IT_ADMIN}), "POST", f"{API}/devices/0123456789abcdef/revoke"),
    "api.issue_code": (frozenset({Role.IT_ADMIN}), "POST", f"{API}/enrolment-codes"),
    "api.list_codes": (frozenset({Role.IT_ADMIN}), "GET", f"{API}/enrolment-codes"),
    "api.get_code": (frozenset({Role.IT_ADMIN}), "GET", f"{API}/enrolment-codes/0123456789abcdef"),
    "api.withdraw_code": (frozenset({Role.IT_ADMIN}), "POST", f"{API}/enrolment-codes/0123456789abcdef/withdraw"),
    "api.clearance_matches": (REVIEWER, "POST", f"{API}/clearances/matches"),
    "api.issue_clearance": (REVIEWER, "POST", f"{API}/clearances"),
    "api.search_clearances": (ENTRY_READERS, "GET", f"{API}/clearances"),
    "api.get_clearance": (ENTRY_READERS, "GET", f"{API}/clearances/CLR-1234-5675"),
    "api.withdraw_clearance": (REVIEWER, "POST", f"{API}/clearances/CLR-1234-5675/withdraw"),
    "api.start_import": (frozenset({Role.LIST_ADMIN}), "POST", f"{API}/imports?list_id=no-such-list"),
    "api.preview_import": (frozenset({Role.LIST_ADMIN}), "POST", f"{API}/imports/0123456789abcdef/preview"),
    "api.list_imports": (frozenset({Role.LIST_ADMIN}), "GET", f"{API}/imports"),
    "api.get_import": (frozenset({Role.LIST_ADMIN}), "GET", f"{API}/imports/0123456789abcdef"),
    "api.apply_import": (frozenset({Role.LIST_ADMIN}), "POST", f"{API}/imports/0123456789abcdef/apply"),
    "api.discard_import": (frozenset({Role.LIST_ADMIN}), "POST", f"{API}/imports/0123456789abcdef/discard"),
}
EXPECTED.update({endpoint: row[0] for endpoint, row in API_ROUTES.items()})
CALLS.update({endpoint: row[1:] for endpoint, row in API_ROUTES.items()})
#: Outside /api/v1 but opened the same way, by a token and never a session: Prometheus (docs/metrics.md).
TOKEN_ROUTES = {"metrics.metrics": (frozenset({Role.IT_ADMIN}), "GET", "/metrics")}
EXPECTED.update({endpoint: row[0] for endpoint, row in TOKEN_ROUTES.items()})
CALLS.update({endpoint: row[1:] for endpoint, row in TOKEN_ROUTES.items()})
#: IT's fleet pages (registry/web/device_pages.py); the fixture enrols DEVICE_KEY's device. Auditors may look.
DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DEVICE = device_id_for(raw_public_key(DEVICE_KEY))
IT, FLEET_READERS = frozenset({Role.IT_ADMIN}), frozenset({Role.IT_ADMIN, Role.AUDITOR})
FLEET_PAGES = {
    "ui_devices.device_list": (FLEET_READERS, "GET", "/devices"),
    "ui_devices.device_detail": (FLEET_READERS, "GET", f"/devices/{DEVICE}"),
    "ui_devices.revoke": (IT, "POST", f"/devices/{DEVICE}/revoke"),
    "ui_devices.code_list": (FLEET_READERS, "GET", "/enrolment-codes"),
    "ui_devices.new_code": (IT, "GET", "/enrolment-codes/new"),
    "ui_devices.withdraw_code": (IT, "POST", "/enrolment-codes/0123456789abcdef/withdraw"),
}
EXPECTED.update({endpoint: row[0] for endpoint, row in FLEET_PAGES.items()})
CALLS.update({endpoint: row[1:] for endpoint, row in FLEET_PAGES.items()})
#: Authority list imports (registry/web/import_pages.py); the fixture starts import IMPORT. List admins only.
IMPORT, LIST_ADMINS = "0123456789abcdef", frozenset({Role.LIST_ADMIN})
IMPORT_PAGES = {
    "ui_imports.imports_home": (LIST_ADMINS, "GET", "/imports"),
    "ui_imports.upload": (LIST_ADMINS, "POST", "/imports/upload"),
    "ui_imports.mapping": (LIST_ADMINS, "GET", f"/imports/{IMPORT}/mapping"),
    "ui_imports.detail": (LIST_ADMINS, "GET", f"/imports/{IMPORT}"),
    "ui_imports.apply": (LIST_ADMINS, "POST", f"/imports/{IMPORT}/apply"),
    "ui_imports.discard": (LIST_ADMINS, "POST", f"/imports/{IMPORT}/discard"),
}
EXPECTED.update({endpoint: row[0] for endpoint, row in IMPORT_PAGES.items()})
CALLS.update({endpoint: row[1:] for endpoint, row in IMPORT_PAGES.items()})


@pytest.fixture
def app(tmp_path) -> Flask:
    data_dir = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    app.config["TESTING"] = True
    ui = app.extensions["gatecheck_ui"]
    accounts: Accounts = ui.accounts
    for role in Role:
        accounts.create_user(role.value.replace("_", "-"), PASSWORD, roles=[role], by="admin")
    app.extensions["gatecheck_registry"].registry.create_list(
        "da-ban", name="Demo Air ban", authority="Demo Air", legal_basis="Conditions of carriage",
        scopes=["air_travel"], default_action=Action.DENY, by="admin")
    ui.reports.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES), by="list-admin")
    ui.reports.file(reporter="someone-else", list_id="da-ban", category="smoking_on_board", report_id=REPORT,
                    identity=Identity("Eriksson", "Anna", date(1970, 5, 17)), trip="DA 1", trip_date=date(2026, 11, 1),
                    narrative="Smoked in the lavatory.", attachments=[Evidence("log.pdf", b"%PDF-1.4 test")])
    registry = app.extensions["gatecheck_registry"].registry
    registry.add_entry("da-ban", EntryFields(surnames="Eriksson", given_names="Anna", date_of_birth=date(1970, 5, 17),
                                             reference="DA-1", category="smoking_on_board"), by="admin")
    ClearanceRegister(ui.engine, registry, ui.audit, serials=lambda: 1234567).issue(
        Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "SWE", "91234567"),)), lists=["da-ban"],
        reason="A namesake: another passport, another person.", by="reviewer")
    ui.appeals.file(1, grounds="Mistaken identity.", filed_by="reviewer")
    ui.devices.enroll(ui.devices.issue_code(["da-ban"], ttl_seconds=3600, by="it-admin"),
                      raw_public_key(DEVICE_KEY), "Counter 1")
    court = tmp_path / "court.csv"
    court.write_text("case,surname,dob,until\nC-1,Wang,1970-01-01,2030-01-01\n")
    ui.imports.start("da-ban", court, file_name="court.csv", by="list-admin", import_id=IMPORT)
    return app


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def sign_in(client, username: str, password: str = PASSWORD, **query):
    return client.post("/login", query_string=query,
                       data={"username": username, "password": password, "csrf_token": csrf_token(client)})


def people_routes(app: Flask) -> list[str]:
    return sorted(e for e in app.view_functions if access.access_of(app, e) not in (access.DEVICE,)
                  and not e.endswith("static"))


def test_every_view_declares_its_access_and_the_expected_table_covers_them(app):
    assert access.undeclared(app) == []
    assert people_routes(app) == sorted(EXPECTED)
    for endpoint, expected in EXPECTED.items():
        assert access.access_of(app, endpoint) == expected, endpoint


def test_an_undeclared_view_stops_the_app_from_starting():
    app = Flask(__name__)
    app.add_url_rule("/forgotten", "forgotten", lambda: "open by omission")
    with pytest.raises(RuntimeError, match="without an access declaration: forgotten"):
        access.install(app)


@pytest.mark.parametrize("who", [None, *Role], ids=lambda r: "anonymous" if r is None else r.value)
def test_route_matrix_every_route_for_every_role(app, who):
    for endpoint in people_routes(app):
        client = app.test_client()
        if who is not None:
            assert sign_in(client, who.value.replace("_", "-")).status_code == 302
        method, path = CALLS[endpoint]
        data = {"csrf_token": csrf_token(client, "/login" if who is None else "/")} if method == "POST" else None
        response = client.open(path, method=method, data=data)
        declared = EXPECTED[endpoint]
        if (endpoint in API_ROUTES or endpoint in TOKEN_ROUTES) and declared != access.PUBLIC:
            assert response.status_code == 401, (endpoint, who)  # a session cookie never opens the API
            continue
        if declared == access.PUBLIC:
            assert response.status_code in (200, 302), (endpoint, who)
        elif who is None:
            assert response.status_code == 302 and "/login?next=" in response.headers["Location"], endpoint
        elif who in declared:
            assert response.status_code in (200, 302), (endpoint, who, response.status_code)
            assert "/login?next" not in response.headers.get("Location", "")
        else:
            assert response.status_code == 403, (endpoint, who)


def test_sign_in_without_a_csrf_token_is_refused(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "reviewer", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # not signed in


def test_a_wrong_password_says_so_in_one_line_and_a_right_one_signs_in(app):
    client = app.test_client()
    refused = sign_in(client, "reviewer", "not the password at all")
    assert refused.status_code == 401 and "User name or password is wrong." in refused.get_data(as_text=True)
    assert sign_in(client, "reviewer").status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Dashboard" in page and "reviewer" in page


def test_repeated_wrong_passwords_lock_the_account_for_a_while_even_for_the_right_one(app):
    client = app.test_client()
    for _ in range(MAX_PER_ACCOUNT):
        assert sign_in(client, "auditor", "guess number something").status_code == 401
    locked = sign_in(client, "auditor")
    assert locked.status_code == 429
    assert re.search(r"Too many failed sign-ins\. Try again in \d+ minutes?\.", locked.get_data(as_text=True))
    assert sign_in(app.test_client(), "reviewer").status_code == 302  # another account is not locked


@pytest.mark.parametrize("target", ["//attacker.invalid/phish", "/\\attacker.invalid/phish",
                                    "https://attacker.invalid/", "/ok\x00"])
def test_the_next_parameter_never_leaves_the_site(app, target):
    client = app.test_client()
    response = sign_in(client, "reviewer", next=target)
    assert response.headers["Location"] == "/"


def test_the_session_key_file_is_private_to_the_service(app):
    import stat

    key_file = Path(app.config["DATA_DIR"]) / "web-secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64


def test_a_disabled_user_is_signed_out_on_the_next_request(app):
    client = app.test_client()
    assert sign_in(client, "reporter").status_code == 302
    assert client.get("/").status_code == 200
    app.extensions["gatecheck_ui"].accounts.disable("reporter", by="admin", reason="left")
    assert client.get("/").status_code == 302


def test_the_device_api_keeps_json_errors_and_needs_no_csrf_token(app):
    response = app.test_client().post("/v1/enroll", json={"code": "nope"})
    assert response.status_code in (400, 403) and response.is_json
    assert response.get_json()["error"]["message"]


def test_an_unknown_page_is_an_html_page_not_json(app):
    client = app.test_client()
    assert sign_in(client, "reviewer").status_code == 302
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_a_forbidden_page_tells_the_user_which_role_it_needs(app):
    from registry.web.access import roles_required

    @roles_required(Role.LIST_ADMIN)
    def imports():
        return "imports"

    app.add_url_rule("/imports-probe", "imports_probe", imports)
    client = app.test_client()
    assert sign_in(client, "reviewer").status_code == 302
    response = client.get("/imports-probe")
    assert response.status_code == 403 and "needs the role: list_admin" in response.get_data(as_text=True)


def test_a_password_change_ends_sessions_signed_in_with_the_old_password(app):
    client = app.test_client()
    assert sign_in(client, "reviewer").status_code == 302
    assert client.get("/").status_code == 200
    app.extensions["gatecheck_ui"].accounts.set_password("reviewer", "a brand new long passphrase", by="admin")
    assert client.get("/").status_code == 302  # back to the sign-in page
    assert sign_in(client, "reviewer", "a brand new long passphrase").status_code == 302
    assert client.get("/").status_code == 200
