"""Options and error output shared by every `gatecheck` subcommand."""

from __future__ import annotations

import sys
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
