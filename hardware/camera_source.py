"""A camera (or a video file, or a stream URL) as a scanner: frames in, one scan per shown code.

OpenCV's VideoCapture opens a V4L2 camera by index or device path, a video
file, or a stream URL. Every frame is grabbed, so the decoded ones are fresh
rather than seconds old in the driver's buffer, but only ``fps`` frames a
second are retrieved and decoded: decoding is most of the CPU on a two-core
device. Each decoded frame goes to appliance/decode.py's ImageDecoder as one
gray array, and the first payload found goes through :class:`Deduper`, so a
licence held in view for three seconds is one scan, not ninety.

A live camera that cannot be opened, or stops sending frames (unplugged),
reports ``connected=False`` and is retried every ``retry_seconds``. A video
file ends at its end, or starts again with ``loop``; its frames are timed by
their own timestamps, not the wall clock, so a file decodes as fast as the
CPU allows and still gives the same scans as if it were played live.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from appliance.documents.model import MAX_PAYLOAD_BYTES
from hardware.dedupe import DEFAULT_HOLD_SECONDS, Deduper
from hardware.scan import CAMERA, Emit, Scan, SourceState

log = logging.getLogger(__name__)

DEFAULT_FPS = 5.0
DEFAULT_RETRY_SECONDS = 2.0
#: Frame timestamps within this of the next slot count as due (file timestamps are rounded).
_SLOT_SLACK = 0.001


class FrameGate:
    """Lets through at most ``fps`` frames a second of a stream timed by ``t`` (seconds).

    Pure. Slots are kept on a fixed grid while frames keep up, so a 30 fps
    file at ``fps=10`` decodes exactly every third frame; after a slow
    decode the grid restarts from the late frame instead of letting a burst
    through to catch up. ``fps=None`` lets every frame through.
    """

    def __init__(self, fps: float | None) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.period = 0.0 if fps is None else 1.0 / fps
        self._next: float | None = None
        self._last = float("-inf")

    def due(self, t: float) -> bool:
        if self._next is not None and self._last <= t and t + _SLOT_SLACK < self._next:
            return False
        on_grid = self._next is not None and self._last <= t < self._next + self.period
        self._next = (self._next if on_grid else t) + self.period  # type: ignore[operator]
        self._last = t
        return True


def _is_file(device: int | str) -> bool:
    return isinstance(device, str) and Path(device).is_file()


def describe_device(device: int | str) -> str:
    """How the device is named in logs and the status file; a URL loses any user:password."""
    if isinstance(device, int):
        name = _v4l2_name(device)
        return f"/dev/video{device}" + (f" ({name})" if name else "")
    if "://" in device:
        parts = urlsplit(device)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    if device.startswith("/dev/video") and device[len("/dev/video"):].isdigit():
        name = _v4l2_name(int(device[len("/dev/video"):]))
        return device + (f" ({name})" if name else "")
    return device


def _v4l2_name(index: int) -> str:
    """The camera's product name from sysfs (what `v4l2-ctl --list-devices` shows), if any."""
    try:
        return Path(f"/sys/class/video4linux/video{index}/name").read_text().strip()
    except OSError:
        return ""


class CameraSource:
    """A Source (hardware/scan.py) reading codes from OpenCV frames."""

    kind = "camera"

    def __init__(self, name: str, device: int | str, *, fps: float | None = DEFAULT_FPS,
                 width: int | None = None, height: int | None = None, capture_fps: float | None = None,
                 hold_seconds: float = DEFAULT_HOLD_SECONDS, loop: bool = False,
                 retry_seconds: float = DEFAULT_RETRY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (width is None) != (height is None):
            raise ValueError("give both width and height, or neither")
        self.name = name
        self.device = device
        self.fps = fps
        self.width = width
        self.height = height
        self.capture_fps = capture_fps
        self.hold_seconds = hold_seconds
        self.loop = loop
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.is_file = _is_file(device)
        self.state = SourceState(name=name, kind=self.kind, identity=describe_device(device),
                                 detail="not opened yet")
        self.frames_read = 0
        self.frames_decoded = 0
        self._decoder = None
        self._media_offset = 0.0  # a looped file's time keeps running forward
        self._said: tuple[bool, str | None] | None = None

    # -- Source -------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> None:
        import cv2

        # OpenCV would print its own warning to stderr on every failed open; ours says it once.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

        deduper = Deduper(self.hold_seconds)
        gate = FrameGate(self.fps)
        while not stop.is_set():
            capture = self._open(cv2)
            if capture is None:
                if self.is_file and not Path(self.device).is_file():
                    return  # the file is gone: nothing to retry
                stop.wait(self.retry_seconds)
                continue
            try:
                ended = self._read(cv2, capture, emit, stop, gate, deduper)
            finally:
                capture.release()
            if stop.is_set():
                break
            if self.is_file:
                if ended and self.loop:
                    continue
                self._set(False, "end of the video file")
                return
            self._set(False, "the camera stopped sending frames (unplugged?)")
            stop.wait(self.retry_seconds)
        self._set(False, "stopped")

    # -- internals ------------------------------------------------------------

    def _set(self, connected: bool, detail: str) -> None:
        """Update the state; log a change of connection once (a retry loop repeats the same failure)."""
        self.state.connected = connected
        self.state.detail = detail
        said = (connected, None if connected else detail)
        if said != self._said and detail != "stopped":
            self._said = said
            if connected:
                log.info("camera %s: connected to %s (%s)", self.name, self.state.identity, detail)
            elif self.is_file and detail.startswith("end of"):
                log.info("camera %s: %s", self.name, detail)
            else:
                log.warning("camera %s: %s: %s; retrying every %g s", self.name, self.state.identity, detail,
                            self.retry_seconds)

    def _open(self, cv2):
        source = self.device
        if isinstance(source, str) and source.startswith("/dev/video") and source[10:].isdigit():
            source = int(source[10:])
        # A camera is V4L2 on Linux: asking for it directly spares a failed FFmpeg attempt per retry.
        backend = cv2.CAP_V4L2 if isinstance(source, int) else cv2.CAP_ANY
        try:
            capture = cv2.VideoCapture(source, backend)
        except cv2.error as exc:  # pragma: no cover - OpenCV raises only for odd arguments
            self._set(False, f"cannot open: {exc}")
            return None
        if not capture.isOpened():
            capture.release()
            self._set(False, "cannot open (not connected, in use, or no permission)")
            return None
        if self.width and not self.is_file:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.capture_fps and not self.is_file:
            # Fewer frames from the camera: less USB bandwidth and less grabbing on a small CPU.
            capture.set(cv2.CAP_PROP_FPS, self.capture_fps)
        size = f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
        rate = f", decoding up to {self.fps:g} frames/s" if self.fps else ""
        self._set(True, f"{size}{rate}")
        return capture

    def _read(self, cv2, capture, emit: Emit, stop: threading.Event, gate: FrameGate, deduper: Deduper) -> bool:
        """Read until stopped (False) or the stream ends (True)."""
        last_t = self._media_offset
        frame_period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 30.0)
        while not stop.is_set():
            if not capture.grab():
                if self.is_file:
                    self._media_offset = last_t + frame_period
                return True
            self.frames_read += 1
            if self.is_file:
                last_t = self._media_offset + capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            else:
                last_t = self.clock()
            if not gate.due(last_t):
                continue
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                continue
            payload = self._decode(cv2, frame)
            if payload is not None and deduper.seen(payload, last_t):
                self.state.scans += 1
                self.state.last_scan_at = time.time()
                emit(Scan(source=self.name, payload=payload, channel=CAMERA))
        return False

    def _decode(self, cv2, frame) -> bytes | None:
        """The first payload the appliance would accept from this frame, or None."""
        from appliance.decode import DecodeError, ImageDecoder

        if self._decoder is None:
            self._decoder = ImageDecoder()
        self.frames_decoded += 1
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        try:
            barcodes = self._decoder.decode_gray(gray)
        except DecodeError:
            return None
        for barcode in barcodes:
            if 0 < len(barcode.payload) <= MAX_PAYLOAD_BYTES:
                return barcode.payload
        return None
