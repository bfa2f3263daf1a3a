"""What every `gatecheck registry` command group shares: the data-dir and --by options, opening the database."""

from __future__ import annotations

import getpass
from pathlib import Path

import click
from sqlalchemy import Engine

from appliance.cli_common import fail

data_dir_option = click.option(
    "--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Registry data directory (database, signing key and certificate).",
)
by_option = click.option("--by", default=None, help="Who makes the change (default: the login name).")


def who(value: str | None) -> str:
    """The --by value, else the login name: every change is attributed to someone."""
    if value:
        return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def registry_engine(data_dir: Path) -> Engine:
    """The registry database of ``data_dir``, or one line saying it is not a registry data directory."""
    from registry.db import make_engine
    from registry.server import RegistryPaths

    paths = RegistryPaths(data_dir)
    if not paths.database.exists():
        fail(f"{data_dir} is not a registry data directory; run `gatecheck registry init` first")
    return make_engine(paths.database_url)
