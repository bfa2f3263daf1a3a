"""`gatecheck journal verify` and `gatecheck journal purge`.

Each prints one line. verify exits 0 when the chain is intact and 1 naming
the first problem; a missing or unreadable journal is also one line and
exit 1, never a traceback.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from appliance.config import ConfigError, default_data_dir, load_config
from appliance.journal import Journal
from appliance.journal_db import FILENAME, JournalDbError, as_utc

from appliance.cli_common import data_dir_option as _data_dir_option
from appliance.cli_common import fail as _fail


@click.group()
def journal() -> None:
    """The verdict journal (journal.db in the data directory)."""


@journal.command()
@_data_dir_option
def verify(data_dir: Path | None) -> None:
    """Check the journal's hash chain; exit 1 naming the first broken record."""
    path = (data_dir or default_data_dir()) / FILENAME
    try:
        with Journal(path, create=False) as jrnl:
            report = jrnl.verify()
    except JournalDbError as exc:
        _fail(exc.message)
    except sqlite3.DatabaseError as exc:
        _fail(f"journal database is damaged: {exc}")
    click.echo(report.line())
    sys.exit(0 if report.ok else 1)


def _parse_now(ctx, param, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None


@journal.command()
@_data_dir_option
@click.option("--clear-days", type=click.IntRange(min=0), default=None,
              help="Keep CLEAR verdicts this many days (default: journal_clear_days, 30).")
@click.option("--match-days", type=click.IntRange(min=0), default=None,
              help="Keep every other verdict this many days (default: journal_match_days, 365).")
@click.option("--now", callback=_parse_now, metavar="ISO-TIME",
              help="Purge as of this time instead of the clock (UTC unless an offset is given).")
def purge(data_dir: Path | None, clear_days: int | None, match_days: int | None,
          now: datetime | None) -> None:
    """Remove journal records past retention; the chain stays verifiable."""
    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        _fail(str(exc))
    clear_days = config.journal_clear_days if clear_days is None else clear_days
    match_days = config.journal_match_days if match_days is None else match_days
    try:
        with Journal(config.data_dir / FILENAME, create=False) as jrnl:
            removed = jrnl.purge(now or datetime.now(timezone.utc), clear_days, match_days)
    except JournalDbError as exc:
        _fail(exc.message)
    except sqlite3.DatabaseError as exc:
        _fail(f"journal database is damaged: {exc}")
    click.echo(f"purged {removed} record{'' if removed == 1 else 's'} (CLEAR older than "
               f"{clear_days} days, others older than {match_days} days)")
