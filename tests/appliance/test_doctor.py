"""`gatecheck doctor`: each check's rule on plain facts, then the command on a really provisioned device.

The rules (appliance/doctor_checks.py) take an injected clock, so stale
lists and a clock that went back are plain values there. The command runs
as a subprocess on a copy of a device provisioned against a real registry;
its clock is moved with libfaketime, as tests/sync/test_attacks_live.py does.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from appliance.doctor_checks import (
    MIB,
    Facts,
    FileFacts,
    Level,
    ListFacts,
    OutboxFacts,
    SyncFacts,
    Thresholds,
    UnitFacts,
    evaluate,
    exit_status,
)
from appliance.outbox import Outbox
from hardware.scan import STATUS_FILE, SourceState
from tests.sync.conftest import GATECHECK, LIST, REPO, FakeClock, RegistryServer

NOW = 1_800_000_000.0
HOUR = 3600.0
DEVICE = "0123456789abcdef"


def healthy(**changes) -> Facts:
    values = dict(
        now=NOW, data_dir="/var/lib/gatecheck", dir_mode=0o700, dir_uid=990,
        files=(FileFacts("device.key", 0o600, 990), FileFacts("sync.db", 0o600, 990)),
        key_id=DEVICE, enrolled_id=DEVICE,
        scanner={"state": "ok", "detail": "1 connected: front (serial)"},
        lists=(ListFacts(LIST, 12, heartbeat_at=NOW - 20, signed_at=NOW - 30, valid_until=NOW + 570),),
        sync=SyncFacts(last_success_at=NOW - 20), ntp_synchronized=True, install_time=NOW - 30 * 86400,
        disk_free=4096 * MIB, disk_total=16384 * MIB, store_bytes=20 * MIB,
        outbox=OutboxFacts(), systemd=True,
        units=tuple(UnitFacts(f"gatecheck-{name}.service", "loaded", "active", "running", "enabled")
                    for name in ("appliance", "scanner", "sync")))
    values.update(changes)
    return Facts(**values)


def finding(facts: Facts, check: str, limits: Thresholds = Thresholds()):
    found = [f for f in evaluate(facts, limits) if f.check == check]
    assert len(found) == 1, [f.check for f in evaluate(facts, limits)]
    return found[0]


# -- the rules, on plain facts ------------------------------------------------------------

def test_a_healthy_device_is_all_ok_and_exits_0():
    findings = evaluate(healthy())
    assert {f.level for f in findings} == {Level.OK}, [f for f in findings if f.level is not Level.OK]
    assert exit_status(findings) == 0


def test_a_list_past_its_max_age_fails_and_says_what_the_counter_does():
    stale = healthy(now=NOW + 25 * HOUR)
    got = finding(stale, f"list {LIST}")
    assert got.level is Level.FAIL and "out of date, CLEAR becomes REFER" in got.message
    assert exit_status(evaluate(stale)) == 1
    assert "CLEAR shows a warning" in finding(healthy(now=NOW + 25 * HOUR, fail_closed=False), f"list {LIST}").message


def test_a_list_not_proven_current_for_hours_warns_before_it_goes_stale():
    got = finding(healthy(now=NOW + 2 * HOUR), f"list {LIST}")
    assert got.level is Level.WARN and "out of date in" in got.message


def test_a_list_never_proven_current_fails():
    got = finding(healthy(lists=(ListFacts(LIST, 0),)), f"list {LIST}")
    assert got.level is Level.FAIL and "never proven current" in got.message


def test_a_clock_behind_the_newest_signed_heartbeat_fails():
    behind = healthy(now=NOW - 2 * HOUR, install_time=NOW - 30 * 86400)
    got = finding(behind, "clock")
    assert got.level is Level.FAIL and "before the newest heartbeat the registry signed" in got.message
    assert "a Pi has no RTC" in got.fix


def test_a_clock_within_the_signature_skew_of_the_heartbeat_is_fine():
    assert finding(healthy(now=NOW - 200), "clock").level is Level.OK


def test_a_clock_before_the_software_was_installed_fails():
    got = finding(healthy(lists=(), install_time=NOW + 86400), "clock")
    assert got.level is Level.FAIL and "before this software was installed" in got.message


def test_a_clock_far_past_the_newest_heartbeat_warns():
    got = finding(healthy(now=NOW + 40 * 86400), "clock")
    assert got.level is Level.WARN and "offline that long, or the clock is ahead" in got.message


def test_a_sync_that_failed_on_time_points_at_the_clock():
    error = "list nfl: heartbeat for nfl at version 3 expired at 1799990000: an old heartbeat replayed"
    got = finding(healthy(sync=SyncFacts(NOW - HOUR, error, 4)), "clock")
    assert got.level is Level.FAIL and error in got.message


@pytest.mark.parametrize("synced, level", [(True, Level.OK), (False, Level.WARN), (None, Level.INFO)])
def test_ntp_state(synced, level):
    assert finding(healthy(ntp_synchronized=synced), "ntp").level is level


@pytest.mark.parametrize("free_mib, level, says", [
    (4096, Level.OK, "4,096 MiB free"),
    (200, Level.FAIL, "below 256 MiB"),
    (300, Level.FAIL, "below 2 %"),
    (1200, Level.WARN, "below 10 %"),
    (1100, Level.WARN, "below 10 %"),
])
def test_disk_thresholds(free_mib, level, says):
    got = finding(healthy(disk_free=free_mib * MIB), "disk")
    assert got.level is level and says in got.message


def test_disk_too_small_for_a_fresh_snapshot_of_the_lists_warns():
    got = finding(healthy(store_bytes=2000 * MIB), "disk")
    assert got.level is Level.WARN and "a full snapshot of the lists would need about 6,064 MiB" in got.message


def test_a_lower_disk_threshold_given_on_the_command_line_is_used():
    small_card = healthy(disk_free=200 * MIB, disk_total=4096 * MIB)
    assert finding(small_card, "disk").level is Level.FAIL
    assert finding(small_card, "disk", Thresholds(disk_fail_bytes=100 * MIB)).level is Level.WARN


def test_a_nearly_full_filesystem_fails_by_percentage_too():
    got = finding(healthy(disk_free=300 * MIB, disk_total=100_000 * MIB), "disk")
    assert got.level is Level.FAIL and got.message.endswith("below 2 %")


@pytest.mark.parametrize("age, level", [(600, Level.OK), (2 * HOUR, Level.WARN), (30 * HOUR, Level.FAIL)])
def test_outbox_backlog_by_the_age_of_the_oldest_report(age, level):
    got = finding(healthy(outbox=OutboxFacts(3, NOW - age, "POST /v1/incidents: connection refused")), "outbox")
    assert got.level is level and got.message.startswith("3 report(s) waiting") and "connection refused" in got.message


@pytest.mark.parametrize("state, level", [
    ({"state": "ok", "detail": "1 connected"}, Level.OK),
    ({"state": "disconnected", "detail": "front (serial) disconnected: unplugged"}, Level.FAIL),
    ({"state": "not running", "detail": "no word from the scanner daemon for 5 min"}, Level.FAIL),
    ({"state": "unknown", "detail": "no scanner daemon has reported on this device"}, Level.WARN),
])
def test_scanner_states(state, level):
    got = finding(healthy(scanner=state), "scanner")
    assert got.level is level and got.message == state["detail"] and (level is Level.OK or got.fix)


def test_units_failed_stopped_or_missing():
    units = (UnitFacts("gatecheck-appliance.service", "loaded", "failed", "failed", "enabled"),
             UnitFacts("gatecheck-scanner.service", "loaded", "inactive", "dead", "disabled"),
             UnitFacts("gatecheck-sync.service", "not-found", "inactive", "dead", ""))
    facts = healthy(units=units)
    assert finding(facts, "gatecheck-appliance").level is Level.FAIL
    assert "journalctl -u gatecheck-appliance.service" in finding(facts, "gatecheck-appliance").fix
    assert finding(facts, "gatecheck-scanner").level is Level.WARN  # a counter may have no scanner
    assert finding(facts, "gatecheck-sync").level is Level.WARN and "not-found" in finding(facts, "gatecheck-sync").message
    assert finding(healthy(units=(UnitFacts("gatecheck-sync.service", "loaded", "inactive"),)),
                   "gatecheck-sync").level is Level.FAIL


def test_not_under_systemd_is_information_not_a_failure():
    got = finding(healthy(systemd=False, units=()), "units")
    assert got.level is Level.INFO and got.message.startswith("not under systemd")


@pytest.mark.parametrize("facts, says, fix", [
    (healthy(files=(FileFacts("device.key", 0o644, 990),)), "device.key is mode 644", "the key may have leaked"),
    (healthy(files=(FileFacts("sync.db", 0o600, 0),)), "sync.db belongs to uid 0", "chown 990"),
    (healthy(dir_mode=0o755), "is mode 755", "chmod 700 /var/lib/gatecheck"),
])
def test_private_files_open_to_others_or_owned_by_another_user_fail(facts, says, fix):
    got = finding(facts, "files")
    assert got.level is Level.FAIL and says in got.message and fix in got.fix


@pytest.mark.parametrize("facts, says", [
    (healthy(enrolled_id=None), "is not enrolled"),
    (healthy(key_id="fedcba9876543210"), "but device.key is device fedcba9876543210"),
    (healthy(key_id=None, key_problem="device.key is not an Ed25519 private key"), "not an Ed25519"),
])
def test_enrolment_problems_fail_with_the_provision_command_to_run(facts, says):
    got = finding(facts, "enrolment")
    assert got.level is Level.FAIL and says in got.message and "gatecheck provision" in got.fix


def test_a_data_directory_that_does_not_exist_is_one_failure_not_a_cascade():
    findings = evaluate(Facts(now=NOW, data_dir="/nowhere"))
    assert [f.check for f in findings if f.level is Level.FAIL] == ["data dir"]


# -- the command, on a provisioned device ------------------------------------------------------

@pytest.fixture(scope="module")
def provisioned(tmp_path_factory) -> Path:
    """A device data directory provisioned with `gatecheck provision` against a live registry (read-only template)."""
    base = tmp_path_factory.mktemp("doctor")
    server = RegistryServer(base / "registry")
    server.start()
    try:
        done = subprocess.run([*GATECHECK, "provision", "--data-dir", str(base / "device"), "--registry",
                               server.url, "--code", server.enroll_code()], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    return base / "device"


@pytest.fixture
def device(provisioned, tmp_path) -> Path:
    copy = tmp_path / "device"
    shutil.copytree(provisioned, copy, symlinks=True)
    write_scanner_status(copy, updated_at=time.time())
    return copy


def write_scanner_status(data_dir: Path, *, updated_at: float, connected: bool = True) -> None:
    """The status file in the shape the scanner daemon writes it (hardware/daemon.py status())."""
    source = SourceState("front", "serial", "usb 05e0:1200 S/N 42", connected=connected,
                         detail="" if connected else "unplugged")
    document = {"format": 1, "running": True, "pid": 1, "started_at": updated_at - 60, "updated_at": updated_at,
                "appliance": {"url": "http://127.0.0.1:8470", "reachable": True, "detail": ""}, "queued": 0,
                "sources": [source.to_dict()]}
    (data_dir / STATUS_FILE).write_text(json.dumps(document))


def doctor(data_dir: Path, *args: str, env: dict | None = None) -> tuple[int, dict[str, dict]]:
    """Run `gatecheck doctor --json`; returns (status, findings by check)."""
    proc = subprocess.run([*GATECHECK, "doctor", "--data-dir", str(data_dir), "--json", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})
    assert proc.stderr == "" or "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] == (proc.returncode == 0)
    return proc.returncode, {f["check"]: f for f in report["findings"]}


def test_a_freshly_provisioned_device_passes(device):
    status, found = doctor(device)
    assert status == 0, found
    assert {f["level"] for f in found.values()} <= {"OK", "INFO"}, found
    assert found["enrolment"]["level"] == "OK" and found[f"list {LIST}"]["level"] == "OK"
    assert found["scanner"]["message"].startswith("1 connected: front (serial)")


def test_the_plain_output_is_one_line_per_check_with_the_fix(device):
    (device / STATUS_FILE).unlink()
    proc = subprocess.run([*GATECHECK, "doctor", "--data-dir", str(device)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert all(line.split()[0] in ("OK", "INFO", "WARN", "FAIL") for line in lines)
    scanner = next(line for line in lines if "scanner:" in line)
    assert scanner.startswith("WARN  scanner: no scanner daemon has reported") and "-> start the scanner daemon" in scanner


def test_a_stale_snapshot_fails_when_the_clock_has_moved_a_day_on(device, tmp_path):
    clock = FakeClock(tmp_path)
    clock.set(25 * 3600)
    status, found = doctor(device, env=clock.env)
    assert status == 1
    assert found[f"list {LIST}"]["level"] == "FAIL" and "out of date" in found[f"list {LIST}"]["message"]
    assert found["clock"]["level"] == "OK"  # a day past the heartbeat: offline, not a wrong clock


def test_a_clock_behind_the_last_heartbeat_fails(device, tmp_path):
    clock = FakeClock(tmp_path)
    clock.set(-2 * 86400)  # a Pi booted without network: its clock restarted in the past
    status, found = doctor(device, env=clock.env)
    assert status == 1
    assert found["clock"]["level"] == "FAIL"
    assert "before the newest heartbeat the registry signed" in found["clock"]["message"]


def test_low_disk_below_the_threshold_fails(device):
    free_mib = shutil.disk_usage(device).free // MIB
    status, found = doctor(device, "--min-free-mib", str(free_mib + 1024))
    assert status == 1 and found["disk"]["level"] == "FAIL" and "below" in found["disk"]["message"]


def test_an_outbox_backlog_warns_with_its_depth_and_age(device):
    with Outbox(device) as outbox:
        for n in range(3):
            outbox.enqueue({"kind": "incident", "n": n}, at=datetime.now(timezone.utc) - timedelta(hours=3))
    status, found = doctor(device)
    assert status == 0 and found["outbox"]["level"] == "WARN"
    assert found["outbox"]["message"].startswith("3 report(s) waiting for the registry, the oldest for 3.0 h")


def test_a_stale_scanner_status_file_means_the_daemon_is_not_running(device):
    write_scanner_status(device, updated_at=time.time() - 600)
    status, found = doctor(device)
    assert status == 1 and found["scanner"]["level"] == "FAIL"
    assert "no word from the scanner daemon" in found["scanner"]["message"]


def test_a_disconnected_scanner_fails(device):
    write_scanner_status(device, updated_at=time.time(), connected=False)
    status, found = doctor(device)
    assert status == 1 and found["scanner"]["level"] == "FAIL" and "disconnected" in found["scanner"]["message"]


def test_a_missing_scanner_status_file_is_a_warning(device):
    (device / STATUS_FILE).unlink()
    status, found = doctor(device)
    assert status == 0 and found["scanner"]["level"] == "WARN"


def test_a_device_key_readable_by_others_fails(device):
    os.chmod(device / "device.key", 0o644)
    status, found = doctor(device)
    assert status == 1 and found["files"]["level"] == found["enrolment"]["level"] == "FAIL"
    assert found["files"]["fix"].startswith(f"chmod 600 {device}/device.key; the key may have leaked")
    assert "readable by other users" in found["enrolment"]["message"]


def test_a_bearer_token_readable_by_others_fails(device):
    (device / "api-token").write_text("scanner-token")
    os.chmod(device / "api-token", 0o644)
    status, found = doctor(device)
    assert status == 1 and found["files"]["level"] == "FAIL"
    assert "api-token" in found["files"]["message"] and "scanner-token" not in json.dumps(found)


def test_doctor_leaves_the_live_journal_byte_for_byte_as_it_was(device):
    from appliance.journal import Journal
    from appliance.journal_db import FILENAME

    with Journal(device):  # the journal a counter that has been serving holds
        pass
    journal = device / FILENAME
    before = journal.read_bytes()
    doctor(device)
    assert journal.read_bytes() == before


def test_doctor_creates_nothing_in_the_data_directory_but_sqlites_own_side_files(device):
    before = {p.name for p in device.iterdir()}
    doctor(device)
    added = {p.name for p in device.iterdir()} - before
    # a read-only WAL reader may make a database's -wal/-shm, with the database's mode (and, as root, owner)
    assert all(name.rsplit("-", 1)[0] in before and name.endswith(("-wal", "-shm")) for name in added), added
    assert all(stat.S_IMODE((device / name).stat().st_mode) == 0o600 for name in added)
    status, found = doctor(device.parent / "never-provisioned")
    assert status == 1 and found["data dir"]["level"] == "FAIL"
    assert not (device.parent / "never-provisioned").exists()
