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
