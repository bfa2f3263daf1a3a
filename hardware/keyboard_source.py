"""HID keyboard-wedge scanners, read through evdev and grabbed away from the kiosk.

A wedge scanner is a USB keyboard. Left alone, its keystrokes would land in
whatever the kiosk browser has focused; so the source takes the device with
EVIOCGRAB (linux/input.h): while it is held, no other reader (X, Wayland, the
console) receives its events. The keys are decoded back to text with
keymap.py and cut into reads with framing.py, by the Enter key, an inter-key
timeout, or both.

Prefer serial mode for AAMVA where the scanner offers it (serial_source.py):
a wedge can only send what its layout can type. Unplugging behaves as for
serial: ``connected=False`` with a reason, a retry every
``reconnect_seconds``, one log line per disconnect and reconnect.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
from typing import Any, Callable, Iterable

import evdev
from evdev import ecodes

from hardware.framing import DEFAULT_MAX_BYTES, Dropped, Framer, Framing
from hardware.keymap import KeyDecoder, layout_named
from hardware.scan import Emit, SourceState, deliver_frames

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 0.2
PATH_CHECK_SECONDS = 1.0
ENTER_MODES = ("end", "cr")
#: Enter ends a read; 0.5 s with no key also ends one, so a read whose Enter
#: was lost cannot glue itself to the next document.
DEFAULT_FRAMING = Framing(suffix=None, idle_seconds=0.5, max_bytes=DEFAULT_MAX_BYTES)


class WedgeStream:
    """Pure: key events in, payloads out, for one device.

    ``enter="end"``: the Enter key ends a read and is not part of it (the
    scanner's suffix). ``enter="cr"``: Enter types CR into the payload, for
    scanners that send CR in data as the Enter key; then only ``framing``
    (its idle time or suffix) ends a read.
    """

    def __init__(self, layout: str = "us", *, enter: str = "end",
                 framing: Framing = DEFAULT_FRAMING, encoding: str = "utf-8") -> None:
        if enter not in ENTER_MODES:
            raise ValueError(f"enter must be 'end' or 'cr', not {enter!r}")
        if enter == "cr" and not framing.ends_reads:
            raise ValueError("with enter = 'cr' the framing needs idle_seconds or a suffix, "
                             "or reads never end")
        try:
            "".encode(encoding)  # fail now, not on the first scan
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}") from None
        self.decoder = KeyDecoder(layout_named(layout))
        self.framer = Framer(framing)
        self.enter = enter
        self.encoding = encoding
        self.unknown: list[str] = []  # keys that could not be decoded since the last take

    def event(self, event: Any, now: float) -> list[bytes | Dropped]:
        """Feed one evdev event (anything with ``type``, ``code``, ``value``) arriving at ``now``."""
        if event.type != ecodes.EV_KEY:
            return self.framer.poll(now)
        result = self.decoder.key(event.code, event.value)
        if result.unknown:
            self.unknown.append(result.unknown)
        out: list[bytes | Dropped] = []
        if result.text:
            out += self.framer.feed(result.text.encode(self.encoding, "replace"), now)
        if result.enter:
            if self.enter == "end":
                out += self.framer.end()
            else:
                out += self.framer.feed(b"\r", now)
        return out or self.framer.poll(now)

    def events(self, events: Iterable[Any], now: float) -> list[bytes | Dropped]:
        out: list[bytes | Dropped] = []
        for event in events:
            out += self.event(event, now)
        return out

    def poll(self, now: float) -> list[bytes | Dropped]:
        return self.framer.poll(now)

    def deadline(self) -> float | None:
        return self.framer.deadline()

    def reset(self) -> int:
        """Start afresh after a reconnect; return the bytes of a read that was cut off."""
        self.decoder.reset()
        return self.framer.discard()


class KeyboardSource:
    """Reads payloads from one keyboard-wedge scanner; implements hardware/scan.py ``Source``.

    Options (all keyword, with defaults):

    - ``device``: the evdev node; prefer the udev name
      ``/dev/gatecheck-scanner-kbd`` or a ``/dev/input/by-id/...-event-kbd``
      link, which survive re-plugging. Never a node of a real keyboard.
    - ``layout="us"``: the layout the scanner is programmed to type
      (``"us"`` or ``"de"``; keymap.LAYOUTS).
    - ``enter="end"``: the Enter key ends a read; ``"cr"``: it types CR.
    - ``framing=DEFAULT_FRAMING``: inter-key timeout 0.5 s, no suffix; use
      ``Framing(idle_seconds=0.15)`` with ``enter="cr"`` for timeout framing.
    - ``encoding="utf-8"``: how decoded text becomes payload bytes.
    - ``reconnect_seconds=2.0``: pause between attempts to reopen the device.

    ``open_device`` (tests only) replaces ``evdev.InputDevice``.
    """

    kind = "keyboard"

    def __init__(self, name: str, device: str, *, layout: str = "us", enter: str = "end",
                 framing: Framing | None = None, encoding: str = "utf-8",
                 reconnect_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 open_device: Callable[[str], Any] | None = None) -> None:
        if not device:
            raise ValueError("device must name the scanner's evdev node")
        if not 0.1 <= reconnect_seconds <= 3600:
            raise ValueError(f"reconnect_seconds must be from 0.1 to 3600, not {reconnect_seconds!r}")
        self.name = name
        self.device = device
        self.layout = layout
        self.enter = enter
        self.framing = DEFAULT_FRAMING if framing is None else framing
        self.encoding = encoding
        self.reconnect_seconds = reconnect_seconds
        self.clock = clock
        self.open_device = open_device or evdev.InputDevice
        self.stream = WedgeStream(layout, enter=enter, framing=self.framing, encoding=encoding)
        self.state = SourceState(name=name, kind=self.kind, identity=device,
                                 detail="not opened yet")

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Read until ``stop`` is set, reopening and re-grabbing the device whenever it goes away."""
        failure: str | None = None
        while not stop.is_set():
            try:
                device = self._open()
            except OSError as exc:
                reason = _reason(exc)
                self.state.connected = False
                self.state.detail = f"cannot open {self.device}: {reason}"
                if failure != reason:
                    log.warning("scanner %s: %s; retrying every %g s", self.name,
                                self.state.detail, self.reconnect_seconds)
                    failure = reason
                stop.wait(self.reconnect_seconds)
                continue
            failure = None
            self.state.identity = device_identity(device)
            self.state.connected = True
            self.state.detail = f"grabbed, layout {self.layout}, {self._describe_framing()}"
            log.info("scanner %s: connected to %s (%s), grabbed", self.name, self.device,
                     self.state.identity)
            try:
                self._read(device, emit, stop)
            except OSError as exc:
                lost = self.stream.reset()
                self.state.connected = False
                self.state.detail = f"disconnected: {_reason(exc)}" + (
                    f" ({lost} bytes of a read lost)" if lost else "")
                log.warning("scanner %s: %s", self.name, self.state.detail)
                failure = os.strerror(errno.ENOENT)  # reopening an unplugged device: already said
                stop.wait(min(self.reconnect_seconds, MAX_WAIT_SECONDS))
            finally:
                _release(device)
        self.state.connected = False
        self.state.detail = "stopped"

    def _open(self) -> Any:
        device = self.open_device(self.device)
        try:
            device.grab()
        except OSError as exc:
            device.close()
            if exc.errno == errno.EBUSY:
                raise OSError(errno.EBUSY, "another program has grabbed the device") from None
            raise
        return device

    def _read(self, device: Any, emit: Emit, stop: threading.Event) -> None:
        next_path_check = self.clock() + PATH_CHECK_SECONDS
        reported: set[str] = set()
        while not stop.is_set():
            now = self.clock()
            deadline = self.stream.deadline()
            wait = MAX_WAIT_SECONDS if deadline is None else min(max(deadline - now, 0.0),
                                                                   MAX_WAIT_SECONDS)
            readable, _, _ = select.select([device.fileno()], [], [], wait)
            now = self.clock()
            if readable:
                try:
                    events = list(device.read())
                except BlockingIOError:
                    events = []
                items = self.stream.events(events, now)
            else:
                items = self.stream.poll(now)
            deliver_frames(self.state, items, emit, log)
            for key in self.stream.unknown:
                if key not in reported:  # once per key per connection: no log spam
                    reported.add(key)
                    log.warning("scanner %s: cannot decode %s with layout %s; skipped",
                                self.name, key, self.layout)
            self.stream.unknown.clear()
            if now >= next_path_check:
                next_path_check = now + PATH_CHECK_SECONDS
                if not os.path.exists(self.device):
                    raise OSError(errno.ENODEV, "device path vanished")

    def _describe_framing(self) -> str:
        ends = ["Enter"] if self.enter == "end" else []
        ends += [self.framing.describe()] if self.framing.ends_reads else []
        return "reads end at " + " or ".join(ends)


def device_identity(device: Any) -> str:
    """USB vendor:product, name, physical path and unique id, from the evdev device info."""
    info = device.info
    bus = "USB" if info.bustype == ecodes.BUS_USB else f"bus {info.bustype:#x}"
    parts = [f"{bus} {info.vendor:04x}:{info.product:04x}"]
    if device.name:
        parts.append(repr(device.name))
    if device.phys:
        parts.append(f"phys {device.phys}")
    if device.uniq:
        parts.append(f"uniq {device.uniq}")
    parts.append(f"at {device.path}")
    return ", ".join(parts)


def _release(device: Any) -> None:
    """Ungrab and close, quietly: an unplugged device has nothing left to release."""
    try:
        device.ungrab()
    except OSError:
        pass
    try:
        device.close()
    except OSError:
        pass


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENODEV and exc.strerror:
        return exc.strerror if exc.strerror != os.strerror(errno.ENODEV) else "device unplugged"
    if exc.errno:
        return exc.strerror or os.strerror(exc.errno)
    return str(exc) or type(exc).__name__
