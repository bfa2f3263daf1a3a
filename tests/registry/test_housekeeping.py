"""Scheduled work: an expired entry's removal is published and audited, once, by one process."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timezone

import pytest
from click.testing import CliRunner

from appliance.records import Action
from registry.audit import AuditLog
from registry.cli import registry as registry_cli
from registry.db import RegistryError, make_engine
from registry.housekeeping import EXPIRY_ACTOR, Housekeeper, Lease
from registry.publish import DocumentRef, EntryFields, Registry
from registry.server import RegistryPaths
from registry.signing import Signer

LIST = "da-ban"
NOON_28_NOV = datetime(2026, 11, 28, 12, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(path)]).exit_code == 0
    return path


def open_registry(data_dir, clock) -> Registry:
    paths = RegistryPaths(data_dir)
    return Registry(make_engine(paths.database_url), Signer.from_files(paths.signing_key, paths.signing_cert),
                    clock=clock)


def listed(registry: Registry, reference: str, until: date, since: date = date(2019, 1, 1)) -> int:
    return registry.add_entry(LIST, EntryFields(
        surnames="Eriksson", given_names="Anna", reference=reference, category="smoking_on_board",
        date_of_birth=date(1970, 5, 17), documents=(DocumentRef("P", "SWE", f"L8989{reference[-2:]}C3"),),
        valid_from=since, valid_until=until), by="reviewer-1")


@pytest.fixture
def world(data_dir):
    clock = Clock(NOON_28_NOV)
    registry = open_registry(data_dir, clock)
    registry.create_list(LIST, name="Demo Air ban", authority="Demo Air", legal_basis="Conditions of carriage",
                         scopes=["air_travel"], default_action=Action.DENY, by="admin")
    return registry, AuditLog(registry.engine), clock


def test_entry_past_its_valid_until_is_removed_by_one_audited_publish(world):
    registry, audit, clock = world
    gone = listed(registry, "RPT-01", date(2026, 11, 27))
    kept = listed(registry, "RPT-02", date(2026, 11, 28))  # valid through today
    report = Housekeeper(registry, audit, clock=clock).run_once(holder="worker-1")
    assert report.expired == {LIST: 1} and report.failures == []
    assert registry.current_version(LIST) == 3
    with registry.engine.connect() as conn:
        statuses = dict(conn.exec_driver_sql("SELECT entry_id, status FROM entries").all())
    assert statuses == {gone: "expired", kept: "active"}
    [record] = [r for r in audit.records() if r.action == "entry.expire"]
    assert record.actor == EXPIRY_ACTOR and json.loads(record.after) == {"version": 3, "entries": [gone]}
    assert Housekeeper(registry, audit, clock=clock).run_once(holder="worker-1").expired == {}


def test_two_processes_never_run_the_same_pass(world):
    registry, audit, clock = world
    listed(registry, "RPT-01", date(2026, 11, 1))
    first, second = (Housekeeper(registry, audit, clock=clock, every_seconds=300) for _ in range(2))
    assert first.run_once(holder="worker-1") is not None
    assert second.run_once(holder="worker-2") is None  # the lease is worker-1's for 300 s
    clock.now += 301
    assert second.run_once(holder="worker-2") is not None


def test_lease_taken_by_many_threads_at_once_goes_to_exactly_one(data_dir):
    engine = make_engine(RegistryPaths(data_dir).database_url)
    lease = Lease(engine, "race")
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def grab(i: int) -> None:
        barrier.wait()
        results.append(lease.take(f"holder-{i}", now=1_000, seconds=60))

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]


def test_a_failing_job_is_one_line_and_the_other_jobs_still_run(world):
    registry, audit, clock = world
    keeper = Housekeeper(registry, audit, clock=clock)

    def broken(now: float) -> int:
        raise RegistryError("the clearance register is unreachable")

    keeper.add_job("clearances expired", broken)
    keeper.add_job("device reports filed", lambda now: 2)
    report = keeper.run_once(holder="worker-1")
    assert report.failures == ["clearances expired: the clearance register is unreachable"]
    assert report.counts == {"device reports filed": 2}


def test_the_thread_runs_a_pass_soon_after_start(world):
    registry, audit, clock = world
    listed(registry, "RPT-01", date(2026, 11, 1))
    keeper = Housekeeper(registry, audit, clock=clock, every_seconds=3600)
    keeper.start(first_after=0.05)
    try:
        deadline = threading.Event()
        for _ in range(100):
            if registry.current_version(LIST) == 2:
                break
            deadline.wait(0.05)
    finally:
        keeper.stop()
    assert registry.current_version(LIST) == 2


def test_cli_pass_publishes_expiry_and_refuses_a_directory_that_is_no_registry(world, data_dir, tmp_path):
    registry, _, _ = world
    listed(registry, "RPT-01", date(2020, 1, 1))
    result = CliRunner().invoke(registry_cli, ["housekeeping", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert f"expired 1 entries on {LIST}" in result.output and "device reports filed: 0" in result.output
    assert "clearances expired: 0" in result.output
    result = CliRunner().invoke(registry_cli, ["housekeeping", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "not a registry data directory" in result.output
