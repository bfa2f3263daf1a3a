"""The snapshot store across processes: a killed writer, and readers during writes.

Real processes, real signals: the writer is a child Python process that is
SIGKILLed at several moments of a large apply_batch; readers are child
processes with a zero busy timeout, so any wait on the writer would show up
as an error instead of a delay.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from appliance.records import Action, Batch, Entry, ListInfo, TokenKind
from appliance.snapshot import SnapshotStore

REPO = Path(__file__).resolve().parents[2]
BASE_TOKENS = 20_000
CRASH_ADDS = 40_000
CRASH_REMOVES = 5_000
MARKERS = 15_000  # tokens added (and the previous ones removed) by each reader-test batch
READER_BATCHES = 6


def tok(*parts) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()[:12]


def entry(token: bytes, n: int) -> Entry:
    return Entry(token, "no-fly", TokenKind.PERSON if n % 3 else TokenKind.DOCUMENT, "AVSEC-THREAT",
                 Action.DENY, f"NFL-2024-{n:08d}", date(2024, 1, 2), date(2029, 1, 1), "Form NFL-R1")


def base_tokens() -> list[bytes]:
    return [tok("base", i) for i in range(BASE_TOKENS)]


def crash_batch() -> Batch:
    """The large N -> N+1 batch the killed writer applies (version 1 -> 2)."""
    return Batch("no-fly", 1, 2,
                 add=tuple(entry(tok("new", i), i) for i in range(CRASH_ADDS)),
                 remove=tuple(base_tokens()[:CRASH_REMOVES]), state_digest=b"\x02" * 32)


def markers(version: int, every: int = 1) -> list[bytes]:
    return [tok("marker", version, i) for i in range(0, MARKERS, every)]


def marker_batch(version: int) -> Batch:
    """version -> version+1: the markers of version+1 replace those of version."""
    return Batch("no-fly", version, version + 1,
                 add=tuple(entry(t, i) for i, t in enumerate(markers(version + 1))),
                 remove=tuple(markers(version)))


def new_store(path: Path, first: Batch) -> Path:
    with SnapshotStore(path) as store:
        store.put_list(ListInfo("no-fly", "No-Fly", "Aviation Security Directorate",
                                "Aviation Security Act s. 12", ("air_travel",), Action.DENY,
                                b"k" * 32))
        store.apply_batch(first)
    return path


def child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


# A small page cache makes the writer spill pages into the WAL while its
# transaction is still open, so kills also land in the middle of WAL writes.
WRITER = """
import sys, time
from appliance.snapshot import SnapshotStore
from tests.appliance.test_snapshot_crash import crash_batch
batch = crash_batch()
store = SnapshotStore(sys.argv[1], cache_kib=256)
print("ready", flush=True)
started = time.perf_counter()
store.apply_batch(batch)
print("done", time.perf_counter() - started, flush=True)
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "base.db"
    first = Batch("no-fly", 0, 1, add=tuple(entry(t, i) for i, t in enumerate(base_tokens())))
    return new_store(path, first)


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def kill_writer(path: Path, *, after: float | None = None, wal_at_least: int | None = None,
                committed: bool = False) -> int:
    """Run the writer on ``path`` and SIGKILL it at a moment; returns the WAL size then.

    ``after``: seconds after it is ready. ``wal_at_least``: as soon as its
    uncommitted transaction has spilled this many bytes into the WAL.
    ``committed``: once apply_batch has returned, before the store is closed.
    """
    proc = child(WRITER, str(path))
    assert proc.stdout.readline().strip() == "ready"
    if committed:
        assert proc.stdout.readline().startswith("done")
    elif after is not None:
        time.sleep(after)
    else:
        deadline = time.monotonic() + 60
        while proc.poll() is None and wal_bytes(path) < wal_at_least and time.monotonic() < deadline:
            time.sleep(0.0005)
    size = wal_bytes(path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return size


def test_writer_killed_mid_apply_leaves_version_n_or_n_plus_1_intact(base, tmp_path):
    calibrate = tmp_path / "calibrate.db"
    shutil.copy(base, calibrate)
    proc = child(WRITER, str(calibrate))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    duration = float(out.split()[-1])

    at_n = set(base_tokens())
    at_n1 = (at_n - set(base_tokens()[:CRASH_REMOVES])) | {tok("new", i) for i in range(CRASH_ADDS)}
    moments = [{"after": duration * 0.1}, {"after": duration * 0.4},
               {"wal_at_least": 1}, {"wal_at_least": 100_000}, {"wal_at_least": 400_000},
               {"committed": True}]
    outcomes = []
    for n, moment in enumerate(moments):
        path = tmp_path / f"killed-{n}.db"
        shutil.copy(base, path)
        wal_at_kill = kill_writer(path, **moment)
        with SnapshotStore(path) as store:
            assert store.check_integrity() == [], moment
            version = store.get_list("no-fly").version
            tokens = {e.token for e in store.iter_entries("no-fly")}
            assert version in (1, 2), moment
            assert tokens == (at_n if version == 1 else at_n1), moment
            assert store.stats()["tokens"] == len(tokens)
        outcomes.append((version, wal_at_kill))
    # Some kill hit the open transaction after it had written to the WAL.
    assert any(version == 1 and wal > 0 for version, wal in outcomes), outcomes
    assert outcomes[-1][0] == 2


READER = """
import json, sys, time
from appliance.snapshot import SnapshotStore
from tests.appliance.test_snapshot_crash import MARKERS, markers
final = int(sys.argv[2])
store = SnapshotStore(sys.argv[1], readonly=True, busy_timeout_ms=0)
print("ready", flush=True)
seen, errors, iterations, slowest = set(), [], 0, 0.0
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    started = time.perf_counter()
    try:
        with store.read():
            version = store.get_list("no-fly").version
            count = store.stats()["tokens"]
            present = store.lookup(markers(version, 500))
            stale = store.lookup(markers(version - 1, 500)) if version > 1 else []
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        continue
    slowest = max(slowest, time.perf_counter() - started)
    iterations += 1
    seen.add(version)
    if count != MARKERS or len(present) != len(markers(version, 500)) or stale:
        errors.append(f"version {version}: {count} tokens, {len(present)} markers, {len(stale)} stale")
    if version == final:
        break
print(json.dumps({"seen": sorted(seen), "errors": errors[:5], "iterations": iterations,
                  "slowest_ms": slowest * 1000}), flush=True)
"""

BATCH_WRITER = """
import sys
from appliance.snapshot import SnapshotStore
from tests.appliance.test_snapshot_crash import marker_batch
batches = [marker_batch(v) for v in range(1, int(sys.argv[2]))]
with SnapshotStore(sys.argv[1]) as store:
    for n, batch in enumerate(batches):
        store.apply_batch(batch)
        if n == 2:
            store.compact()  # VACUUM while the readers read
"""


def test_readers_in_other_processes_never_wait_and_see_whole_batches_only(tmp_path):
    """Two read-only counters look tokens up while the sync agent applies and compacts."""
    first = Batch("no-fly", 0, 1, add=tuple(entry(t, i) for i, t in enumerate(markers(1))))
    path = new_store(tmp_path / "snapshot.db", first)
    final = 1 + READER_BATCHES
    readers = [child(READER, str(path), str(final)) for _ in range(2)]
    for reader in readers:
        assert reader.stdout.readline().strip() == "ready"
    writer = child(BATCH_WRITER, str(path), str(final))
    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        report = json.loads(out)
        assert report["errors"] == []
        assert report["seen"][-1] == final
        assert len(report["seen"]) >= 3, report  # it really read while batches were applied
