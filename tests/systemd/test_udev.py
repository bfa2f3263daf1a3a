"""udev/70-gatecheck-scanner.rules: stable names, the scanner group, never `input`.

There is no udev daemon on the CI machine (and `udevadm verify` is newer
than Debian 12's systemd 252), so these read the rules as text: every
assignment is checked, comments are not.
"""

from __future__ import annotations

import re

from tests.systemd.units import UDEV, UNITS, parse_unit, values

RULES = UDEV / "70-gatecheck-scanner.rules"
NAMES = {"gatecheck-scanner-serial", "gatecheck-scanner-kbd", "gatecheck-camera"}


def rules() -> list[str]:
    return [line.strip() for line in RULES.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]


def test_no_rule_ever_gives_a_device_the_input_group():
    assert not [line for line in RULES.read_text().splitlines() if re.search(r'GROUP\s*[:+]?=\s*"input"', line)]


def test_every_named_device_gets_the_scanner_group_and_mode_0660():
    named = [line for line in rules() if "SYMLINK+=" in line]
    assert {re.search(r'SYMLINK\+="([^"]+)"', line).group(1) for line in named} == NAMES
    grouped = [line for line in rules() if "GROUP=" in line]
    assert grouped and all('GROUP="gatecheck-scanner"' in line and 'MODE="0660"' in line for line in grouped)
    # The keyboard's named interface is among the event devices the group rule covers.
    assert any('KERNEL=="event*"' in line and 'GROUP="gatecheck-scanner"' in line for line in grouped)


def test_the_example_scanners_match_nothing_until_the_it_team_fills_in_their_ids():
    products = [re.search(r'ATTRS\{idProduct\}=="([^"]+)"', line).group(1) for line in rules() if "idProduct" in line]
    assert products and all(p == "PPPP" for p in products)  # 'PPPP' is no hex id: no device matches it


def test_the_scanner_unit_may_open_every_kind_of_node_the_rules_name():
    """serial -> ttyACM/ttyUSB, keyboard -> input, camera -> video4linux (/proc/devices class names)."""
    allowed = {v.split()[0] for v in values(parse_unit(UNITS / "gatecheck-scanner.service"), "Service", "DeviceAllow")}
    subsystems = {re.search(r'SUBSYSTEM=="([^"]+)"', line).group(1) for line in rules()
                  if "SUBSYSTEM==" in line and "GROUP=" in line}
    needs = {"tty": {"char-ttyACM", "char-ttyUSB"}, "input": {"char-input"}, "video4linux": {"char-video4linux"}}
    assert subsystems == set(needs)
    for subsystem in subsystems:
        assert needs[subsystem] <= allowed, subsystem


def test_the_kiosk_compositor_is_told_to_ignore_the_scanners_key_events():
    """The grab protects the browser only while the daemon runs; libinput must never open the scanner."""
    events = [line for line in rules() if 'SUBSYSTEM=="input"' in line and "GROUP=" in line]
    assert events and all('ENV{LIBINPUT_IGNORE_DEVICE}="1"' in line for line in events)
