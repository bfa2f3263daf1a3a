"""`gatecheck registry audit`: check the audit chain and export it for auditors (docs/audit.md)."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli_common import iso_date
from registry.cli_common import data_dir_option, registry_engine


def _log(data_dir: Path):
    from registry.audit import AuditLog

    return AuditLog(registry_engine(data_dir))


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
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True,
              help="JSON lines (verifiable) or CSV (for a spreadsheet).")
def audit_export(data_dir: Path, since, until, subject, fmt) -> None:
    """Records with their hashes, so a JSON-lines export can be checked on its own."""
    from registry.audit import day_bounds, export_csv, export_jsonl

    first, last = day_bounds(since, until)
    records = _log(data_dir).records(since=first, until=last, subject=subject)
    for line in (export_jsonl if fmt == "jsonl" else export_csv)(records):
        click.echo(line, nl=False)
