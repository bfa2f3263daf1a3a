"""Full-list snapshots as files: built by streaming ``list_tokens`` in token order, cached per version.

A snapshot of a 50 M-token list is about a gigabyte: it must never be one
bytes object, on the registry or on the device. So it is written once per
(list, version) to a 0600 file under the registry's data directory, a block
at a time (sync/snapshot_wire.py), from rows read in token order by keyset
pagination (``token > last ORDER BY token LIMIT n``, valid on SQLite and
PostgreSQL alike) inside one consistent read; the server then streams the
file. The payload of a version never changes, so a stale envelope (near its
valid_until, or signed by a rotated-out key) is re-signed over the same
file without rebuilding it. Files of older versions are deleted when a newer
one is built; a response still streaming one keeps it open.

Layout (docs/registry.md): ``<snapshot dir>/list-<list id>/v<version>.gcs``
(payload) and ``v<version>.envelope`` (its signed envelope). A build writes
``*.building`` and renames it into place, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from sqlalchemy import and_, select, type_coerce
from sqlalchemy.types import NullType

from appliance.private_files import private_dir
from appliance.records import Clearance
from registry import db
from sync.envelope import Envelope, EnvelopeFields, Kind, parse_envelope
from sync.errors import SyncError
from sync.snapshot_wire import MAGIC, SnapshotWriter

#: Rows per keyset page: bounded memory on both database backends.
PAGE_ROWS = 20_000
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SnapshotPayload:
    """A snapshot payload held in a file: what the server streams after its envelope."""

    path: Path
    size: int

    def open(self) -> BinaryIO:
        """Open it now: a response keeps reading it even if a newer build deletes the name."""
        return open(self.path, "rb")

    def read_bytes(self) -> bytes:
        """The whole payload in memory: for tests and small lists only."""
        return self.path.read_bytes()


def chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """Exactly ``size`` bytes of an open payload file, a chunk at a time; closes it."""
    try:
        left = size
        while left:
            chunk = handle.read(min(READ_CHUNK, left))
            if not chunk:
                raise OSError(f"{handle.name} ended {left} bytes early")
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


def default_directory(engine) -> Path:
    """Beside an SQLite database (``<data dir>/snapshots``); a private temporary directory otherwise."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).absolute().parent / "snapshots"
    return Path(tempfile.mkdtemp(prefix="gatecheck-snapshots-"))


class _Hashing:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.sha256.update(data)
        self.size += len(data)


class SnapshotFiles:
    """The snapshot cache of one registry: a directory of payload and envelope files."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _dir(self, list_id: str) -> Path:
        return private_dir(self.directory / f"list-{list_id}")

    def payload_path(self, list_id: str, version: int) -> Path:
        return self._dir(list_id) / f"v{version}.gcs"

    def envelope_path(self, list_id: str, version: int) -> Path:
        return self._dir(list_id) / f"v{version}.envelope"

    def cached(self, list_id: str, version: int) -> tuple[Envelope, bytes, SnapshotPayload] | None:
        """The stored envelope and payload of a version, if both are there, agree in size and are this format.

        A payload built by an older registry (another magic: a v2 file has no
        token key hash) is not reused; the caller builds the version again.
        """
        try:
            raw = self.envelope_path(list_id, version).read_bytes()
            size = self.payload_path(list_id, version).stat().st_size
            with open(self.payload_path(list_id, version), "rb") as fh:
                if fh.read(len(MAGIC)) != MAGIC:
                    return None
        except FileNotFoundError:
            return None
        try:
            envelope = parse_envelope(raw)
        except SyncError:
            return None
        if envelope.payload_size != size or envelope.to_version != version or envelope.list_id != list_id:
            return None
        return envelope, raw, SnapshotPayload(self.payload_path(list_id, version), size)

    def write_envelope(self, list_id: str, version: int, envelope: bytes) -> None:
        path = self.envelope_path(list_id, version)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(envelope)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)

    @contextmanager
    def build_lock(self, list_id: str):
        """One build per list at a time, across threads and processes (flock)."""
        fd = os.open(self._dir(list_id) / ".build.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def build(self, conn, list_id: str, version: int, lanes: bytes, count: int, *,
              token_key_hash: bytes) -> tuple[bytes, int]:
        """Write version ``version``'s payload from ``conn`` (a consistent read); returns (SHA-256, size).

        ``token_key_hash`` names the key the list's tokens are under at that
        version, read in the same consistent read as the tokens.
        """
        path = self.payload_path(list_id, version)
        building = path.with_name(path.name + ".building")
        fd = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb", buffering=READ_CHUNK) as fh:
                out = _Hashing(fh)
                cleared = clearances_of(conn, list_id)
                writer = SnapshotWriter(out, list_id, version, lanes, token_key_hash=token_key_hash, records=count,
                                        clearances=len(cleared))
                for clearance in cleared:
                    writer.add_clearance(clearance)
                for rows in token_pages(conn, list_id):
                    writer.add_rows(rows)
                writer.finish()
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(building, path)
        except BaseException:
            building.unlink(missing_ok=True)
            raise
        return out.sha256.digest(), out.size

    def remove_older(self, list_id: str, version: int) -> None:
        """Delete the files of versions before ``version`` (streams still reading them keep them open)."""
        for path in self._dir(list_id).iterdir():
            stem = path.name.split(".", 1)[0]
            if stem.startswith("v") and stem[1:].isdigit() and int(stem[1:]) < version:
                path.unlink(missing_ok=True)


def clearances_of(conn, list_id: str) -> list[Clearance]:
    """The list's published namesake clearances, in token order (a register, not a list: few enough to hold)."""
    c = db.list_clearances.c
    rows = conn.execute(select(c.token, c.redress_number, c.valid_until).where(c.list_id == list_id)
                        .order_by(c.token))
    return [Clearance(bytes(r.token), list_id, r.redress_number, r.valid_until) for r in rows]


def token_pages(conn, list_id: str) -> Iterator[list[tuple]]:
    """The list's published token rows in token order, a page at a time, by keyset pagination.

    Columns are read as the driver returns them (no SQLAlchemy type
    processing: a 50 M-row build would spend minutes parsing dates), in
    SnapshotWriter.add_rows order.
    """
    t = db.list_tokens.c
    raw = NullType()
    columns = [type_coerce(c, raw) for c in (t.token, t.kind, t.category, t.action, t.reference,
                                             t.valid_from, t.valid_until, t.redress)]
    last = None
    while True:
        where = t.list_id == list_id if last is None else and_(t.list_id == list_id, t.token > last)
        rows = conn.execute(select(*columns).where(where).order_by(t.token).limit(PAGE_ROWS)).all()
        if rows:
            yield rows
        if len(rows) < PAGE_ROWS:
            return
        last = bytes(rows[-1][0])


def snapshot_fields(list_id: str, version: int, checksum: bytes, sha256: bytes, size: int, *,
                    issued_at: int, valid_until: int) -> EnvelopeFields:
    return EnvelopeFields(Kind.SNAPSHOT, list_id, 0, version, issued_at, valid_until, checksum, sha256, size)
