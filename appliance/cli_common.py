"""Options and error output shared by every `gatecheck` subcommand."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Device data directory (default: $GATECHECK_HOME, else a per-user directory).",
)


def fail(message: str) -> None:
    """One line on stderr and exit 1: the only way a command reports an operational error."""
    click.echo(f"gatecheck: {message}", err=True)
    sys.exit(1)


def iso_date(ctx, param, value: str | None) -> date | None:
    """click callback: a YYYY-MM-DD option as a date, or a one-line usage error."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None
