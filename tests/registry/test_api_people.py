"""The people's JSON API (registry/api/): tokens and roles, bodies and refusals, the workflows end to end.

The app is the real one (registry/server.py's factory) on a data directory
made by `gatecheck registry init`; one test runs `registry serve` as real
processes and drives the API over HTTP. Which role may call which route is
the table in tests/registry/test_ui_access.py (API_ROUTES), the same table
the pages' matrix uses.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from click.testing import CliRunner

from appliance.records import Action
from registry.accounts import Role
from registry.api.openapi import document
from registry.api.operations import OPERATIONS
from registry.cli import registry as registry_cli
from registry.reports import Evidence, Identity
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from registry.server import create_app
from registry.web import access
from tests.registry.test_server import CLI, REPO, _free_port
from tests.registry.test_ui_access import API_ROUTES, PASSWORD, REPORT, sign_in
from appliance.specimens.mrz import MRZFields, encode

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
MRZ = "\n".join(encode(MRZFields("TD3", "P", "DEU", "C01X00T47", "ERIKSSON", "ANNA", date(1970, 5, 17), "F",
                                 date(2035, 1, 31), "DEU")))
TYPED = {"surnames": "Novak", "given_names": "Petr", "date_of_birth": "1981-02-03",
         "documents": [{"document_class": "P", "issuer": "CZE", "number": "40512345"}]}


def report_body(**overrides) -> dict:
    body = {"list_id": "da-ban", "category": "assault_of_crew", "identity": TYPED, "trip": "DA 123 FRA-LIS",
            "trip_date": "2026-11-26", "narrative": "Struck a cabin crew member.",
            "evidence": [{"filename": "cabin-log.png", "content_base64": base64.b64encode(PNG).decode()}]}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


USERS = {**{role.value.replace("_", "-"): ([role], []) for role in Role},
         "mia": (["reporter"], ["DA"]), "sam": (["reviewer"], ["DA"]), "lee": (["reviewer"], ["HX"]),
         "kim": (["reviewer"], []), "both": (["reporter", "reviewer"], []),
         "ida": (["it_admin"], ["DA"]), "lia": (["list_admin"], [])}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A data directory with users, tokens, a list and a report, made once (passwords are slow to hash)."""
    data_dir = tmp_path_factory.mktemp("template") / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    ui = app.extensions["gatecheck_ui"]
    tokens = {}
    for name, (roles, orgs) in USERS.items():
        ui.accounts.create_user(name, PASSWORD, roles=roles, orgs=orgs, by="admin")
        tokens[name] = ui.accounts.issue_token(name, label="test", by="admin")
    app.extensions["gatecheck_registry"].registry.create_list(
        "da-ban", name="Demo Air ban", authority="Demo Air", legal_basis="Conditions of carriage",
        scopes=["air_travel"], default_action=Action.DENY, by="admin")
    ui.reports.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES), by="list-admin")
    ui.reports.file(reporter="someone-else", list_id="da-ban", category="smoking_on_board", report_id=REPORT,
                    identity=Identity("Eriksson", "Anna", date(1970, 5, 17)), trip="DA 1", trip_date=date(2026, 11, 1),
                    narrative="Smoked in the lavatory.", attachments=[Evidence("log.pdf", b"%PDF-1.4 test")])
    ui.engine.dispose()  # the last connection to close checkpoints the WAL into the file copied below
    return data_dir, tokens


@pytest.fixture
def app(template, tmp_path):
    data_dir = tmp_path / "registry"
    shutil.copytree(template[0], data_dir)
    app = create_app({"DATA_DIR": str(data_dir)})
    app.config["TESTING"] = True
    app.tokens = template[1]
    return app


def call(app, method: str, path: str, who: str | None = None, *, token: str | None = None, **kwargs):
    headers = kwargs.pop("headers", {})
    token = token or (app.tokens[who] if who else None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return app.test_client().open(path, method=method, headers=headers, **kwargs)


def assert_error(response, status: int, code: str | None = None) -> str:
    """A refusal is JSON {"error": {"code", "message"}}, one human line, no traceback."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    assert "\n" not in error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error["message"]


# -- access --------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["anonymous", "revoked", "disabled", "forged", *[r.value for r in Role]])
def test_token_matrix_every_api_route_for_every_role_anonymous_and_revoked(app, who):
    ui = app.extensions["gatecheck_ui"]
    token = None
    if who in ("revoked", "disabled"):
        token = app.tokens["reviewer"]
        if who == "revoked":
            ui.accounts.revoke_tokens("reviewer", by="admin")
        else:
            ui.accounts.disable("reviewer", by="admin", reason="left")
    elif who == "forged":
        token = "gck_" + "A" * 43
    elif who != "anonymous":
        token = app.tokens[who.replace("_", "-")]
    for endpoint, (declared, method, path) in API_ROUTES.items():
        response = call(app, method, path, token=token, json={} if method == "POST" else None)
        if declared == access.PUBLIC:
            assert response.status_code == 200, endpoint
        elif token is None or who in ("revoked", "disabled", "forged"):
            assert_error(response, 401, "missing_token" if token is None else "invalid_token")
            assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        elif Role(who) in declared:
            # An empty body is decided on (accept takes every default) or refused by validation.
            assert response.status_code in (200, 404, 409, 422), (endpoint, who, response.status_code)
        else:
            assert "needs the role" in assert_error(response, 403, "forbidden"), endpoint


def test_every_api_route_is_declared_once_and_described_in_the_openapi_document_with_its_roles(app):
    routes = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    assert routes == {op.endpoint for op in OPERATIONS} == set(API_ROUTES)
    described = {o["operationId"]: o for item in document()["paths"].values() for o in item.values()}
    for op in OPERATIONS:
        declared = API_ROUTES[op.endpoint][0]
        assert access.access_of(app, op.endpoint) == declared
        doc = described[op.endpoint.partition(".")[2]]
        if declared == access.PUBLIC:
            assert doc["security"] == []
        else:
            assert set(doc["x-roles"]) == set(declared) and {"401", "403"} <= set(doc["responses"])


def test_the_openapi_document_is_valid_openapi_3_and_served_without_a_token(app):
    from openapi_spec_validator import validate

    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    served = response.get_json()
    validate(served)
    assert served["openapi"].startswith("3.0") and served["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    body = served["components"]["schemas"]["FileReportIn"]
    assert body["additionalProperties"] is False and set(body["required"]) >= {"list_id", "category", "narrative"}


def test_a_session_cookie_never_opens_the_api_so_a_forged_cross_site_post_does_nothing(app):
    browser = app.test_client()
    assert sign_in(browser, "kim").status_code == 302
    assert browser.get("/").status_code == 200  # the session works on the pages
    forged = browser.post(f"/api/v1/reports/{REPORT}/reject", json={"reason": "forged from another site"})
    assert_error(forged, 401, "missing_token")
    assert app.extensions["gatecheck_ui"].reports.get(REPORT).status == "pending"


def test_an_unknown_api_route_and_a_wrong_method_answer_json(app):
    assert_error(call(app, "GET", "/api/v1/no-such-thing", "kim"), 404, "not_found")
    wrong = call(app, "DELETE", "/api/v1/review-queue", "kim")
    assert_error(wrong, 405)
    assert "GET" in wrong.headers["Allow"]


# -- bodies and refusals ------------------------------------------------------------

def test_a_reporter_files_by_typed_fields_with_base64_evidence_and_follows_it(app):
    filed = call(app, "POST", "/api/v1/reports", "mia", json=report_body())
    assert filed.status_code == 201, filed.get_json()
    report = filed.get_json()
    assert filed.headers["Location"] == f"/api/v1/reports/{report['report_id']}"
    assert report["status"] == "pending" and report["source"] == "api" and report["org"] == "DA"
    assert report["identity"]["documents"] == TYPED["documents"]
    assert report["evidence"][0]["content_type"] == "image/png" and report["evidence"][0]["size"] == len(PNG)
    mine = call(app, "GET", "/api/v1/me/reports", "mia").get_json()
    assert [r["report_id"] for r in mine["items"]] == [report["report_id"]] and mine["more"] is False
    assert call(app, "GET", filed.headers["Location"], "mia").get_json()["status"] == "pending"
    assert "similar" not in call(app, "GET", filed.headers["Location"], "mia").get_json()


def test_a_pasted_mrz_is_parsed_on_the_server(app):
    filed = call(app, "POST", "/api/v1/reports", "mia", json=report_body(identity=None, scan=MRZ))
    assert filed.status_code == 201, filed.get_json()
    identity = filed.get_json()["identity"]
    assert identity["surnames"] == "ERIKSSON" and identity["date_of_birth"] == "1970-05-17"
    assert identity["documents"] == [{"document_class": "P", "issuer": "DEU", "number": "C01X00T47"}]


GIF = base64.b64encode(b"GIF89a" + bytes(20)).decode()


@pytest.mark.parametrize("body, status, code, says", [
    (b"not json", 400, "malformed_json", "not valid UTF-8 JSON"),
    (b'{"narrative": NaN}', 400, "malformed_json", "NaN is not JSON"),
    (b"[1, 2]", 400, "malformed_json", "must be a JSON object"),
    (b'{"trip": "\\ud800"}', 400, "malformed_json", "not valid UTF-8 JSON"),
    (report_body(colour="red"), 422, "invalid_request", "colour: Unknown field"),
    (report_body(scan=MRZ), 422, "invalid_request", "either as `identity`"),
    (report_body(identity=None), 422, "invalid_request", "either as `identity`"),
    (report_body(trip="DA 1\x1b[31m"), 422, "invalid_request", "trip: must be one line"),
    (report_body(identity={**TYPED, "documents": [{"document_class": "X", "issuer": "CZE", "number": "1"}]}),
     422, "invalid_request", "identity.documents.0.document_class"),
    (report_body(evidence=[{"filename": "a.png", "content_base64": "@@@"}]), 422, "invalid_request", "content_base64"),
    (report_body(evidence=[{"filename": "a.png", "content_base64": "QUJDRA="}]), 422, "invalid_evidence",
     "not valid base64"),
    (report_body(evidence=[{"filename": "cat.gif", "content_base64": GIF}]), 422, "report", "not a PDF, PNG or JPEG"),
    (report_body(category="jaywalking"), 422, "policy", "not in list da-ban's taxonomy"),
    (report_body(list_id="nowhere"), 422, "report", "takes no reports"),
    (report_body(identity=None, scan="certainly not a document"), 422, "invalid_scan", "the scan cannot be read"),
    (report_body(org="HX"), 403, "forbidden", "you do not file for organisation HX"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_a_bad_report_is_refused_in_one_line_and_nothing_is_stored(app, body, status, code, says):
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    assert says in assert_error(call(app, "POST", "/api/v1/reports", "mia", **kwargs), status, code)
    assert call(app, "GET", "/api/v1/me/reports", "mia").get_json()["items"] == []


def test_a_body_of_another_type_is_415_and_an_oversized_one_413(app):
    form = call(app, "POST", f"/api/v1/reports/{REPORT}/reject", "kim", data={"reason": "a form post"})
    assert_error(form, 415, "unsupported_media_type")
    big = call(app, "POST", f"/api/v1/reports/{REPORT}/reject", "kim", json={"reason": "x" * 70_000})
    assert "65,536 bytes" in assert_error(big, 413, "request_entity_too_large")


def test_only_the_report_filing_takes_evidence_sized_bodies(app):
    png = PNG + bytes(3 * 1024 * 1024)  # 3 MiB: over every other operation's 64 KiB
    files = [{"filename": f"p{i}.png", "content_base64": base64.b64encode(png).decode()} for i in range(2)]
    filed = call(app, "POST", "/api/v1/reports", "mia", json=report_body(evidence=files))
    assert filed.status_code == 201 and [e["size"] for e in filed.get_json()["evidence"]] == [len(png)] * 2
    over = PNG + bytes(5 * 1024 * 1024)
    refused = call(app, "POST", "/api/v1/reports", "mia",
                   json=report_body(evidence=[{"filename": "big.png", "content_base64": base64.b64encode(over).decode()}]))
    assert "at most 5 MiB" in assert_error(refused, 422, "invalid_request")


@pytest.mark.parametrize("body, field", [({"days": "30"}, "days"), ({"days": True}, "days"), ({"days": 30.0}, "days"),
                                         ({"permanent": 1}, "permanent"), ({"days": 10**30}, "days")])
def test_json_types_are_taken_strictly(app, body, field):
    refused = call(app, "POST", f"/api/v1/reports/{REPORT}/accept", "kim", json=body)
    assert assert_error(refused, 422, "invalid_request").startswith(f"{field}:")


@pytest.mark.parametrize("query", ["page=0", "per_page=101", "page=x", "page=1&page=2", "colour=red",
                                   "page=99999999999999999999999"])
def test_a_bad_query_string_is_400(app, query):
    assert_error(call(app, "GET", f"/api/v1/review-queue?{query}", "kim"), 400, "bad_request")


# -- review -----------------------------------------------------------------------------

def test_a_reviewer_accepts_with_a_shorter_term_and_the_entry_is_published(app):
    registry = app.extensions["gatecheck_registry"].registry
    before = registry.current_version("da-ban")
    report_id = call(app, "POST", "/api/v1/reports", "mia", json=report_body()).get_json()["report_id"]
    queue = call(app, "GET", "/api/v1/review-queue", "sam").get_json()["items"]
    assert report_id in [r["report_id"] for r in queue]
    detail = call(app, "GET", f"/api/v1/reports/{report_id}", "sam").get_json()
    assert detail["similar"] == {"reports": [], "entries": []}
    assert call(app, "GET", f"/api/v1/reports/{report_id}/evidence/{detail['evidence'][0]['evidence_id']}",
                "sam").data == PNG
    over = call(app, "POST", f"/api/v1/reports/{report_id}/accept", "sam", json={"days": 5000})
    assert "at most 1825 days" in assert_error(over, 422, "policy")
    accepted = call(app, "POST", f"/api/v1/reports/{report_id}/accept", "sam", json={"days": 30, "reason": "CCTV"})
    assert accepted.status_code == 200 and accepted.get_json()["status"] == "accepted"
    assert registry.current_version("da-ban") == before + 1
    entry = call(app, "GET", f"/api/v1/entries/{accepted.get_json()['entry_id']}", "kim").get_json()
    today = datetime.now(timezone.utc).date()
    assert entry["status"] == "active" and entry["valid_until"] == (today + timedelta(days=30)).isoformat()
    assert entry["reference"] == report_id and "report.accept" in [r["action"] for r in entry["history"]]
    assert_error(call(app, "POST", f"/api/v1/reports/{report_id}/accept", "kim", json={}), 409, "already_decided")
    versions = call(app, "GET", "/api/v1/lists", "mia").get_json()["items"]
    assert versions[0]["version"] == before + 1 and versions[0]["takes_reports"] is True


def test_the_reporter_never_decides_their_own_report(app):
    report_id = call(app, "POST", "/api/v1/reports", "both", json=report_body()).get_json()["report_id"]
    refused = call(app, "POST", f"/api/v1/reports/{report_id}/accept", "both", json={})
    assert "another reviewer must decide" in assert_error(refused, 422, "self_review")


def test_a_reviewer_of_another_organisation_gets_404_not_403(app):
    report_id = call(app, "POST", "/api/v1/reports", "mia", json=report_body()).get_json()["report_id"]
    assert_error(call(app, "GET", f"/api/v1/reports/{report_id}", "lee"), 404, "unknown_report")
    assert_error(call(app, "POST", f"/api/v1/reports/{report_id}/reject", "lee", json={"reason": "not mine"}), 404)
    assert report_id not in [r["report_id"] for r in call(app, "GET", "/api/v1/review-queue", "lee").get_json()["items"]]
    assert_error(call(app, "GET", f"/api/v1/reports/{REPORT}", "mia"), 404)  # a reporter sees only their own


def test_a_rejection_needs_a_reason_the_reporter_then_reads(app):
    report_id = call(app, "POST", "/api/v1/reports", "mia", json=report_body()).get_json()["report_id"]
    assert_error(call(app, "POST", f"/api/v1/reports/{report_id}/reject", "sam", json={"reason": "no"}), 422)
    rejected = call(app, "POST", f"/api/v1/reports/{report_id}/reject", "sam", json={"reason": "No evidence of it."})
    assert rejected.get_json()["status"] == "rejected"
    mine = call(app, "GET", "/api/v1/me/reports", "mia").get_json()["items"][0]
    assert mine["status"] == "rejected" and mine["decision_reason"] == "No evidence of it."


# -- appeals, entries, audit, devices ------------------------------------------------

def test_an_upheld_appeal_lifts_the_entry_and_publishes_its_removal(app):
    registry = app.extensions["gatecheck_registry"].registry
    report_id = call(app, "POST", "/api/v1/reports", "mia", json=report_body()).get_json()["report_id"]
    entry_id = call(app, "POST", f"/api/v1/reports/{report_id}/accept", "sam", json={}).get_json()["entry_id"]
    filed = call(app, "POST", f"/api/v1/entries/{entry_id}/appeals", "kim",
                 json={"grounds": "I was not on that flight.", "received": "letter of 2026-11-20"})
    assert filed.status_code == 201, filed.get_json()
    appeal = filed.get_json()
    assert appeal["status"] == "open" and appeal["overdue"] is False and "(Received: letter" in appeal["grounds"]
    again = call(app, "POST", f"/api/v1/entries/{entry_id}/appeals", "kim", json={"grounds": "again", "received": "x"})
    assert_error(again, 409, "appeal_open")
    assert [a["appeal_id"] for a in call(app, "GET", "/api/v1/appeals", "auditor").get_json()["items"]] == [appeal["appeal_id"]]
    accepted_it = call(app, "POST", f"/api/v1/appeals/{appeal['appeal_id']}/uphold", "sam", json={"decision": "Wrong person."})
    assert "another reviewer must decide" in assert_error(accepted_it, 422)
    version = registry.current_version("da-ban")
    upheld = call(app, "POST", f"/api/v1/appeals/{appeal['appeal_id']}/uphold", "kim", json={"decision": "Wrong person."})
    assert upheld.status_code == 200 and upheld.get_json()["corrected_in_version"] == version + 1
    assert registry.current_version("da-ban") == version + 1
    entry = call(app, "GET", f"/api/v1/entries/{entry_id}", "kim").get_json()
    assert entry["status"] == "removed" and entry["appeals"][0]["status"] == "upheld"
    assert_error(call(app, "POST", f"/api/v1/appeals/{appeal['appeal_id']}/dismiss", "kim",
                      json={"decision": "Too late now."}), 409, "already_decided")
    assert_error(call(app, "POST", f"/api/v1/entries/{entry_id}/appeals", "kim",
                      json={"grounds": "g", "received": "r"}), 409, "entry_not_active")
    assert_error(call(app, "GET", "/api/v1/appeals/999", "kim"), 404, "unknown_appeal")


def test_entry_search_filters_and_shows_auditors_only_the_end_of_document_numbers(app):
    for surname in ("Novak", "Novakova", "Smith"):
        body = report_body(identity={**TYPED, "surnames": surname})
        report_id = call(app, "POST", "/api/v1/reports", "mia", json=body).get_json()["report_id"]
        call(app, "POST", f"/api/v1/reports/{report_id}/accept", "sam", json={})
    found = call(app, "GET", "/api/v1/entries?surname=nova&sort=-surnames", "kim").get_json()
    assert [e["surnames"] for e in found["items"]] == ["Novakova", "Novak"]
    assert found["items"][0]["documents"][0]["number"] == "40512345"
    assert call(app, "GET", "/api/v1/entries?surname=%25", "kim").get_json()["items"] == []  # % is no wildcard
    by_document = call(app, "GET", "/api/v1/entries?document_number=40512345&per_page=2", "auditor").get_json()
    assert len(by_document["items"]) == 2 and by_document["more"] is True
    assert by_document["items"][0]["documents"][0]["number"] == "345"
    assert_error(call(app, "GET", "/api/v1/entries/999", "kim"), 404, "unknown_entry")


def test_an_auditor_reads_the_log_by_subject_and_day_in_pages_and_checks_the_chain(app):
    report_id = call(app, "POST", "/api/v1/reports", "mia", json=report_body()).get_json()["report_id"]
    call(app, "POST", f"/api/v1/reports/{report_id}/reject", "sam", json={"reason": "Not enough to go on."})
    records = call(app, "GET", f"/api/v1/audit?subject=report:{report_id}", "auditor").get_json()
    assert [r["action"] for r in records["records"]] == ["report.file", "report.reject"]
    assert records["next_after_seq"] is None
    today = datetime.now(timezone.utc).date().isoformat()
    first = call(app, "GET", f"/api/v1/audit?from={today}&to={today}&limit=2", "auditor").get_json()
    second = call(app, "GET", f"/api/v1/audit?from={today}&to={today}&limit=2&after_seq={first['next_after_seq']}",
                  "auditor").get_json()
    assert [r["seq"] for r in first["records"] + second["records"]] == [1, 2, 3, 4]
    assert second["records"][0]["prev_hash"] == first["records"][1]["hash"]
    assert call(app, "GET", "/api/v1/audit?from=2000-01-01&to=2000-01-02", "auditor").get_json()["records"] == []
    assert_error(call(app, "GET", "/api/v1/audit?from=2026-02-01&to=2026-01-01", "auditor"), 400)
    verified = call(app, "GET", "/api/v1/audit/verify", "auditor").get_json()
    assert verified["intact"] is True and verified["problems"] == [] and verified["head_seq"] == verified["records"]


def test_it_lists_enrolled_devices(app):
    devices = app.extensions["gatecheck_ui"].devices
    code = devices.issue_code(["da-ban"], ttl_seconds=3600, by="it-admin")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    enrolled = devices.enroll(code, key, "Counter 7")
    listed = call(app, "GET", "/api/v1/devices", "it-admin").get_json()
    assert [(d["device_id"], d["name"], d["lists"]) for d in listed["items"]] == [(enrolled.device_id, "Counter 7", ["da-ban"])]


# -- real processes ---------------------------------------------------------------------

def test_end_to_end_over_http_a_reporter_token_files_a_reviewer_token_accepts_and_the_list_moves(tmp_path):
    """`registry serve` (gunicorn, two workers); users and tokens made with `registry user`."""
    data_dir = tmp_path / "registry"

    def cli(*args, stdin: str | None = None) -> str:
        result = CliRunner().invoke(registry_cli, [str(a) for a in args], input=stdin, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli("init", "--data-dir", data_dir)
    cli("list", "create", "--data-dir", data_dir, "da-ban", "--name", "Demo Air ban", "--authority", "Demo Air",
        "--legal-basis", "Conditions of carriage", "--scope", "air_travel", "--default-action", "DENY")
    app = create_app({"DATA_DIR": str(data_dir)})  # only to set the list's report policy (no command yet)
    app.extensions["gatecheck_ui"].reports.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES), by="list-admin")
    tokens = {}
    for name, role in (("mia", "reporter"), ("sam", "reviewer")):
        cli("user", "add", "--data-dir", data_dir, name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
        tokens[name] = {"Authorization": "Bearer " + cli("user", "token", "--data-dir", data_dir, name, "--label",
                                                         "incident system").strip()}
    port = _free_port()
    proc = subprocess.Popen([*CLI, "serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "2",
                             "--threads", "4"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                lists = requests.get(f"{url}/lists", headers=tokens["mia"], timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                time.sleep(0.05)
        version = lists.json()["items"][0]["version"]
        filed = requests.post(f"{url}/reports", headers=tokens["mia"], json=report_body(identity=None, scan=MRZ),
                              timeout=5)
        assert filed.status_code == 201, filed.text
        report_id = filed.json()["report_id"]
        assert re.fullmatch(r"RPT-\d{8}-[0-9A-F]{8}", report_id)
        assert requests.get(f"{url}/review-queue", headers=tokens["mia"], timeout=5).status_code == 403
        queue = requests.get(f"{url}/review-queue", headers=tokens["sam"], timeout=5).json()["items"]
        assert [r["report_id"] for r in queue] == [report_id]
        accepted = requests.post(f"{url}/reports/{report_id}/accept", headers=tokens["sam"], json={"days": 90},
                                 timeout=5)
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
        lists = requests.get(f"{url}/lists", headers=tokens["mia"], timeout=5).json()["items"]
        assert lists[0]["version"] == version + 1
        mine = requests.get(f"{url}/me/reports", headers=tokens["mia"], timeout=5).json()["items"]
        assert mine[0]["status"] == "accepted" and mine[0]["entry_id"] == accepted.json()["entry_id"]
        assert requests.get(f"{url}/me", timeout=5).json()["error"]["code"] == "missing_token"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
