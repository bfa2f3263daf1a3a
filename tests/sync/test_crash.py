"""Crashes and outages with real processes (issue 4, "Attack and failure suite").

A registry server runs as `gatecheck registry serve` on 127.0.0.1, the agent
as `python -m appliance.cli sync run --once` subprocesses, killed with
SIGKILL at random moments; the device's files are real SQLite databases,
reopened after every kill exactly as the next agent would find them.
Fixtures: tests/sync/conftest.py.

GATECHECK_CRASH_CYCLES (default 100) sets the kill count of the first two
tests; GATECHECK_CRASH_SEED fixes the random kill moments.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import shutil
import subprocess
import time
from datetime import date, timedelta

from appliance.outbox import Outbox
from registry.publish import DocumentRef, EntryFields
from sync.agent_state import AgentState
from sync.digest import StateDigest
from sync.envelope import parse_envelope
from tests.sync.conftest import LIST
from appliance.specimens.mrz import MRZFields, encode

CYCLES = int(os.environ.get("GATECHECK_CRASH_CYCLES", "100"))
SEED = int(os.environ.get("GATECHECK_CRASH_SEED", str(random.randrange(1 << 32))))
#: Entries in the large version, 4 tokens each. The window "inside the apply" is the store's write
#: phase, after the digest check has staged the new state in sync.db: ~120 ms for these ~24,000
#: tokens on an idle core, more under -n 2 (3,000 entries left too short a window to hit 10 % of kills).
LARGE_CHANGE = 6000
#: A kill after the registry stored a report and before the device recorded its acknowledgement.
IN_FLIGHT = "between the registry's acknowledgement and the device's"


def _letters(i: int, width: int = 5) -> str:
    """A distinct alphabetic surname per i (digits are not part of a normalised name)."""
    return "".join(chr(ord("A") + (i // 26 ** k) % 26) for k in range(width))


def listed(i: int) -> EntryFields:
    return EntryFields(surnames="Q" + _letters(i), given_names="Alex", reference=f"NFL-{i:06d}",
                       category="aviation-security", date_of_birth=date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
                       documents=(DocumentRef("P", "DEU", f"X{i:08d}"),))


@dataclasses.dataclass(frozen=True)
class Version:
    """What the registry signed for one version: the whole token set and the post-state digest."""

    number: int
    tokens: frozenset[bytes]
    digest: bytes


def signed_version(registry, entry_ids) -> Version:
    heartbeat = parse_envelope(registry.api.heartbeat(LIST))
    tokens = frozenset().union(*(registry.api.tokens_of(i) for i in entry_ids))
    return Version(heartbeat.to_version, tokens, heartbeat.post_state_digest)


def held_version(device) -> tuple[list[str], int, frozenset[bytes], bytes, bytes]:
    """(integrity problems, version, token set, signed digest recorded, digest of the contents)."""
    with device.store() as store:
        problems = store.check_integrity()
        info = store.get_list(LIST)
        entries = list(store.iter_entries(LIST))
    return (problems, info.version, frozenset(e.token for e in entries), info.state_digest,
            StateDigest.of(entries).checksum())


def kill_at(proc, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` s after it started; False when it had already exited."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True


class KillWindow:
    """Random kill moments that home in on one phase of the agent's run (a staircase).

    Each kill comes at a uniform moment around a centre; a kill that came
    before the phase moves the centre later, one after it moves it earlier,
    and each change of direction narrows the spread (down to ``narrowest``).
    So kills keep landing in the phase, and on both of its edges, even when
    the phase is short next to the jitter of starting a process, and when the
    machine is busy and the agent runs slower or faster than calibrated.
    """

    def __init__(self, rng: random.Random, centre: float, spread: float, narrowest: float = 0.02) -> None:
        self.rng, self.centre, self.spread, self.narrowest = rng, centre, spread, narrowest
        self._last_move = 0

    def next(self) -> float:
        return max(0.02, self.rng.uniform(self.centre - self.spread, self.centre + self.spread))

    def too_early(self) -> None:
        self._move(+1)

    def too_late(self) -> None:
        self._move(-1)

    def _move(self, direction: int) -> None:
        if direction == -self._last_move:
            self.spread = max(self.narrowest, self.spread * 0.7)
        self._last_move = direction
        self.centre = max(0.05, self.centre + direction * self.spread / 3)


def test_agent_killed_mid_apply_100_times_always_leaves_a_verified_version(live_registry, live_device, tmp_path):
    """kill -9 during a large apply, CYCLES times (more on a busy machine, until a tenth of CYCLES landed
    inside the apply): the store is always at a verified version.

    Version 1 (200 entries) is installed cleanly; version 2 adds LARGE_CHANGE
    entries (about 4 tokens each) in one delta. Each cycle starts the agent
    and kills it at a random moment around the apply transaction (KillWindow,
    calibrated on a clean run of a copy), so kills land before, inside and
    after it. After each kill the store must be intact and hold exactly
    version 1 or exactly version 2: the token set and the digest of its
    contents equal what the registry signed. A cycle that reaches version 2
    resets the device to its version-1 copy, so that every cycle has the large
    apply ahead of it; the other crashes pile up on the same files. A final
    clean run reaches version 2. sync.db's staged record tells where a kill
    landed: staged with the store still at 1 means inside the apply.
    """
    rng = random.Random(SEED)
    base = live_registry.api.add_entries(LIST, [listed(i) for i in range(200)], by="officer-1")
    assert live_device.run_agent().returncode == 0
    old = signed_version(live_registry, base)
    assert held_version(live_device) == ([], 1, old.tokens, old.digest, old.digest)
    pristine = tmp_path / "device-at-v1"
    shutil.copytree(live_device.data_dir, pristine)

    large = live_registry.api.add_entries(LIST, [listed(i) for i in range(200, 200 + LARGE_CHANGE)],
                                          by="officer-1")
    new = signed_version(live_registry, [*base, *large])
    assert new.number == 2 and len(new.tokens - old.tokens) > 2 * LARGE_CHANGE

    scratch = tmp_path / "scratch"  # calibrate on a throw-away copy of the device
    shutil.copytree(pristine, scratch)
    started = time.monotonic()
    assert live_device.start_agent(scratch).wait(timeout=60) == 0
    clean_run = time.monotonic() - started
    shutil.rmtree(scratch)

    window = KillWindow(rng, centre=0.85 * clean_run, spread=0.15 * clean_run)
    outcomes: collections.Counter[str] = collections.Counter()
    cycle = 0
    # At least CYCLES kills; on a busy machine, where starting a process jitters by more than the
    # apply lasts, more (up to 3 x CYCLES) until a tenth of CYCLES have landed inside the apply.
    while cycle < CYCLES or (outcomes["inside the apply"] < CYCLES // 10 and cycle < 3 * CYCLES):
        cycle += 1
        delay = window.next()
        killed = kill_at(live_device.start_agent(), delay)
        problems, version, tokens, recorded, contents = held_version(live_device)
        context = f"cycle {cycle}, killed after {delay:.3f} s (seed {SEED})"
        assert problems == [], context
        expected = {1: old, 2: new}.get(version)
        assert expected is not None, f"{context}: store at version {version}"
        assert tokens == expected.tokens, f"{context}: version {version} with a different token set"
        assert recorded == contents == expected.digest, f"{context}: digest is not the signed one"
        with AgentState(live_device.data_dir) as state:
            staged = state.staged(LIST) is not None
        if version == 1 and not staged:
            outcome = "before the apply"
            window.too_early()
        elif version == 1:
            outcome = "inside the apply"
        else:
            outcome = "after the apply" if killed else "run completed"
            window.too_late()
            for name in os.listdir(live_device.data_dir):
                os.unlink(live_device.data_dir / name)
            shutil.copytree(pristine, live_device.data_dir, dirs_exist_ok=True)
        outcomes[outcome] += 1

    assert outcomes["inside the apply"] >= CYCLES // 10, (dict(outcomes), cycle, clean_run)
    assert live_device.run_agent().returncode == 0
    assert held_version(live_device) == ([], 2, new.tokens, new.digest, new.digest)


def test_outbox_survives_100_crash_restart_cycles_without_loss_or_duplicates(live_registry, live_device):
    """CYCLES agent runs killed with kill -9 at random: every report arrives once and is acknowledged.

    The outbox starts with 40 reports and the counter flags 3 more before
    each restart. Before each restart the registry also publishes a change, so
    every run walks the whole path (keys, a delta, then the outbox) instead of
    parking in the long-poll of a device that is current. Kills home in on
    the outbox phase (KillWindow), including the moment between the
    registry's acknowledgement and the device recording it. A final clean run
    delivers the rest. The registry must hold each report exactly once, with
    its content, from this device; the device must hold every one as
    acknowledged.
    """
    rng = random.Random(SEED)
    outbox = Outbox(live_device.data_dir)
    reports: dict[str, dict] = {}

    def flag(n: int) -> None:
        for _ in range(n):
            report = {"kind": "suspicious", "flight": f"LH{len(reports):04d}", "flight_date": "2026-11-27",
                      "narrative": f"report {len(reports)}: left a bag at the counter"}
            reports[outbox.enqueue(report)] = report

    live_registry.api.add_entry(LIST, listed(0), by="officer-1")
    started = time.monotonic()
    assert live_device.run_agent().returncode == 0  # keys and a delta, nothing in the outbox yet
    window = KillWindow(rng, centre=time.monotonic() - started, spread=0.1)

    flag(40)
    outcomes: collections.Counter[str] = collections.Counter()
    for cycle in range(CYCLES):
        live_registry.api.add_entry(LIST, listed(cycle + 1), by="officer-1")
        flag(3)
        pending = {rid for rid in reports if outbox.state(rid) != "acknowledged"}
        delay = window.next()
        killed = kill_at(live_device.start_agent(), delay)
        acknowledged = {rid for rid in pending if outbox.state(rid) == "acknowledged"}
        arrived = {rid for rid in pending if live_registry.devices.incident(rid) is not None}
        assert acknowledged <= arrived, f"cycle {cycle}: acknowledged on the device, unknown to the registry"
        if not killed:
            outcome = "run completed"
            window.too_late()
        elif not arrived:
            outcome = "before the outbox"
            window.too_early()
        elif arrived - acknowledged:
            outcome = IN_FLIGHT
        elif acknowledged == pending:
            outcome = "after the outbox"
            window.too_late()
        else:
            outcome = "while sending"
        outcomes[outcome] += 1

    assert live_device.run_agent().returncode == 0
    assert live_registry.devices.incident_count() == len(reports)  # nothing twice ...
    for report_id, report in reports.items():  # ... nothing lost, nothing altered
        incident = live_registry.devices.incident(report_id)
        assert incident["report"] == report and incident["device_id"] == live_device.device_id
        assert outbox.state(report_id) == "acknowledged"
    assert outbox.depth() == 0
    outbox.close()
    assert outcomes["while sending"] + outcomes[IN_FLIGHT] >= CYCLES // 10, dict(outcomes)


def passport(number: str, surname: str, given: str, dob: date) -> bytes:
    lines = encode(MRZFields("TD3", "P", "DEU", number, surname, given, dob, "F", date(2035, 1, 31), "DEU"))
    return "\n".join(lines).encode()


def test_registry_down_for_three_days_device_keeps_answering_and_recovers(clocked_registry, clocked_device,
                                                                         fake_clock, tmp_path):
    """The registry process stops for three days; the counter keeps deciding and recovers by itself.

    Every process (the registry server, the agent, the counter's CLI) runs on
    one libfaketime clock, which the test moves three days on while the
    server is down. Under the default fail-closed policy a CLEAR becomes
    REFER with the stale reason, and a listed traveller stays DENY.
    Meanwhile the registry publishes a listing (publishing needs the
    database, not the server). When the server is back, one agent run brings
    the device current and fresh again.
    """
    live_registry, live_device = clocked_registry, clocked_device
    listed_now = passport("C01X00T47", "ERIKSSON", "ANNA", date(1970, 5, 17))
    listed_later = passport("C01X00T48", "LINDQVIST", "PER", date(1981, 2, 3))
    traveller = passport("C01X00T49", "OKAFOR", "NGOZI", date(1990, 9, 9))
    live_registry.api.add_entry(LIST, EntryFields(
        surnames="Eriksson", given_names="Anna", reference="NFL-1", category="aviation-security",
        date_of_birth=date(1970, 5, 17), documents=(DocumentRef("P", "DEU", "C01X00T47"),)), by="officer-1")

    def check(payload: bytes) -> dict:
        path = tmp_path / "scan.txt"
        path.write_bytes(payload)
        proc = live_device.gatecheck("check", "--file", str(path))
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def status() -> str:
        proc = live_device.gatecheck("sync", "status")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.decode()

    assert live_device.run_agent().returncode == 0
    before = check(traveller)
    assert (before["verdict"], before["snapshot"]["stale"]) == ("CLEAR", False)
    assert check(listed_now)["verdict"] == "DENY"

    live_registry.stop()
    down = live_device.run_agent()
    assert down.returncode == 1 and "error:" in down.stderr
    assert check(traveller)["snapshot"]["stale"] is False  # down, but the last heartbeat still holds

    fake_clock.set(timedelta(days=3).total_seconds())
    assert live_device.run_agent().returncode == 1  # still down, three days later

    stale = check(traveller)
    assert stale["verdict"] == "REFER" and stale["snapshot"]["stale"] is True
    assert any("out of date" in reason for reason in stale["reasons"])
    still_listed = check(listed_now)
    assert still_listed["verdict"] == "DENY" and still_listed["snapshot"]["stale"] is True
    shown = status()
    assert "STALE" in shown and "failures:      2 in a row" in shown

    live_registry.api.add_entry(LIST, EntryFields(
        surnames="Lindqvist", given_names="Per", reference="NFL-2", category="aviation-security",
        date_of_birth=date(1981, 2, 3), documents=(DocumentRef("P", "DEU", "C01X00T48"),)),
        by="officer-1", now=fake_clock.now())
    live_registry.start()
    back = live_device.run_agent()
    assert back.returncode == 0, back.stderr

    fresh = check(traveller)
    assert (fresh["verdict"], fresh["snapshot"]["stale"]) == ("CLEAR", False)
    assert fresh["snapshot"]["lists"][LIST]["version"] == 2
    assert check(listed_later)["verdict"] == "DENY"
    shown = status()
    assert "fresh" in shown and "failures:      0 in a row" in shown
