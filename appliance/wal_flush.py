"""Group commit for a SQLite WAL file: fsync it on a background thread, behind the writer.

With ``synchronous=NORMAL`` a WAL-mode commit is written to the WAL file
(so it survives the process being killed) but not synced, so a power cut
can lose it. ``synchronous=FULL`` syncs the WAL inside every COMMIT, which
on a loaded 2-core device put 3-50 ms of disk wait on each verdict.
``WalFlusher`` does what FULL does, one step later: it fsyncs the WAL
right after a commit, off the caller's thread, and one fsync covers every
commit made before it (group commit). fsync flushes the file, whichever
descriptor wrote it, so it also covers other processes' commits.

Callers that must not go on before a commit is on disk wait for it
(``wait``); a flusher whose fsync failed refuses to promise anything again
(``check``), like a FULL commit that raises.

It also takes the WAL checkpoints off the writer: the writer's connection
runs with ``wal_autocheckpoint=0``, and every ``checkpoint_every`` synced
seqs the flusher runs a PASSIVE checkpoint on a connection of its own,
which writers do not wait for. Otherwise one commit in ~300 copied the WAL
into the database and fsynced both, on the verdict's path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class WalFlushFailed(Exception):
    """An fsync of the WAL failed: later commits cannot be made durable."""


class WalFlusher:
    """Makes commits durable up to a sequence number the caller chooses (its journal seq)."""

    def __init__(self, db_path: str | Path, *, checkpoint_every: int | None = None) -> None:
        self._db_path = str(db_path)
        self._wal_path = self._db_path + "-wal"
        self._cond = threading.Condition()
        self._target = 0  # highest seq committed and asked for
        self._durable = 0  # highest seq known to be on disk
        self._failure: OSError | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._checkpoint_every = checkpoint_every
        self._checkpointed = 0  # the durable seq at the last checkpoint
        self._checkpointer: sqlite3.Connection | None = None  # the flusher thread's own

    @property
    def durable(self) -> int:
        with self._cond:
            return self._durable

    def check(self) -> None:
        """Raise WalFlushFailed if an earlier fsync failed."""
        with self._cond:
            if self._failure is not None:
                raise WalFlushFailed(f"the journal could not be synced to disk: {self._failure}")

    def request(self, seq: int) -> None:
        """``seq`` is committed: sync it soon. Returns at once."""
        with self._cond:
            if seq <= self._target:
                return
            self._target = seq
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="wal-flush", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``seq`` (already committed) is on disk; False if ``timeout`` passed first."""
        self.request(seq)
        with self._cond:
            self._cond.wait_for(lambda: self._durable >= seq or self._failure is not None
                                or self._thread is None, timeout)
            if self._failure is not None:
                raise WalFlushFailed(f"the journal could not be synced to disk: {self._failure}")
            if self._durable < seq and self._thread is None:  # closed meanwhile: sync here
                self._sync_once(seq)
            return self._durable >= seq

    def close(self) -> None:
        """Sync everything requested, then stop the thread."""
        with self._cond:
            self._closing = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._target > self._durable or self._closing)
                    goal = self._target
                    if goal <= self._durable:  # closing, nothing left to sync
                        break
                if not self._sync_once(goal):
                    break
                self._maybe_checkpoint(goal)
        finally:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            with self._cond:
                self._thread = None
                self._cond.notify_all()

    def _maybe_checkpoint(self, durable: int) -> None:
        if self._checkpoint_every is None or durable - self._checkpointed < self._checkpoint_every:
            return
        self._checkpointed = durable
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self._db_path, timeout=5.0)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next one, or any other connection's, catches up
            log.warning("WAL checkpoint of %s skipped: %s", self._db_path, exc)

    def _sync_once(self, goal: int) -> bool:
        try:
            _fsync_path(self._wal_path, fallback=self._db_path)
        except OSError as exc:
            with self._cond:
                self._failure = exc
                self._cond.notify_all()
            return False
        with self._cond:
            self._durable = max(self._durable, goal)
            self._cond.notify_all()
        return True


def _fsync_path(path: str, *, fallback: str) -> None:
    """fsync ``path``; if it is gone (the WAL was checkpointed and removed), ``fallback``.

    A WAL checkpoint syncs the WAL and then the database file itself, so a
    commit no longer in a WAL is already on disk; syncing the database file
    then is only belt and braces.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(fallback, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
