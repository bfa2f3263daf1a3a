"""The snapshot store: what it holds, how a batch moves a list from N to N+1, and the synth."""

import hashlib
import json
import sqlite3
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import snapshot_codec as codec
from appliance.records import Action, Batch, Clearance, Entry, ListInfo, TokenKind
from appliance.snapshot import (
    SnapshotCorrupt,
    SnapshotError,
    SnapshotStore,
    UnknownList,
    VersionMismatch,
    snapshot_path,
)
from appliance.snapshot_cli import Count, snapshot
from appliance.snapshot_schema import MIGRATIONS
from appliance.synth import SYNTH_LISTS, build_snapshot, generate, token_key
from sync.identity import DocumentClass, Identity

NOW = datetime(2025, 3, 9, 8, 30, tzinfo=timezone.utc)
TODAY = NOW.date()
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def tok(*parts) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()[:12]


def make_list(list_id="no-fly", scopes=("air_travel",), action=Action.DENY, **fields) -> ListInfo:
    values = dict(name=f"{list_id} list", authority="Aviation Security Directorate",
                  legal_basis="Aviation Security Act s. 12",
                  token_key=hashlib.sha256(list_id.encode()).digest())
    values.update(fields)
    return ListInfo(list_id=list_id, scopes=scopes, default_action=action, **values)


def entry(token: bytes, list_id="no-fly", **fields) -> Entry:
    values = dict(kind=TokenKind.DOCUMENT, category="AVSEC-THREAT", action=Action.DENY,
                  reference="NFL-2024-00012345", valid_from=date(2024, 1, 2),
                  valid_until=date(2029, 1, 1), redress="Form NFL-R1")
    values.update(fields)
    return Entry(token=token, list_id=list_id, **values)


@pytest.fixture
def store(tmp_path):
    with SnapshotStore(tmp_path / "snapshot.db") as s:
        s.put_list(make_list())
        s.put_list(make_list("hotel", scopes=("star_hotel",), action=Action.REFER))
        yield s


def apply(store, list_id="no-fly", add=(), remove=(), **fields) -> None:
    version = store.get_list(list_id).version
    store.apply_batch(Batch(list_id, version, version + 1, add=tuple(add), remove=tuple(remove), **fields))


def contents(store, list_id=None) -> dict:
    return {(e.token, e.list_id): e for e in store.iter_entries(list_id)}


# -- schema and files ---------------------------------------------------------------

def test_new_store_is_migrated_in_wal_mode_and_reopening_applies_nothing_twice(tmp_path):
    path = tmp_path / "snapshot.db"
    SnapshotStore(path).close()
    SnapshotStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [row[0] for row in conn.execute("SELECT name FROM migrations")]
    assert names == [m.name for m in MIGRATIONS]


def test_readonly_store_reads_but_refuses_every_write(store):
    apply(store, add=[entry(tok(1))])
    with SnapshotStore(store.path, readonly=True) as reader:
        assert reader.lookup([tok(1)]) == [entry(tok(1))]
        with pytest.raises(SnapshotError, match="read-only"):
            reader.apply_batch(Batch("no-fly", 1, 2))
        with pytest.raises(SnapshotError, match="read-only"):
            reader.put_list(make_list("other"))


def test_opening_a_missing_store_read_only_says_which_file(tmp_path):
    with pytest.raises(SnapshotError, match="no snapshot store at .*missing.db"):
        SnapshotStore(tmp_path / "missing.db", readonly=True)


def test_a_file_that_is_not_a_database_is_reported_corrupt(tmp_path):
    path = tmp_path / "snapshot.db"
    path.write_bytes(b"this is not SQLite at all " * 200)
    with pytest.raises(SnapshotCorrupt):
        SnapshotStore(path)


def test_another_applications_sqlite_file_is_not_taken_for_a_snapshot(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 42")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SnapshotCorrupt, match="not a snapshot store"):
        SnapshotStore(path)


# -- lists ------------------------------------------------------------------------

def test_list_metadata_round_trips_with_every_field(tmp_path):
    info = make_list("sanctions", scopes=("air_travel", "star_hotel"), version=7,
                     state_digest=bytes(range(32)), signed_at=NOW,
                     valid_until=NOW + timedelta(hours=24), heartbeat_at=NOW - timedelta(minutes=3),
                     redress="Delisting request to the sanctions unit")
    with SnapshotStore(tmp_path / "s.db") as s:
        s.put_list(info)
        assert s.get_list("sanctions") == info
        assert s.lists() == [info]
        assert s.get_list("nope") is None


def test_put_list_changes_the_description_but_never_the_version(store):
    apply(store, add=[entry(tok(1))], state_digest=b"\x01" * 32, signed_at=NOW)
    store.put_list(make_list(name="Renamed", version=99))
    info = store.get_list("no-fly")
    assert info.name == "Renamed" and info.version == 1 and info.state_digest == b"\x01" * 32


def test_a_new_token_key_is_refused_while_the_list_holds_tokens(store):
    apply(store, add=[entry(tok(1))])
    changed = ListInfo(**{**make_list().__dict__, "token_key": b"k" * 32})
    with pytest.raises(SnapshotError, match="full reload"):
        store.put_list(changed)


def test_heartbeat_moves_freshness_without_touching_the_version(store):
    store.record_heartbeat("no-fly", signed_at=NOW, valid_until=NOW + timedelta(days=1),
                           heartbeat_at=NOW + timedelta(seconds=5))
    info = store.get_list("no-fly")
    assert (info.version, info.signed_at, info.heartbeat_at) == (0, NOW, NOW + timedelta(seconds=5))
    with pytest.raises(UnknownList):
        store.record_heartbeat("nope", signed_at=NOW, valid_until=None, heartbeat_at=NOW)


# -- batches ------------------------------------------------------------------------

def test_batch_moves_the_list_to_n_plus_1_with_its_signature_as_heartbeat(store):
    store.apply_batch(Batch("no-fly", 0, 1, add=(entry(tok(1)),), state_digest=b"\xaa" * 32,
                            signed_at=NOW, valid_until=NOW + timedelta(days=1)))
    info = store.get_list("no-fly")
    assert (info.version, info.state_digest, info.signed_at, info.heartbeat_at) == \
        (1, b"\xaa" * 32, NOW, NOW)
    assert store.get_list("hotel").version == 0


def test_batch_from_another_version_is_refused_and_the_list_stays_at_n(store):
    apply(store, add=[entry(tok(1))])
    with pytest.raises(VersionMismatch, match="at version 1; the batch starts at 0"):
        store.apply_batch(Batch("no-fly", 0, 1, add=(entry(tok(2)),)))
    with pytest.raises(VersionMismatch, match="one step"):
        store.apply_batch(Batch("no-fly", 1, 3, add=(entry(tok(2)),)))
    assert store.get_list("no-fly").version == 1 and store.lookup([tok(2)]) == []


def test_batch_for_an_unknown_list_raises_unknown_list(store):
    with pytest.raises(UnknownList, match="'ghost'"):
        store.apply_batch(Batch("ghost", 0, 1, add=(entry(tok(1), list_id="ghost"),)))


def test_entry_for_another_list_in_a_batch_is_refused_before_anything_is_written(store):
    with pytest.raises(SnapshotError, match="adds an entry for list 'hotel'"):
        store.apply_batch(Batch("no-fly", 0, 1, add=(entry(tok(1)), entry(tok(2), list_id="hotel"))))
    assert store.lookup([tok(1), tok(2)]) == [] and store.get_list("no-fly").version == 0


def test_a_failure_inside_the_transaction_rolls_back_every_change(store):
    apply(store, add=[entry(tok(i)) for i in range(100)])
    # A trigger makes the very last statement of apply_batch fail.
    side = sqlite3.connect(store.path)
    side.execute("CREATE TRIGGER fail BEFORE UPDATE OF version ON lists"
                 " BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    side.commit()
    with pytest.raises(SnapshotError, match="injected failure"):
        apply(store, add=[entry(tok(i)) for i in range(100, 3000)], remove=[tok(i) for i in range(50)])
    assert store.get_list("no-fly").version == 1
    assert {t for t, _ in contents(store)} == {tok(i) for i in range(100)}
    assert store.stats()["tokens"] == 100 and store.check_integrity() == []
    side.execute("DROP TRIGGER fail")
    side.commit()
    apply(store, add=[entry(tok(i)) for i in range(100, 3000)], remove=[tok(i) for i in range(50)])
    assert store.stats()["tokens"] == 2950 and store.check_integrity() == []


def test_removing_a_token_the_list_does_not_hold_is_not_an_error(store):
    apply(store, add=[entry(tok(1))])
    apply(store, remove=[tok(2), tok(3)])
    assert store.get_list("no-fly").version == 2 and store.stats()["tokens"] == 1


def test_adding_a_token_the_list_holds_replaces_its_entry(store):
    apply(store, add=[entry(tok(1))])
    newer = entry(tok(1), category="AVSEC-DISRUPTIVE", action=Action.REFER, reference="NFL-2025-7")
    apply(store, add=[newer])
    assert store.lookup([tok(1)]) == [newer] and store.stats()["tokens"] == 1


def test_removing_and_adding_one_token_in_a_batch_replaces_it(store):
    apply(store, add=[entry(tok(1))])
    newer = entry(tok(1), valid_until=date(2031, 1, 1))
    apply(store, add=[newer], remove=[tok(1)])
    assert store.lookup([tok(1)]) == [newer]


def test_the_same_token_on_two_lists_are_two_entries_removed_separately(store):
    apply(store, add=[entry(tok(1))])
    apply(store, "hotel", add=[entry(tok(1), list_id="hotel", action=Action.REFER)])
    assert {e.list_id for e in store.lookup([tok(1)])} == {"no-fly", "hotel"}
    apply(store, remove=[tok(1)])
    assert [e.list_id for e in store.lookup([tok(1)])] == ["hotel"]


def test_a_batch_hands_over_what_it_takes_out_before_commit_and_a_refusal_there_commits_nothing(store):
    held, gone, kept = entry(tok(1)), entry(tok(2)), entry(tok(3))
    cleared = Clearance(tok("doc"), "no-fly", "RED-1", date(2026, 1, 1))
    apply(store, add=[held, gone, kept], add_clearances=(cleared,))
    apply(store, "hotel", add=[entry(tok(1), list_id="hotel")])  # the same token on another list
    newer = entry(tok(1), valid_until=date(2031, 1, 1))
    change = dict(add=(newer,), remove=(tok(2), tok("never held")), remove_clearances=(tok("doc"),))
    before = contents(store)

    class Refused(Exception):
        pass

    def refuse(taken):
        raise Refused(taken)

    with pytest.raises(Refused) as refused:
        store.apply_batch(Batch("no-fly", 1, 2, **change), before_commit=refuse)
    expected = sorted([held, gone, cleared], key=repr)
    assert sorted(refused.value.args[0], key=repr) == expected
    assert store.get_list("no-fly").version == 1 and contents(store) == before
    assert store.clearances([tok("doc")]) == [cleared] and store.check_integrity() == []

    seen = []
    store.apply_batch(Batch("no-fly", 1, 2, **change), before_commit=seen.append)
    assert [sorted(taken, key=repr) for taken in seen] == [expected]
    assert store.get_list("no-fly").version == 2
    assert sorted(store.lookup([tok(1), tok(2)]), key=lambda e: e.list_id) == \
        [entry(tok(1), list_id="hotel"), newer]


def test_clearances_are_added_looked_up_and_removed_per_list(store):
    cleared = Clearance(tok("doc"), "no-fly", "RED-2024-001", date(2026, 1, 1))
    store.apply_batch(Batch("no-fly", 0, 1, add_clearances=(cleared,)))
    assert store.clearances([tok("doc"), tok("other")]) == [cleared]
    store.apply_batch(Batch("no-fly", 1, 2, remove_clearances=(tok("doc"),)))
    assert store.clearances([tok("doc")]) == [] and store.stats()["clearances"] == 0


def test_expired_entries_stay_stored_with_their_dates_until_the_sync_removes_them(store):
    expired = entry(tok(1), valid_from=TODAY - timedelta(days=400), valid_until=TODAY - timedelta(days=1))
    future = entry(tok(2), valid_from=TODAY + timedelta(days=1), valid_until=TODAY + timedelta(days=30))
    apply(store, add=[expired, future, entry(tok(3))])
    found = {e.token: e for e in store.lookup([tok(1), tok(2), tok(3)])}
    assert found[tok(1)] == expired and not found[tok(1)].in_force(TODAY)
    assert not found[tok(2)].in_force(TODAY) and found[tok(3)].in_force(TODAY)
    assert store.stats()["tokens"] == 3


def test_a_token_of_the_wrong_length_is_refused():
    with tempfile.TemporaryDirectory() as tmp, SnapshotStore(Path(tmp) / "s.db") as s:
        with pytest.raises(SnapshotError, match="12 bytes"):
            s.lookup([b"short"])


def test_no_name_or_document_number_reaches_the_file(tmp_path):
    person = Identity(DocumentClass.PASSPORT, "UTO", "L898902C3", ("QUIXOTEVANDERBILT",),
                      ("ZEBEDIAH",), date(1974, 8, 12))
    info = make_list()
    tokens = person.tokens(info.token_key)
    with SnapshotStore(tmp_path / "snapshot.db") as s:
        s.put_list(info)
        s.apply_batch(Batch("no-fly", 0, 1, add=(
            entry(tokens.document),
            *(entry(t, kind=TokenKind.PERSON) for t in tokens.persons),
        )))
        assert len(s.lookup([tokens.document, *tokens.persons])) == 1 + len(tokens.persons)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in ("QUIXOTEVANDERBILT", "ZEBEDIAH", "L898902C3", "19740812", "1974-08-12"):
        for encoding in ("ascii", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in blob, secret


def test_a_read_view_sees_one_version_across_calls(store):
    apply(store, add=[entry(tok(1))])
    with SnapshotStore(store.path) as writer, store.read():
        writer.apply_batch(Batch("no-fly", 1, 2, add=(entry(tok(2)),)))
        assert store.get_list("no-fly").version == 1 and store.lookup([tok(2)]) == []
    assert store.get_list("no-fly").version == 2 and len(store.lookup([tok(2)])) == 1


# -- the packed records, against a plain dict ----------------------------------------

# Tokens from few 8-byte prefixes, so buckets fill, split and share keys.
tokens_st = st.builds(lambda p, rest: bytes([0, 0, 0, 0, 0, 0, 0, p]) + rest,
                      st.integers(0, 5), st.binary(min_size=4, max_size=4)) | \
    st.binary(min_size=12, max_size=12)
reference_st = st.text(st.sampled_from("AB-/ 0123456789ÄΩ"), max_size=24)
entry_st = st.builds(
    entry, tokens_st, st.sampled_from(["no-fly", "hotel"]),
    kind=st.sampled_from(list(TokenKind)), category=st.sampled_from(["A", "B", "ÜBER"]),
    action=st.sampled_from(list(Action)), reference=reference_st,
    valid_from=st.dates(date(2000, 1, 1), date(2030, 1, 1)),
    valid_until=st.dates(date(2020, 1, 1), date(2040, 1, 1)),
    redress=st.sampled_from(["", "Form R1", "Write to the redress office"]),
)


def bulk_entries(list_id: str, count: int, seed: int, clustered: bool) -> list[Entry]:
    """Many entries from a seed; clustered tokens share few 8-byte bucket keys."""
    out = []
    for i in range(count):
        token = tok(seed, i)
        if clustered:
            token = bytes([0, 0, 0, 0, 0, 0, 0, i % 4]) + token[:4]
        out.append(entry(token, list_id, kind=list(TokenKind)[i % 2], reference=f"R-{seed % 97}-{i:05d}"))
    return out


batch_st = st.tuples(
    st.sampled_from(["no-fly", "hotel"]),
    st.integers(0, 300),  # bulk additions, enough to fill and split buckets
    st.integers(0, 2**32),
    st.booleans(),
    st.lists(entry_st, max_size=20),  # additions with varied fields
    st.lists(tokens_st, max_size=40),  # removals, mostly of absent tokens
)


@SETTINGS
@given(batches=st.lists(batch_st, min_size=1, max_size=5))
def test_store_contents_always_equal_a_model_of_the_applied_batches(batches):
    model: dict[tuple[bytes, str], Entry] = {}
    with tempfile.TemporaryDirectory() as tmp, SnapshotStore(Path(tmp) / "s.db") as s:
        s.put_list(make_list())
        s.put_list(make_list("hotel", scopes=("star_hotel",)))
        for list_id, count, seed, clustered, varied, removes in batches:
            adds = bulk_entries(list_id, count, seed, clustered)
            adds += [Entry(**{**e.__dict__, "list_id": list_id}) for e in varied]
            # Removals of present tokens, too, not just random misses.
            removes = removes + [t for t, owner in list(model)[::3] if owner == list_id]
            touched = {*removes, *(e.token for e in adds)}
            expected = sorted((model[(t, list_id)] for t in touched if (t, list_id) in model), key=repr)
            taken = []
            version = s.get_list(list_id).version
            s.apply_batch(Batch(list_id, version, version + 1, add=tuple(adds), remove=tuple(removes)),
                          before_commit=taken.extend)
            assert sorted(taken, key=repr) == expected
            for t in removes:
                model.pop((t, list_id), None)
            for e in adds:
                model[(e.token, list_id)] = e
            assert contents(s) == model
            assert s.stats()["tokens"] == len(model)
            assert s.check_integrity() == []
        wanted = [t for t, _ in model] + [tok("miss")]
        assert sorted(s.lookup(wanted), key=lambda e: (e.token, e.list_id)) == \
            sorted(model.values(), key=lambda e: (e.token, e.list_id))


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("AZ-/ 09Ä٣"), max_size=40))
def test_a_reference_splits_into_template_and_number_and_back(reference):
    template, number = codec.split_reference(reference)
    assert codec.join_reference(template, number) == reference
    assert 0 <= number < codec.PERSON_BIT  # the top bit of a record's ref is the kind


# Tokens of 0 and 1 bytes next to meta ids 1-4 (01 00 00 00 on disk): a token's
# bytes often appear across a record boundary too, where they must not count.
near_tokens = st.lists(st.sampled_from([0, 1]), min_size=12, max_size=12).map(bytes)


@settings(max_examples=300, deadline=None)
@given(held=st.lists(st.tuples(near_tokens, st.sampled_from([1, 2, 3]), st.integers(0, 2**32 - 1)),
                     max_size=40, unique_by=lambda r: r[:2]),
       changed=st.lists(near_tokens, max_size=30, unique=True),  # past the few-inserts path too
       fields=st.lists(st.tuples(st.sampled_from([1, 4]), st.integers(0, 2**32 - 1)), max_size=30),
       data=st.data())
def test_splicing_changes_into_a_bucket_equals_decoding_filtering_and_sorting_it(held, changed, fields, data):
    own = {1, 4}  # the list's meta ids; 2 and 3 are other lists holding the same tokens
    held.sort()
    adding = data.draw(st.lists(st.sampled_from(changed), unique=True) if changed else st.just([]))
    adds = dict(zip(adding, fields))
    data = codec.encode(held)
    gone = [r for r in held if r[0] in changed and r[1] in own]
    found = codec.find_own(data, changed, own)
    assert sorted(record for _, record in found) == gone
    spliced = codec.splice(data, [at for at, _ in found], sorted((t, *adds[t]) for t in adds))
    assert codec.decode(spliced) == sorted([r for r in held if r not in gone] + [(t, *adds[t]) for t in adds])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.binary(min_size=4, max_size=4)), max_size=200))
def test_bucket_splits_never_part_tokens_that_share_the_bucket_key(keys):
    records = sorted({codec.Record(bytes(7) + bytes([k]) + rest, 1, 0) for k, rest in keys})
    bounds = codec.chunk_bounds(records)
    assert bounds[0] == 0 and bounds == sorted(set(bounds))
    for b in bounds[1:]:
        assert records[b].token[:8] != records[b - 1].token[:8]
    if len(records) <= codec.BUCKET_MAX:
        assert bounds == [0]


def test_compact_packs_the_file_and_keeps_every_entry(store):
    apply(store, add=[entry(tok(i), reference=f"NFL-2024-{i:08d}") for i in range(4000)])
    for round_ in range(4):  # random removals and additions leave pages half used
        apply(store, add=[entry(tok("new", round_, i)) for i in range(800)],
              remove=[tok(i) for i in range(round_, 4000, 5)])
    before = contents(store)
    sizes = store.compact()
    assert sizes["file_bytes_after"] < sizes["file_bytes_before"]
    assert contents(store) == before and store.check_integrity() == []
    with SnapshotStore(store.path, readonly=True) as reader, pytest.raises(SnapshotError):
        reader.compact()


def test_stats_count_tokens_per_list_and_size_on_disk(store):
    apply(store, add=[entry(tok(i)) for i in range(500)])
    apply(store, "hotel", add=[entry(tok(i), list_id="hotel") for i in range(20)])
    stats = store.stats()
    assert stats["tokens"] == 520 and stats["tokens_per_list"] == {"hotel": 20, "no-fly": 500}
    assert stats["lists"] == 2 and stats["file_bytes"] > 0
    assert stats["bytes_per_token"] == round(stats["file_bytes"] / 520, 2)


# -- synthetic snapshots ---------------------------------------------------------------

def test_synth_builds_exactly_n_tokens_over_lists_with_different_scopes(tmp_path):
    seen = []
    path = build_snapshot(tmp_path / "snapshot.db", 5000, n_lists=3, seed=7, now=NOW,
                          progress=lambda phase, n: seen.append((phase, n)))
    with SnapshotStore(path, readonly=True) as s:
        stats = s.stats()
        assert stats["tokens"] == 5000 and s.check_integrity() == []
        assert [i.list_id for i in s.lists()] == sorted(spec.list_id for spec in SYNTH_LISTS[:3])
        assert {i.scopes for i in s.lists()} == {spec.scopes for spec in SYNTH_LISTS[:3]}
        assert all(i.version == 1 and i.heartbeat_at == NOW for i in s.lists())
        entries = list(s.iter_entries())
    assert sum(n for phase, n in seen if phase == "generate") == 5000
    assert sum(n for phase, n in seen if phase == "write") == 5000
    # ~2.5 tokens per person: one document token and one or two person tokens,
    # all sharing the person's case number and list.
    people: dict[str, list[Entry]] = {}
    for e in entries:
        people.setdefault(e.reference, []).append(e)
    assert 2.3 < 5000 / len(people) < 2.7
    for tokens in people.values():
        assert len({e.list_id for e in tokens}) == 1
        assert [e.kind for e in tokens].count(TokenKind.DOCUMENT) <= 1
    expired = sum(not e.in_force(TODAY) for e in entries)
    assert 0 < expired < 0.1 * len(entries)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_synth_is_the_same_for_the_same_seed_and_differs_for_another():
    def first_tokens(seed):
        chunk = next(generate(1000, seed=seed, lists=SYNTH_LISTS, today=TODAY))
        return chunk.hi.tobytes() + chunk.code.tobytes()

    assert first_tokens(1) == first_tokens(1) != first_tokens(2)


def test_synth_refuses_to_replace_a_snapshot_unless_told(tmp_path):
    path = build_snapshot(tmp_path / "snapshot.db", 100, now=NOW)
    with pytest.raises(SnapshotError, match="refusing to overwrite"):
        build_snapshot(path, 100, now=NOW)
    build_snapshot(path, 200, now=NOW, overwrite=True)
    with SnapshotStore(path) as s:
        assert s.stats()["tokens"] == 200


def test_real_identity_tokens_can_be_added_on_top_of_a_synthetic_snapshot(tmp_path):
    path = build_snapshot(tmp_path / "snapshot.db", 3000, seed=5, now=NOW)
    person = Identity(DocumentClass.PASSPORT, "UTO", "L898902C3", ("ERIKSSON",), ("ANNA",),
                      date(1974, 8, 12))
    tokens = person.tokens(token_key("no-fly", 5))
    with SnapshotStore(path) as s:
        assert s.get_list("no-fly").token_key == token_key("no-fly", 5)
        s.apply_batch(Batch("no-fly", 1, 2, add=(entry(tokens.document),)))
        assert s.lookup([tokens.document]) == [entry(tokens.document)]
        assert s.stats()["tokens"] == 3001 and s.check_integrity() == []


def test_cli_synth_then_stats_print_json(tmp_path):
    runner = CliRunner()
    result = runner.invoke(snapshot, ["synth", "--data-dir", str(tmp_path), "--tokens", "2k",
                                      "--lists", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tokens"] == 2000
    assert snapshot_path(tmp_path).exists()
    result = runner.invoke(snapshot, ["stats", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert set(stats["lists_detail"]) == {"no-fly", "travel-ban"}
    assert stats["lists_detail"]["no-fly"]["version"] == 1
    again = runner.invoke(snapshot, ["synth", "--data-dir", str(tmp_path), "--tokens", "10"])
    assert again.exit_code == 1 and "--force" in again.stderr


def test_cli_stats_without_a_snapshot_is_one_readable_line(tmp_path):
    result = CliRunner().invoke(snapshot, ["stats", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"gatecheck: no snapshot store at {snapshot_path(tmp_path)}"


@pytest.mark.parametrize(("text", "count"), [("50M", 50_000_000), ("2k", 2000), ("1_000", 1000),
                                             ("7", 7), ("1G", 10**9)])
def test_token_counts_take_k_m_g_suffixes(text, count):
    assert Count().convert(text, None, None) == count


@pytest.mark.parametrize("text", ["0", "-5", "1.5M", "lots", ""])
def test_token_counts_that_are_not_positive_whole_numbers_are_refused(text):
    import click

    with pytest.raises(click.BadParameter):
        Count().convert(text, None, None)


def test_generated_records_have_the_on_disk_layout():
    from appliance.synth import RECORD_DTYPE

    record = np.zeros(1, dtype=RECORD_DTYPE)
    record["hi"], record["lo"], record["meta"], record["ref"] = 0x0102030405060708, 0x090A0B0C, 5, 6
    assert codec.decode(record.tobytes()) == [codec.Record(bytes(range(1, 13)), 5, 6)]


# -- full snapshots (recovery) -------------------------------------------------------


def test_a_snapshot_jumps_versions_and_drops_what_it_does_not_hold(store):
    apply(store, add=[entry(tok("a")), entry(tok("b"))])
    apply(store, "hotel", add=[entry(tok("h"), "hotel")])
    store.replace_list(Batch("no-fly", 1, 7, add=(entry(tok("b"), reference="NFL-2024-00000002"),
                                                   entry(tok("c"))),
                             add_clearances=(Clearance(tok("cl"), "no-fly", "RN-1", date(2030, 1, 1)),),
                             state_digest=b"\x07" * 32))
    info = store.get_list("no-fly")
    assert info.version == 7 and info.state_digest == b"\x07" * 32
    held = contents(store, "no-fly")
    assert {token for token, _ in held} == {tok("b"), tok("c")}
    assert held[(tok("b"), "no-fly")].reference == "NFL-2024-00000002"
    assert [c.redress_number for c in store.clearances([tok("cl")])] == ["RN-1"]
    assert {token for token, _ in contents(store, "hotel")} == {tok("h")}  # other lists untouched
    assert store.stats()["tokens"] == 3


def test_a_snapshot_may_reinstall_the_held_version_but_never_go_back(store):
    apply(store, add=[entry(tok("a"))])
    store.replace_list(Batch("no-fly", 1, 1, add=(entry(tok("a")),), state_digest=b"\x01" * 32))
    assert store.get_list("no-fly").version == 1
    with pytest.raises(VersionMismatch, match="back from version 1 to 0"):
        store.replace_list(Batch("no-fly", 1, 0, add=()))
    with pytest.raises(VersionMismatch, match="is at version 1"):
        store.replace_list(Batch("no-fly", 0, 5, add=()))
    assert {token for token, _ in contents(store, "no-fly")} == {tok("a")}
