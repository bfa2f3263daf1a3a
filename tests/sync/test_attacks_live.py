"""The attacks of issue 4's suite, played by a hostile network against real processes.

A real `gatecheck registry serve` and real `gatecheck sync run --once` agent
processes, with tests/support/hostile_proxy.py on the path between them. The
proxy records what the registry really signed and later answers with it
replayed, altered or cut short. tests/sync/test_attacks.py covers the same
attacks, and the forged-key ones, at the trusted set's level; here the
point is the whole device: the agent refuses with one readable line, exits
1, and the store keeps its verified version and verdicts.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta

import pytest

from appliance.verdict import DEFAULT_MAX_AGE
from registry.publish import DocumentRef, EntryFields
from sync.envelope import parse_envelope
from sync.framing import FRAME_UPDATE, parse_frames
from tests.support.hostile_proxy import Answer, HostileProxy
from appliance.specimens.mrz import MRZFields, encode
from tests.sync.conftest import LIST, Device

UPDATES = f"/v1/lists/{LIST}/updates"


def person(i: int) -> tuple[EntryFields, bytes]:
    """A listed passport holder and the MRZ a counter would scan for them."""
    number, surname, dob = f"L{i:02d}X00T47", ["ERIKSSON", "LINDQVIST", "OKAFOR", "MORENO"][i], date(1970 + i, 5, 17)
    fields = EntryFields(surnames=surname.title(), given_names="Anna", reference=f"NFL-{i}",
                         category="aviation-security", date_of_birth=dob,
                         documents=(DocumentRef("P", "DEU", number),))
    mrz = encode(MRZFields("TD3", "P", "DEU", number, surname, "ANNA", dob, "F", date(2035, 1, 31), "DEU"))
    return fields, "\n".join(mrz).encode()


@pytest.fixture
def proxy(live_registry):
    with HostileProxy(live_registry.url) as p:
        yield p


@pytest.fixture
def proxy_for_clocked(clocked_registry):
    with HostileProxy(clocked_registry.url) as p:
        yield p


@pytest.fixture
def device(live_device, proxy) -> Device:
    live_device.registry_url = proxy.url
    return live_device


def held(device: Device) -> tuple[int, bytes]:
    with device.store() as store:
        assert store.check_integrity() == []
        info = store.get_list(LIST)
        return info.version, info.state_digest


def verdict(device: Device, scan: bytes) -> str:
    proc = device.gatecheck("check", input=scan)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["verdict"]


def refused(device: Device, *words: str) -> str:
    """Run the agent; it must fail with readable error lines that name the attack, and no traceback."""
    run = device.run_agent()
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert errors, run.stderr
    assert any(all(w in line for w in words) for line in errors), run.stderr
    return run.stderr


def replay(recorded: Answer):
    """Answer every updates request with ``recorded``, whatever version it asks from."""
    return lambda path, answer: dataclasses.replace(recorded, path=path) if path.startswith(UPDATES) else answer


def envelope_of(answer: Answer):
    (kind, envelope, _), *_ = parse_frames(answer.body, max_envelope_bytes=1 << 16)
    assert kind == FRAME_UPDATE
    return parse_envelope(envelope)


def test_replayed_old_delta_is_refused_and_the_store_keeps_its_version(live_registry, device, proxy):
    first, first_scan = person(0)
    live_registry.api.add_entry(LIST, first, by="officer-1")
    assert device.run_agent().returncode == 0
    old_delta = proxy.last(f"{UPDATES}?since=0")
    assert envelope_of(old_delta).to_version == 1
    live_registry.api.add_entry(LIST, person(1)[0], by="officer-1")
    assert device.run_agent().returncode == 0
    before = held(device)
    assert before[0] == 2

    proxy.tamper = replay(old_delta)
    refused(device, LIST, "below held version 2")
    assert held(device) == before
    assert verdict(device, first_scan) == "DENY"
    assert verdict(device, person(1)[1]) == "DENY"


def test_rollback_to_a_heartbeat_of_a_lower_version_is_refused(live_registry, device, proxy):
    live_registry.api.add_entry(LIST, person(0)[0], by="officer-1")
    assert device.run_agent().returncode == 0
    assert device.run_agent().returncode == 0  # current now: the registry answers with a heartbeat
    old_heartbeat = proxy.last(f"{UPDATES}?since=1")
    assert envelope_of(old_heartbeat).to_version == 1
    later, later_scan = person(1)
    live_registry.api.add_entry(LIST, later, by="officer-1")
    assert device.run_agent().returncode == 0
    before = held(device)

    proxy.tamper = replay(old_heartbeat)  # "the list is back at version 1"
    refused(device, LIST, "below held version 2")
    assert held(device) == before
    assert verdict(device, later_scan) == "DENY"  # the later listing was not rolled back


def test_freeze_an_old_heartbeat_replayed_after_its_valid_until_is_refused(clocked_registry, clocked_device,
                                                                           fake_clock, proxy_for_clocked):
    """The attacker holds back every fresh answer and replays the last heartbeat an hour and more later."""
    device, proxy = clocked_device, proxy_for_clocked
    device.registry_url = proxy.url
    clocked_registry.api.add_entry(LIST, person(0)[0], by="officer-1")
    assert device.run_agent().returncode == 0
    assert device.run_agent().returncode == 0
    frozen = proxy.last(f"{UPDATES}?since=1")
    assert envelope_of(frozen).kind.name == "HEARTBEAT"
    later, later_scan = person(1)
    clocked_registry.api.add_entry(LIST, later, by="officer-1")  # the listing the attacker hides

    proxy.tamper = replay(frozen)
    fake_clock.set(2 * 3600)  # past the heartbeat's one-hour valid-until
    refused(device, LIST, "expired")
    assert verdict(device, person(2)[1]) == "CLEAR"  # within the counter's max age: still fresh
    fake_clock.set((DEFAULT_MAX_AGE + timedelta(hours=1)).total_seconds())
    refused(device, LIST, "expired")
    check = json.loads(device.gatecheck("check", input=person(2)[1]).stdout)
    assert check["snapshot"]["stale"] is True and check["verdict"] == "REFER"  # never a quiet CLEAR

    proxy.tamper = None
    assert device.run_agent().returncode == 0
    assert verdict(device, later_scan) == "DENY"


def test_mix_and_match_a_delta_for_another_from_version_is_refused(live_registry, live_device, proxy, tmp_path):
    live_registry.api.add_entry(LIST, person(0)[0], by="officer-1")
    live_device.registry_url = proxy.url
    assert live_device.run_agent().returncode == 0
    live_registry.api.add_entry(LIST, person(1)[0], by="officer-1")
    assert live_device.run_agent().returncode == 0
    one_to_two = proxy.last(f"{UPDATES}?since=1")
    assert (envelope_of(one_to_two).from_version, envelope_of(one_to_two).to_version) == (1, 2)

    newcomer = Device(tmp_path / "newcomer", live_registry)  # holds version 0
    newcomer.registry_url = proxy.url
    proxy.tamper = replay(one_to_two)
    refused(newcomer, LIST, "does not start at held version 0")
    assert held(newcomer) == (0, b"")
    assert verdict(newcomer, person(1)[1]) != "DENY"  # nothing of the mismatched delta was applied


def test_tampered_payload_under_a_valid_envelope_is_refused(live_registry, device, proxy):
    live_registry.api.add_entry(LIST, person(0)[0], by="officer-1")
    assert device.run_agent().returncode == 0
    before = held(device)
    added, scan = person(1)
    live_registry.api.add_entry(LIST, added, by="officer-1")

    def flip_a_payload_byte(path: str, answer: Answer) -> Answer:
        if not path.startswith(UPDATES):
            return answer
        (_, _, payload), *_ = parse_frames(answer.body, max_envelope_bytes=1 << 16)
        assert payload, "the answer carries a delta"
        at = answer.body.index(payload) + len(payload) // 2
        return dataclasses.replace(answer, body=answer.body[:at] + bytes([answer.body[at] ^ 0x01]) + answer.body[at + 1:])

    proxy.tamper = flip_a_payload_byte
    refused(device, LIST, "tampered")
    assert held(device) == before
    assert verdict(device, scan) == "CLEAR"

    proxy.tamper = None  # the honest answer still gets through afterwards
    assert device.run_agent().returncode == 0
    assert verdict(device, scan) == "DENY"


@pytest.mark.parametrize("on_the_wire", [False, True], ids=["framed-short", "connection-cut"])
def test_truncated_download_applies_nothing(live_registry, device, proxy, on_the_wire):
    """Cut short either consistently (a shorter body, honest length) or mid-transfer (length promised)."""
    live_registry.api.add_entry(LIST, person(0)[0], by="officer-1")
    assert device.run_agent().returncode == 0
    before = held(device)
    live_registry.api.add_entries(LIST, [person(i)[0] for i in (1, 2, 3)], by="officer-1")

    def cut(path: str, answer: Answer) -> Answer:
        if not path.startswith(UPDATES):
            return answer
        short = answer.body[: len(answer.body) // 2]
        return dataclasses.replace(answer, body=short, declared_length=len(answer.body) if on_the_wire else None)

    proxy.tamper = cut
    cut_reason = "the connection broke before the whole answer arrived" if on_the_wire else "truncated"
    stderr = refused(device, cut_reason)
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1
    assert held(device) == before
    assert verdict(device, person(2)[1]) == "CLEAR"
