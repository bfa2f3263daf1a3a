"""The people's API for clearances, IT's fleet writes and authority list imports (registry/api/).

The same real app and data directory as tests/registry/test_api_people.py
(its fixtures); which role may call which route is API_ROUTES in
tests/registry/test_ui_access.py and is checked there and in
test_api_people.py's token matrix.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.registry.test_api_people import TYPED, app, assert_error, call, report_body, template  # noqa: F401

NAMESAKE = {"surnames": "Novak", "given_names": "Petr", "date_of_birth": "1981-02-03",
            "document": {"document_class": "P", "issuer": "CZE", "number": "77001122"}}
REASON = "Born in Brno, a different passport; confirmed by the consulate."


def _listed(app) -> int:
    """Petr Novak, born 1981-02-03, listed on da-ban through a report a reviewer accepted."""
    report_id = call(app, "POST", "/api/v1/reports", "mia", json=report_body()).get_json()["report_id"]
    return call(app, "POST", f"/api/v1/reports/{report_id}/accept", "sam", json={}).get_json()["entry_id"]


# -- clearances -------------------------------------------------------------------------

def test_a_namesake_is_cleared_published_read_masked_by_auditors_and_withdrawn(app):
    registry = app.extensions["gatecheck_registry"].registry
    entry_id = _listed(app)
    found = call(app, "POST", "/api/v1/clearances/matches", "kim", json={"traveller": NAMESAKE}).get_json()
    match = found["items"][0]
    assert match["list_id"] == "da-ban" and match["eligible"] is True and match["refusal"] is None
    assert [e["entry_id"] for e in match["entries"]] == [entry_id] and match["document_entries"] == []
    version = registry.current_version("da-ban")
    issued = call(app, "POST", "/api/v1/clearances", "kim",
                  json={"traveller": NAMESAKE, "lists": ["da-ban"], "reason": REASON, "days": 90})
    assert issued.status_code == 201, issued.get_json()
    number = issued.get_json()["redress_number"]
    assert issued.headers["Location"] == f"/api/v1/clearances/{number}"
    assert issued.get_json()["lists"] == [{"list_id": "da-ban", "published_in_version": version + 1,
                                           "withdrawn_in_version": None, "open": True}]
    assert registry.current_version("da-ban") == version + 1

    typed_loosely = number.lower().replace("clr-", "").replace("-", " ")  # as read out on the phone
    as_reviewer = call(app, "GET", f"/api/v1/clearances/{typed_loosely}", "kim").get_json()
    assert as_reviewer["redress_number"] == number and as_reviewer["traveller"]["document"]["number"] == "77001122"
    assert [r["action"] for r in as_reviewer["history"]] == ["clearance.issue"]
    as_auditor = call(app, "GET", f"/api/v1/clearances/{number}", "auditor").get_json()
    assert as_auditor["traveller"]["document"]["number"] == "******122"
    register = call(app, "GET", "/api/v1/clearances?q=novak&status=active", "auditor").get_json()
    assert [c["redress_number"] for c in register["items"]] == [number]
    assert register["items"][0]["traveller"]["document"]["number"] == "******122"
    assert call(app, "GET", "/api/v1/clearances?status=withdrawn", "kim").get_json()["items"] == []

    assert_error(call(app, "POST", f"/api/v1/clearances/{number}/withdraw", "kim", json={"reason": "short"}), 422,
                 "invalid_request")
    withdrawn = call(app, "POST", f"/api/v1/clearances/{number}/withdraw", "kim",
                     json={"reason": "The traveller's passport was reported stolen."})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["status"] == "withdrawn"
    assert withdrawn.get_json()["lists"][0]["withdrawn_in_version"] == version + 2
    assert_error(call(app, "POST", f"/api/v1/clearances/{number}/withdraw", "kim",
                      json={"reason": "The traveller's passport was reported stolen."}), 409, "not_active")


def test_a_clearance_never_overrides_a_document_hit_nor_clears_where_nothing_matches(app):
    _listed(app)
    own_document = {**NAMESAKE, "document": TYPED["documents"][0]}  # the listed person's own passport
    found = call(app, "POST", "/api/v1/clearances/matches", "kim", json={"traveller": own_document}).get_json()
    assert found["items"][0]["eligible"] is False and "lists this document itself" in found["items"][0]["refusal"]
    refused = call(app, "POST", "/api/v1/clearances", "kim",
                   json={"traveller": own_document, "lists": ["da-ban"], "reason": REASON})
    assert "a clearance never overrides a document hit" in assert_error(refused, 422, "clearance")
    stranger = {**NAMESAKE, "surnames": "Dvorak"}
    refused = call(app, "POST", "/api/v1/clearances", "kim",
                   json={"traveller": stranger, "lists": ["da-ban"], "reason": REASON})
    assert "no active entry" in assert_error(refused, 422, "clearance")
    assert call(app, "GET", "/api/v1/clearances", "kim").get_json()["items"] == []


def test_clearance_bodies_and_numbers_are_checked(app):
    both = call(app, "POST", "/api/v1/clearances/matches", "kim", json={"traveller": NAMESAKE, "scan": "P<CZE"})
    assert "either as `traveller`" in assert_error(both, 422, "invalid_request")
    no_document = {k: v for k, v in NAMESAKE.items() if k != "document"}
    assert "document" in assert_error(call(app, "POST", "/api/v1/clearances/matches", "kim",
                                           json={"traveller": no_document}), 422, "invalid_request")
    unreadable = call(app, "POST", "/api/v1/clearances/matches", "kim", json={"scan": "not a document at all"})
    assert_error(unreadable, 422, "invalid_scan")
    long_term = call(app, "POST", "/api/v1/clearances", "kim",
                     json={"traveller": NAMESAKE, "lists": ["da-ban"], "reason": REASON, "days": 5000})
    assert assert_error(long_term, 422, "invalid_request").startswith("days:")
    assert "a digit is wrong" in assert_error(call(app, "GET", "/api/v1/clearances/CLR-1234-5670", "kim"), 404,
                                              "unknown_clearance")
    assert_error(call(app, "POST", "/api/v1/clearances/matches", "auditor", json={"traveller": NAMESAKE}), 403)


# -- fleet ---------------------------------------------------------------------------------

def _enrol(app, code: str, name: str) -> str:
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return app.extensions["gatecheck_ui"].devices.enroll(code, key, name).device_id


def test_it_issues_a_code_shown_once_a_device_enrols_with_it_and_it_revokes_the_device(app):
    issued = call(app, "POST", "/api/v1/enrolment-codes", "it-admin",
                  json={"lists": ["da-ban"], "organisation": "da", "max_age_hours": 12, "fail_closed": False,
                        "ttl_hours": 2, "reason": "counter 7 at FRA T1"})
    assert issued.status_code == 201, issued.get_json()
    code = issued.get_json()
    assert code["state"] == "unused" and code["profile"] == {
        "lists": ["da-ban"], "organisation": "DA", "kind": "airline_counter", "scopes": ["air_travel"],
        "max_age_hours": 12.0, "fail_closed": False}
    assert code["expires_at"] - code["created_at"] == 2 * 3600 and issued.headers["Cache-Control"] == "no-store"
    assert issued.headers["Location"] == f"/api/v1/enrolment-codes/{code['code_id']}"
    listed = call(app, "GET", "/api/v1/enrolment-codes", "it-admin").get_data(as_text=True)
    assert code["code"] not in listed and code["code"].replace("-", "") not in listed  # never again

    device_id = _enrol(app, code["code"], "Counter 7")
    assert call(app, "GET", f"/api/v1/enrolment-codes/{code['code_id']}", "it-admin").get_json()["used_by"] == device_id
    assert_error(call(app, "POST", f"/api/v1/enrolment-codes/{code['code_id']}/withdraw", "it-admin", json={}), 409,
                 "not_unused")
    device = call(app, "GET", f"/api/v1/devices/{device_id}", "it-admin").get_json()
    assert device["org"] == "DA" and device["profile"]["max_age_hours"] == 12.0 and device["status"] == "active"

    assert_error(call(app, "POST", f"/api/v1/devices/{device_id}/revoke", "it-admin", json={}), 422,
                 "invalid_request")
    revoked = call(app, "POST", f"/api/v1/devices/{device_id}/revoke", "it-admin",
                   json={"reason": "stolen overnight, police ref. 2026-4411"})
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "disabled"
    assert revoked.get_json()["revoked_by"] == "it-admin"
    assert device_id in app.extensions["gatecheck_ui"].devices.disabled_ids()
    assert_error(call(app, "POST", f"/api/v1/devices/{device_id}/revoke", "it-admin",
                      json={"reason": "stolen overnight"}), 409, "already_revoked")
    assert call(app, "GET", "/api/v1/devices?status=disabled", "it-admin").get_json()["items"][0]["device_id"] == device_id
    actions = [r["action"] for r in call(app, "GET", f"/api/v1/audit?subject=device:{device_id}",
                                         "auditor").get_json()["records"]]
    assert actions == ["device.enroll", "device.revoke"]


def test_an_unused_code_is_withdrawn_and_a_bad_profile_is_refused_in_one_line(app):
    code = call(app, "POST", "/api/v1/enrolment-codes", "it-admin", json={"lists": ["da-ban"]}).get_json()
    withdrawn = call(app, "POST", f"/api/v1/enrolment-codes/{code['code_id']}/withdraw", "it-admin",
                     json={"reason": "handed to the wrong person"})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["state"] == "withdrawn"
    assert [c["code_id"] for c in call(app, "GET", "/api/v1/enrolment-codes?state=withdrawn",
                                       "it-admin").get_json()["items"]] == [code["code_id"]]
    assert "no list 'nowhere'" in assert_error(call(app, "POST", "/api/v1/enrolment-codes", "it-admin",
                                                    json={"lists": ["nowhere"]}), 422, "unknown_list")
    hotel = call(app, "POST", "/api/v1/enrolment-codes", "it-admin", json={"lists": ["da-ban"], "kind": "hotel_desk"})
    assert "would never use it" in assert_error(hotel, 422, "invalid_enrolment")
    assert assert_error(call(app, "POST", "/api/v1/enrolment-codes", "it-admin",
                             json={"lists": ["da-ban"], "max_age_hours": "24"}), 422).startswith("max_age_hours:")
    assert_error(call(app, "GET", "/api/v1/enrolment-codes/ffffffffffffffff", "it-admin"), 404, "unknown_code")


def test_an_it_admin_scoped_to_an_organisation_sees_and_acts_on_only_its_devices_and_codes(app):
    ours = call(app, "POST", "/api/v1/enrolment-codes", "it-admin",
                json={"lists": ["da-ban"], "organisation": "DA"}).get_json()
    theirs = call(app, "POST", "/api/v1/enrolment-codes", "it-admin",
                  json={"lists": ["da-ban"], "organisation": "HX"}).get_json()
    our_device, their_device = _enrol(app, ours["code"], "DA counter"), _enrol(app, theirs["code"], "HX desk")
    assert [d["device_id"] for d in call(app, "GET", "/api/v1/devices", "ida").get_json()["items"]] == [our_device]
    assert {d["device_id"] for d in call(app, "GET", "/api/v1/devices", "it-admin").get_json()["items"]} == {
        our_device, their_device}
    assert_error(call(app, "GET", f"/api/v1/devices/{their_device}", "ida"), 404, "unknown_device")
    assert_error(call(app, "POST", f"/api/v1/devices/{their_device}/revoke", "ida", json={"reason": "not ours"}), 404)
    assert [c["code_id"] for c in call(app, "GET", "/api/v1/enrolment-codes", "ida").get_json()["items"]] == [
        ours["code_id"]]
    assert_error(call(app, "GET", f"/api/v1/enrolment-codes/{theirs['code_id']}", "ida"), 404)
    refused = call(app, "POST", "/api/v1/enrolment-codes", "ida", json={"lists": ["da-ban"], "organisation": "HX"})
    assert "organisation DA only" in assert_error(refused, 403, "forbidden")
    assert_error(call(app, "POST", "/api/v1/enrolment-codes", "ida", json={"lists": ["da-ban"]}), 403)
    assert call(app, "POST", "/api/v1/enrolment-codes", "ida",
                json={"lists": ["da-ban"], "organisation": "DA"}).status_code == 201


# -- authority list imports -----------------------------------------------------------

COURT_CSV = ("case_no,surname,given,dob,id_no\n"
             "C-1,Wang,Li,1975-03-04,110101197503041234\n"
             "C-2,Zhang,Wei,1980-01-02,110101198001021234\n"
             "C-3,,Nobody,1980-01-02,\n").encode()
MAPPING = {"columns": {"reference": "case_no", "surnames": "surname", "given_names": "given",
                       "date_of_birth": "dob", "document_number": "id_no"},
           "defaults": {"category": "judgment-default", "document_class": "I", "document_issuer": "CHN"},
           "term_days": 365}


def _upload(app, who: str, data: bytes, **query) -> object:
    args = "&".join(f"{k}={v}" for k, v in {"list_id": "da-ban", "file_name": "court.csv", **query}.items())
    return call(app, "POST", f"/api/v1/imports?{args}", who, data=data, content_type="text/csv")


def test_a_list_admin_uploads_previews_and_a_second_one_applies_and_the_same_file_again_changes_nothing(app):
    registry = app.extensions["gatecheck_registry"].registry
    started = _upload(app, "list-admin", COURT_CSV)
    assert started.status_code == 201, started.get_json()
    record = started.get_json()
    assert record["status"] == "uploaded" and record["columns"] == ["case_no", "surname", "given", "dob", "id_no"]
    assert started.headers["Location"] == f"/api/v1/imports/{record['import_id']}"
    preview = call(app, "POST", f"/api/v1/imports/{record['import_id']}/preview", "list-admin", json=MAPPING)
    assert preview.status_code == 200, preview.get_json()
    shown = preview.get_json()
    assert (shown["status"], shown["additions"], shown["removals"], shown["refused"]) == ("previewed", 2, 0, 1)
    assert shown["refused_rows"][0]["row_no"] == 4 and "surname" in shown["refused_rows"][0]["reason"]
    assert call(app, "GET", f"/api/v1/imports/{record['import_id']}", "lia").get_json()["additions"] == 2

    version = registry.current_version("da-ban")
    same_person = call(app, "POST", f"/api/v1/imports/{record['import_id']}/apply", "list-admin")
    assert "two people" in assert_error(same_person, 422, "import_refused")
    applied = call(app, "POST", f"/api/v1/imports/{record['import_id']}/apply", "lia")
    assert applied.status_code == 200 and applied.get_json()["status"] == "applied"
    assert applied.get_json()["applied_version"] == version + 1 == registry.current_version("da-ban")

    again = _upload(app, "lia", COURT_CSV).get_json()
    unchanged = call(app, "POST", f"/api/v1/imports/{again['import_id']}/preview", "lia", json=MAPPING).get_json()
    assert (unchanged["status"], unchanged["additions"], unchanged["unchanged"]) == ("unchanged", 0, 2)
    assert "nothing to apply" in assert_error(call(app, "POST", f"/api/v1/imports/{again['import_id']}/apply",
                                                   "list-admin"), 422)
    history = call(app, "GET", "/api/v1/imports?list_id=da-ban", "lia").get_json()["items"]
    assert sorted(i["status"] for i in history) == ["applied", "unchanged"]  # newest first; one second apart at most
    discarded = call(app, "POST", f"/api/v1/imports/{again['import_id']}/discard", "lia").get_json()
    assert discarded["status"] == "discarded" and registry.current_version("da-ban") == version + 1


def test_import_uploads_are_refused_in_one_line_and_leave_no_file_behind(app, monkeypatch):
    import registry.api.imports as api_imports
    from registry.web.import_pages import upload_dir

    directory = upload_dir(app)
    assert "must be one of text/csv" in assert_error(
        call(app, "POST", "/api/v1/imports?list_id=da-ban", "lia", data=COURT_CSV, content_type="image/png"), 415)
    assert "no list" in assert_error(_upload(app, "lia", COURT_CSV, list_id="nowhere"), 422, "unknown_list")
    assert "not UTF-8" in assert_error(_upload(app, "lia", b"case\n\xff\xfe\n"), 422)
    assert "named as JSON" in assert_error(_upload(app, "lia", COURT_CSV, file_name="court.json"), 422)
    monkeypatch.setattr(api_imports, "MAX_UPLOAD_BYTES", 1024)  # the pages' 64 MiB, shrunk for the test
    assert "1,024 bytes" in assert_error(_upload(app, "lia", COURT_CSV * 20), 413, "request_entity_too_large")
    assert not directory.exists() or list(directory.iterdir()) == []
    record = _upload(app, "lia", COURT_CSV).get_json()
    bad = call(app, "POST", f"/api/v1/imports/{record['import_id']}/preview", "lia",
               json={**MAPPING, "columns": {"surnames": "surname"}})
    assert "columns.reference is required" in assert_error(bad, 422, "bad_mapping")
    unknown = call(app, "POST", f"/api/v1/imports/{record['import_id']}/preview", "lia",
                   json={**MAPPING, "columns": {**MAPPING["columns"], "shoe_size": "dob"}})
    assert assert_error(unknown, 422, "invalid_request").startswith("columns")
    assert_error(call(app, "GET", "/api/v1/imports/ffffffffffffffff", "lia"), 404, "unknown_import")
    assert json.loads(call(app, "GET", "/api/v1/imports", "lia").get_data())["items"][0]["status"] == "uploaded"


def test_an_import_file_may_exceed_the_64_kib_every_json_body_keeps(app):
    rows = "".join(f"C-{n},Wang,Li,1975-03-04,\n" for n in range(4000))
    big = ("case_no,surname,given,dob,id_no\n" + rows).encode()
    assert len(big) > 65536
    started = _upload(app, "lia", big)
    assert started.status_code == 201, started.get_json()
    preview = call(app, "POST", f"/api/v1/imports/{started.get_json()['import_id']}/preview", "lia", json=MAPPING)
    assert preview.get_json()["additions"] == 4000 and preview.get_json()["file_bytes"] == len(big)
