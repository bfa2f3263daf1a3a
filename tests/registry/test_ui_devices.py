"""IT's fleet pages (registry/web/device_pages.py) on the real app, with devices enrolled over its device API.

Devices here are key pairs that enrol through ``POST /v1/enroll`` and sign
their health reports like an agent does; the registry's clock is a test
clock, so "silent" and "stale" are exact. The revocation against a running
server process is in test_fleet.py.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.records import Action
from registry.audit import AuditLog
from registry.cli import registry as registry_cli
from registry.publish import DocumentRef, EntryFields
from registry.server import create_app
from sync.device_auth import sign_request
from sync.enrolment import enrolment_request, parse_answer
from sync.keys import raw_public_key

PASSWORD = "a long enough passphrase"
CODE = re.compile(r"<code>((?:[A-Z2-9]{4}-){4}[A-Z2-9]{4})</code>")


class Clock:
    """The registry's clock, moved by the test; it starts now, inside the signing key's certificate."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path, clock):
    data_dir = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir), "CLOCK": clock, "DEVICE_STATUS_SECONDS": 0})
    app.config["TESTING"] = True
    ui = app.extensions["gatecheck_ui"]
    for name, roles, orgs in (("ita", ["it_admin"], []), ("ita-hx", ["it_admin"], ["HX"]), ("aud", ["auditor"], [])):
        ui.accounts.create_user(name, PASSWORD, roles=roles, orgs=orgs, by="admin")
    registry = app.extensions["gatecheck_registry"].registry
    registry.create_list("nfl", name="No-fly list", authority="CAA", legal_basis="Aviation Act s.12",
                         scopes=["air_travel"], default_action=Action.DENY, by="admin")
    registry.create_list("hx-ban", name="Hotel X ban", authority="Hotel X", legal_basis="House rules s.4",
                         scopes=["star_hotel"], default_action=Action.REFER, by="admin")
    return app


def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def signed_in(app, username: str):
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": csrf(client, "/login")}).status_code == 302
    return client


def issue(client, **fields):
    data = {"csrf_token": csrf(client, "/enrolment-codes/new"), "kind": "airline_counter", "lists": ["nfl"],
            "max_age_hours": "24", "fail_closed": "closed", "ttl_hours": "24"}
    data.update(fields)
    return client.post("/enrolment-codes/new", data=data)


class Counter:
    """A device's key pair, talking to the app's device API as the agent would."""

    def __init__(self, app, clock: Clock) -> None:
        self.client, self.clock = app.test_client(), clock
        self.key = Ed25519PrivateKey.generate()

    def enroll(self, code: str, name: str = "Counter 7"):
        response = self.client.post("/v1/enroll", data=enrolment_request(code, raw_public_key(self.key), name),
                                    content_type="application/json")
        assert response.status_code == 201, response.data
        self.answer = parse_answer(response.data, public_key=raw_public_key(self.key))
        return self

    def request(self, method: str, path: str, body: bytes = b""):
        headers = sign_request(self.key, method, path, int(self.clock()), body)
        if body:
            headers["Content-Type"] = "application/json"
        return self.client.open(path, method=method, data=body, headers=headers)

    def report_health(self, health: dict):
        assert self.request("POST", "/v1/health", json.dumps(health).encode()).status_code == 204


def enrolled(app, clock, name="Counter 7", org="", lists=("nfl",)) -> Counter:
    devices = app.extensions["gatecheck_ui"].devices
    from sync.enrolment import EnrolmentProfile

    kind = "hotel_desk" if lists == ("hx-ban",) else "airline_counter"
    code = devices.issue_code(EnrolmentProfile.build(lists, organisation=org, kind=kind), ttl_seconds=3600,
                              by="ita", now=clock())
    return Counter(app, clock).enroll(code, name)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


# -- enrolment codes ------------------------------------------------------------------------

def test_it_issues_a_profile_code_that_is_shown_once_and_never_again(app, clock):
    ita = signed_in(app, "ita")
    page = issue(ita, organisation="hx", kind="hotel_desk", lists=["hx-ban"], max_age_hours="6",
                 fail_closed="open", reason="front desk 2")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    code = CODE.search(html).group(1)
    assert "Hotel front desk" in html and "star_hotel" in html and "fail open" in html and "HX" in html
    listed = ita.get("/enrolment-codes").get_data(as_text=True)
    assert code not in listed and code.replace("-", "") not in listed
    assert "unused" in listed and "hx-ban" in listed
    counter = Counter(app, clock).enroll(code, "Front desk 2")
    assert counter.answer.profile.kind == "hotel_desk" and counter.answer.profile.max_age_hours == 6
    used = ita.get("/enrolment-codes?state=used").get_data(as_text=True)
    assert counter.answer.device_id in used and "hx-ban" in used


def test_a_code_for_a_list_outside_the_devices_scope_is_refused_with_one_line(app):
    ita = signed_in(app, "ita")
    refused = issue(ita, lists=["hx-ban"])
    assert refused.status_code == 422
    assert "No code issued: list &#39;hx-ban&#39; has scopes star_hotel" in refused.get_data(as_text=True)
    assert "<code>" not in refused.get_data(as_text=True)
    assert issue(ita, lists=[]).status_code == 422


def test_withdrawing_an_unused_code_from_the_page_makes_it_worthless(app, clock):
    ita = signed_in(app, "ita")
    code = CODE.search(issue(ita).get_data(as_text=True)).group(1)
    code_id = app.extensions["gatecheck_ui"].devices.codes()[0].code_id
    response = ita.post(f"/enrolment-codes/{code_id}/withdraw",
                        data={"csrf_token": csrf(ita, "/enrolment-codes"), "reason": "sent to the wrong site"})
    assert response.status_code == 302
    assert "withdrawn" in ita.get("/enrolment-codes").get_data(as_text=True)
    refused = Counter(app, clock).client.post("/v1/enroll", data=enrolment_request(
        code, raw_public_key(Ed25519PrivateKey.generate()), "x"), content_type="application/json")
    assert refused.status_code == 403 and "withdrawn" in refused.get_json()["error"]["message"]


# -- the device list -------------------------------------------------------------------------

def test_the_device_list_shows_versions_against_the_head_app_scanner_and_outbox(app, clock):
    counter = enrolled(app, clock)
    app.extensions["gatecheck_registry"].registry.add_entry("nfl", EntryFields(
        surnames="Muller", given_names="Hans", reference="NFL-1", category="aviation-security",
        documents=(DocumentRef("P", "DEU", "C01X00T47"),)), by="officer-1")
    counter.report_health({"clock": iso(clock()), "app_version": "0.1.0",
                           "scanner": {"state": "unknown", "detail": "no scanner daemon reports its state yet"},
                           "lists": {"nfl": {"version": 0, "tokens": 0, "heartbeat_at": iso(clock() - 600)}},
                           "outbox_pending": 3, "failures": 0, "last_error": None})
    ita = signed_in(app, "ita")
    page = ita.get("/devices").get_data(as_text=True)
    assert "Counter 7" in page and "nfl: 0 / 1" in page and "1 behind" in page
    assert "0.1.0" in page and "unknown" in page and "<td>3</td>" in page and "10 min ago" in page
    detail = ita.get(f"/devices/{counter.answer.device_id}").get_data(as_text=True)
    assert "no scanner daemon reports its state yet" in detail and "3 reports waiting" in detail
    assert "device.enroll" in detail  # its history, from the audit log


def test_a_device_silent_past_the_threshold_is_highlighted_and_filterable(app, clock):
    quiet, busy = enrolled(app, clock, "Quiet counter"), enrolled(app, clock, "Busy counter")
    devices = app.extensions["gatecheck_ui"].devices
    clock.now += 3600
    devices.mark_seen(busy.answer.device_id, now=clock.now - 60)
    ita = signed_in(app, "ita")
    page = ita.get("/devices?silent=1").get_data(as_text=True)
    assert "Quiet counter" in page and "Busy counter" not in page
    assert re.search(r'<tr class="overdue">\s*<th scope="row"><a [^>]+>Quiet counter', page)
    assert "silent" in ita.get(f"/devices/{quiet.answer.device_id}").get_data(as_text=True)


def test_lists_past_the_devices_staleness_policy_are_flagged_stale(app, clock):
    counter = enrolled(app, clock)
    counter.report_health({"lists": {"nfl": {"version": 0, "heartbeat_at": iso(clock() - 30 * 3600)}}})
    page = signed_in(app, "ita").get("/devices").get_data(as_text=True)
    assert "1 d 6 h ago" in page and '<strong class="flag">stale</strong>' in page


def test_the_device_list_is_paged_searched_and_sorted_on_the_server(app, clock):
    for n in range(30):
        counter = enrolled(app, clock, f"Counter {n:02d}")
        counter.report_health({"lists": {"nfl": {"version": 0, "heartbeat_at": iso(clock() - n * 60)}}})
    ita = signed_in(app, "ita")
    first = ita.get("/devices?sort=name").get_data(as_text=True)
    names = re.findall(r">(Counter \d\d)</a>", first)
    assert names == [f"Counter {n:02d}" for n in range(25)] and 'rel="next"' in first
    second = ita.get("/devices?sort=name&page=2").get_data(as_text=True)
    assert re.findall(r">(Counter \d\d)</a>", second) == [f"Counter {n:02d}" for n in range(25, 30)]
    backwards = ita.get("/devices?sort=name&dir=desc").get_data(as_text=True)
    assert re.findall(r">(Counter \d\d)</a>", backwards)[:2] == ["Counter 29", "Counter 28"]
    stalest = ita.get("/devices?sort=lists").get_data(as_text=True)
    assert re.findall(r">(Counter \d\d)</a>", stalest)[0] == "Counter 29"
    assert re.findall(r">(Counter \d\d)</a>", ita.get("/devices?q=counter+07").get_data(as_text=True)) == [
        "Counter 07"]
    assert ita.get("/devices?sort=DROP+TABLE&page=-3").status_code == 200  # an odd URL falls back to defaults


def test_a_health_report_cannot_inject_markup_into_the_page(app, clock):
    counter = enrolled(app, clock)
    counter.report_health({"app_version": "<script>alert(1)</script>", "scanner": {"state": 5},
                           "lists": "not an object", "outbox_pending": -4})
    page = signed_in(app, "ita").get(f"/devices/{counter.answer.device_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


# -- revoking --------------------------------------------------------------------------------

def test_revoking_from_the_page_needs_the_confirmation_then_the_device_is_refused(app, clock):
    counter = enrolled(app, clock)
    device_id = counter.answer.device_id
    ita = signed_in(app, "ita")
    token = csrf(ita, f"/devices/{device_id}")
    unconfirmed = ita.post(f"/devices/{device_id}/revoke", data={"csrf_token": token, "reason": "stolen overnight"},
                           follow_redirects=True)
    assert "Not revoked" in unconfirmed.get_data(as_text=True)
    assert counter.request("GET", "/v1/keys").status_code == 200
    done = ita.post(f"/devices/{device_id}/revoke", follow_redirects=True,
                    data={"csrf_token": token, "reason": "stolen overnight", "confirm": "y"})
    assert "is revoked" in done.get_data(as_text=True)
    refused = counter.request("GET", "/v1/keys")
    assert refused.status_code == 401 and "unknown or disabled" in refused.get_json()["error"]["message"]
    (record,) = [r for r in AuditLog(app.extensions["gatecheck_ui"].engine).records(subject=f"device:{device_id}")
                 if r.action == "device.revoke"]
    assert record.actor == "ita" and record.reason == "stolen overnight"
    assert "revoked" in ita.get("/devices?status=disabled").get_data(as_text=True)


def test_revoking_without_a_csrf_token_is_refused(app, clock):
    counter = enrolled(app, clock)
    ita = signed_in(app, "ita")
    response = ita.post(f"/devices/{counter.answer.device_id}/revoke", data={"reason": "xxxxx", "confirm": "y"})
    assert response.status_code == 400
    assert counter.request("GET", "/v1/keys").status_code == 200


# -- who sees what ------------------------------------------------------------------------------

def test_an_it_admin_scoped_to_an_organisation_sees_and_acts_on_only_its_devices(app, clock):
    hx = enrolled(app, clock, "HX front desk", org="HX", lists=("hx-ban",))
    da = enrolled(app, clock, "DA counter", org="DA")
    ita_hx = signed_in(app, "ita-hx")
    page = ita_hx.get("/devices").get_data(as_text=True)
    assert "HX front desk" in page and "DA counter" not in page
    assert ita_hx.get(f"/devices/{da.answer.device_id}").status_code == 404
    assert ita_hx.post(f"/devices/{da.answer.device_id}/revoke", data={
        "csrf_token": csrf(ita_hx, f"/devices/{hx.answer.device_id}"), "reason": "xxxxx", "confirm": "y"}
    ).status_code == 404
    refused = issue(ita_hx, organisation="DA")
    assert refused.status_code == 422 and "you may issue codes for HX only" in refused.get_data(as_text=True)
    codes = ita_hx.get("/enrolment-codes").get_data(as_text=True)
    assert "hx-ban" in codes and "nfl" not in codes


def test_an_auditor_sees_the_fleet_but_no_controls(app, clock):
    counter = enrolled(app, clock)
    aud = signed_in(app, "aud")
    detail = aud.get(f"/devices/{counter.answer.device_id}").get_data(as_text=True)
    assert "Counter 7" in detail and "Revoke this device" not in detail
    assert "Withdraw" not in aud.get("/enrolment-codes").get_data(as_text=True)
    assert aud.get("/enrolment-codes/new").status_code == 403
