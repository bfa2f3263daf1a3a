"""GET /metrics on the registry: lists and fleet from the database, for an IT admin's API token.

End to end against real processes: `gatecheck registry serve` (gunicorn,
several workers), a device enrolled over HTTP whose agent syncs and reports
its health, and `gatecheck check` journaling verdicts on that device. The
collector alone is also fed health reports of any shape (older agents,
broken ones): it must never fail a scrape.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from datetime import date

import pytest
from hypothesis import given, settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from appliance.specimens.mrz import MRZFields, encode
from registry import db
from registry.devices import STATUS_ACTIVE, STATUS_DISABLED, Device
from registry.metrics import DeviceRow, ListRow, RegistryCollector
from registry.publish import DocumentRef, EntryFields
from registry.server import create_app
from sync.enrolment import EnrolmentProfile
from tests.registry.test_fleet import json_values, new_key
from tests.registry.test_ui_access import PASSWORD
from tests.sync.conftest import LIST, Device as LiveDevice, RegistryServer

#: Users made in the registry's database: (roles, organisations).
USERS = {"ita": (["it_admin"], []), "ita-zz": (["it_admin"], ["ZZ"]), "rev": (["reviewer"], []),
         "aud": (["auditor"], []), "rep": (["reporter"], [])}
SURNAME, GIVEN, NUMBER = "Okafor", "Chiamaka", "A01234567"


def mrz(number: str, surname: str, given_names: str) -> bytes:
    return "\n".join(encode(MRZFields("TD3", "P", "NGA", number, surname.upper(), given_names.upper(),
                                      date(1980, 2, 3), "F", date(2035, 1, 31), "NGA"))).encode()


@pytest.fixture
def world(tmp_path):
    server = RegistryServer(tmp_path / "registry")
    app = create_app({"DATA_DIR": str(server.data_dir)})  # the same database the server will serve
    ui = app.extensions["gatecheck_ui"]
    tokens = {}
    for name, (roles, orgs) in USERS.items():
        ui.accounts.create_user(name, PASSWORD, roles=roles, orgs=orgs, by="admin")
        tokens[name] = ui.accounts.issue_token(name, label="prometheus", by="admin")
    ui.engine.dispose()
    server.api.add_entry(LIST, EntryFields(surnames=SURNAME, given_names=GIVEN, reference="NFL-9", category="assault",
                                           date_of_birth=date(1980, 2, 3),
                                           documents=(DocumentRef("P", "NGA", NUMBER),)), by="officer-1")
    server.start()
    yield server, tokens
    server.stop()


def get(server, token: str | None) -> tuple[int, dict, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(server.url + "/metrics", headers=headers),
                                    timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def samples(text: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, *sorted(s.labels.items()))] = s.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, *sorted(labels.items()))]


def device_series(found: dict, device_id: str) -> dict:
    return {k: v for k, v in found.items() if ("device", device_id) in k[1:]}


def test_an_it_admin_scrapes_lists_and_a_devices_health_with_its_scans_by_verdict(world, tmp_path):
    server, tokens = world
    device = LiveDevice(tmp_path / "device", server)
    assert device.run_agent().returncode == 0
    listed = device.gatecheck("check", input=mrz(NUMBER, SURNAME, GIVEN))
    assert json.loads(listed.stdout)["verdict"] == "DENY", listed.stderr
    clear = device.gatecheck("check", input=mrz("B76543210", "Nwosu", "Chidi"))
    assert json.loads(clear.stdout)["verdict"] == "CLEAR", clear.stderr
    assert device.run_agent().returncode == 0  # a new agent process reports its health at once
    status, headers, text = get(server, tokens["ita"])
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(text)

    assert value(found, "gatecheck_registry_list_version", list=LIST) == 1
    assert value(found, "gatecheck_registry_list_publish_age_seconds", list=LIST) < 300
    assert value(found, "gatecheck_registry_list_tokens", list=LIST) > 0
    assert value(found, "gatecheck_registry_devices", status=STATUS_ACTIVE) == 1
    d = device.device_id
    assert value(found, "gatecheck_device_scans_24h", device=d, verdict="DENY") == 1
    assert value(found, "gatecheck_device_scans_24h", device=d, verdict="CLEAR") == 1
    assert value(found, "gatecheck_device_scans_24h", device=d, verdict="REFER") == 0
    assert value(found, "gatecheck_fleet_scans_24h", verdict="DENY") == 1
    assert value(found, "gatecheck_device_list_version", device=d, list=LIST) == 1
    assert value(found, "gatecheck_device_list_versions_behind", device=d, list=LIST) == 0
    assert value(found, "gatecheck_device_list_age_seconds", device=d, list=LIST) < 300
    assert value(found, "gatecheck_device_lists_stale", device=d) == 0
    assert value(found, "gatecheck_device_sync_failures", device=d) == 0
    assert value(found, "gatecheck_device_outbox_depth", device=d) == 0
    assert value(found, "gatecheck_device_health_report_age_seconds", device=d) < 300
    assert value(found, "gatecheck_device_disk_free_bytes", device=d) > 0
    assert value(found, "gatecheck_fleet_devices_stale") == 0

    # Last contact is written a second after it happens; whichever worker answers, the database says it.
    deadline = time.monotonic() + 5
    while math.isinf(value(samples(get(server, tokens["ita"])[2]), "gatecheck_device_contact_age_seconds", device=d)):
        assert time.monotonic() < deadline, "last contact never recorded"
        time.sleep(0.2)
    scrapes = [device_series(samples(get(server, tokens["ita"])[2]), d) for _ in range(6)]
    stable = [{k: v for k, v in s.items() if "age_seconds" not in k[0]} for s in scrapes]
    assert all(s == stable[0] for s in stable)  # every gunicorn worker gives the same answer

    # Nothing that names the listed traveller, nor any token the registry holds, in any series.
    with server.api.engine.connect() as conn:
        hexes = [bytes(t).hex() for t in conn.execute(select(db.list_tokens.c.token)).scalars()]
    assert hexes
    folded = text.lower()
    for item in [SURNAME, GIVEN, NUMBER, "nwosu", "chidi", "b76543210", *hexes, *tokens.values()]:
        assert item.lower() not in folded, item
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert set(s.labels) <= {"list", "device", "verdict", "status", "org", "app_version", "scanner"}, s


def test_metrics_refuse_anonymous_and_every_role_but_it_admin_and_scope_devices_to_the_admins_organisations(
        world, tmp_path):
    server, tokens = world
    device = LiveDevice(tmp_path / "device", server)
    assert device.run_agent().returncode == 0
    status, headers, body = get(server, None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["code"] == "missing_token"
    assert get(server, "gck_" + "A" * 43)[0] == 401
    for who in ("rev", "aud", "rep"):
        status, _, body = get(server, tokens[who])
        assert status == 403 and "it_admin" in json.loads(body)["error"]["message"], who
    everyone = samples(get(server, tokens["ita"])[2])
    assert device_series(everyone, device.device_id)
    scoped = samples(get(server, tokens["ita-zz"])[2])  # an IT admin for organisation ZZ only
    assert not device_series(scoped, device.device_id)
    assert value(scoped, "gatecheck_registry_list_version", list=LIST) == 1  # lists are everyone's
    server.devices.revoke(device.device_id, by="ita", reason="stolen overnight")
    revoked = samples(get(server, tokens["ita"])[2])
    assert not device_series(revoked, device.device_id)  # a revoked device's series end
    assert value(revoked, "gatecheck_registry_devices", status=STATUS_DISABLED) == 1


def test_the_scrape_only_token_opens_metrics_for_the_whole_fleet_and_nothing_else(world, tmp_path):
    """What a Prometheus server should hold: not an IT admin's token, which could revoke devices."""
    server, tokens = world
    device = LiveDevice(tmp_path / "device", server)
    assert device.run_agent().returncode == 0
    path = server.data_dir / "metrics-token"
    assert path.stat().st_mode & 0o777 == 0o600
    scrape = path.read_text().strip()
    status, _, body = get(server, scrape)
    assert status == 200 and device_series(samples(body), device.device_id)
    assert get(server, scrape[:-1] + ("A" if scrape[-1] != "A" else "B"))[0] == 401
    # It is no user's token: the JSON API does not know it.
    request = urllib.request.Request(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {scrape}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


# -- the collector alone ---------------------------------------------------------------------

NOW = 1_795_000_000


def fleet_device(device_id: str, *, lists=("nfl",), status=STATUS_ACTIVE, health_at=NOW - 60,
                 last_seen_at=NOW - 30, lists_as_of=NOW - 3600) -> Device:
    return Device(device_id, "Counter 7", new_key(), status, NOW - 86_400, tuple(lists), last_seen_at, health_at,
                  "DA", EnrolmentProfile.build(list(lists), max_age_hours=24), lists_as_of)


def exposition(devices: list[DeviceRow], lists=(ListRow("nfl", 5, 1200, NOW - 600),)) -> dict:
    registry = CollectorRegistry()
    registry.register(RegistryCollector(lists, devices, now=NOW, silent_after=900))
    return samples(generate_latest(registry).decode())


def test_an_older_agent_without_verdict_counts_gets_every_other_series_and_no_scan_series():
    old = {"lists": {"nfl": {"version": 3, "heartbeat_at": "2026-11-15T00:00:00+00:00"}},
           "failures": 2, "outbox_pending": 4, "app_version": "0.0.9"}
    found = exposition([DeviceRow(fleet_device("00000000000000a1"), json.dumps(old))])
    d = "00000000000000a1"
    assert value(found, "gatecheck_device_sync_failures", device=d) == 2
    assert value(found, "gatecheck_device_outbox_depth", device=d) == 4
    assert value(found, "gatecheck_device_list_versions_behind", device=d, list="nfl") == 2
    assert value(found, "gatecheck_device_info", device=d, org="DA", app_version="0.0.9", scanner="unknown") == 1
    assert not [k for k in found if k[0] == "gatecheck_device_scans_24h"]
    assert value(found, "gatecheck_fleet_outbox_depth") == 4


def test_a_device_never_heard_from_is_infinitely_old_silent_and_stale():
    never = fleet_device("00000000000000b2", health_at=None, last_seen_at=None, lists_as_of=None)
    found = exposition([DeviceRow(never, None)])
    d = "00000000000000b2"
    assert math.isinf(value(found, "gatecheck_device_contact_age_seconds", device=d))
    assert math.isinf(value(found, "gatecheck_device_list_age_seconds", device=d, list="nfl"))
    assert value(found, "gatecheck_device_silent", device=d) == 1  # enrolled a day ago, never polled
    assert value(found, "gatecheck_device_lists_stale", device=d) == 1
    assert value(found, "gatecheck_fleet_devices_silent") == 1 and value(found, "gatecheck_fleet_devices_stale") == 1


def test_verdict_counts_that_are_not_whole_numbers_are_ignored_not_trusted():
    bad = {"verdicts_24h": {"CLEAR": 3, "REFER": -1, "DENY": "2", "UNREADABLE": 0}}
    found = exposition([DeviceRow(fleet_device("00000000000000c3"), json.dumps(bad))])
    assert not [k for k in found if k[0] == "gatecheck_device_scans_24h"]


@settings(max_examples=150, deadline=None)
@given(health=json_values)
def test_a_health_report_of_any_shape_never_fails_a_scrape(health):
    found = exposition([DeviceRow(fleet_device("00000000000000d4"), json.dumps(health)),
                        DeviceRow(fleet_device("00000000000000e5"), "{not json")])
    assert value(found, "gatecheck_registry_devices", status=STATUS_ACTIVE) == 2
