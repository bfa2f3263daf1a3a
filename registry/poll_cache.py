"""What a no-change poll needs, kept in memory for a moment (issue 4: >= 2,000 polls/s).

Most polls find the device current. Answering one used to cost six SQL
statements and a fresh heartbeat signature; now it costs the Ed25519 check
of the request's signature, one prepared read of the list's version
(:class:`HeadReader`, so a publish by any process is seen by the next poll)
and a few dictionary reads:

* :class:`HeartbeatCache` keeps one signed heartbeat per list for the
  current Unix second and version, and hands it to every device that polls
  in that second while the list is at that version. Its ``issued_at`` is the
  current second, exactly what a heartbeat signed for this one request would
  carry, so a device polling several server processes in turn never sees
  ``issued_at`` go backwards (the agent's rollback rule, sync/trust.py).
* :class:`HeadCache` keeps each list's version as the database had it at
  most ``max_age`` seconds ago; waiting long-polls share it instead of each
  re-reading the database.
* :class:`DeviceCache` keeps enrolled devices: their key and lists never
  change after enrolment, so they are kept; their status is re-read, as the
  set of disabled devices, at most every ``status_seconds``, so
  ``registry device disable`` takes effect within that.

Every server process has its own caches; nothing here is shared across
processes, and nothing needs to be. A publish made through this process
calls ``invalidate`` so its own waiters see it at once; a publish by another
process is seen by waiting long-polls within ``max_age``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from sqlalchemy import Engine, bindparam, select

from registry import db
from registry.devices import Device, DeviceRegistry
from sync.envelope import parse_envelope


class HeadReader:
    """A list's version, by one statement compiled once: a no-change poll's only database read.

    Run on a raw DBAPI connection from the engine's pool: building and
    executing a Core statement costs three to four times the read itself
    (docs/benchmarks.md, "Sync end to end"). The SQL is compiled for the
    engine's dialect, so it stays portable.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        compiled = select(db.lists.c.current_version).where(
            db.lists.c.list_id == bindparam("list_id")).compile(dialect=engine.dialect)
        self._sql = compiled.string
        self._positional = bool(compiled.positiontup)

    def __call__(self, list_id: str) -> int | None:
        """The version, or None for a list that is not in the database."""
        conn = self._engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(self._sql, (list_id,) if self._positional else {"list_id": list_id})
            row = cursor.fetchone()
            cursor.close()
        finally:
            conn.close()  # back to the pool
        return None if row is None else int(row[0])


class HeadCache:
    """Each list's version, re-read from the database at most every ``max_age`` seconds."""

    def __init__(self, read: Callable[[str], int | None], max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.max_age = max_age
        self._clock = clock
        self._heads: dict[str, tuple[float, int]] = {}
        self._generation = 0  # bumped by invalidate: a read that began before it is not stored

    def version(self, list_id: str) -> int | None:
        """The list's version (None for a list not in the database)."""
        now = self._clock()
        cached = self._heads.get(list_id)
        if cached is not None and now - cached[0] < self.max_age:
            return cached[1]
        generation = self._generation
        version = self._read(list_id)
        if generation == self._generation:
            self._heads[list_id] = (now, version)
        return version

    def invalidate(self, list_id: str) -> None:
        self._generation += 1
        self._heads.pop(list_id, None)


class HeartbeatCache:
    """One signed heartbeat per list, Unix second and version, shared by every poll that fits.

    ``sign(list_id, second)`` reads the list's head and signs a heartbeat
    issued at ``second`` (``Registry.heartbeat``); it runs about once per
    list and second in this process, and again when the list moves on.
    """

    def __init__(self, sign: Callable[[str, int], bytes]) -> None:
        self._sign = sign
        self._beats: dict[str, tuple[int, int, bytes]] = {}  # list -> (second, version, envelope)
        self._lock = threading.Lock()
        self._generation = 0

    def for_version(self, list_id: str, version: int, now: float) -> bytes | None:
        """A heartbeat for ``version`` issued this second; call it when the list's head is ``version``.

        None means the list moved on between the caller's read and the
        signature: the caller answers the slow way, from the database.
        """
        second = int(now)
        beat = self._beats.get(list_id)
        if beat is None or beat[0] != second or beat[1] != version:
            beat = self._refresh(list_id, second, version)
        return beat[2] if beat[1] == version else None

    def _refresh(self, list_id: str, second: int, version: int) -> tuple[int, int, bytes]:
        with self._lock:  # at a second's turn every thread wants a new one; one signs
            beat = self._beats.get(list_id)
            if beat is not None and beat[0] == second and beat[1] == version:
                return beat
            generation = self._generation
            envelope = self._sign(list_id, second)
            beat = (second, parse_envelope(envelope).to_version, envelope)
            current = self._beats.get(list_id)
            if generation == self._generation and (current is None or current[:2] <= beat[:2]):
                self._beats[list_id] = beat
            return beat

    def invalidate(self, list_id: str) -> None:
        self._generation += 1
        self._beats.pop(list_id, None)


class DeviceCache:
    """Enrolled devices for request authentication, with status at most ``status_seconds`` old.

    A device's public key and lists are fixed at enrolment (its id is the
    hash of its key), so a device row read once stays right; only its status
    can change, and the set of disabled devices is re-read at most every
    ``status_seconds``. Unknown device ids are not remembered: each one costs
    a database read, as before.
    """

    def __init__(self, devices: DeviceRegistry, status_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._devices = devices
        self.status_seconds = status_seconds
        self._clock = clock
        self._rows: dict[str, tuple[float, Device]] = {}  # device id -> (read at, row)
        self._disabled: tuple[float, frozenset[str]] = (float("-inf"), frozenset())
        self._status_lock = threading.Lock()

    def active(self, device_id: str) -> Device | None:
        """The enrolled, active device with this id, or None (unknown or disabled)."""
        now = self._clock()
        read_at, disabled = self._disabled
        if now - read_at >= self.status_seconds:
            read_at, disabled = self._refresh_status(now)
        cached = self._rows.get(device_id)
        if cached is None:
            started = self._clock()
            device = self._devices.device(device_id)
            if device is None:
                return None
            cached = self._rows[device_id] = (started, device)
        row_read_at, device = cached
        # Whichever read is newer says the status: the row's own, or the set of disabled devices.
        if row_read_at > read_at:
            return device if device.active else None
        return None if device_id in disabled else device

    def _refresh_status(self, now: float) -> tuple[float, frozenset[str]]:
        with self._status_lock:  # one reader per period, not one per thread
            if now - self._disabled[0] >= self.status_seconds:
                started = self._clock()
                self._disabled = (started, self._devices.disabled_ids())
            return self._disabled
