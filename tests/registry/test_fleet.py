"""IT's fleet: profile-bound enrolment codes, enrolment with everything a device needs, revocation, audit.

Registry behaviour runs on a real SQLite registry made by `gatecheck registry
init`; what a running registry does is shown against `gatecheck registry
serve` as a real process (tests/sync/conftest.py's RegistryServer) and a
device that enrols over HTTP with sync/enrolment.py alone.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta, timezone
from importlib import metadata

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from appliance.config import load_config
from appliance.records import Action
from registry.audit import AuditLog
from registry.cli import registry as registry_cli
from registry.db import make_engine
from registry.devices import (
    CODE_EXPIRED,
    CODE_UNUSED,
    CODE_USED,
    CODE_WITHDRAWN,
    DeviceRegistry,
    InvalidEnrolment,
    UnknownCode,
    code_id_for,
)
from registry.fleet import fleet_row, lists_as_of, read_health
from registry.publish import DocumentRef, EntryFields, UnknownList
from registry.server import RegistryPaths, create_app
from sync.device_auth import sign_request
from sync.enrolment import EnrolmentProfile
from sync.keys import raw_public_key
from appliance.specimens.mrz import MRZFields, encode
from tests.sync.conftest import LIST, Device, RegistryServer

NOW = 1_795_000_000


def cli(*args) -> str:
    result = CliRunner().invoke(registry_cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def cli_refusal(*args) -> str:
    result = CliRunner().invoke(registry_cli, [str(a) for a in args])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    return result.output


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "registry"
    cli("init", "--data-dir", d)
    cli("list", "create", "--data-dir", d, "nfl", "--name", "No-fly list", "--authority", "CAA", "--legal-basis",
        "Aviation Act s.12", "--scope", "air_travel", "--default-action", "DENY")
    cli("list", "create", "--data-dir", d, "hx-ban", "--name", "Hotel X ban", "--authority", "Hotel X",
        "--legal-basis", "House rules s.4", "--scope", "star_hotel", "--default-action", "REFER")
    return d


@pytest.fixture
def fleet(data_dir) -> DeviceRegistry:
    return DeviceRegistry(make_engine(RegistryPaths(data_dir).database_url), clock=lambda: NOW)


def new_key() -> bytes:
    return raw_public_key(Ed25519PrivateKey.generate())


def audit_trail(fleet: DeviceRegistry) -> list[tuple[str, str, str]]:
    return [(r.action, r.subject, r.actor) for r in AuditLog(fleet.engine).records() if r.action.startswith("device")]


# -- codes and their profiles -----------------------------------------------------------

def test_a_code_is_bound_to_its_profile_and_the_device_inherits_it(fleet):
    profile = EnrolmentProfile.build(["hx-ban"], organisation="HX", kind="hotel_desk", max_age_hours=6,
                                     fail_closed=False)
    code = fleet.issue_code(profile, ttl_seconds=3600, by="ita", reason="front desk 2")
    device = fleet.enroll(code, new_key(), "Front desk 2")
    assert device.profile == profile and device.org == "HX" and device.lists == ("hx-ban",)
    assert fleet.device(device.device_id).profile == profile


def test_a_code_for_a_list_the_device_would_never_check_is_refused_and_nothing_is_stored(fleet):
    hotel_lists_at_an_airline_counter = EnrolmentProfile.build(["nfl", "hx-ban"], kind="airline_counter")
    with pytest.raises(InvalidEnrolment, match="list 'hx-ban' has scopes star_hotel; a device checking air_travel"):
        fleet.issue_code(hotel_lists_at_an_airline_counter, ttl_seconds=3600, by="ita")
    with pytest.raises(UnknownList, match="no list 'nope'"):
        fleet.issue_code(["nfl", "nope"], ttl_seconds=3600, by="ita")
    assert fleet.codes() == [] and audit_trail(fleet) == []


def test_codes_list_what_each_is_for_and_what_became_of_it_but_never_the_code(fleet, data_dir):
    used = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita", now=NOW - 10)
    unused = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita", now=NOW - 5)
    expired = fleet.issue_code(["nfl"], ttl_seconds=60, by="ita", now=NOW - 3600)
    withdrawn = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita", now=NOW - 1)
    device = fleet.enroll(used, new_key(), "Counter 7")
    fleet.withdraw_code(code_id_for(withdrawn), by="ita", reason="handed to the wrong site")
    states = {c.code_id: c.state(NOW) for c in fleet.codes()}
    assert states == {code_id_for(used): CODE_USED, code_id_for(unused): CODE_UNUSED,
                      code_id_for(expired): CODE_EXPIRED, code_id_for(withdrawn): CODE_WITHDRAWN}
    assert fleet.code(code_id_for(used)).used_by == device.device_id
    listed = cli("device", "codes", "--data-dir", data_dir)
    assert all(code not in listed for code in (used, unused, expired, withdrawn))
    assert [c["code_id"] for c in json.loads(cli("device", "codes", "--data-dir", data_dir, "--state", "used"))] == [
        code_id_for(used)]


def test_a_withdrawn_code_enrols_nothing_and_a_used_one_cannot_be_withdrawn(fleet):
    code = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita")
    fleet.withdraw_code(code_id_for(code), by="ita", reason="lost the paper")
    with pytest.raises(InvalidEnrolment, match="withdrawn; ask IT for a new one"):
        fleet.enroll(code, new_key(), "Counter 7")
    spent = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita")
    fleet.enroll(spent, new_key(), "Counter 8")
    with pytest.raises(InvalidEnrolment, match="is used; only an unused code can be withdrawn"):
        fleet.withdraw_code(code_id_for(spent), by="ita")
    with pytest.raises(UnknownCode):
        fleet.withdraw_code("0123456789abcdef", by="ita")


def test_every_fleet_change_is_one_audit_record_written_with_it(fleet):
    code = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita", reason="counter 7")
    other = fleet.issue_code(["nfl"], ttl_seconds=3600, by="ita")
    fleet.withdraw_code(code_id_for(other), by="itb", reason="not needed")
    device = fleet.enroll(code, new_key(), "Counter 7")
    with pytest.raises(InvalidEnrolment):
        fleet.enroll(code, new_key(), "Counter 9")  # a refused enrolment changes nothing, so records nothing
    fleet.revoke(device.device_id, by="itb", reason="stolen overnight")
    fleet.revoke(device.device_id, by="itb", reason="again")  # already revoked: no change, no record
    d = f"device:{device.device_id}"
    assert audit_trail(fleet) == [
        ("device.code.issue", f"enrolment-code:{code_id_for(code)}", "ita"),
        ("device.code.issue", f"enrolment-code:{code_id_for(other)}", "ita"),
        ("device.code.withdraw", f"enrolment-code:{code_id_for(other)}", "itb"),
        ("device.enroll", d, d), ("device.revoke", d, "itb")]
    revoke = list(AuditLog(fleet.engine).records(subject=d))[-1]
    assert (revoke.reason, json.loads(revoke.before), json.loads(revoke.after)) == (
        "stolen overnight", {"status": "active"}, {"status": "disabled"})
    assert AuditLog(fleet.engine).verify() == (5, [])


def test_a_registry_database_from_before_profiles_gains_the_new_columns_and_keeps_its_codes(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # issue 4's tables, as its registries created them
        conn.execute(text("CREATE TABLE devices (device_id VARCHAR(16) PRIMARY KEY, name TEXT NOT NULL, "
                          "public_key BLOB NOT NULL, status VARCHAR(16) NOT NULL, enrolled_at BIGINT NOT NULL, "
                          "last_seen_at BIGINT, health TEXT, health_at BIGINT)"))
        conn.execute(text("CREATE TABLE enrolment_codes (code_sha256 VARCHAR(64) PRIMARY KEY, lists TEXT NOT NULL, "
                          "created_at BIGINT NOT NULL, created_by TEXT NOT NULL, expires_at BIGINT NOT NULL, "
                          "used_at BIGINT, used_by VARCHAR(16))"))
    from registry.devices import code_hash

    old_code = "ABCD-EFGH-JKLM-NPQR-STUV"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO enrolment_codes VALUES (:h, '[\"nfl\"]', 1, 'admin', 99999999999, NULL, NULL)"),
                     {"h": code_hash(old_code)})
    fleet = DeviceRegistry(engine)
    device = fleet.enroll(old_code, new_key(), "Counter from 2025")
    assert device.profile.kind == "airline_counter" and device.profile.scopes == {"air_travel"}
    assert fleet.device(device.device_id).lists == ("nfl",)


# -- health as IT reads it ----------------------------------------------------------------

def test_the_stalest_verified_list_says_how_old_the_device_s_lists_are():
    health = {"lists": {"a": {"heartbeat_at": "2026-11-27T10:00:00+00:00"},
                        "b": {"heartbeat_at": "2026-11-27T09:00:00+00:00"}}}
    nine = int(datetime(2026, 11, 27, 9, tzinfo=timezone.utc).timestamp())
    assert lists_as_of(health, ["a", "b"]) == nine and lists_as_of(health, ["a"]) == nine + 3600
    assert lists_as_of(health, ["a", "never-verified"]) is None
    assert lists_as_of({"lists": {"a": {"heartbeat_at": "2026-11-27T10:00:00"}}}, ["a"]) is None  # no offset


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(health=st.one_of(json_values, st.fixed_dictionaries({
    "lists": json_values, "app_version": json_values, "scanner": json_values, "outbox_pending": json_values,
    "clock": json_values, "failures": json_values, "last_error": json_values})))
def test_a_health_report_of_any_shape_reads_without_an_error(health):
    view = read_health(health, NOW)
    assert isinstance(view.app_version, str) and isinstance(view.scanner, str)
    lists_as_of(health, ["a"])


def test_a_device_silent_past_the_threshold_and_stale_past_its_policy_is_flagged(fleet):
    code = fleet.issue_code(EnrolmentProfile.build(["nfl"], max_age_hours=2), ttl_seconds=3600, by="ita")
    device = fleet.enroll(code, new_key(), "Counter 7", now=NOW - 7200)
    fleet.mark_seen(device.device_id, now=NOW - 1800)
    fleet.record_health(device.device_id, {"lists": {"nfl": {"version": 3, "heartbeat_at": "2026-11-15T00:00:00Z"}},
                                           "app_version": "0.1.0", "outbox_pending": 2}, now=NOW - 1800)
    device = fleet.device(device.device_id)
    row = fleet_row(device, json.dumps(fleet.health(device.device_id)), {"nfl": 5}, now=NOW, silent_after=900)
    assert row.silent and row.stale and row.lists[0].behind == 2 and row.health.outbox_pending == 2
    assert not fleet_row(device, None, {}, now=NOW, silent_after=3600).silent


# -- the CLI ------------------------------------------------------------------------------

def test_the_cli_issues_a_profile_code_and_refuses_a_bad_profile_in_one_line(data_dir):
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "hx-ban", "--kind", "hotel_desk",
               "--org", "hx", "--max-age-hours", "6", "--fail-open", "--by", "ita").strip()
    assert re.fullmatch(r"([A-Z2-9]{4}-){4}[A-Z2-9]{4}", code)
    (listed,) = json.loads(cli("device", "codes", "--data-dir", data_dir))
    assert listed["profile"] == {"lists": ["hx-ban"], "organisation": "HX", "kind": "hotel_desk",
                                 "scopes": ["star_hotel"], "max_age_hours": 6.0, "fail_closed": False}
    assert "needs its scopes named" in cli_refusal("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl",
                                                   "--kind", "custom")
    assert "unknown scope 'casino'" in cli_refusal("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl",
                                                   "--scope", "casino")
    withdrawn = json.loads(cli("device", "withdraw-code", "--data-dir", data_dir, listed["code_id"], "--reason", "x"))
    assert withdrawn["state"] == "withdrawn"


# -- against a running registry -------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    server = RegistryServer(tmp_path / "registry")
    server.api.create_list("hx-ban", name="Hotel X ban", authority="Hotel X", legal_basis="House rules s.4",
                           scopes=["star_hotel"], default_action=Action.REFER, redress="Guest relations, ref. HX",
                           by="admin")
    server.start()
    yield server
    server.stop()


def guest() -> tuple[EntryFields, bytes]:
    fields = EntryFields(surnames="Okafor", given_names="Ada", reference="HX-1", category="damage",
                         date_of_birth=date(1980, 2, 3), documents=(DocumentRef("P", "NGA", "A01234567"),))
    mrz = encode(MRZFields("TD3", "P", "NGA", "A01234567", "OKAFOR", "ADA", date(1980, 2, 3), "F",
                           date(2035, 1, 31), "NGA"))
    return fields, "\n".join(mrz).encode()


def test_a_hotel_desk_enrols_over_http_with_its_profile_syncs_and_refers_a_listed_guest(server, tmp_path):
    code = cli("device", "enroll-code", "--data-dir", server.data_dir, "--lists", "hx-ban", "--kind", "hotel_desk",
               "--org", "HX", "--max-age-hours", "6", "--fail-open", "--by", "ita").strip()
    device = Device(tmp_path / "device", server, code=code)
    with device.store() as store:
        held = store.get_list("hx-ban")
        assert [info.list_id for info in store.lists()] == ["hx-ban"]
    assert (held.version, held.token_key, held.redress) == (0, server.api.list_info("hx-ban").token_key,
                                                            "Guest relations, ref. HX")
    assert (device.data_dir / "registry-root.pub").read_bytes() == server.root_public
    config = load_config(device.data_dir, env={})
    assert config.scopes == {"star_hotel"} and config.max_age == timedelta(hours=6) and not config.fail_closed

    fields, scan = guest()
    server.api.add_entry("hx-ban", fields, by="officer-1")
    run = device.run_agent()
    assert run.returncode == 0, run.stderr
    checked = device.gatecheck("check", input=scan)
    assert checked.returncode == 0 and json.loads(checked.stdout)["verdict"] == "REFER"

    health = server.devices.health(device.device_id)
    assert health["app_version"] == metadata.version("gatecheck-appliance")
    assert health["scanner"]["state"] == "unknown" and health["lists"]["hx-ban"]["version"] == 1
    assert server.devices.device(device.device_id).lists_as_of is not None


def _signed_get(device: Device, path: str = "/v1/keys") -> int:
    headers = sign_request(device.key, "GET", path, int(time.time()))
    try:
        with urllib.request.urlopen(urllib.request.Request(device.registry.url + path, headers=headers),
                                    timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_revoked_device_is_refused_by_every_server_process_within_a_second(server, tmp_path):
    device = Device(tmp_path / "device", server)
    assert device.run_agent().returncode == 0
    assert _signed_get(device) == 200
    cli("device", "revoke", "--data-dir", server.data_dir, device.device_id, "--reason", "stolen overnight")
    revoked = time.monotonic()
    answers = []  # (seconds after the revocation, status), from whichever server process answers
    while time.monotonic() - revoked < 2.5:
        status = _signed_get(device)
        answers.append((time.monotonic() - revoked, status))
        time.sleep(0.01)
    served = [at for at, status in answers if status == 200]
    # Each process re-reads the disabled devices at most every DEVICE_STATUS_SECONDS (1 s).
    assert not served or served[-1] < 1.0 + 0.2, answers
    assert {status for at, status in answers if at >= 1.2} == {401}
    run = device.run_agent()
    assert run.returncode == 1 and "unknown or disabled" in run.stderr and "Traceback" not in run.stderr


def test_enrolment_without_a_configured_root_key_spends_no_code(tmp_path):
    data = tmp_path / "registry"
    cli("init", "--data-dir", data)
    cli("list", "create", "--data-dir", data, LIST, "--name", "n", "--authority", "a", "--legal-basis", "l",
        "--scope", "air_travel")
    paths = RegistryPaths(data)
    app = create_app({"DATABASE_URL": paths.database_url, "SIGNING_KEY": str(paths.signing_key),
                      "SIGNING_CERT": str(paths.signing_cert)})
    code = cli("device", "enroll-code", "--data-dir", data, "--lists", LIST).strip()
    from sync.enrolment import enrolment_request

    response = app.test_client().post("/v1/enroll", data=enrolment_request(code, new_key(), "c"),
                                      content_type="application/json")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "no_root_key"
    assert json.loads(cli("device", "codes", "--data-dir", data))[0]["state"] == "unused"


def test_a_root_key_that_did_not_certify_the_signing_key_stops_the_registry_at_start(data_dir):
    from registry.server import ConfigError

    (data_dir / "other-root.pub").write_bytes(new_key())
    with pytest.raises(ConfigError, match="is not the root that certified the signing key"):
        create_app({"DATA_DIR": str(data_dir), "ROOT_PUBLIC_KEY": str(data_dir / "other-root.pub")})
