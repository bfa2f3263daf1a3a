"""Store generations: ``snapshot.db`` points at the SQLite file in use, and a full reload swaps the pointer.

A full-list snapshot of tens of millions of tokens is installed by building
a new store file in one pass (appliance/snapshot_bulk.py), not by rewriting
buckets in place. The counter and the sync agent hold the store open in
other processes, and an SQLite file must never be renamed over under open
connections: its -wal and -shm files would then belong to another database.
So every rebuilt file is a new **generation** with a name that is never used
twice, ``snapshot-generations/gen-000042.db``, and ``snapshot.db`` is a
symbolic link to it, replaced atomically with rename(2). A store that has
never been rebuilt is a plain file at ``snapshot.db`` (the layout before
generations, still read as it is).

Readers compare the pointer's marker (the link text, or the inode of a plain
file) on each read and reopen when it moved; the old file stays readable
through their open descriptors until they do. kill -9 at any moment leaves
the pointer at the old or the new generation, never at a half-built file:
a file is built as ``gen-N.db.building`` and only a finished, synced file is
pointed at. Leftovers are removed by the next rebuild.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_GENERATION = re.compile(r"gen-(\d{6,})\.db")
_SIDE_FILES = ("-wal", "-shm", "-journal")


def generation_dir(pointer: Path) -> Path:
    """Where the generations of the store at ``pointer`` live: ``snapshot-generations/`` beside it."""
    return pointer.with_name(f"{pointer.stem}-generations")


def marker(pointer: Path) -> tuple | None:
    """What identifies the file ``pointer`` designates now: cheap enough to check on every read."""
    try:
        st = os.lstat(pointer)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(pointer))
    return ("file", st.st_dev, st.st_ino)


def resolve(pointer: Path) -> tuple[Path, tuple | None]:
    """(the SQLite file in use, its marker); the file is ``pointer`` itself for a plain-file store."""
    mark = marker(pointer)
    if mark is not None and mark[0] == "link":
        return pointer.parent / mark[1], mark
    return pointer, mark


def is_generation(path: Path) -> bool:
    return _GENERATION.fullmatch(path.name) is not None


def next_generation(pointer: Path) -> Path:
    """A generation file name never used before in this directory (nor pointed at now)."""
    directory = generation_dir(pointer)
    numbers = [0]
    if directory.is_dir():
        for path in directory.iterdir():
            found = _GENERATION.match(path.name)
            if found:
                numbers.append(int(found.group(1)))
    current = resolve(pointer)[0]
    found = _GENERATION.fullmatch(current.name)
    if found:
        numbers.append(int(found.group(1)))
    return directory / f"gen-{max(numbers) + 1:06d}.db"


def prepare(pointer: Path) -> None:
    """Create the generations directory (0700: it holds the store files)."""
    directory = generation_dir(pointer)
    directory.mkdir(mode=0o700, exist_ok=True)


def point_to(pointer: Path, generation: Path) -> None:
    """Make ``pointer`` designate ``generation``, atomically and durably.

    A new symbolic link under a temporary name, renamed over the pointer
    (rename(2) replaces it in one step), then the directory is synced so the
    switch survives power loss.
    """
    target = os.path.relpath(generation, pointer.parent)
    temporary = pointer.with_name(f".{pointer.name}.pointer-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, pointer)
    _sync_dir(pointer.parent)


def remove_unused(pointer: Path) -> list[Path]:
    """Delete every generation file but the one in use, and building leftovers; returns what went.

    Processes that still have an old generation open keep reading it through
    their descriptors (POSIX), and reopen the current one at their next read.
    """
    directory = generation_dir(pointer)
    if not directory.is_dir():
        return []
    current = resolve(pointer)[0]
    keep = {current.name, *(current.name + side for side in _SIDE_FILES)}
    removed = []
    for path in directory.iterdir():
        if path.name in keep or not path.name.startswith("gen-"):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def side_files(path: Path) -> list[Path]:
    """An SQLite file and the journal files SQLite names after it."""
    return [path, *(path.with_name(path.name + side) for side in _SIDE_FILES)]


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
