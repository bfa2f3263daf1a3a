"""The audit log's chain: every edit, deletion, insertion or reordering is found (issue 5, "Audit")."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, insert, select, update

from registry.audit import GENESIS, AuditError, AuditLog, audit_log, chain_problems, record_hash
from registry.cli import registry as registry_cli
from registry.db import make_engine
from registry.server import RegistryPaths

DAY = 86_400
T0 = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp())


@pytest.fixture
def log(tmp_path) -> AuditLog:
    return AuditLog(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))


def write(log: AuditLog, n: int, *, start: int = T0, step: int = DAY) -> None:
    for i in range(n):
        with log.engine.begin() as conn:
            log.append(conn, actor=f"reviewer-{i % 2}", action="entry.accept", subject=f"entry:{i % 3}",
                       reason=f"report {i} upheld", before=None if i % 3 == 0 else {"status": "pending"},
                       after={"status": "active", "valid_until": "2027-11-01"}, at=start + i * step)


def test_a_chain_of_changes_verifies_from_the_first_record(log):
    write(log, 12)
    count, problems = log.verify()
    assert (count, problems) == (12, [])
    first = next(log.records())
    assert first.seq == 1 and first.prev_hash == GENESIS
    assert first.hash == record_hash(GENESIS, first.body())


def test_an_edited_reason_is_found_and_named(log):
    write(log, 6)
    with log.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(reason="nothing to see"))
    assert log.verify()[1] == ["record 4: its content does not match its hash (edited)"]


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(log):
    write(log, 6)
    with log.engine.begin() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.seq == 3)).one()
        body = {k: getattr(row, k) for k in ("seq", "at", "actor", "action", "subject", "reason", "before", "after")}
        body["actor"] = "someone-else"
        conn.execute(update(audit_log).where(audit_log.c.seq == 3)
                     .values(actor="someone-else", hash=record_hash(bytes(row.prev_hash), body)))
    assert log.verify()[1] == ["record 4: does not point at the record before it"]


def test_a_deleted_record_is_found(log):
    write(log, 6)
    with log.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    assert log.verify()[1][0].startswith("record 3: expected record 2 next")


def test_a_record_inserted_at_the_end_without_the_chain_is_found(log):
    write(log, 3)
    with log.engine.begin() as conn:
        conn.execute(insert(audit_log).values(seq=4, at=T0, actor="intruder", action="entry.lift", subject="entry:1",
                                              reason="", before=None, after=None, prev_hash=GENESIS,
                                              hash=record_hash(GENESIS, {})))
    assert "record 4: does not point at the record before it" in log.verify()[1]


def test_a_change_rolled_back_leaves_no_record(log):
    write(log, 2)
    with pytest.raises(RuntimeError):
        with log.engine.begin() as conn:
            log.append(conn, actor="reviewer-1", action="entry.accept", subject="entry:9", at=T0)
            raise RuntimeError("the change itself failed")
    assert log.verify() == (2, [])


def test_a_record_needs_an_actor(log):
    with log.engine.begin() as conn, pytest.raises(AuditError, match="who made the change"):
        log.append(conn, actor="", action="entry.accept", subject="entry:1")


def test_a_date_range_export_verifies_on_its_own_from_its_first_link(log):
    write(log, 10)
    window = list(log.records(since=T0 + 3 * DAY, until=T0 + 6 * DAY))
    assert [r.seq for r in window] == [4, 5, 6, 7]
    assert chain_problems(window, expect_prev=window[0].prev_hash, expect_seq=4) == []
    assert [r.seq for r in log.records(subject="entry:1")] == [2, 5, 8]


def test_the_cli_verifies_and_exports_and_names_a_break(tmp_path):
    data_dir = tmp_path / "registry"
    runner = CliRunner()
    assert runner.invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    log = AuditLog(make_engine(RegistryPaths(data_dir).database_url))
    write(log, 5)

    ok = runner.invoke(registry_cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert ok.exit_code == 0 and ok.output.startswith("audit log intact: 5 records, head ")
    exported = runner.invoke(registry_cli, ["audit", "export", "--data-dir", str(data_dir),
                                            "--from", "2026-11-02", "--to", "2026-11-03"])
    lines = [json.loads(line) for line in exported.output.splitlines()]
    assert [line["seq"] for line in lines] == [2, 3]
    assert lines[1]["prev_hash"] == lines[0]["hash"]

    with log.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(after='{"status":"removed"}'))
    broken = runner.invoke(registry_cli, ["audit", "verify", "--data-dir", str(data_dir)])
    assert broken.exit_code == 1
    assert "error: record 2: its content does not match its hash (edited)" in broken.output
    bad_date = runner.invoke(registry_cli, ["audit", "export", "--data-dir", str(data_dir), "--from", "yesterday"])
    assert bad_date.exit_code == 2 and "is not a date in YYYY-MM-DD form" in bad_date.output


def test_entries_added_and_removed_from_the_cli_are_audited_with_their_version(tmp_path):
    data = str(tmp_path / "registry")

    def cli(*args: str) -> str:
        result = CliRunner().invoke(registry_cli, [*args])
        assert result.exit_code == 0, result.output
        return result.output

    cli("init", "--data-dir", data)
    cli("list", "create", "--data-dir", data, "nfl", "--name", "No-fly list", "--authority", "CAA",
        "--legal-basis", "Aviation Act s.12", "--scope", "air_travel", "--default-action", "DENY")
    added = json.loads(cli("entry", "add", "--data-dir", data, "--list", "nfl", "--surnames", "Muller",
                           "--dob", "1970-05-17", "--category", "aviation-security", "--reference", "NFL-1",
                           "--valid-until", "2030-12-31", "--reason", "court order 12/2026", "--by", "officer-1"))
    cli("entry", "remove", "--data-dir", data, "--list", "nfl", "--entry-id", str(added["entry_id"]),
        "--reason", "order quashed", "--by", "officer-2")
    log = AuditLog(make_engine(RegistryPaths(tmp_path / "registry").database_url))
    records = [r for r in log.records(subject=f"entry:{added['entry_id']}")]
    assert [(r.action, r.actor, r.reason) for r in records] == [
        ("entry.add", "officer-1", "court order 12/2026"), ("entry.remove", "officer-2", "order quashed")]
    assert json.loads(records[0].after)["version"] == 1 and json.loads(records[1].after)["version"] == 2
    assert log.verify()[1] == []
