"""The daemon's status file as the fleet view, `gatecheck doctor` and `gatecheck scanner status` read it."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from appliance.device_status import scanner_state
from hardware.cli import scanner
from appliance.private_files import write_private
from hardware.scan import STATUS_FILE, STATUS_STALE_SECONDS, SourceState


def status_document(*, updated_at: float, running: bool = True, connected: bool = True,
                    reachable: bool | None = True, queued: int = 0) -> dict:
    source = SourceState("front-desk", "serial", identity="USB 0c2e:0b61, serial 17A, at /dev/ttyACM0",
                         connected=connected, detail="open, idle 0.1 s" if connected else "disconnected: No such device")
    return {"format": 1, "running": running, "pid": 4242, "started_at": updated_at - 60, "updated_at": updated_at,
            "appliance": {"url": "http://127.0.0.1:8470/api/scan", "reachable": reachable,
                          "detail": "answering" if reachable else "connection refused"},
            "queued": queued, "queue_size": 5, "dropped": 0, "delivered": 12, "refused": 0,
            "sources": [source.to_dict()],
            "indicators": {"available": False, "detail": "no indicator pins configured", "played": {}}}


def write(data_dir, document: dict) -> None:
    write_private(data_dir / STATUS_FILE, json.dumps(document).encode())


def test_a_running_daemon_with_its_scanner_connected_is_ok(tmp_path):
    now = time.time()
    write(tmp_path, status_document(updated_at=now - 3))
    state = scanner_state(tmp_path, now=now)
    assert state == {"state": "ok", "detail": "1 connected: front-desk (serial)"}


def test_an_unplugged_scanner_is_disconnected_with_the_reason(tmp_path):
    now = time.time()
    write(tmp_path, status_document(updated_at=now, connected=False))
    state = scanner_state(tmp_path, now=now)
    assert state["state"] == "disconnected"
    assert state["detail"] == "front-desk (serial) disconnected: disconnected: No such device"


def test_an_unreachable_appliance_is_disconnected_with_the_held_scans(tmp_path):
    now = time.time()
    write(tmp_path, status_document(updated_at=now, reachable=False, queued=2))
    state = scanner_state(tmp_path, now=now)
    assert state["state"] == "disconnected" and "appliance unreachable" in state["detail"]
    assert "2 scans held" in state["detail"]


def test_a_status_file_older_than_the_stale_limit_means_the_daemon_is_not_running(tmp_path):
    now = time.time()
    write(tmp_path, status_document(updated_at=now - STATUS_STALE_SECONDS - 1))
    assert scanner_state(tmp_path, now=now)["state"] == "not running"
    assert scanner_state(tmp_path, now=now - 2)["state"] == "ok"  # the same file, when it was fresh


def test_a_daemon_that_stopped_cleanly_is_not_running_at_once(tmp_path):
    now = time.time()
    write(tmp_path, status_document(updated_at=now, running=False))
    assert scanner_state(tmp_path, now=now) == {"state": "not running", "detail": "the scanner daemon stopped 0 s ago"}


def test_a_device_where_no_daemon_ever_ran_is_unknown_as_before(tmp_path):
    state = scanner_state(tmp_path)
    assert state["state"] == "unknown" and "no scanner daemon" in state["detail"]


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"running": True})])
def test_a_damaged_status_file_is_unknown_not_an_error(tmp_path, content):
    (tmp_path / STATUS_FILE).write_text(content)
    assert scanner_state(tmp_path)["state"] == "unknown"


def test_the_state_is_what_the_sync_agent_sends_in_its_health_report(tmp_path):
    now = time.time()
    write(tmp_path, status_document(updated_at=now))
    state = scanner_state(tmp_path, now=now)
    assert set(state) == {"state", "detail"} and all(isinstance(v, str) for v in state.values())
    assert len(state["detail"]) <= 200  # registry/fleet.py shows at most 200 characters


def test_scanner_status_prints_the_file_readably_and_exits_0_when_ok(tmp_path):
    write(tmp_path, status_document(updated_at=time.time()))
    result = CliRunner().invoke(scanner, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "scanner: ok: 1 connected: front-desk (serial)"
    assert "appliance http://127.0.0.1:8470/api/scan: reachable (answering)" in lines
    assert "queued 0 of 5, delivered 12, refused 0, dropped 0" in lines
    assert "  front-desk (serial): connected, open, idle 0.1 s" in lines
    assert "    USB 0c2e:0b61, serial 17A, at /dev/ttyACM0; 0 scans" in lines


def test_scanner_status_exits_1_when_the_daemon_is_not_running(tmp_path):
    write(tmp_path, status_document(updated_at=time.time() - 600))
    result = CliRunner().invoke(scanner, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("scanner: not running: no word from the scanner daemon for 10 min")


def test_scanner_status_json_carries_the_summary_and_the_file(tmp_path):
    document = status_document(updated_at=time.time())
    write(tmp_path, document)
    result = CliRunner().invoke(scanner, ["status", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"state": scanner_state(tmp_path), "status": document}


def test_scanner_status_without_a_file_says_so(tmp_path):
    result = CliRunner().invoke(scanner, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("scanner: unknown: no scanner daemon has reported")
