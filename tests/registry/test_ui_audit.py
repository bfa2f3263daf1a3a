"""The audit page: filters, paging, downloads in the command's format, and the chain check in one line."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from registry.audit import AuditRecord, audit_log, chain_problems
from registry.cli import registry as registry_cli
from tests.support.ui_world import accepted_entry, csrf, make_app, signed_in, text


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def test_the_page_filters_by_subject_and_date_range(app):
    entry_id = accepted_entry(app)
    app.extensions["gatecheck_ui"].appeals.file(entry_id, grounds="Mistaken identity.", filed_by="lee")
    ada = signed_in(app, "ada")
    page = text(ada.get("/audit", query_string={"subject": f"entry:{entry_id}"}))
    assert "appeal.file" in page and "Mistaken identity." in page and "user.create" not in page
    assert "user.create" in text(ada.get("/audit", query_string={"since": today(), "until": today()}))
    tomorrow = (datetime.now(timezone.utc).date() + timedelta(days=1)).isoformat()
    assert "No records." in text(ada.get("/audit", query_string={"since": tomorrow}))
    assert "report.accept" in text(ada.get("/audit", query_string={"actor": "sam"}))


def test_paging_and_sorting_keep_the_filters_in_every_link(app):
    ui = app.extensions["gatecheck_ui"]
    with ui.engine.begin() as conn:
        for n in range(30):
            ui.audit.append(conn, actor="lin", action="list.note", subject="list:da-ban", reason=f"note {n}")
    ada = signed_in(app, "ada")
    count = ui.audit.head().seq
    first = text(ada.get("/audit", query_string={"since": today()}))
    assert f'<th scope="row">{count}</th>' in first and '<th scope="row">1</th>' not in first
    assert f'href="/audit?since={today()}&amp;page=2" rel="next"' in first
    assert f'href="/audit?since={today()}&amp;sort=record&amp;dir=asc"' in first and 'aria-sort="descending"' in first
    oldest = text(ada.get("/audit", query_string={"since": today(), "sort": "record", "dir": "asc"}))
    assert '<th scope="row">1</th>' in oldest and 'aria-sort="ascending"' in oldest


def test_the_json_lines_download_is_the_commands_export_and_verifies(app):
    entry_id = accepted_entry(app)
    app.extensions["gatecheck_ui"].appeals.file(entry_id, grounds="Mistaken identity.", filed_by="lee")
    response = signed_in(app, "ada").get("/audit/export", query_string={"format": "jsonl", "subject": f"entry:{entry_id}"})
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    command = CliRunner().invoke(registry_cli, ["audit", "export", "--data-dir", app.config["DATA_DIR"],
                                                "--subject", f"entry:{entry_id}"])
    assert response.get_data(as_text=True) == command.output
    everything = signed_in(app, "ada").get("/audit/export").get_data(as_text=True)
    records = [json.loads(line) for line in everything.splitlines()]
    rebuilt = [AuditRecord(**{**r, "prev_hash": bytes.fromhex(r["prev_hash"]), "hash": bytes.fromhex(r["hash"])})
               for r in records]
    assert chain_problems(rebuilt) == [] and len(rebuilt) == app.extensions["gatecheck_ui"].audit.head().seq


def test_the_csv_download_holds_the_same_records_and_defuses_spreadsheet_formulas(app):
    entry_id = accepted_entry(app)
    app.extensions["gatecheck_ui"].appeals.file(entry_id, grounds="=HYPERLINK(\"x\")", filed_by="lee")
    body = signed_in(app, "ada").get("/audit/export", query_string={"format": "csv"}).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == app.extensions["gatecheck_ui"].audit.head().seq
    assert next(r for r in rows if r["action"] == "appeal.file")["reason"] == "'=HYPERLINK(\"x\")"
    command = CliRunner().invoke(registry_cli, ["audit", "export", "--data-dir", app.config["DATA_DIR"],
                                                "--format", "csv"])
    assert command.output == body.replace("\r\n", "\n")  # one writer (CliRunner shows CRLF as LF)


@pytest.mark.parametrize("query, message", [
    ({"since": "yesterday"}, "From (UTC day): Not a valid date value."),
    ({"since": "2026-11-27", "until": "2026-11-01"}, "the range ends before it starts"),
])
def test_bad_filters_are_one_line_not_a_traceback(app, query, message):
    ada = signed_in(app, "ada")
    page = ada.get("/audit", query_string=query)
    assert page.status_code == 400 and message in text(page)
    download = ada.get("/audit/export", query_string=query)
    assert download.status_code == 400 and f"Not exported: {message}" in text(download)


def test_verify_says_intact_in_one_line_and_names_an_edited_record(app):
    accepted_entry(app)
    ada = signed_in(app, "ada")
    head = app.extensions["gatecheck_ui"].audit.head()
    intact = text(ada.post("/audit/verify", data={"csrf_token": csrf(ada, "/audit")}, follow_redirects=True))
    assert f"Audit log intact: {head.seq:,} records, head {head.hash.hex()}." in intact
    with app.extensions["gatecheck_ui"].engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(reason="quietly rewritten"))
    broken = text(ada.post("/audit/verify", data={"csrf_token": csrf(ada, "/audit")}, follow_redirects=True))
    assert "Audit log broken: record 3: its content does not match its hash (edited)." in broken
