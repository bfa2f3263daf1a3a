"""SerialSource through a real pseudo-terminal pair: exact bytes, every framing, unplug and replug.

The pty's slave side is a real tty that pyserial opens and configures like a
/dev/ttyACM0; the test writes to the master side as the scanner would.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("serial")

from hardware.framing import Framing  # noqa: E402
from hardware.scan import Scan  # noqa: E402
from hardware.serial_source import SerialSource, port_identity  # noqa: E402
from tests.support.polling import wait_for  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"
AAMVA = (SAMPLES / "licence-ca.txt").read_bytes()
AAMVA_ON = (SAMPLES / "licence-on.txt").read_bytes()
BCBP = (SAMPLES / "boarding-pass.txt").read_bytes()
MRZ = (SAMPLES / "passport-td3.txt").read_bytes()


class Pty:
    """A scanner on the far end of a pseudo-terminal."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)  # the source opens it by name, as it would /dev/ttyACM0

    def send(self, data: bytes, chunks: list[int] = (), gap: float = 0.0) -> None:
        """Write ``data`` cut at the given sizes (cycled), pausing ``gap`` between pieces."""
        sizes = list(chunks) or [len(data)]
        at, i = 0, 0
        while at < len(data):
            piece = data[at:at + sizes[i % len(sizes)]]
            os.write(self.master, piece)
            at += len(piece)
            i += 1
            if gap:
                time.sleep(gap)

    def unplug(self) -> None:
        os.close(self.master)


class Running:
    def __init__(self, source) -> None:
        self.source = source
        self.scans: list[Scan] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=source.run, args=(self.scans.append, self.stop))
        self.thread.start()
        self.payloads = lambda: [s.payload for s in self.scans]

    def finish(self) -> float:
        started = time.monotonic()
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return time.monotonic() - started


@pytest.fixture
def pty():
    scanner = Pty()
    yield scanner
    try:
        os.close(scanner.master)
    except OSError:
        pass


def _run(pty: Pty, framing: Framing | None, sends) -> list[bytes]:
    source = SerialSource("counter-1", pty.path, framing=framing)
    run = Running(source)
    try:
        wait_for(lambda: source.state.connected)
        expected = 0
        for data, chunks, gap, count in sends:
            pty.send(data, chunks, gap)
            expected += count
            wait_for(lambda: len(run.scans) >= expected)
    finally:
        run.finish()
    return run.payloads()


def test_idle_framing_default_passes_aamva_bytes_exactly_in_odd_chunks(pty):
    sends = [(AAMVA, [1, 7, 64, 3], 0.0, 1), (AAMVA_ON, [5, 250], 0.002, 1), (MRZ, [13], 0.0, 1)]
    assert _run(pty, None, sends) == [AAMVA, AAMVA_ON, MRZ]


def test_eot_suffix_the_payload_cannot_contain_keeps_back_to_back_aamva_exact(pty):
    framing = Framing(suffix=b"\x04", idle_seconds=None)
    stream = AAMVA + b"\x04" + AAMVA_ON + b"\x04" + AAMVA + b"\x04"
    assert _run(pty, framing, [(stream, [11, 3, 97], 0.0, 3)]) == [AAMVA, AAMVA_ON, AAMVA]


def test_stx_prefix_and_etx_suffix_are_stripped(pty):
    framing = Framing(prefix=b"\x02", suffix=b"\x03", idle_seconds=None)
    stream = b"\x02" + AAMVA + b"\x03\x02" + BCBP + b"\x03"
    assert _run(pty, framing, [(stream, [2, 5], 0.0, 2)]) == [AAMVA, BCBP]


@pytest.mark.parametrize("suffix", [b"\r", b"\n", b"\r\n"])
def test_cr_lf_suffixes_frame_payloads_without_line_breaks(pty, suffix):
    framing = Framing(suffix=suffix, idle_seconds=None)
    stream = (BCBP + suffix) * 2 + b"M1SHORT" + suffix
    assert _run(pty, framing, [(stream, [9, 1, 30], 0.0, 3)]) == [BCBP, BCBP, b"M1SHORT"]


def test_crlf_suffix_would_tear_aamva_which_is_why_it_is_not_the_default(pty):
    framing = Framing(suffix=b"\r\n", idle_seconds=None)
    torn = AAMVA.replace(b"DCK", b"\r\nDCK", 1)  # a payload that happens to hold CR LF
    payloads = _run(pty, framing, [(torn + b"\r\n", [], 0.0, 2)])
    assert len(payloads) == 2 and AAMVA not in payloads


def test_over_long_read_is_dropped_and_reported_not_emitted(pty, caplog):
    caplog.set_level(logging.WARNING, logger="hardware.serial_source")
    framing = Framing(suffix=b"\x04", idle_seconds=None, max_bytes=256)
    payloads = _run(pty, framing, [(b"x" * 10_000 + b"\x04" + BCBP + b"\x04", [4096], 0.0, 1)])
    assert payloads == [BCBP]
    assert any("read of 10000 bytes exceeds max_bytes 256" in r.getMessage() for r in caplog.records)


def test_unplug_reports_disconnected_and_replug_reconnects_through_the_same_link(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hardware.serial_source")
    link = tmp_path / "gatecheck-scanner"
    first = Pty()
    link.symlink_to(first.path)
    source = SerialSource("counter-1", str(link), reconnect_seconds=0.1)
    run = Running(source)
    second = None
    try:
        wait_for(lambda: source.state.connected)
        assert source.state.identity == f"{link} -> {first.path}"
        first.send(AAMVA, [100])
        wait_for(lambda: run.scans)

        first.unplug()
        link.unlink()
        wait_for(lambda: not source.state.connected)
        assert source.state.detail.startswith("disconnected: ")
        assert "\n" not in source.state.detail
        time.sleep(0.5)  # several reopen attempts fail meanwhile

        second = Pty()
        link.symlink_to(second.path)
        wait_for(lambda: source.state.connected)
        assert source.state.identity == f"{link} -> {second.path}"
        second.send(AAMVA_ON, [3, 70])
        wait_for(lambda: len(run.scans) == 2)
    finally:
        run.finish()
        if second:
            second.unplug()
    assert run.payloads() == [AAMVA, AAMVA_ON]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("connected to" in m for m in messages) == 2
    assert sum("disconnected" in m for m in messages) == 1
    assert sum("cannot open" in m for m in messages) == 0  # the retries are silent


def test_vanished_link_alone_is_noticed_as_a_disconnect(tmp_path, pty):
    link = tmp_path / "scanner"
    link.symlink_to(pty.path)
    source = SerialSource("counter-1", str(link), reconnect_seconds=0.1)
    run = Running(source)
    try:
        wait_for(lambda: source.state.connected)
        link.unlink()
        wait_for(lambda: not source.state.connected, timeout=3)
        assert source.state.detail == "disconnected: device path vanished"
        link.symlink_to(pty.path)
        wait_for(lambda: source.state.connected, timeout=3)
    finally:
        run.finish()


def test_missing_port_is_one_line_logged_once_and_stop_is_prompt(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hardware.serial_source")
    source = SerialSource("counter-1", str(tmp_path / "nothing"), reconnect_seconds=0.1)
    run = Running(source)
    time.sleep(0.5)
    assert run.finish() < 1.0
    assert source.state.connected is False
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"scanner counter-1: cannot open {tmp_path / 'nothing'}: "
                        "No such file or directory; retrying every 0.1 s"]


def test_stop_while_connected_returns_within_a_second(pty):
    source = SerialSource("counter-1", pty.path, reconnect_seconds=30)
    run = Running(source)
    wait_for(lambda: source.state.connected)
    assert run.finish() < 1.0
    assert source.state.detail == "stopped"


def test_port_identity_without_usb_information_is_the_path(pty):
    assert port_identity(pty.path) == pty.path


def test_port_identity_names_usb_vendor_product_serial_and_model(tmp_path, pty, monkeypatch):
    """list_ports reads sysfs, which has no USB scanner here: stand in for its answer."""
    from serial.tools import list_ports, list_ports_common

    info = list_ports_common.ListPortInfo(pty.path, skip_link_detection=True)
    info.vid, info.pid, info.serial_number = 0x0C2E, 0x0B61, "21157B0123"
    info.manufacturer, info.product = "Honeywell", "Xenon 1950g"
    monkeypatch.setattr(list_ports, "comports", lambda: [info])
    link = tmp_path / "gatecheck-scanner-serial"
    link.symlink_to(pty.path)
    assert port_identity(str(link)) == (f"USB 0c2e:0b61, serial 21157B0123, Honeywell Xenon 1950g, "
                                        f"at {pty.path}")


def test_port_held_by_another_program_is_reported_as_such(pty):
    import serial

    holder = serial.Serial(pty.path, exclusive=True)
    try:
        source = SerialSource("counter-1", pty.path, reconnect_seconds=0.1)
        run = Running(source)
        wait_for(lambda: "cannot open" in source.state.detail)
        detail = source.state.detail
        run.finish()
    finally:
        holder.close()
    assert detail == f"cannot open {pty.path}: another program has the port open (exclusive lock)"


def test_read_cut_off_by_unplug_is_reported_not_emitted(pty):
    source = SerialSource("counter-1", pty.path, framing=Framing(suffix=b"\x04", idle_seconds=None),
                          reconnect_seconds=30)
    run = Running(source)
    try:
        wait_for(lambda: source.state.connected)
        pty.send(AAMVA[:100])
        time.sleep(0.1)
        pty.unplug()
        wait_for(lambda: not source.state.connected)
        detail = source.state.detail
    finally:
        run.finish()
    assert run.scans == []
    assert detail.startswith("disconnected: ") and detail.endswith(" (100 bytes of a read lost)")


@pytest.mark.parametrize("kwargs, words", [
    ({"baudrate": 9601}, "baudrate"),
    ({"parity": "N"}, "parity"),
    ({"bytesize": 9}, "bytesize"),
    ({"stopbits": 3}, "stopbits"),
    ({"reconnect_seconds": 0}, "reconnect_seconds"),
    ({"framing": Framing(suffix=None, idle_seconds=None)}, "reads never end"),
])
def test_bad_options_are_refused_at_construction(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SerialSource("counter-1", "/dev/gatecheck-scanner", **kwargs)
