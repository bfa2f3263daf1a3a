"""`gatecheck registry housekeeping`: one pass of the scheduled work, for a timer or by hand.

The server runs the same passes itself (registry/housekeeping.py); this
command is for deployments that prefer a systemd timer, and for operators
when no server runs. While a server runs it holds the lease, and this
command says so and does nothing: the server's next pass is minutes away.
"""

from __future__ import annotations

from pathlib import Path

import click

from registry.cli_common import data_dir_option, fail


@click.command("housekeeping")
@data_dir_option
def housekeeping(data_dir: Path) -> None:
    """Publish expired entries' removal and file device reports left unfiled; print what was done."""
    from registry.housekeeping import housekeeper_for
    from registry.server import RegistryPaths, create_app

    if not RegistryPaths(data_dir).database.exists():
        fail(f"{data_dir} is not a registry data directory; run `gatecheck registry init` first")
    app = create_app({"DATA_DIR": str(data_dir)})
    report = housekeeper_for(app).run_once()
    if report is None:
        click.echo("a running registry server holds the housekeeping lease and makes these passes itself; nothing done")
        return
    for list_id, count in report.expired.items():
        click.echo(f"expired {count} entries on {list_id}")
    for name, count in report.counts.items():
        click.echo(f"{name}: {count}")
    for line in report.failures:
        click.echo(f"failed: {line}", err=True)
    if report.failures:
        raise SystemExit(1)
