"""`gatecheck registry audit`: check the audit chain and export it for auditors (docs/audit.md)."""

from __future__ import annotations

import json
from datetime import datetime, time, timezone
from pathlib import Path

import click

from appliance.cli_common import iso_date
from registry.cli_common import data_dir_option, registry_engine


def _log(data_dir: Path):
    from registry.audit import AuditLog

    return AuditLog(registry_engine(data_dir))


def _unix(day, end: bool) -> int | None:
    if day is None:
        return None
    return int(datetime.combine(day, time.max if end else time.min, timezone.utc).timestamp())


@click.group("audit")
def audit_group() -> None:
    """The append-only, hash-chained log of every change."""


@audit_group.command("verify")
@data_dir_option
def audit_verify(data_dir: Path) -> None:
    """Check every record's hash and link; exit 1 and name the first break."""
    log = _log(data_dir)
    count, problems = log.verify()
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(1)
    head = log.head()
    click.echo(f"audit log intact: {count} records" + (f", head {head.hash.hex()}" if head else ""))


@audit_group.command("export")
@data_dir_option
@click.option("--from", "since", callback=iso_date, help="First day (UTC, YYYY-MM-DD).")
@click.option("--to", "until", callback=iso_date, help="Last day (UTC, YYYY-MM-DD), inclusive.")
@click.option("--subject", help="Only one subject, e.g. entry:42 or device:<id>.")
def audit_export(data_dir: Path, since, until, subject) -> None:
    """Records as JSON lines, with their hashes, so the export can be checked on its own."""
    for record in _log(data_dir).records(since=_unix(since, False), until=_unix(until, True), subject=subject):
        click.echo(json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True))
