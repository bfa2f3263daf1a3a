"""Device files that hold secrets are private to the service user.

The snapshot holds every list's token key and the journal holds the verdict
history, so the data directory is 0700 and its databases are created 0600
before SQLite opens them (SQLite gives its -wal and -shm files the database
file's mode).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike) -> Path:
    """Create the directory (and parents) as 0700 if missing; an existing one is left as is."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def private_file(path: str | os.PathLike) -> Path:
    """Create an empty 0600 file if missing, so whatever writes it next inherits that mode."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    return path


def write_private(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` atomically with a 0600 file holding ``data``.

    The bytes go to a temporary file created 0600 (O_EXCL, so never someone
    else's file) and synced, then renamed over ``path``: after a crash the
    file is the old one or the new one, never part of either, and it is
    never readable by others, not even for a moment.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask can only have narrowed it; make it exact
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return path
