"""The camera source through a real video file the test writes: OpenCV decodes it, frame by frame.

No camera is needed: VideoCapture reads an MJPG .avi exactly as it reads a
webcam, and the source times a file's frames by their own timestamps.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.camera_source import CameraSource
from hardware.scan import CAMERA
from tests.support.images import AAMVA_CALIFORNIA, BCBP_SINGLE_LEG, place_in_frame, render, render_pdf417

SIZE = (640, 480)
FPS = 30


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    for gray in frames:
        writer.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def blank(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(140, 6, (SIZE[1], SIZE[0])), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def licence_frame() -> np.ndarray:
    return place_in_frame(render_pdf417(AAMVA_CALIFORNIA, module_px=2), size=SIZE)


def run_to_end(source: CameraSource) -> list:
    scans = []
    stop = threading.Event()
    worker = threading.Thread(target=source.run, args=(scans.append, stop))
    worker.start()
    worker.join(60)
    stop.set()
    assert not worker.is_alive(), "a video file source must end at the end of the file"
    return scans


def test_a_licence_shown_for_a_second_taken_away_and_shown_again_is_exactly_two_scans(tmp_path, licence_frame):
    frames = [licence_frame] * 30 + [blank()] * 45 + [licence_frame] * 30
    video = write_video(tmp_path / "counter.avi", frames)
    source = CameraSource("counter-camera", str(video), fps=10, hold_seconds=1.0)

    scans = run_to_end(source)

    assert [scan.payload for scan in scans] == [AAMVA_CALIFORNIA, AAMVA_CALIFORNIA]
    assert all(scan.channel == CAMERA and scan.source == "counter-camera" and scan.image is None for scan in scans)
    assert source.state.scans == 2 and source.state.connected is False
    assert source.state.detail == "end of the video file"


def test_only_fps_frames_a_second_are_decoded_and_every_frame_is_still_read(tmp_path, licence_frame):
    video = write_video(tmp_path / "held.avi", [licence_frame] * 60)  # two seconds at 30 fps
    source = CameraSource("cam", str(video), fps=5)

    scans = run_to_end(source)

    assert len(scans) == 1
    assert source.frames_read == 60
    assert source.frames_decoded == 10  # 5 a second for 2 s: every sixth frame


def test_a_code_shown_for_less_than_a_decode_slot_can_be_missed_but_never_doubled(tmp_path, licence_frame):
    # shown for 3 frames (0.1 s) at fps=5: at most one scan, never two
    frames = [blank()] * 10 + [licence_frame] * 3 + [blank()] * 10
    source = CameraSource("cam", str(write_video(tmp_path / "flash.avi", frames)), fps=5)
    assert len(run_to_end(source)) <= 1


def test_a_looped_file_gives_the_code_once_per_pass(tmp_path):
    code = place_in_frame(render(BCBP_SINGLE_LEG, "Aztec", module_px=4), size=SIZE)
    video = write_video(tmp_path / "loop.avi", [blank()] * 40 + [code] * 20)
    source = CameraSource("cam", str(video), fps=10, loop=True)
    scans: list = []
    stop = threading.Event()

    def emit(scan):
        scans.append(scan)
        if len(scans) == 3:
            stop.set()

    worker = threading.Thread(target=source.run, args=(emit, stop))
    worker.start()
    worker.join(60)
    stop.set()
    assert [scan.payload for scan in scans] == [BCBP_SINGLE_LEG] * 3
    assert source.state.detail == "stopped"


def test_a_camera_that_cannot_be_opened_reports_disconnected_and_retries_until_stopped(tmp_path):
    source = CameraSource("cam", "/dev/video63", retry_seconds=0.05)
    stop = threading.Event()
    worker = threading.Thread(target=source.run, args=(lambda scan: None, stop))
    worker.start()
    try:
        for _ in range(100):
            if source.state.detail.startswith("cannot open"):
                break
            stop.wait(0.02)
        assert source.state.connected is False
        assert source.state.detail.startswith("cannot open")
        assert source.state.identity == "/dev/video63"
    finally:
        stop.set()
        worker.join(5)
    assert not worker.is_alive()
