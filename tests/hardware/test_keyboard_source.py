"""KeyboardSource: grab, read loop, unplug and replug, with a stand-in for the missing hardware.

The machine has no input devices and no /dev/uinput, so the evdev device is
tests/support/keyboard_wedge.FakeInputDevice (a real pipe for readiness,
synthetic events). Where /dev/uinput is usable, one test also drives a real
kernel input device.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("evdev")

from hardware.framing import Framing  # noqa: E402
from hardware.keyboard_source import KeyboardSource  # noqa: E402
from hardware.scan import Scan  # noqa: E402
from tests.support.keyboard_wedge import FakeInputDevice, Typist  # noqa: E402
from tests.support.polling import wait_for  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"
AAMVA = (SAMPLES / "licence-ca.txt").read_bytes()


class Plug:
    """A device node that can be unplugged and plugged back (a file standing in for it)."""

    def __init__(self, path: Path, **device_options) -> None:
        self.path = path
        self.options = device_options
        self.devices: list[FakeInputDevice] = []
        self.insert()

    def insert(self) -> None:
        self.path.touch()

    def remove(self) -> None:
        self.devices[-1].unplug()
        self.path.unlink()

    def open(self, path: str) -> FakeInputDevice:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        self.devices.append(FakeInputDevice(path, **self.options))
        return self.devices[-1]


class Running:
    """A source's run() on a thread, collecting what it emits."""

    def __init__(self, source) -> None:
        self.source = source
        self.scans: list[Scan] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=source.run, args=(self.scans.append, self.stop))
        self.thread.start()

    def finish(self) -> float:
        started = time.monotonic()
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return time.monotonic() - started


@pytest.fixture
def plug(tmp_path):
    return Plug(tmp_path / "gatecheck-scanner-kbd")


def test_wedge_is_grabbed_so_the_kiosk_never_sees_its_keys(plug):
    run = Running(KeyboardSource("wedge", str(plug.path), reconnect_seconds=0.1,
                                 open_device=plug.open))
    try:
        wait_for(lambda: run.source.state.connected)
        assert plug.devices[0].grabbed
        state = run.source.state
        assert state.kind == "keyboard"
        assert state.identity.startswith("USB 0c2e:0b61, 'Wedge Scanner Keyboard'")
        assert "uniq 21157B0123" in state.identity
    finally:
        run.finish()
    device = plug.devices[0]
    assert (device.grabs, device.ungrabs, device.grabbed, device.closed) == (1, 1, False, True)
    assert run.source.state.connected is False


def test_aamva_typed_with_ctrl_separators_reaches_the_daemon_byte_exact(plug):
    run = Running(KeyboardSource("wedge", str(plug.path), open_device=plug.open))
    try:
        wait_for(lambda: run.source.state.connected)
        typist = Typist("us")
        events = typist.type_payload(AAMVA)
        for at in range(0, len(events), 37):  # delivered in odd batches, as the kernel may
            plug.devices[0].push(events[at:at + 37])
        plug.devices[0].push(typist.type_payload(b"M1SECOND"))
        wait_for(lambda: len(run.scans) == 2)
    finally:
        run.finish()
    assert [s.payload for s in run.scans] == [AAMVA, b"M1SECOND"]
    assert {s.source for s in run.scans} == {"wedge"} and {s.channel for s in run.scans} == {"scanner"}
    assert run.source.state.scans == 2 and run.source.state.last_scan_at is not None


def test_inter_key_timeout_ends_a_read_without_enter(plug):
    source = KeyboardSource("wedge", str(plug.path), layout="de", enter="cr",
                            framing=Framing(idle_seconds=0.1), open_device=plug.open)
    run = Running(source)
    try:
        wait_for(lambda: source.state.connected)
        plug.devices[0].push(Typist("de", cr_as_enter=True).type_payload(AAMVA, enter=False))
        wait_for(lambda: run.scans)
    finally:
        run.finish()
    assert [s.payload for s in run.scans] == [AAMVA]


def test_unplugged_wedge_reports_disconnected_and_is_regrabbed_on_replug(plug, caplog):
    caplog.set_level(logging.INFO, logger="hardware.keyboard_source")
    source = KeyboardSource("wedge", str(plug.path), reconnect_seconds=0.1, open_device=plug.open)
    run = Running(source)
    try:
        wait_for(lambda: source.state.connected)
        plug.devices[0].push(Typist("us").type_payload(b"half a re", enter=False))
        time.sleep(0.05)
        plug.remove()
        wait_for(lambda: not source.state.connected)
        assert source.state.detail == "disconnected: device unplugged (9 bytes of a read lost)"
        time.sleep(0.5)  # several failed reopen attempts: logged once, not each time
        plug.insert()
        wait_for(lambda: source.state.connected)
        assert len(plug.devices) == 2 and plug.devices[1].grabbed
        plug.devices[1].push(Typist("us").type_payload(b"after replug"))
        wait_for(lambda: run.scans)
    finally:
        run.finish()
    assert [s.payload for s in run.scans] == [b"after replug"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("connected to" in m for m in messages) == 2
    assert sum("disconnected" in m for m in messages) == 1
    assert sum("cannot open" in m for m in messages) == 0
    assert plug.devices[0].closed


def test_device_grabbed_by_another_program_is_reported_in_one_line(plug, caplog):
    caplog.set_level(logging.WARNING, logger="hardware.keyboard_source")

    def grabbed_elsewhere(path):
        device = plug.open(path)
        device.grab()
        return device

    source = KeyboardSource("wedge", str(plug.path), reconnect_seconds=0.1,
                            open_device=grabbed_elsewhere)
    run = Running(source)
    try:
        wait_for(lambda: "grabbed" in source.state.detail)
        time.sleep(0.3)
    finally:
        run.finish()
    assert source.state.connected is False
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [f"scanner wedge: cannot open {plug.path}: another program has grabbed "
                        "the device; retrying every 0.1 s"]
    assert all(d.closed for d in plug.devices)


def test_missing_device_at_start_is_one_line_and_stop_is_prompt(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hardware.keyboard_source")
    plug = Plug(tmp_path / "kbd")
    plug.path.unlink()
    run = Running(KeyboardSource("wedge", str(plug.path), reconnect_seconds=30,
                                 open_device=plug.open))
    wait_for(lambda: "cannot open" in run.source.state.detail)
    assert run.finish() < 1.0
    assert [r.getMessage() for r in caplog.records] == [
        f"scanner wedge: cannot open {plug.path}: No such file or directory; retrying every 30 s"]


def test_stop_while_connected_returns_within_a_second(plug):
    run = Running(KeyboardSource("wedge", str(plug.path), open_device=plug.open))
    wait_for(lambda: run.source.state.connected)
    assert run.finish() < 1.0
    assert run.source.state.detail == "stopped"


@pytest.mark.parametrize("kwargs, words", [
    ({"layout": "dvorak"}, "unknown keyboard layout"),
    ({"enter": "tab"}, "enter must be"),
    ({"reconnect_seconds": 0}, "reconnect_seconds"),
])
def test_bad_options_are_refused_at_construction(kwargs, words):
    with pytest.raises(ValueError, match=words):
        KeyboardSource("wedge", "/dev/gatecheck-scanner-kbd", **kwargs)


def _uinput_usable() -> bool:
    return os.path.exists("/dev/uinput") and os.access("/dev/uinput", os.W_OK)


@pytest.mark.skipif(not _uinput_usable(), reason="no writable /dev/uinput on this machine")
def test_real_uinput_keyboard_is_grabbed_and_decoded():
    from evdev import UInput, ecodes as e

    with UInput({e.EV_KEY: list(range(1, 128))}, name="gatecheck-test-wedge") as ui:
        time.sleep(0.2)  # let udev create the node
        source = KeyboardSource("uinput", ui.device.path)
        run = Running(source)
        try:
            wait_for(lambda: source.state.connected)
            for event in Typist("us").type_payload(b"@ANSI 636014\x1eDL"):
                ui.write(event.type, event.code, event.value)
            wait_for(lambda: run.scans)
        finally:
            run.finish()
    assert run.scans[0].payload == b"@ANSI 636014\x1eDL"
