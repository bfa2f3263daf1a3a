"""The camera's pure rules: one scan per presented code, and at most ``fps`` decoded frames a second."""

from __future__ import annotations

import pytest

from hardware.camera_source import FrameGate, describe_device
from hardware.dedupe import Deduper

LICENCE = b"@\n\x1e\rANSI 636014100001DL"
PASS = b"M1DESMARAIS/LUC       EABC123"


def sightings(deduper: Deduper, seen: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    return [(t, payload) for t, payload in seen if deduper.seen(payload, t)]


def test_a_code_held_in_view_for_three_seconds_at_30_fps_is_one_scan():
    deduper = Deduper(hold=1.0)
    frames = [(i / 30, LICENCE) for i in range(90)]
    assert sightings(deduper, frames) == [(0.0, LICENCE)]


def test_frames_where_the_decoder_missed_the_code_do_not_split_a_presentation():
    deduper = Deduper(hold=1.0)
    # seen, then missed for 0.6 s (glare), then seen again: still the same card
    frames = [(0.0, LICENCE), (0.1, LICENCE), (0.7, LICENCE), (1.5, LICENCE), (2.4, LICENCE)]
    assert sightings(deduper, frames) == [(0.0, LICENCE)]


def test_the_same_code_shown_again_after_a_gap_counts_again():
    deduper = Deduper(hold=1.0)
    frames = [(0.0, LICENCE), (0.5, LICENCE), (1.6, LICENCE), (1.9, LICENCE)]
    assert sightings(deduper, frames) == [(0.0, LICENCE), (1.6, LICENCE)]


def test_the_gap_is_measured_from_the_last_sighting_not_the_first():
    deduper = Deduper(hold=1.0)
    frames = [(0.0, LICENCE), (0.9, LICENCE), (1.8, LICENCE), (2.7, LICENCE)]
    assert sightings(deduper, frames) == [(0.0, LICENCE)]


def test_two_documents_alternating_are_each_one_scan():
    deduper = Deduper(hold=1.0)
    frames = [(t / 10, LICENCE if t % 2 else PASS) for t in range(20)]
    assert sightings(deduper, frames) == [(0.0, PASS), (0.1, LICENCE)]


def test_a_looped_video_whose_clock_restarts_counts_the_code_again():
    deduper = Deduper(hold=1.0)
    assert deduper.seen(LICENCE, 5.0)
    assert deduper.seen(LICENCE, 0.0)


def test_memory_is_bounded_however_many_codes_pass():
    deduper = Deduper(hold=10.0, max_tracked=4)
    for i in range(100):
        deduper.seen(b"code %d" % i, i * 0.01)
    assert len(deduper) == 4


def test_a_hold_that_is_not_positive_is_refused():
    with pytest.raises(ValueError):
        Deduper(hold=0)


def test_a_30_fps_stream_at_10_fps_decodes_every_third_frame():
    gate = FrameGate(10)
    due = [i for i in range(30) if gate.due(i / 30)]
    assert due == list(range(0, 30, 3))


def test_frame_timestamps_rounded_by_the_container_still_land_on_the_grid():
    gate = FrameGate(10)
    times = [round(i * 33.333333) / 1000 for i in range(12)]  # milliseconds, rounded as in files
    assert [i for i, t in enumerate(times) if gate.due(t)] == [0, 3, 6, 9]


def test_after_a_slow_decode_the_gate_does_not_let_a_burst_through():
    gate = FrameGate(5)  # every 0.2 s
    assert gate.due(0.0)
    assert gate.due(0.9)  # the decoder was busy for 0.9 s
    assert not gate.due(0.95) and not gate.due(1.05)
    assert gate.due(1.1)


def test_no_fps_limit_decodes_every_frame():
    gate = FrameGate(None)
    assert all(gate.due(i / 30) for i in range(10))


def test_a_stream_url_is_logged_without_its_password():
    shown = describe_device("rtsp://admin:hunter2@192.0.2.7:554/stream1?token=abc")
    assert shown == "rtsp://192.0.2.7:554/stream1"
    assert "hunter2" not in shown and "admin" not in shown and "abc" not in shown


def test_an_ipv6_stream_address_keeps_its_brackets():
    assert describe_device("rtsp://user:pw@[fd00::7]:8554/live") == "rtsp://[fd00::7]:8554/live"
