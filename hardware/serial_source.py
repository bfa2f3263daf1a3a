"""Serial and USB CDC-ACM scanners: the byte-exact source, preferred for AAMVA.

A scanner in serial (or USB "virtual COM port") mode sends the barcode's bytes
as they are, so RS, GS, LF and CR inside an AAMVA payload reach the appliance
unchanged, which a keyboard wedge cannot promise. This module only moves
bytes: framing.py decides where a read ends, and the daemon posts each
payload to the appliance.

Unplugging is normal at a counter. The source then reports
``connected=False`` with a one-line reason, retries every
``reconnect_seconds``, and logs the disconnect and the reconnect once each.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
from typing import Callable

import serial
from serial.tools import list_ports

from hardware.framing import Framer, Framing
from hardware.scan import Emit, SourceState, deliver_frames

log = logging.getLogger(__name__)

#: The longest ``run`` sleeps between looks at ``stop`` (the contract asks for ~1 s).
MAX_WAIT_SECONDS = 0.2
#: How often an idle open port checks that its device path still exists.
PATH_CHECK_SECONDS = 1.0

PARITIES = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN, "odd": serial.PARITY_ODD,
            "mark": serial.PARITY_MARK, "space": serial.PARITY_SPACE}
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1, 1.5, 2)
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


class SerialSource:
    """Reads payloads from one serial scanner; implements hardware/scan.py ``Source``.

    Options (all keyword, with defaults):

    - ``port``: device path; prefer the udev name ``/dev/gatecheck-scanner-serial``
      (udev/70-gatecheck-scanner.rules) or a ``/dev/serial/by-id/...`` link,
      which survive re-plugging.
    - ``baudrate=9600``, ``bytesize=8``, ``parity="none"``, ``stopbits=1``:
      must match the scanner (USB CDC-ACM ignores them).
    - ``framing=Framing()``: idle-time framing (100 ms), safe for AAMVA;
      see framing.py and docs/scanners.md for suffix/prefix framing.
    - ``reconnect_seconds=2.0``: pause between attempts to reopen the port.
    """

    kind = "serial"

    def __init__(self, name: str, port: str, *, baudrate: int = 9600, bytesize: int = 8,
                 parity: str = "none", stopbits: float = 1, framing: Framing | None = None,
                 reconnect_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not port:
            raise ValueError("port must name the scanner's device path")
        if baudrate not in BAUDRATES:
            raise ValueError(f"baudrate must be one of {', '.join(map(str, BAUDRATES))}, "
                             f"not {baudrate!r}")
        if bytesize not in BYTESIZES:
            raise ValueError(f"bytesize must be 5, 6, 7 or 8, not {bytesize!r}")
        if parity not in PARITIES:
            raise ValueError(f"parity must be one of {', '.join(PARITIES)}, not {parity!r}")
        if stopbits not in STOPBITS:
            raise ValueError(f"stopbits must be 1, 1.5 or 2, not {stopbits!r}")
        if not 0.1 <= reconnect_seconds <= 3600:
            raise ValueError(f"reconnect_seconds must be from 0.1 to 3600, not {reconnect_seconds!r}")
        framing = Framing() if framing is None else framing
        if not framing.ends_reads:
            raise ValueError("serial framing needs a suffix or idle_seconds, or reads never end")
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.framing = framing
        self.reconnect_seconds = reconnect_seconds
        self.clock = clock
        self.state = SourceState(name=name, kind=self.kind, identity=port,
                                 detail="not opened yet")

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Read until ``stop`` is set, reopening the port whenever it goes away."""
        failure: str | None = None  # the reason last logged, so a retry loop logs once
        while not stop.is_set():
            try:
                port = self._open()
            except (serial.SerialException, OSError) as exc:
                reason = _reason(exc)
                self.state.connected = False
                self.state.detail = f"cannot open {self.port}: {reason}"
                if failure != reason:
                    log.warning("scanner %s: %s; retrying every %g s", self.name,
                                self.state.detail, self.reconnect_seconds)
                    failure = reason
                stop.wait(self.reconnect_seconds)
                continue
            failure = None
            self.state.identity = port_identity(self.port)
            self.state.connected = True
            self.state.detail = f"open, {self.framing.describe()}"
            log.info("scanner %s: connected to %s (%s)", self.name, self.port,
                     self.state.identity)
            framer = Framer(self.framing)
            try:
                self._read(port, framer, emit, stop)
            except (serial.SerialException, OSError) as exc:
                lost = framer.discard()
                self.state.connected = False
                self.state.detail = f"disconnected: {_reason(exc)}" + (
                    f" ({lost} bytes of a read lost)" if lost else "")
                log.warning("scanner %s: %s", self.name, self.state.detail)
                # Reopening an unplugged device fails with ENOENT: already said.
                failure = os.strerror(errno.ENOENT)
                stop.wait(min(self.reconnect_seconds, MAX_WAIT_SECONDS))
            finally:
                port.close()
        self.state.connected = False
        self.state.detail = "stopped"

    def _open(self) -> serial.Serial:
        # timeout=0: reads never block; select() below does the waiting, so
        # stop and idle deadlines are honoured to the millisecond.
        return serial.Serial(self.port, baudrate=self.baudrate, bytesize=self.bytesize,
                             parity=PARITIES[self.parity], stopbits=self.stopbits,
                             timeout=0, exclusive=True)

    def _read(self, port: serial.Serial, framer: Framer, emit: Emit,
              stop: threading.Event) -> None:
        fd = port.fileno()
        next_path_check = self.clock() + PATH_CHECK_SECONDS
        while not stop.is_set():
            now = self.clock()
            deadline = framer.deadline()
            wait = MAX_WAIT_SECONDS if deadline is None else min(max(deadline - now, 0.0),
                                                                   MAX_WAIT_SECONDS)
            readable, _, _ = select.select([fd], [], [], wait)
            now = self.clock()
            if readable:
                # A readable port with no data is a hang-up: pyserial raises.
                data = port.read(max(port.in_waiting, 1))
                items = framer.feed(data, now)
            else:
                items = framer.poll(now)
            deliver_frames(self.state, items, emit, log)
            if now >= next_path_check:
                next_path_check = now + PATH_CHECK_SECONDS
                if not os.path.exists(self.port):
                    raise OSError(errno.ENODEV, "device path vanished")

def port_identity(path: str) -> str:
    """USB vendor:product, serial number and product name of the port, else its path.

    serial.tools.list_ports reads these from sysfs on Linux; a pseudo-terminal
    or a plain UART has none, so the path (and what a symlink points at) is
    the identity.
    """
    real = os.path.realpath(path)
    try:
        ports = list(list_ports.comports())
    except OSError:
        ports = []
    for info in ports:
        if os.path.realpath(info.device) != real or info.vid is None:
            continue
        parts = [f"USB {info.vid:04x}:{info.pid:04x}"]
        if info.serial_number:
            parts.append(f"serial {info.serial_number}")
        product = " ".join(p for p in (info.manufacturer, info.product) if p)
        if product:
            parts.append(product)
        parts.append(f"at {info.device}")
        return ", ".join(parts)
    return path if real == path else f"{path} -> {real}"


def _reason(exc: BaseException) -> str:
    """One line for the log and the status file, not pyserial's nested repr."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, serial.SerialException):
        if code in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(exc):
            return "another program has the port open (exclusive lock)"
        # pyserial's open errors nest the OSError text; its errno is enough.
        if isinstance(code, int) and code:
            return os.strerror(code)
    elif isinstance(exc, OSError) and (exc.strerror or code):
        return exc.strerror or os.strerror(code)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
