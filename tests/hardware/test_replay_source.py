"""The demo scanner: sample files replayed as scans, payloads byte for byte, photos as camera frames."""

from __future__ import annotations

import threading

import pytest

from hardware.replay_source import ReplayError, ReplaySource, replay_files
from hardware.scan import CAMERA, SCANNER
from tests.appliance.conftest import SAMPLES


def collect(source: ReplaySource, count: int, timeout: float = 10) -> list:
    scans: list = []
    stop = threading.Event()

    def emit(scan):
        scans.append(scan)
        if len(scans) >= count:
            stop.set()

    worker = threading.Thread(target=source.run, args=(emit, stop))
    worker.start()
    worker.join(timeout)
    stop.set()
    worker.join(5)
    return scans


def test_the_bundled_samples_replay_in_name_order_payloads_exact_and_photos_as_images():
    source = ReplaySource("demo", SAMPLES, interval_seconds=0.01, loop=False)
    scans = collect(source, 100)

    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".txt", ".png"))
    assert len(scans) == len(files)
    for scan, path in zip(scans, files):
        assert scan.source == "demo"
        if path.suffix == ".txt":
            assert (scan.channel, scan.payload, scan.image) == (SCANNER, path.read_bytes(), None)
        else:
            assert (scan.channel, scan.image, scan.image_type) == (CAMERA, path.read_bytes(), "image/png")
    assert source.state.scans == len(files) and not source.state.connected


def test_a_loop_starts_again_from_the_first_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"@\n\x1e\rANSI first")
    (tmp_path / "b.txt").write_bytes(b"second\r\n")
    source = ReplaySource("demo", tmp_path, interval_seconds=0.01)
    assert [scan.payload for scan in collect(source, 5)] == [
        b"@\n\x1e\rANSI first", b"second\r\n", b"@\n\x1e\rANSI first", b"second\r\n", b"@\n\x1e\rANSI first"]


def test_other_files_in_the_directory_are_left_alone(tmp_path):
    (tmp_path / "README.md").write_text("not a scan")
    (tmp_path / "photo.JPG").write_bytes(b"\xff\xd8 not really a jpeg")
    assert replay_files(tmp_path) == [tmp_path / "photo.JPG"]
    [scan] = collect(ReplaySource("demo", tmp_path, interval_seconds=0.01, loop=False), 1)
    assert scan.image_type == "image/jpeg"


def test_a_file_that_vanishes_is_skipped_and_said(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one")
    (tmp_path / "b.txt").write_bytes(b"two")
    source = ReplaySource("demo", tmp_path, interval_seconds=0.01, loop=False)
    (tmp_path / "a.txt").unlink()
    assert [scan.payload for scan in collect(source, 2)] == [b"two"]
    assert source.state.scans == 1


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "missing", "no such file or directory"),
    (lambda d: d, "holds no .txt, .bin, .png or .jpg file"),
    (lambda d: (d / "notes.md").write_text("x") and d / "notes.md", "not a payload"),
])
def test_nothing_replayable_is_one_clear_error(tmp_path, setup, message):
    with pytest.raises(ReplayError, match=message):
        ReplaySource("demo", setup(tmp_path))
