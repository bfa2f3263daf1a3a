"""What every scanner source hands the scanner daemon, and what the daemon says about them.

A *source* (serial port, keyboard-wedge scanner, camera, demo replay) turns
hardware events into :class:`Scan` values. It never talks HTTP: the daemon
(hardware/daemon.py) posts each scan to the appliance's local API. Keeping
the seam this narrow lets every driver be tested with no appliance running,
and the daemon with no hardware.

The daemon publishes its state in ``<data_dir>/scanner-status.json``
(:data:`STATUS_FILE`), written atomically. appliance/device_status.py
reads it for the fleet view and ``gatecheck doctor`` reads it for the
counter's IT staff; a file older than :data:`STATUS_STALE_SECONDS` means the
daemon is not running.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

#: The channel a scan is journaled under (appliance/verdict.py CHANNELS).
SCANNER = "scanner"
CAMERA = "camera"

STATUS_FILE = "scanner-status.json"
#: The daemon rewrites its status at least this often; older means it is gone.
STATUS_STALE_SECONDS = 30.0


@dataclass(frozen=True)
class Scan:
    """One read: the payload bytes exactly as the device gave them (without framing).

    ``image`` is set instead of ``payload`` when a source hands over a picture
    for the appliance to decode (a replayed photo of a damaged barcode).
    """

    source: str
    payload: bytes = b""
    channel: str = SCANNER
    image: bytes | None = None
    image_type: str = "image/png"


@dataclass
class SourceState:
    """What one source reports about itself; shown in the status file."""

    name: str
    kind: str  # "serial", "keyboard", "camera", "replay"
    identity: str = ""  # e.g. USB vendor:product and serial number, or the device path
    connected: bool = False
    detail: str = ""
    last_scan_at: float | None = None
    scans: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "identity": self.identity,
                "connected": self.connected, "detail": self.detail,
                "last_scan_at": self.last_scan_at, "scans": self.scans}


Emit = Callable[[Scan], None]


class Source(Protocol):
    """A scanner source: ``run`` blocks, emitting scans, until ``stop`` is set.

    ``run`` must survive its device vanishing (report ``connected=False`` in
    ``state`` and retry), and return promptly (within about a second) once
    ``stop`` is set.
    """

    state: SourceState

    def run(self, emit: Emit, stop: threading.Event) -> None: ...


def deliver_frames(state: SourceState, frames: list, emit: Emit, log: logging.Logger) -> None:
    """Framed reads (hardware/framing.py) of a byte-stream scanner, as scans; a dropped frame is logged.

    Shared by the serial and keyboard-wedge sources, whose reads are framed
    the same way.
    """
    from hardware.framing import Dropped

    for frame in frames:
        if isinstance(frame, Dropped):
            state.detail = frame.reason
            log.warning("scanner %s: %s", state.name, frame.reason)
            continue
        state.scans += 1
        state.last_scan_at = time.time()
        emit(Scan(source=state.name, payload=frame, channel=SCANNER))
