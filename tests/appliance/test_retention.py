"""A counter that is never restarted still forgets old verdicts on schedule."""

from datetime import datetime, timedelta, timezone

from appliance.config import load_config
from appliance.journal import Journal
from appliance.web.state import RETENTION_EVERY, CounterState

NOW = datetime.now(timezone.utc)


def _record(verdict):
    return {"verdict": verdict, "reasons": [], "matches": [], "notes": [], "channel": "scanner",
            "operator": "op", "masked_document_number": "******123",
            "snapshot": {"lists": {}, "age_seconds": 0, "stale": False}}


def test_starting_the_counter_purges_verdicts_past_their_retention(tmp_path):
    with Journal(tmp_path) as journal:
        journal.append(_record("CLEAR"), at=NOW - timedelta(days=31))  # past 30 days: purged
        journal.append(_record("CLEAR"), at=NOW - timedelta(days=29))
        journal.append(_record("DENY"), at=NOW - timedelta(days=200))  # matches keep 365 days
    state = CounterState(load_config(tmp_path, env={}))
    try:
        assert [r.verdict for r in state.journal.since(0)] == ["CLEAR", "DENY"]
        assert state.journal.verify().ok
    finally:
        state.close()


def test_retention_runs_again_once_an_hour_has_passed(tmp_path):
    state = CounterState(load_config(tmp_path, env={}))
    try:
        state.journal.append(_record("CLEAR"), at=NOW - timedelta(days=40))
        later = datetime.now(timezone.utc)
        assert state.apply_retention(later) == 0  # just ran at start
        assert state.apply_retention(later + RETENTION_EVERY + timedelta(seconds=1)) == 1
    finally:
        state.close()
