"""The daemon's pure rules: what an appliance answer means, and which held scans are kept."""

from __future__ import annotations

import pytest

from hardware.daemon import Answer, HeldScans, interpret
from hardware.scan import Scan


def scan(n: int) -> Scan:
    return Scan(source="front-desk", payload=b"payload %d" % n)


def test_a_verdict_is_delivered_whether_clear_or_unreadable():
    assert interpret(200, {"verdict": "DENY", "seq": 7}) == Answer(verdict="DENY", seq=7)
    assert interpret(422, {"verdict": "UNREADABLE", "seq": 8, "error": "bad checksum"}) == Answer(
        verdict="UNREADABLE", seq=8)


@pytest.mark.parametrize("status, body", [
    (422, {"error": {"code": "no_barcode", "message": "no barcode was found"}}),
    (413, {"error": {"code": "too_large", "message": "..."}}),
    (400, {}),
])
def test_an_answer_without_a_verdict_is_refused_and_not_sent_again(status, body):
    answer = interpret(status, body)
    assert answer.refused is not None and answer.unreachable is None and answer.verdict is None
    if body:
        assert body["error"]["code"] in answer.refused


@pytest.mark.parametrize("status", [500, 502, 503, 404, 401])
def test_a_failing_or_foreign_or_locked_appliance_keeps_the_scan(status):
    answer = interpret(status, {})
    assert answer.unreachable is not None and answer.verdict is None and answer.refused is None


def test_held_scans_keep_their_order():
    held = HeldScans(5)
    for n in range(3):
        held.add(scan(n), now=n)
    assert [h.scan for h in held] == [scan(0), scan(1), scan(2)]
    assert held.pop().scan == scan(0) and held.head().scan == scan(1)


def test_a_full_queue_drops_the_oldest_scan_the_person_long_gone():
    held = HeldScans(2)
    assert held.add(scan(1), now=0) is None
    assert held.add(scan(2), now=1) is None
    dropped = held.add(scan(3), now=2)
    assert dropped is not None and dropped.scan == scan(1) and dropped.since == 0
    assert [h.scan for h in held] == [scan(2), scan(3)] and held.dropped == 1


def test_a_queue_holds_at_least_one_scan():
    with pytest.raises(ValueError):
        HeldScans(0)
