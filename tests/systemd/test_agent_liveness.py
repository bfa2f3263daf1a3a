"""The sync agent's liveness: the watchdog ping reaches every long wait, and a stop ends a download.

In-process against the real registry app (tests/sync/test_agent.py's World);
``alive`` is the hook `gatecheck sync run` wires to the watchdog ping.
"""

from __future__ import annotations

import configparser
import threading
import time
from pathlib import Path

from registry.publish import PublishConfig
from sync.agent import AgentConfig
from sync.cli import HTTP_TIMEOUT, fit_to_watchdog
from tests.sync.test_agent import LIST, World

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def _seconds(value: str) -> float:
    units = {"min": 60, "s": 1, "ms": 0.001}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_the_sync_units_watchdog_leaves_the_long_poll_and_http_timeout_as_they_are():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((UNITS / "gatecheck-sync.service").read_text())
    budget = _seconds(unit["Service"]["WatchdogSec"]) / 2  # pings come at most this often
    wait, timeout = fit_to_watchdog(budget, wait=AgentConfig().long_poll_wait, timeout=HTTP_TIMEOUT)
    assert (wait, timeout) == (AgentConfig().long_poll_wait, HTTP_TIMEOUT)
    assert timeout < budget  # the longest wait the loop cannot interrupt fits between two pings


def test_a_short_watchdog_shortens_the_long_poll_so_one_http_wait_fits_between_pings():
    assert fit_to_watchdog(None, wait=25, timeout=40) == (25, 40)
    assert fit_to_watchdog(30, wait=25, timeout=40) == (10, 25)
    assert fit_to_watchdog(1, wait=25, timeout=40) == (0, 5)  # floor: a registry gets 5 s to answer


def test_the_agent_pings_all_through_a_long_backoff_and_stops_within_a_slice(tmp_path):
    world = World(tmp_path)
    world.fetcher.down = "connection refused"  # every run fails: the next poll is 30 s or more away
    stop = threading.Event()
    pings: list[float] = []

    def alive() -> None:
        pings.append(time.monotonic())
        if len(pings) == 50:
            stop.set()

    agent = world.agent(backoff_base=30)
    agent.alive, agent.wait_slice = alive, 0.01
    started = time.monotonic()
    agent.run_forever(stop)
    assert time.monotonic() - started < 5
    assert world.state.status().failures == 1  # one run, then the backoff, pinging every slice
    assert max(b - a for a, b in zip(pings, pings[1:])) < 1


def test_a_stop_during_a_snapshot_download_abandons_it_without_recording_a_failure(tmp_path):
    world = World(tmp_path, PublishConfig(max_chain_deltas=1))
    for n in range(3):  # three versions, one delta per chain: the device needs a snapshot
        world.list_traveller(reference=f"NFL-2024-0001234{n}", number=f"C01X00T4{n}")
    pings, armed = 0, True

    def alive() -> None:
        nonlocal pings
        pings += 1
        if armed and any(world.device_dir.glob(".snapshot-*.download")):
            agent.stop.set()  # SIGTERM while the payload streams to disk

    agent = world.agent()
    agent.alive = alive
    report = agent.run_once()
    assert agent.stop.is_set() and report.ok and report.snapshots == [] and pings > 0
    assert world.store.get_list(LIST).version == 0
    assert not list(world.device_dir.glob(".snapshot-*"))  # the partial download is gone
    assert world.state.status().failures == 0 and world.state.status().last_error is None
    armed = False
    agent.stop.clear()
    assert agent.run_once().snapshots == [LIST]  # the next run downloads it again
    assert world.store.get_list(LIST).version == 3
