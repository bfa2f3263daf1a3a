"""GET /metrics on the counter app: a real `gatecheck serve` process, scraped as Prometheus would.

Scans go through the real API; the state other processes keep (the
snapshot's heartbeats, sync.db, the outbox) is written by this test process
with the same classes the sync agent and the counter use, and must show at
the next scrape. Every scrape is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import math
import stat
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import load_config
from appliance.documents import parse_payload
from appliance.outbox import Outbox
from appliance.records import Action, ListInfo
from appliance.snapshot import SnapshotStore, snapshot_path
from appliance.web import create_app
from sync.agent_state import AgentState, state_path
from tests.appliance.conftest import (
    HOTEL,
    HOTEL_KEY,
    NOFLY,
    NOFLY_KEY,
    OPERATORS,
    _tokens,
    make_data_dir,
    sample,
    set_heartbeat,
    sign_in,
    start_server,
)

VERDICTS = ("CLEAR", "REFER", "DENY", "UNREADABLE")


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    """Scans and access: its lists stay fresh."""
    server = start_server(make_data_dir(tmp_path_factory.mktemp("metrics") / "counter"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """State kept by other processes: heartbeats, sync.db and the outbox are changed under it."""
    server = start_server(make_data_dir(tmp_path_factory.mktemp("metrics") / "device"))
    yield server
    server.stop()


def metrics_token(server) -> str:
    return (server.data_dir / "metrics-token").read_text().strip()


def scrape_text(server, token: str | None = None) -> str:
    response = requests.get(server.api("/metrics"), timeout=10,
                            headers={"Authorization": f"Bearer {token or metrics_token(server)}"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    return response.text


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels...): value} of one exposition, through prometheus_client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, *sorted(s.labels.items()))] = s.value
    return found


def scrape(server) -> dict[tuple, float]:
    return samples(scrape_text(server))


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, *sorted(labels.items()))]


def post_frame(server, png: bytes) -> requests.Response:
    return requests.post(server.api("/api/scan"), headers={"Authorization": f"Bearer {server.token}"},
                         files={"image": ("frame.png", png, "image/png")}, timeout=30)


# -- who may scrape ---------------------------------------------------------------


def test_metrics_open_only_to_the_metrics_token_not_to_the_scanner_or_an_operator(counter):
    url = counter.api("/metrics")
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["code"] == "unauthorised"
    scanner = requests.get(url, headers={"Authorization": f"Bearer {counter.token}"}, timeout=10)
    assert scanner.status_code == 401
    assert sign_in(counter).get(url, timeout=10).status_code == 401  # a signed-in browser is no scraper
    wrong = requests.get(url, headers={"Authorization": "Bearer " + "A" * 43}, timeout=10)
    assert wrong.status_code == 401
    assert scrape_text(counter)  # the metrics token opens it


def test_the_metrics_token_cannot_post_a_scan_and_is_private_to_the_device_user(counter):
    response = requests.post(counter.api("/api/scan"), data=sample("passport-td3.txt"), timeout=10,
                             headers={"Authorization": f"Bearer {metrics_token(counter)}",
                                      "Content-Type": "application/octet-stream"})
    assert response.status_code == 401
    token_file = counter.data_dir / "metrics-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(metrics_token(counter)) >= 40 and metrics_token(counter) != counter.token


def test_a_prometheus_asking_for_openmetrics_gets_openmetrics(counter):
    response = requests.get(counter.api("/metrics"), timeout=10, headers={
        "Authorization": f"Bearer {metrics_token(counter)}",
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# -- scans -------------------------------------------------------------------------


def test_each_verdict_moves_its_own_counter_and_the_latency_histogram_by_exactly_one(counter):
    before = scrape(counter)
    cases = [("passport-td3.txt", "DENY"), ("licence-on.txt", "REFER"), ("licence-ca.txt", "CLEAR")]
    for name, verdict in cases:
        assert counter.scan(sample(name)).json()["verdict"] == verdict
    assert counter.scan(b"not a travel document").status_code == 422  # UNREADABLE, journaled
    frame = post_frame(counter, sample("licence-ca.png"))
    assert frame.status_code == 200 and frame.json()["verdict"] == "CLEAR"
    after = scrape(counter)

    expected = {("scanner", v): 1 for v in VERDICTS} | {("camera", "CLEAR"): 1}
    for verdict in VERDICTS:
        for channel in ("scanner", "camera", "manual"):
            moved = (value(after, "gatecheck_scans_total", verdict=verdict, channel=channel)
                     - value(before, "gatecheck_scans_total", verdict=verdict, channel=channel))
            assert moved == expected.get((channel, verdict), 0), (verdict, channel)
    count = value(after, "gatecheck_verdict_seconds_count") - value(before, "gatecheck_verdict_seconds_count")
    assert count == 5
    took = value(after, "gatecheck_verdict_seconds_sum") - value(before, "gatecheck_verdict_seconds_sum")
    assert 0 < took < 5  # five real checks: some time, far below a second each
    inf = value(after, "gatecheck_verdict_seconds_bucket", le="+Inf") - value(
        before, "gatecheck_verdict_seconds_bucket", le="+Inf")
    assert inf == 5
    bounds = sorted((float(dict(k[1:])["le"]), v) for k, v in after.items()
                    if k[0] == "gatecheck_verdict_seconds_bucket")
    assert [b for b, _ in bounds][:5] == [0.0005, 0.001, 0.002, 0.005, 0.01]  # around the 5 ms target
    assert all(a[1] <= b[1] for a, b in zip(bounds, bounds[1:]))  # cumulative


def test_a_refused_request_counts_no_scan(counter):
    before = scrape(counter)
    assert requests.post(counter.api("/api/scan"), data=b"", timeout=10, headers={
        "Authorization": f"Bearer {counter.token}", "Content-Type": "application/octet-stream"}).status_code == 400
    after = scrape(counter)
    assert value(after, "gatecheck_verdict_seconds_count") == value(before, "gatecheck_verdict_seconds_count")


def test_no_traveller_data_token_operator_or_secret_appears_in_the_exposition(counter):
    for name in ("passport-td3.txt", "licence-on.txt", "licence-ca.txt", "idcard-td1.txt", "boarding-pass.txt"):
        counter.scan(sample(name))
    text = scrape_text(counter)
    text_folded = text.lower()
    secrets = [counter.token, metrics_token(counter), *OPERATORS, *OPERATORS.values()]
    personal: list[str] = []
    for name in ("passport-td3.txt", "licence-on.txt", "licence-ca.txt", "idcard-td1.txt"):
        document = parse_payload(sample(name))
        personal += [document.surname, document.given_names, document.document_number]
        for key in (NOFLY_KEY, HOTEL_KEY):
            tokens = _tokens(name, key)
            personal += [t.hex() for t in (tokens.document, *tokens.persons) if t is not None]
    personal = [p for p in personal if p]
    assert len(personal) > 15
    for item in personal + secrets:
        assert item.lower() not in text_folded, item
    for family in text_string_to_metric_families(text):  # labels are ids, verdicts and channels only
        for s in family.samples:
            assert set(s.labels) <= {"verdict", "channel", "list", "source", "le", "version"}, s


# -- state kept by other processes ------------------------------------------------------


def test_list_age_grows_with_time_and_a_verified_heartbeat_resets_it(device):
    now = datetime.now(timezone.utc)
    set_heartbeat(device.data_dir, now - timedelta(hours=2))
    aged = scrape(device)
    assert 7200 <= value(aged, "gatecheck_list_age_seconds", list=NOFLY) < 7200 + 60
    assert value(aged, "gatecheck_lists_stale") == 0
    time.sleep(1.1)
    assert value(scrape(device), "gatecheck_list_age_seconds", list=NOFLY) >= value(
        aged, "gatecheck_list_age_seconds", list=NOFLY) + 1
    set_heartbeat(device.data_dir, now - timedelta(hours=30))  # past the airline profile's 24 h
    stale = scrape(device)
    assert value(stale, "gatecheck_lists_stale") == 1
    assert value(stale, "gatecheck_lists_max_age_seconds") == 24 * 3600
    set_heartbeat(device.data_dir, datetime.now(timezone.utc))
    fresh = scrape(device)
    assert value(fresh, "gatecheck_list_age_seconds", list=NOFLY) < 60
    assert value(fresh, "gatecheck_lists_stale") == 0
    assert value(fresh, "gatecheck_list_heartbeat_timestamp_seconds", list=NOFLY) == pytest.approx(time.time(), abs=60)
    assert value(fresh, "gatecheck_list_version", list=NOFLY) == 1
    assert value(fresh, "gatecheck_list_in_scope", list=NOFLY) == 1
    assert value(fresh, "gatecheck_list_in_scope", list=HOTEL) == 0  # a hotel list at an airline counter
    assert value(fresh, "gatecheck_list_tokens", list=NOFLY) == 3


def test_sync_failures_and_last_success_are_read_from_sync_db_at_each_scrape(device):
    if state_path(device.data_dir).exists():
        pytest.fail("the fixture's device must start without sync.db")
    never = scrape(device)
    assert value(never, "gatecheck_sync_state_present") == 0
    assert value(never, "gatecheck_metrics_source_up", source="sync") == 1
    assert ("gatecheck_sync_consecutive_failures",) not in never
    with AgentState(device.data_dir) as state:
        state.record_success(1_795_000_000.0, next_poll_at=1_795_000_060.0)
        for failures in (1, 2, 3):
            state.record_failure(1_795_000_100.0 + failures, "registry down", failures, 1_795_000_200.0)
    failing = scrape(device)
    assert value(failing, "gatecheck_sync_state_present") == 1
    assert value(failing, "gatecheck_sync_consecutive_failures") == 3
    assert value(failing, "gatecheck_sync_last_success_timestamp_seconds") == 1_795_000_000.0
    assert value(failing, "gatecheck_sync_last_error_timestamp_seconds") == 1_795_000_103.0
    with AgentState(device.data_dir) as state:
        state.record_success(1_795_000_300.0, next_poll_at=1_795_000_360.0)
    recovered = scrape(device)
    assert value(recovered, "gatecheck_sync_consecutive_failures") == 0
    assert value(recovered, "gatecheck_sync_last_success_timestamp_seconds") == 1_795_000_300.0


def test_outbox_depth_and_the_oldest_reports_age_follow_the_queue(device):
    assert value(scrape(device), "gatecheck_outbox_depth") == 0
    with Outbox(device.data_dir) as outbox:
        first = outbox.enqueue({"kind": "incident", "category": "smoking_on_board", "surname": "ERIKSSON"},
                               str(uuid.uuid4()), at=datetime.now(timezone.utc) - timedelta(minutes=10))
        outbox.enqueue({"kind": "incident", "category": "smoking_on_board"}, str(uuid.uuid4()))
    queued = scrape(device)
    assert value(queued, "gatecheck_outbox_depth") == 2
    assert 600 <= value(queued, "gatecheck_outbox_oldest_age_seconds") < 660
    with Outbox(device.data_dir) as outbox:
        outbox.mark_sent(first)
    assert value(scrape(device), "gatecheck_outbox_depth") == 2  # sent is not acknowledged
    with Outbox(device.data_dir) as outbox:
        outbox.mark_acknowledged(first)
    drained = scrape(device)
    assert value(drained, "gatecheck_outbox_depth") == 1
    assert value(drained, "gatecheck_outbox_oldest_age_seconds") < 60


# -- in process: the rendering alone -------------------------------------------------------


def test_a_damaged_sync_db_marks_its_source_down_and_the_rest_still_scrapes(tmp_path):
    data_dir = make_data_dir(tmp_path / "device")
    state_path(data_dir).write_bytes(b"this is not an SQLite file" * 100)
    app = create_app(load_config(data_dir))
    try:
        token = (data_dir / "metrics-token").read_text().strip()
        response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        found = samples(response.get_data(as_text=True))
        assert value(found, "gatecheck_metrics_source_up", source="sync") == 0
        assert value(found, "gatecheck_metrics_source_up", source="snapshot") == 1
        assert value(found, "gatecheck_list_version", list=NOFLY) == 1
    finally:
        app.extensions["gatecheck"].close()


def test_a_list_never_verified_is_infinitely_old_and_stale(tmp_path):
    data_dir = make_data_dir(tmp_path / "device")
    with SnapshotStore(snapshot_path(data_dir)) as store:  # a list enrolment added, not yet synced
        store.put_list(ListInfo(list_id="utopia-watch", name="Watch list", authority="CAA", legal_basis="s. 14",
                                scopes=("air_travel",), default_action=Action.REFER, token_key=bytes(32)))
    app = create_app(load_config(data_dir))
    try:
        found = samples(app.extensions["gatecheck"].metrics.render()[0].decode())
        assert math.isinf(value(found, "gatecheck_list_age_seconds", list="utopia-watch"))
        assert value(found, "gatecheck_list_heartbeat_timestamp_seconds", list="utopia-watch") == 0
        assert value(found, "gatecheck_list_version", list="utopia-watch") == 0
        assert value(found, "gatecheck_lists_stale") == 1
    finally:
        app.extensions["gatecheck"].close()


def test_the_health_reports_verdict_counts_cover_the_last_day_only(tmp_path):
    from appliance.journal import Journal, verdicts_since

    assert verdicts_since(tmp_path, datetime.now(timezone.utc)) is None  # no journal yet: nothing to say
    now = datetime.now(timezone.utc)
    with Journal(tmp_path) as journal:
        for verdict, hours_ago in (("DENY", 30), ("DENY", 2), ("CLEAR", 1), ("CLEAR", 0)):
            journal.append({"verdict": verdict, "reasons": [], "matches": [], "channel": "scanner"},
                           at=now - timedelta(hours=hours_ago))
    assert verdicts_since(tmp_path, now - timedelta(days=1)) == {"CLEAR": 2, "REFER": 0, "DENY": 1, "UNREADABLE": 0}
