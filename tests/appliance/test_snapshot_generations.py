"""Store generations: a full-list install builds a new file and swaps the pointer; readers and writers follow.

Real SQLite files and, for the readers, a real second process: the counter
and the sync agent are separate processes on a device.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from appliance.records import Action, Batch, Entry, ListInfo, TokenKind
from appliance.snapshot import SnapshotError, SnapshotStore, snapshot_path
from bench.bench_wire import realistic_entries
from sync.identity import token_key_hash
from sync.snapshot_wire import SnapshotReader, encode_snapshot

REPO = Path(__file__).resolve().parents[2]
LIST, OTHER = "nfl", "other"


def info(list_id: str) -> ListInfo:
    return ListInfo(list_id, "List", "Authority", "Act s.1", ("air_travel",), Action.DENY, bytes(32))


def marker(version: int) -> Entry:
    """An entry only version ``version`` of the list holds: a reader checks it sees whole versions."""
    return Entry(version.to_bytes(4, "big") + b"\xee" * 8, LIST, TokenKind.DOCUMENT, "marker", Action.DENY,
                 f"M-{version}", date(2024, 1, 1), date(2030, 1, 1))


def install(store: SnapshotStore, from_version: int, to_version: int, entries: list[Entry]) -> int:
    data = encode_snapshot(LIST, to_version, bytes(2048), entries, token_key_hash=token_key_hash(bytes(32)))
    reader = SnapshotReader(io.BytesIO(data), max_entries=len(entries) + 1)
    return store.install_list(Batch(LIST, from_version, to_version, state_digest=b"d" * 32), reader.blocks())


@pytest.fixture
def store(tmp_path):
    with SnapshotStore(snapshot_path(tmp_path)) as s:
        s.put_list(info(LIST))
        s.put_list(info(OTHER))
        s.apply_batch(Batch(OTHER, 0, 1, tuple(realistic_entries(2_000, seed=3, list_id=OTHER))))
        yield s


def test_an_install_replaces_the_list_keeps_the_others_and_swaps_generations(store):
    others = set(store.iter_entries(OTHER))
    entries = realistic_entries(5_000, seed=4, list_id=LIST) + [marker(1)]
    assert install(store, 0, 1, entries) == len(entries)
    assert store.path.is_symlink() and store.file.name == "gen-000001.db"
    assert set(store.iter_entries(LIST)) == set(entries) and set(store.iter_entries(OTHER)) == others
    assert store.get_list(LIST).version == 1 and store.get_list(LIST).state_digest == b"d" * 32
    assert store.check_integrity() == []
    install(store, 1, 2, [marker(2)])
    assert set(store.iter_entries(LIST)) == {marker(2)}
    assert store.file.name == "gen-000002.db"
    assert sorted(p.name for p in store.file.parent.iterdir() if p.name.endswith(".db")) == ["gen-000002.db"]


def test_generation_names_are_never_reused_and_crash_leftovers_are_removed(store):
    install(store, 0, 1, [marker(1)])
    directory = store.file.parent
    (directory / "gen-000007.db.building").write_bytes(b"half a file")  # a build killed at gen 7
    (directory / "gen-000001.db-wal").touch(exist_ok=True)
    install(store, 1, 2, [marker(2)])
    assert store.file.name == "gen-000008.db"
    assert [p.name for p in directory.iterdir() if not p.name.startswith("gen-000008")] == []


def test_a_failed_install_leaves_the_old_generation_in_place(store):
    install(store, 0, 1, [marker(1)])
    before = store.file

    def broken_blocks():
        data = encode_snapshot(LIST, 2, bytes(2048), realistic_entries(100, seed=5, list_id=LIST),
                               token_key_hash=token_key_hash(bytes(32)))
        yield from SnapshotReader(io.BytesIO(data), max_entries=100).blocks()
        raise SnapshotError("the download went bad")

    with pytest.raises(SnapshotError, match="went bad"):
        store.install_list(Batch(LIST, 1, 2), broken_blocks())
    assert store.file == before and os.readlink(store.path).endswith(before.name)
    assert set(store.iter_entries(LIST)) == {marker(1)} and store.get_list(LIST).version == 1
    assert not [p for p in before.parent.iterdir() if ".building" in p.name]


def test_records_out_of_token_order_are_refused_before_the_swap(store):
    from appliance.snapshot_codec import RecordBlock, ListMeta, ReferenceTemplate
    import numpy as np

    meta = ListMeta("x", Action.DENY, date(2024, 1, 1), date(2030, 1, 1), "", ReferenceTemplate("R-", 2, ""))
    tokens = np.frombuffer(b"\x02" * 12 + b"\x01" * 12, np.uint8).reshape(2, 12)
    block = RecordBlock((meta,), 0, tokens, np.zeros(2, np.uint32), np.zeros(2, np.uint32))
    with pytest.raises(SnapshotError, match="token order"):
        store.install_list(Batch(LIST, 0, 1), [block])
    assert not store.path.is_symlink() and store.get_list(LIST).version == 0


def test_a_writer_that_opened_the_old_generation_writes_to_the_new_one(store):
    other_process_view = SnapshotStore(store.path)  # e.g. enrolment, open before the install
    install(store, 0, 1, [marker(1)])
    extra = Entry(b"\x09" * 12, OTHER, TokenKind.PERSON, "c", Action.REFER, "O-1", date(2024, 1, 1), date(2030, 1, 1))
    other_process_view.apply_batch(Batch(OTHER, 1, 2, (extra,)))
    assert store.lookup([extra.token]) == [extra]  # landed in the generation in use
    assert other_process_view.file == store.file
    other_process_view.close()


READER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from appliance.snapshot import SnapshotStore
store = SnapshotStore(sys.argv[1], readonly=True, busy_timeout_ms=0)
seen, errors, checks = set(), [], 0
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        with store.read():
            version = store.get_list("nfl").version
            found = store.lookup([version.to_bytes(4, "big") + b"\xee" * 8,
                                  max(version - 1, 0).to_bytes(4, "big") + b"\xee" * 8])
            if version and [e.reference for e in found] != [f"M-{version}"]:
                errors.append(f"version {version} shows {[e.reference for e in found]}")
            checks += 1
        seen.add(version)
        if version == int(sys.argv[4]):
            break
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"seen": sorted(seen), "errors": errors[:5], "checks": checks}))
"""


def test_readers_in_another_process_follow_each_swap_and_never_fail(store):
    last = 5
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store.path), str(REPO), "60", str(last)],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)  # the reader is up and reading generation 0
    bulk = realistic_entries(20_000, seed=6, list_id=LIST)
    for version in range(1, last + 1):
        install(store, version - 1, version, bulk + [marker(version)])
        time.sleep(0.05)
    out, _ = reader.communicate(timeout=90)
    result = json.loads(out)
    assert result["errors"] == []
    assert result["seen"][-1] == last and result["checks"] > 10
