"""The incident-report outbox: durable, idempotent on the client's id, with visible state."""

import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.journal import Journal
from appliance.outbox import ConflictingReport, Outbox, OutboxError, UnknownReport

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def report(**extra):
    return {
        "category": "disruptive_behaviour",
        "narrative": "Shouted at staff; refused to stow luggage — see CCTV 3.",
        "flight": "XY123",
        "date": "2024-03-01",
        "document": {"issuing_country": "UTO", "masked_document_number": "******2C3"},
        "reporter": "agent-7",
    } | extra


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path) as box:
        yield box


def test_enqueue_gives_a_fresh_uuid4_and_the_report_is_queued(outbox):
    report_id = outbox.enqueue(report())
    assert uuid.UUID(report_id).version == 4
    assert outbox.state(report_id) == "queued"
    assert outbox.depth() == 1
    assert outbox.enqueue(report()) != report_id


def test_the_same_id_enqueued_twice_is_one_report(outbox):
    report_id = str(uuid.uuid4())
    assert outbox.enqueue(report(), report_id) == report_id
    assert outbox.enqueue(report(), report_id) == report_id
    assert outbox.depth() == 1 and len(outbox.pending()) == 1


def test_a_retry_with_the_same_content_in_another_key_order_is_the_same_report(outbox):
    report_id = outbox.enqueue({"a": 1, "b": [1, 2]})
    assert outbox.enqueue({"b": [1, 2], "a": 1}, report_id) == report_id
    assert outbox.depth() == 1


def test_a_different_report_under_an_existing_id_is_refused(outbox):
    report_id = outbox.enqueue(report())
    with pytest.raises(ConflictingReport, match=f"report {report_id} is already queued"):
        outbox.enqueue(report(flight="XY999"), report_id)
    assert outbox.get(report_id).report["flight"] == "XY123"


def test_a_retried_acknowledged_report_stays_acknowledged(outbox):
    report_id = outbox.enqueue(report())
    outbox.mark_acknowledged(report_id)
    outbox.enqueue(report(), report_id)
    assert outbox.state(report_id) == "acknowledged" and outbox.depth() == 0


def test_client_ids_are_normalised_so_spelling_does_not_duplicate(outbox):
    report_id = uuid.uuid4()
    outbox.enqueue(report(), str(report_id).upper())
    outbox.enqueue(report(), "{" + str(report_id) + "}")
    assert outbox.depth() == 1 and outbox.state(str(report_id)) == "queued"


@pytest.mark.parametrize("bad_id", ["", "report-1", "1234"])
def test_an_id_that_is_not_a_uuid_is_refused(outbox, bad_id):
    with pytest.raises(OutboxError, match="is not a UUID"):
        outbox.enqueue(report(), bad_id)


@pytest.mark.parametrize("bad", [
    report(flight=("XY", 123)),
    {1: "integer key"},
    report(when=datetime(2024, 1, 1)),
    report(score=float("nan")),
])
def test_a_report_that_would_not_read_back_the_same_is_refused(outbox, bad):
    with pytest.raises(OutboxError):
        outbox.enqueue(bad)
    assert outbox.depth() == 0


def test_reports_move_from_queued_to_sent_to_acknowledged(outbox):
    report_id = outbox.enqueue(report(), at=T0)
    outbox.mark_sent(report_id, T0 + timedelta(minutes=1))
    assert outbox.state(report_id) == "sent"
    assert [item.report_id for item in outbox.pending()] == [report_id]
    outbox.mark_acknowledged(report_id, T0 + timedelta(minutes=2))
    item = outbox.get(report_id)
    assert (item.state, item.created_at, item.sent_at, item.acknowledged_at, item.attempts) == (
        "acknowledged", T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), 1)
    assert outbox.pending() == [] and outbox.depth() == 0


def test_a_late_sent_after_the_acknowledgement_changes_nothing(outbox):
    report_id = outbox.enqueue(report())
    outbox.mark_acknowledged(report_id, T0)
    outbox.mark_sent(report_id, T0 + timedelta(minutes=5))
    outbox.mark_failed(report_id, "timeout")
    item = outbox.get(report_id)
    assert (item.state, item.sent_at, item.attempts, item.last_error) == ("acknowledged", None, 0, None)


def test_a_failed_attempt_keeps_the_report_pending_and_counts_it(outbox):
    report_id = outbox.enqueue(report())
    outbox.mark_failed(report_id, "registry unreachable")
    outbox.mark_failed(report_id, "HTTP 503")
    item = outbox.pending()[0]
    assert (item.report_id, item.state, item.attempts, item.last_error) == (
        report_id, "queued", 2, "HTTP 503")
    outbox.mark_sent(report_id)
    assert outbox.get(report_id).attempts == 3 and outbox.depth() == 1


def test_an_unknown_id_is_an_error_for_state_and_transitions(outbox):
    missing = str(uuid.uuid4())
    assert outbox.get(missing) is None
    for call in (outbox.state, outbox.mark_sent, outbox.mark_acknowledged):
        with pytest.raises(UnknownReport, match=f"no report {missing}"):
            call(missing)
    with pytest.raises(UnknownReport):
        outbox.mark_failed(missing, "x")


def test_pending_is_oldest_first_and_recent_is_newest_first(outbox):
    ids = [outbox.enqueue(report(n=n)) for n in range(5)]
    outbox.mark_sent(ids[1])
    outbox.mark_acknowledged(ids[2])
    assert [item.report_id for item in outbox.pending()] == [ids[0], ids[1], ids[3], ids[4]]
    assert [item.report_id for item in outbox.pending(limit=2)] == ids[:2]
    assert [item.report_id for item in outbox.recent(3)] == [ids[4], ids[3], ids[2]]
    assert [item.state for item in outbox.recent(5)] == [
        "queued", "queued", "acknowledged", "sent", "queued"]
    assert outbox.recent(1)[0].to_dict()["report"] == report(n=4)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.text(max_size=12), JSON, max_size=6))
def test_the_report_body_round_trips_exactly(outbox, body):
    report_id = outbox.enqueue(body)
    stored = outbox.get(report_id).report
    assert stored == body and list(stored) == list(body)
    assert outbox.enqueue(body, report_id) == report_id


KILLED_AFTER_ENQUEUE = """
import os, signal, sys
from appliance.outbox import Outbox
box = Outbox(sys.argv[1])
report_id = box.enqueue({"narrative": "flagged just before the power cut", "n": 1})
os.write(1, report_id.encode())
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_report_survives_the_process_being_killed_right_after_enqueue(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_ENQUEUE, str(tmp_path)],
                          capture_output=True, cwd=REPO, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    report_id = proc.stdout.decode()
    with Outbox(tmp_path) as box:
        assert box.state(report_id) == "queued"
        assert box.get(report_id).report == {"narrative": "flagged just before the power cut", "n": 1}


def test_outbox_and_journal_share_one_file_and_one_schema_history(tmp_path):
    with Outbox(tmp_path) as box, Journal(tmp_path) as jrnl:
        box.enqueue(report())
        jrnl.append({"verdict": "CLEAR"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.db"]
    conn = sqlite3.connect(tmp_path / "journal.db")
    names = [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY id")]
    conn.close()
    assert names == ["journal hash chain", "incident report outbox"]


def test_an_acknowledged_report_forgets_the_traveller(outbox, tmp_path):
    """Once the registry holds the report, the device keeps only its state, never who."""
    body = report(passenger={"surname": "ERIKSSON", "document_number": "L898902C3",
                             "date_of_birth": "1974-08-12"}, narrative="ERIKSSON struck a crew member")
    report_id = outbox.enqueue(body)
    outbox.mark_sent(report_id)
    outbox.mark_acknowledged(report_id)
    kept = outbox.get(report_id).report
    assert kept["scrubbed"] is True and "passenger" not in kept and "narrative" not in kept
    assert outbox.state(report_id) == "acknowledged"
    # A late retry of the same report is accepted and changes nothing.
    assert outbox.enqueue(body, report_id) == report_id
    assert outbox.get(report_id).report == kept
    outbox.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"ERIKSSON" not in b"".join(p.read_bytes() for p in tmp_path.glob("journal.db*"))
