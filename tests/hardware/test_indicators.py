"""Indicator patterns on gpiozero's mock pins: what each verdict does to the green LED, red LED and buzzer."""

from __future__ import annotations

import itertools
import logging

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from hardware.indicators import CLEAR, DENY, PATTERNS, QUEUED, REFER, UNREADABLE, Indicators

GREEN, RED, BUZZER = 17, 27, 22
TEMPO = 0.05  # every pattern 20x faster than on a device


@pytest.fixture
def pins():
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


@pytest.fixture
def lights(pins):
    indicators = Indicators(GREEN, RED, BUZZER, tempo=TEMPO)
    assert indicators.available
    yield indicators
    indicators.close()


def states(pins, number: int) -> list[bool]:
    return [state.state for state in pins.pin(number).states]


def played(pins, lights: Indicators, pattern: str) -> dict[str, list[bool]]:
    for number in (GREEN, RED, BUZZER):
        pins.pin(number).clear_states()
    lights.show(pattern)
    assert lights.wait_idle(5)
    return {"green": states(pins, GREEN), "red": states(pins, RED), "buzzer": states(pins, BUZZER)}


def test_clear_lights_green_with_one_short_beep(pins, lights):
    assert played(pins, lights, CLEAR) == {
        "green": [False, True, False], "red": [False], "buzzer": [False, True, False]}
    beep = pins.pin(BUZZER).states[2].timestamp  # how long it was on
    green = pins.pin(GREEN).states[2].timestamp
    assert beep < green / 5  # a short beep under a long green light


def test_refer_blinks_red_three_times_with_two_beeps(pins, lights):
    assert played(pins, lights, REFER) == {
        "green": [False],
        "red": [False, True, False, True, False, True, False],
        "buzzer": [False, True, False, True, False]}


def test_deny_holds_red_with_one_long_tone(pins, lights):
    assert played(pins, lights, DENY) == {
        "green": [False], "red": [False, True, False], "buzzer": [False, True, False]}
    tone = pins.pin(BUZZER).states[2].timestamp
    assert tone == pytest.approx(1.0 * TEMPO, abs=0.04)  # ten times the CLEAR beep


def test_unreadable_flashes_both_lights_with_three_chirps(pins, lights):
    result = played(pins, lights, UNREADABLE)
    assert result["green"] == result["red"] == [False, True, False, True, False]
    assert result["buzzer"] == [False, True, False, True, False, True, False]


def test_queued_alternates_green_and_red_with_two_long_beeps(pins, lights):
    assert played(pins, lights, QUEUED) == {
        "green": [False, True, False, True, False, True, False],
        "red": [False, True, False, True, False, True, False],
        "buzzer": [False, True, False, True, False]}


def test_every_pattern_can_be_told_apart_by_its_buzzer_alone_and_by_its_lights_alone():
    def buzz(name):
        return tuple((s.buzzer, s.seconds) for s in PATTERNS[name])

    def light(name):
        return tuple((s.green, s.red) for s in PATTERNS[name])

    for a, b in itertools.combinations(PATTERNS, 2):
        assert buzz(a) != buzz(b), (a, b)
        assert light(a) != light(b), (a, b)


def test_every_pattern_ends_with_everything_off_and_lasts_at_most_three_seconds(pins, lights):
    for name, steps in PATTERNS.items():
        assert sum(step.seconds for step in steps) <= 3.0, name
        played(pins, lights, name)
        assert not any(pins.pin(n).state for n in (GREEN, RED, BUZZER)), name


def test_a_new_verdict_cuts_the_current_pattern_short(pins):
    lights = Indicators(GREEN, RED, BUZZER, tempo=1.0)  # DENY would hold red for 3 s
    try:
        lights.show(DENY)
        for _ in range(100):
            if pins.pin(RED).state:
                break
            lights.wait_idle(0.01)
        lights.show(CLEAR)
        for _ in range(200):
            if pins.pin(GREEN).state:
                break
            lights.wait_idle(0.01)
        assert pins.pin(GREEN).state and not pins.pin(RED).state
    finally:
        lights.close()
    assert not any(pins.pin(n).state for n in (GREEN, RED, BUZZER))


def test_only_the_fitted_outputs_are_driven(pins):
    lights = Indicators(buzzer=BUZZER, tempo=TEMPO)
    try:
        lights.show(DENY)
        assert lights.wait_idle(5)
        assert states(pins, BUZZER) == [False, True, False]
        assert lights.status()["played"] == {DENY: 1}
    finally:
        lights.close()


def test_no_pins_configured_is_not_an_error_just_one_info_line(caplog):
    with caplog.at_level(logging.INFO, logger="hardware.indicators"):
        lights = Indicators()
    lights.show(DENY)
    assert lights.wait_idle(1)
    assert not lights.available and lights.detail == "no indicator pins configured"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    lights.close()


def test_a_machine_without_gpio_is_not_an_error(monkeypatch, caplog):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    previous = Device.pin_factory
    Device.pin_factory = None  # let gpiozero look for real GPIO, which this test machine lacks
    try:
        with caplog.at_level(logging.INFO, logger="hardware.indicators"):
            lights = Indicators(GREEN, RED, BUZZER)
        if lights.available:  # pragma: no cover - running on a Raspberry Pi
            lights.close()
            pytest.skip("this machine has GPIO")
        lights.show(CLEAR)
        assert "no GPIO on this machine" in lights.detail
        assert [r.levelname for r in caplog.records] == ["INFO"]
        lights.close()
    finally:
        Device.pin_factory = previous


def test_a_pin_that_does_not_exist_turns_indicators_off_with_a_warning(pins, caplog):
    with caplog.at_level(logging.INFO, logger="hardware.indicators"):
        lights = Indicators(GREEN, 99, BUZZER)
    assert not lights.available and "pins unusable" in lights.detail
    assert any(r.levelname == "WARNING" for r in caplog.records)
    lights.show(CLEAR)
    lights.close()
    assert not pins.pin(GREEN).state
