"""What can go wrong with the snapshot store, as exceptions a person can act on.

appliance/snapshot.py re-exports these; callers import them from there.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path


class SnapshotError(Exception):
    """A snapshot store problem, with a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VersionMismatch(SnapshotError):
    """The batch does not start at the list's current version."""


class UnknownList(SnapshotError):
    """The store holds no list with this id."""


class SnapshotCorrupt(SnapshotError):
    """The file is damaged or is not a snapshot store."""


class SnapshotBusy(SnapshotError):
    """Another connection held a lock for longer than the busy timeout."""


@contextmanager
def translated(path: Path):
    """sqlite3 errors as SnapshotErrors that say what happened to which file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise SnapshotBusy(f"snapshot store {path} is busy: {text}") from None
        if "malformed" in text or "not a database" in text:
            raise SnapshotCorrupt(f"snapshot store {path} is damaged: {text}") from None
        raise SnapshotError(f"snapshot store {path}: {text}") from None
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.IntegrityError):
            raise SnapshotError(f"snapshot store {path}: {exc}") from None
        raise SnapshotCorrupt(f"snapshot store {path} is damaged: {exc}") from None
