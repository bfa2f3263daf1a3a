"""The demo scanner: sample documents replayed every few seconds, as if scanned at the counter.

Payload files (``.txt``, ``.bin``) are sent byte for byte, as a serial
scanner would send them (channel ``scanner``). Pictures (``.png``, ``.jpg``)
are sent as camera frames for the appliance to decode (channel ``camera``),
so a photo of a damaged barcode shows what the counter does with a code it
cannot read. Nothing else in a directory is replayed (a README stays put).

Files are read when their turn comes, so a demo set can be edited while the
daemon runs; a file that has gone is skipped with ``detail`` saying so.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterable

from hardware.scan import CAMERA, SCANNER, Emit, Scan, SourceState

log = logging.getLogger(__name__)

PAYLOAD_SUFFIXES = frozenset({".txt", ".bin"})
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
DEFAULT_INTERVAL_SECONDS = 4.0
#: A replayed file larger than this is not a scan (the appliance takes 8 MiB images, 16 KiB payloads).
MAX_FILE_BYTES = 8 * 1024 * 1024


class ReplayError(ValueError):
    """A replay path that cannot be replayed: one line naming it."""


def replay_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files to replay, in order: a directory's known files sorted by name, or the list given.

    Raises ReplayError for a missing path, an empty directory, or a listed
    file of a kind this source does not send.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) is not None)
            if not found:
                raise ReplayError(f"{path}: holds no .txt, .bin, .png or .jpg file to replay")
            files += found
        elif path.is_file():
            if _kind(path) is None:
                raise ReplayError(f"{path}: not a payload (.txt, .bin) or an image (.png, .jpg)")
            files.append(path)
        else:
            raise ReplayError(f"{path}: no such file or directory")
    if not files:
        raise ReplayError("nothing to replay")
    return files


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in PAYLOAD_SUFFIXES:
        return SCANNER
    if suffix in IMAGE_TYPES:
        return CAMERA
    return None


def scan_of(name: str, path: Path) -> Scan:
    """The scan a file stands for (raises OSError if it cannot be read)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if _kind(path) == CAMERA:
        return Scan(source=name, channel=CAMERA, image=data, image_type=IMAGE_TYPES[path.suffix.lower()])
    return Scan(source=name, payload=data, channel=SCANNER)


class ReplaySource:
    """A Source (hardware/scan.py) that emits one file every ``interval`` seconds, the first at once."""

    kind = "replay"

    def __init__(self, name: str, paths: str | Path | Iterable[str | Path], *,
                 interval_seconds: float = DEFAULT_INTERVAL_SECONDS, loop: bool = True) -> None:
        if not interval_seconds > 0:
            raise ReplayError(f"interval_seconds must be positive, got {interval_seconds!r}")
        self.name = name
        self.files = replay_files(paths)
        self.interval = float(interval_seconds)
        self.loop = loop
        where = self.files[0].parent if len({f.parent for f in self.files}) == 1 else "several directories"
        self.state = SourceState(name=name, kind=self.kind,
                                 identity=f"replay of {len(self.files)} files from {where}",
                                 detail="not started")

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.state.connected = True
        self.state.detail = f"one file every {self.interval:g} s" + (", looping" if self.loop else "")
        while not stop.is_set():
            for path in self.files:
                if stop.is_set():
                    break
                try:
                    scan = scan_of(self.name, path)
                except OSError as exc:
                    self.state.detail = f"skipped {path.name}: {getattr(exc, 'strerror', None) or exc}"
                    log.warning("replay %s: %s", self.name, self.state.detail)
                else:
                    self.state.scans += 1
                    self.state.last_scan_at = time.time()
                    emit(scan)
                stop.wait(self.interval)
            if not self.loop:
                break
        self.state.connected = False
        self.state.detail = "stopped" if stop.is_set() else "replayed every file"
