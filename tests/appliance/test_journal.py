"""The verdict journal: hash chain, tamper evidence, retention, masking and the CLI."""

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.documents import parse_payload
from appliance.journal import (
    CHECKPOINT_EVERY,
    GENESIS,
    Journal,
    JournalError,
    UnmaskedDocumentNumber,
)
from appliance.journal_cli import journal as journal_group
from appliance.journal_db import MIGRATIONS, JournalDbError, open_db
from appliance.verdict import DeviceProfile, decide

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def verdict_dict(verdict="CLEAR", **extra):
    """A verdict dict in the shape of Decision.to_dict()."""
    record = {
        "verdict": verdict,
        "reasons": [] if verdict == "CLEAR" else [f"{verdict.lower()} reason"],
        "matches": [],
        "document": None,
        "error": None,
        "snapshot": {"lists": {"nofly": {"version": 7, "digest": "ab" * 32}},
                     "as_of": T0.isoformat(), "age_seconds": 180, "stale": False},
        "channel": "scanner",
        "operator": "agent-7",
        "masked_document_number": "******789",
        "notes": [],
    }
    record.update(extra)
    return record


def fill(jrnl, verdicts, start=T0, step=timedelta(minutes=1)):
    return [jrnl.append(verdict_dict(v), at=start + i * step) for i, v in enumerate(verdicts)]


def tamper(path, sql, params=()):
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def on_disk(path):
    """Every byte of journal.db and its WAL as they are now."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob("journal.db*")))


@pytest.fixture
def jpath(tmp_path):
    return tmp_path / "journal.db"


# -- appending -----------------------------------------------------------------


def test_appended_records_get_monotonic_seqs_each_linked_to_the_previous_hash(jpath):
    with Journal(jpath) as jrnl:
        records = fill(jrnl, ["CLEAR", "DENY", "REFER", "UNREADABLE"])
        assert [r.seq for r in records] == [1, 2, 3, 4]
        assert records[0].prev_hash == GENESIS
        assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
        assert jrnl.head() == (4, records[-1].hash)
        assert jrnl.count() == 4


def test_record_hash_is_sha256_of_prev_hash_and_the_canonical_json_stored(jpath):
    # What an auditor recomputes without our code: docs/journal.md.
    with Journal(jpath) as jrnl:
        first, second = fill(jrnl, ["CLEAR", "DENY"])
    conn = sqlite3.connect(jpath)
    for seq, body, prev, digest in conn.execute(
            "SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq"):
        data = json.loads(body)
        assert body == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert data["seq"] == seq
        assert digest == hashlib.sha256((prev + body).encode()).hexdigest()
    conn.close()
    assert second.prev_hash == first.hash


def test_only_audit_fields_are_kept_and_the_parsed_document_is_dropped(jpath):
    record = verdict_dict(
        "DENY",
        document={"document_number": "X1234567", "surname": "DOE", "given_names": "JANE"},
        matches=[{"list": "nofly", "list_name": "No-fly", "action": "DENY", "kind": "document",
                  "category": "violent", "reference": "CASE-42", "valid_until": "2030-01-01",
                  "redress": "write to the ombudsman"}],
        masked_document_number="******567",
        decided_at="2024-03-01T12:00:00+00:00",
        anything_else="dropped",
    )
    with Journal(jpath) as jrnl:
        stored = jrnl.append(record)
        raw = on_disk(jpath)
    raw += on_disk(jpath)
    assert b"DOE" not in raw and b"X1234567" not in raw
    assert stored.at == T0
    assert stored.to_dict() | {"prev_hash": None, "hash": None} == {
        "seq": 1, "at": "2024-03-01T12:00:00.000000+00:00", "verdict": "DENY",
        "reasons": ["deny reason"], "notes": [],
        "lists": {"nofly": {"version": 7, "digest": "ab" * 32}},
        "matches": [{"list": "nofly", "list_name": "No-fly", "action": "DENY", "kind": "document",
                     "category": "violent", "reference": "CASE-42"}],
        "channel": "scanner", "operator": "agent-7", "masked_document_number": "******567",
        "snapshot_age_seconds": 180, "stale": False, "prev_hash": None, "hash": None,
    }


@pytest.mark.parametrize("number", ["L898902C3", "AB1234", "******1234", "1 2 3 4", "X*X*X*X"])
def test_a_document_number_showing_more_than_three_characters_is_refused(jpath, number):
    with Journal(jpath) as jrnl:
        with pytest.raises(UnmaskedDocumentNumber, match="at most 3"):
            jrnl.append(verdict_dict(masked_document_number=number))
        assert jrnl.count() == 0


@pytest.mark.parametrize("masked", ["******789", "•••••789", "…C3", "789", "******", "", None])
def test_masked_document_numbers_are_accepted(jpath, masked):
    with Journal(jpath) as jrnl:
        assert jrnl.append(verdict_dict(masked_document_number=masked)).masked_document_number == masked


@FAST
@given(number=st.text(min_size=0, max_size=20))
def test_the_journal_never_keeps_more_than_three_readable_characters(tmp_path, number):
    with Journal(tmp_path / "journal.db") as jrnl:
        try:
            stored = jrnl.append(verdict_dict(masked_document_number=number))
        except UnmaskedDocumentNumber:
            assert sum(ch.isalnum() for ch in number) > 3
        else:
            assert sum(ch.isalnum() for ch in stored.masked_document_number) <= 3


def test_a_full_document_number_in_the_reasons_is_masked_not_journaled(jpath):
    record = verdict_dict("REFER", reasons=["document L898902C3 has expired"],
                          notes=["seen L898902C3 before"], document={"document_number": "L898902C3"})
    with Journal(jpath) as jrnl:
        stored = jrnl.append(record)
    assert list(stored.reasons) == ["document ******2C3 has expired"]
    assert list(stored.notes) == ["seen ******2C3 before"]
    assert b"L898902C3" not in jpath.read_bytes()


def test_a_short_number_that_collides_with_a_date_still_journals_the_verdict(jpath):
    """A shown verdict must be journaled: document number 2012, expired on 2012-04-15."""
    record = verdict_dict("REFER", reasons=["document expired on 2012-04-15"],
                          document={"document_number": "2012"})
    with Journal(jpath) as jrnl:
        stored = jrnl.append(record)
    assert stored.verdict == "REFER" and stored.reasons == ("document expired on 2012-04-15",)


def test_a_short_number_inside_a_match_reference_still_journals_the_deny(jpath):
    record = verdict_dict("DENY", reasons=["document listed (ref. DA-2026-000417)"],
                          matches=[{"list": "air", "reference": "DA-2026-000417", "action": "DENY"}],
                          document={"document_number": "2026"})
    with Journal(jpath) as jrnl:
        stored = jrnl.append(record)
    assert stored.verdict == "DENY" and "DA-2026-000417" in stored.reasons[0]


@pytest.mark.parametrize("bad, message", [
    ({"verdict": "MAYBE"}, "verdict must be one of"),
    ({"reasons": "not a list"}, "reasons must be a list"),
    ({"operator": 7}, "operator must be a string"),
    ({"snapshot": {"lists": {"nofly": {"digest": object()}}}}, "not plain JSON"),
    ({"decided_at": "yesterday"}, "not an ISO 8601 time"),
])
def test_malformed_records_are_refused_with_a_reason(jpath, bad, message):
    with Journal(jpath) as jrnl:
        with pytest.raises(JournalError, match=message):
            jrnl.append(verdict_dict(**bad))


def test_a_real_decision_is_journaled_masked_and_the_file_never_holds_the_number(jpath):
    payload = (REPO / "appliance" / "samples" / "passport-td3.txt").read_bytes()
    document = parse_payload(payload, today=T0.date())
    decision = decide(document=document, error=None, identity=None, entries=[], clearances=[],
                      lists=[], profile=DeviceProfile(scopes=frozenset({"air_travel"})),
                      now=T0, channel="scanner", operator="agent-7")
    with Journal(jpath) as jrnl:
        stored = jrnl.append(decision.to_dict())
        assert jrnl.verify().ok
        raw = on_disk(jpath)
    raw += on_disk(jpath)
    assert stored.verdict == decision.verdict.value and stored.at == T0
    assert stored.masked_document_number == "******" + document.document_number[-3:]
    assert document.document_number.encode() not in raw
    assert document.surname.encode() not in raw


# -- reading -------------------------------------------------------------------


def test_since_replays_records_after_an_event_id_in_order(jpath):
    with Journal(jpath) as jrnl:
        fill(jrnl, ["CLEAR"] * 10)
        assert [r.seq for r in jrnl.since(4, limit=3)] == [5, 6, 7]
        assert [r.seq for r in jrnl.since(8)] == [9, 10]
        assert jrnl.since(10) == []
        assert [r.seq for r in jrnl.latest(3)] == [10, 9, 8]
        assert jrnl.get(5) == jrnl.since(4, limit=1)[0]
        assert jrnl.get(11) is None


def test_one_journal_shared_by_threads_keeps_one_chain(jpath):
    with Journal(jpath) as jrnl:
        threads = [threading.Thread(target=fill, args=(jrnl, ["CLEAR"] * 15)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report = jrnl.verify()
    assert report.ok and report.records == 60 and report.head_seq == 60


APPENDER = """
import sys, time
from appliance.journal import Journal
with Journal(sys.argv[1], deferred_sync=sys.argv[4] == "deferred") as jrnl:
    while time.time() < float(sys.argv[3]):  # both start together
        time.sleep(0.001)
    for _ in range(100):
        jrnl.append({"verdict": "CLEAR", "channel": sys.argv[2]})
        time.sleep(0.002)  # let the other process in between appends
"""


@pytest.mark.parametrize("sync", ["full", "deferred"])
def test_two_processes_appending_at_once_keep_one_chain(jpath, sync):
    Journal(jpath).close()
    start = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(jpath), name, start, sync], cwd=REPO)
             for name in ("scanner", "camera")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with Journal(jpath) as jrnl:
        report = jrnl.verify()
        channels = [r.channel for r in jrnl.since(0, limit=500)]
    assert report.ok and report.records == 200
    assert channels.count("scanner") == channels.count("camera") == 100


# -- deferred sync: the fsync off the verdict's path -----------------------------


def test_a_deferred_journal_commits_without_waiting_and_the_outbox_still_syncs_each_commit(jpath):
    with Journal(jpath, deferred_sync=True) as jrnl:
        assert jrnl.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    db = open_db(jpath)  # what the Outbox and every other opener get
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


def test_deferred_appends_are_synced_just_behind_and_wait_durable_confirms_it(jpath):
    with Journal(jpath, deferred_sync=True) as jrnl:
        records = fill(jrnl, ["CLEAR", "DENY", "REFER"] * 7)
        assert jrnl.wait_durable(records[-1].seq, timeout=10)
        assert jrnl.durable_seq == 21 == jrnl.head()[0]
        assert jrnl.verify().ok


def test_a_deferred_journal_checkpoints_on_the_flusher_not_on_an_append(jpath):
    with Journal(jpath, deferred_sync=True) as jrnl:
        assert jrnl.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        empty = jpath.stat().st_size
        fill(jrnl, ["CLEAR"] * (CHECKPOINT_EVERY + 10))
        jrnl.flush()  # the flusher checkpoints right after a sync past CHECKPOINT_EVERY
        deadline = time.monotonic() + 10
        while jpath.stat().st_size == empty and time.monotonic() < deadline:
            time.sleep(0.01)
        assert jpath.stat().st_size > empty  # the records reached the database file itself
        assert jrnl.verify().ok


def test_wait_durable_never_counts_a_record_not_yet_appended(jpath):
    with Journal(jpath, deferred_sync=True) as jrnl:
        fill(jrnl, ["CLEAR"] * 3)
        assert jrnl.wait_durable(1000, timeout=10)  # a seq from the future, e.g. ?scan=1000
        assert jrnl.durable_seq == 3


def test_a_deferred_journal_also_syncs_what_another_process_appended(jpath):
    with Journal(jpath) as other:
        fill(other, ["DENY"] * 4)
    with Journal(jpath, deferred_sync=True) as jrnl:
        assert jrnl.durable_seq == 0  # nothing synced by this one yet
        assert jrnl.flush() == 4 and jrnl.durable_seq == 4


def test_after_a_failed_fsync_the_journal_refuses_to_append(jpath, monkeypatch):
    import appliance.wal_flush

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    with Journal(jpath, deferred_sync=True) as jrnl:
        monkeypatch.setattr(appliance.wal_flush.os, "fsync", failing_fsync)
        [record] = fill(jrnl, ["DENY"])
        with pytest.raises(JournalError, match="could not be synced to disk: .*Input/output error"):
            jrnl.wait_durable(record.seq, timeout=10)
        with pytest.raises(JournalError, match="could not be synced"):
            jrnl.append(verdict_dict("CLEAR"))
        monkeypatch.undo()
        assert jrnl.verify().ok and jrnl.count() == 1


KILLED_WHILE_APPENDING = """
import os, signal, sys
from appliance.journal import Journal
jrnl = Journal(sys.argv[1], deferred_sync=True)
for n in range(int(sys.argv[2])):
    record = jrnl.append({"verdict": "DENY", "reasons": ["listed"], "channel": "scanner"})
    os.write(1, f"{record.seq} {record.hash}\\n".encode())  # the verdict is shown now
os.kill(os.getpid(), signal.SIGKILL)  # before close(), and the flusher may not have run
"""


@pytest.mark.parametrize("appends", [1, 40])
def test_a_deferred_append_survives_the_process_being_killed_right_after(jpath, appends):
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_APPENDING, str(jpath), str(appends)],
                          capture_output=True, cwd=REPO, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    shown = [line.split() for line in proc.stdout.decode().splitlines()]
    assert len(shown) == appends
    with Journal(jpath, create=False) as jrnl:
        report = jrnl.verify()
        assert report.ok and report.records == appends
        assert [str(report.head_seq), report.head_hash] == shown[-1]


KILLED_AT_RANDOM = """
import os, sys
from appliance.journal import Journal
jrnl = Journal(sys.argv[1], deferred_sync=True)
while True:
    record = jrnl.append({"verdict": "CLEAR", "channel": "scanner"})
    os.write(1, f"{record.seq}\\n".encode())
"""


def test_killing_a_deferred_appender_at_random_moments_never_breaks_the_chain(jpath):
    rng = random.Random(7)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_AT_RANDOM, str(jpath)], cwd=REPO,
                                stdout=subprocess.PIPE)
        first = proc.stdout.readline()  # it is appending now
        assert first, "the appender did not start"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        out = first + proc.stdout.read()
        proc.wait(timeout=10)
        lines = out.decode().split()
        shown = int(lines[-1]) if out.endswith(b"\n") else int(lines[-2])
        report = verify(jpath)
        assert report.ok, report.problem
        assert report.head_seq >= shown  # every verdict it showed was kept


# -- verification and tampering ------------------------------------------------


def built(jpath, n=30):
    with Journal(jpath) as jrnl:
        fill(jrnl, ["CLEAR", "DENY", "REFER"] * (n // 3))
    return jpath


def verify(jpath):
    with Journal(jpath, create=False) as jrnl:
        return jrnl.verify()


def test_an_untouched_journal_verifies(jpath):
    report = verify(built(jpath))
    assert report.ok and report.records == 30 and report.purged == 0
    assert report.line() == "journal ok: 30 records, chain intact"


def test_an_empty_journal_verifies(jpath):
    Journal(jpath).close()
    assert verify(jpath).line() == "journal ok: 0 records, chain intact"


def test_editing_a_field_inside_a_record_is_caught_as_a_hash_mismatch(jpath):
    built(jpath)
    tamper(jpath, "UPDATE journal SET body = replace(body, '\"DENY\"', '\"CLEAR\"') WHERE seq = 5")
    report = verify(jpath)
    assert not report.ok and report.first_bad_seq == 5
    assert report.problem == "record 5 was altered: hash mismatch"


def test_editing_the_verdict_column_alone_is_caught(jpath):
    built(jpath)
    tamper(jpath, "UPDATE journal SET verdict = 'CLEAR' WHERE seq = 5")
    report = verify(jpath)
    assert report.first_bad_seq == 5 and "record 5 was altered" in report.problem
    assert "verdict" in report.problem


def test_deleting_a_record_is_caught_as_missing(jpath):
    built(jpath)
    tamper(jpath, "DELETE FROM journal WHERE seq = 17")
    report = verify(jpath)
    assert report.first_bad_seq == 17 and report.problem == "record 17 is missing"
    assert report.line() == "journal broken: record 17 is missing"


def test_deleting_the_newest_records_is_caught_against_the_head(jpath):
    built(jpath)
    tamper(jpath, "DELETE FROM journal WHERE seq >= 29")
    report = verify(jpath)
    assert report.first_bad_seq == 29 and report.problem == "records 29 to 30 are missing"


def test_swapping_two_records_is_caught(jpath):
    built(jpath)
    tamper(jpath, "UPDATE journal SET seq = -seq WHERE seq IN (5, 6)")
    tamper(jpath, "UPDATE journal SET seq = CASE seq WHEN -5 THEN 6 ELSE 5 END WHERE seq < 0")
    report = verify(jpath)
    assert report.first_bad_seq == 5 and "moved" in report.problem


def test_rewriting_a_record_with_a_fresh_hash_breaks_the_next_link(jpath):
    built(jpath)
    conn = sqlite3.connect(jpath)
    body, prev = conn.execute("SELECT body, prev_hash FROM journal WHERE seq = 5").fetchone()
    forged = body.replace('"DENY"', '"CLEAR"')
    with conn:
        conn.execute("UPDATE journal SET body = ?, verdict = 'CLEAR', hash = ? WHERE seq = 5",
                     (forged, hashlib.sha256((prev + forged).encode()).hexdigest()))
    conn.close()
    report = verify(jpath)
    assert report.first_bad_seq == 6
    assert report.problem.startswith("record 6 does not link to record 5: prev_hash mismatch")


def test_a_well_formed_record_added_behind_the_journals_back_is_caught(jpath):
    built(jpath)
    conn = sqlite3.connect(jpath)
    at, body, prev = conn.execute("SELECT at, body, hash FROM journal WHERE seq = 30").fetchone()
    forged = json.dumps(json.loads(body) | {"seq": 31, "verdict": "CLEAR"}, sort_keys=True,
                        separators=(",", ":"), ensure_ascii=False)
    with conn:
        conn.execute("INSERT INTO journal VALUES (31, ?, 'CLEAR', ?, ?, ?)",
                     (at, forged, prev, hashlib.sha256((prev + forged).encode()).hexdigest()))
    conn.close()
    report = verify(jpath)
    assert report.first_bad_seq == 31 and "outside the journal" in report.problem


def test_a_non_text_value_in_a_record_is_reported_not_raised(jpath):
    built(jpath)
    tamper(jpath, "UPDATE journal SET body = X'00ff' WHERE seq = 3")
    assert verify(jpath).problem == "record 3 was altered: a column holds a non-text value"


# -- retention -----------------------------------------------------------------


def test_purge_removes_clear_after_30_days_and_matches_after_365(jpath):
    with Journal(jpath) as jrnl:
        jrnl.append(verdict_dict("CLEAR"), at=T0)
        jrnl.append(verdict_dict("DENY"), at=T0)
        jrnl.append(verdict_dict("CLEAR"), at=T0 + timedelta(days=300))
        jrnl.append(verdict_dict("UNREADABLE"), at=T0 + timedelta(days=300))
        assert jrnl.purge(T0 + timedelta(days=31)) == 1
        assert [r.verdict for r in jrnl.since(0)] == ["DENY", "CLEAR", "UNREADABLE"]
        assert jrnl.purge(T0 + timedelta(days=366)) == 2
        assert [r.seq for r in jrnl.since(0)] == [4]
        report = jrnl.verify()
    assert report.ok and report.records == 1 and report.purged == 3
    assert report.line() == "journal ok: 1 record, chain intact (3 purged by retention)"


def test_retention_periods_are_configurable(jpath):
    with Journal(jpath) as jrnl:
        fill(jrnl, ["CLEAR", "REFER"], start=T0)
        assert jrnl.purge(T0 + timedelta(days=3), clear_days=7, match_days=7) == 0
        assert jrnl.purge(T0 + timedelta(days=3), clear_days=2, match_days=7) == 1
        assert jrnl.purge(T0 + timedelta(days=3), clear_days=2, match_days=2) == 1
        with pytest.raises(JournalError, match="clear_days"):
            jrnl.purge(T0, clear_days=-1)


def test_purged_runs_are_merged_so_the_anchor_table_stays_small(jpath):
    with Journal(jpath) as jrnl:
        fill(jrnl, ["CLEAR", "CLEAR", "DENY"] * 10, step=timedelta(hours=1))
        jrnl.purge(T0 + timedelta(days=40))
        assert jrnl.db.execute("SELECT count(*) FROM purged").fetchone()[0] == 10
        jrnl.purge(T0 + timedelta(days=400))
        assert jrnl.db.execute("SELECT first_seq, last_seq FROM purged").fetchall() == [(1, 30)]
        assert jrnl.verify().line() == "journal ok: 0 records, chain intact (30 purged by retention)"


def test_after_everything_is_purged_seqs_continue_and_link_to_the_anchor(jpath):
    with Journal(jpath) as jrnl:
        old = fill(jrnl, ["CLEAR"] * 5)
        jrnl.purge(T0 + timedelta(days=31))
        new = jrnl.append(verdict_dict("DENY"), at=T0 + timedelta(days=31))
        assert new.seq == 6 and new.prev_hash == old[-1].hash
        report = jrnl.verify()
    assert report.ok and report.records == 1 and report.purged == 5


def test_a_survivor_altered_after_a_purge_is_still_caught(jpath):
    with Journal(jpath) as jrnl:
        fill(jrnl, ["CLEAR", "DENY"] * 5)
        jrnl.purge(T0 + timedelta(days=31))
    tamper(jpath, "UPDATE journal SET body = replace(body, 'agent-7', 'agent-8') WHERE seq = 6")
    assert verify(jpath).problem == "record 6 was altered: hash mismatch"


def test_a_forged_anchor_breaks_the_link_of_the_next_survivor(jpath):
    with Journal(jpath) as jrnl:
        fill(jrnl, ["CLEAR", "DENY"] * 5)
        jrnl.purge(T0 + timedelta(days=31))
    tamper(jpath, "UPDATE purged SET last_hash = ? WHERE first_seq = 3", ("0" * 64,))
    report = verify(jpath)
    assert report.first_bad_seq == 4
    assert report.problem.startswith("record 4 does not link to purged record 3")


def test_a_deletion_dressed_up_as_retention_without_the_purge_log_is_caught(jpath):
    built(jpath)
    tamper(jpath, "DELETE FROM journal WHERE seq = 17")
    # Record 18's prev_hash is record 17's hash: the links alone would pass.
    tamper(jpath, "INSERT INTO purged SELECT 17, 17, prev_hash FROM journal WHERE seq = 18")
    report = verify(jpath)
    assert not report.ok and "purge log" in report.problem


@FAST
@given(events=st.lists(st.tuples(st.sampled_from(["CLEAR", "REFER", "DENY", "UNREADABLE"]),
                                 st.integers(0, 800)), min_size=1, max_size=25),
       purge_days=st.lists(st.integers(0, 900), min_size=1, max_size=3),
       victim=st.integers(0, 1000))
def test_any_purge_history_keeps_exactly_the_retained_records_and_a_verifiable_chain(
        tmp_path_factory, events, purge_days, victim):
    path = tmp_path_factory.mktemp("j") / "journal.db"
    with Journal(path) as jrnl:
        for verdict, day in events:
            jrnl.append(verdict_dict(verdict), at=T0 + timedelta(days=day))
        for day in sorted(purge_days):
            jrnl.purge(T0 + timedelta(days=day))
        # Each purge removes a subset of what a later one would, so the last decides.
        age_now = max(purge_days)
        kept = [i + 1 for i, (verdict, day) in enumerate(events)
                if age_now - day <= (30 if verdict == "CLEAR" else 365)]
        assert [r.seq for r in jrnl.since(0, limit=100)] == kept
        report = jrnl.verify()
        assert report.ok and report.records == len(kept)
        assert report.records + report.purged == len(events)
    if kept:
        seq = kept[victim % len(kept)]
        tamper(path, "UPDATE journal SET body = replace(body, 'agent-7', 'agent-X') WHERE seq = ?",
               (seq,))
        assert verify(path).first_bad_seq == seq


# -- schema --------------------------------------------------------------------


def test_migrations_are_recorded_and_not_applied_twice(jpath):
    Journal(jpath).close()
    Journal(jpath).close()
    conn = sqlite3.connect(jpath)
    ids = [row[0] for row in conn.execute("SELECT id FROM migrations ORDER BY id")]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert ids == [m.id for m in MIGRATIONS] and mode == "wal"


def test_a_journal_from_a_newer_gatecheck_is_refused(jpath):
    Journal(jpath).close()
    tamper(jpath, "INSERT INTO migrations VALUES (99, 'future', '2099-01-01')")
    with pytest.raises(JournalDbError, match="schema 99 is newer"):
        Journal(jpath)


def test_open_without_create_refuses_a_missing_file_and_does_not_make_one(tmp_path):
    with pytest.raises(JournalDbError, match="no journal at"):
        Journal(tmp_path / "journal.db", create=False)
    assert not (tmp_path / "journal.db").exists()


def test_the_connection_is_durable_on_every_commit(jpath):
    db = open_db(jpath)
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


# -- `gatecheck journal` -------------------------------------------------------


@click.group()
def gatecheck():
    """A stand-in root group: the lead registers `journal` in appliance/cli.py."""


gatecheck.add_command(journal_group)


def run(*args):
    return CliRunner().invoke(gatecheck, ["journal", *args])


def test_verify_command_prints_one_ok_line_and_exits_0(tmp_path):
    with Journal(tmp_path) as jrnl:
        fill(jrnl, ["CLEAR", "DENY"] * 3)
        jrnl.purge(T0 + timedelta(days=31))
    result = run("verify", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert result.output == "journal ok: 3 records, chain intact (3 purged by retention)\n"


def test_verify_command_names_the_first_problem_and_exits_1(tmp_path):
    built(tmp_path / "journal.db")
    tamper(tmp_path / "journal.db", "DELETE FROM journal WHERE seq IN (17, 20)")
    result = run("verify", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert result.output == "journal broken: record 17 is missing\n"


@pytest.mark.parametrize("content, message", [
    (None, "no journal at"),
    (b"this is not sqlite" * 100, "is not a readable journal"),
])
def test_verify_command_on_a_missing_or_foreign_file_is_one_line_not_a_traceback(
        tmp_path, content, message):
    if content is not None:
        (tmp_path / "journal.db").write_bytes(content)
    result = run("verify", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert message in result.output and len(result.output.splitlines()) == 1


def test_verify_command_on_another_sqlite_file_says_it_is_not_a_journal(tmp_path):
    tamper(tmp_path / "journal.db", "CREATE TABLE unrelated (x)")
    result = run("verify", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "not a gatecheck journal" in result.output
    conn = sqlite3.connect(tmp_path / "journal.db")
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["unrelated"]
    conn.close()


def test_purge_command_applies_configured_retention(tmp_path):
    (tmp_path / "gatecheck.toml").write_text("journal_clear_days = 5\n")
    with Journal(tmp_path) as jrnl:
        fill(jrnl, ["CLEAR", "DENY"])
    result = run("purge", "--data-dir", str(tmp_path), "--now", "2024-03-07T12:00:00+00:00")
    assert result.exit_code == 0, result.output
    assert result.output == "purged 1 record (CLEAR older than 5 days, others older than 365 days)\n"
    assert verify(tmp_path / "journal.db").purged == 1


def test_verify_runs_as_a_real_process_with_gatecheck_home(tmp_path):
    built(tmp_path / "journal.db")
    code = "from appliance.journal_cli import journal; journal()"
    env = {**os.environ, "GATECHECK_HOME": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-c", code, "verify"], capture_output=True, text=True,
                        env=env, cwd=REPO, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "journal ok: 30 records, chain intact\n", "")
    missing = subprocess.run([sys.executable, "-c", code, "verify", "--data-dir",
                              str(tmp_path / "nowhere")], capture_output=True, text=True,
                             cwd=REPO, timeout=60)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == f"gatecheck: no journal at {tmp_path / 'nowhere' / 'journal.db'}"


def test_a_read_only_look_at_the_journal_can_neither_write_nor_migrate_it(tmp_path):
    with Journal(tmp_path):
        pass
    db = open_db(tmp_path, readonly=True)
    try:
        applied = db.execute("SELECT count(*) FROM migrations").fetchone()[0]
        assert applied == len(MIGRATIONS)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db.execute("DELETE FROM migrations")
    finally:
        db.conn.close()
    with pytest.raises(JournalDbError, match="no journal"):
        open_db(tmp_path / "elsewhere", readonly=True)
