"""`gatecheck snapshot ...`: build a synthetic snapshot, show what a snapshot holds.

The lead registers the ``snapshot`` group in appliance/cli.py. Output of
``stats`` is JSON; failures end as one readable line and exit status 1.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from appliance.cli_common import fail

from appliance.snapshot import SnapshotError, SnapshotStore, snapshot_path

_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


class Count(click.ParamType):
    """A positive whole number, with an optional k/M/G suffix: 50M is 50 000 000."""

    name = "count"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*([0-9][0-9_]*)\s*([kKmMgG]?)\s*", str(value))
        if not match or int(match[1].replace("_", "")) == 0:
            self.fail(f"{value!r} is not a positive count like 1000000 or 50M", param, ctx)
        return int(match[1].replace("_", "")) * _SUFFIXES[match[2].lower()]


def _data_dir(ctx, param, value: Path | None) -> Path:
    if value is not None:
        return value
    from appliance.config import default_data_dir

    return default_data_dir()


_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), callback=_data_dir,
    help="Device data directory (default: $GATECHECK_HOME, else a per-user directory).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def snapshot() -> None:
    """The on-device deny-list snapshot."""


@snapshot.command()
@_data_dir_option
@click.option("--tokens", "n_tokens", type=Count(), required=True,
              help="How many tokens to generate (e.g. 1000000 or 50M); ~2.5 per listed person.")
@click.option("--lists", "n_lists", type=click.IntRange(1, 4), default=4, show_default=True,
              help="How many of the synthetic lists to fill.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same tokens (list token keys derive from it too).")
@click.option("--force", is_flag=True,
              help="Replace an existing snapshot. Never while a counter or sync agent uses it.")
def synth(data_dir: Path, n_tokens: int, n_lists: int, seed: int, force: bool) -> None:
    """Build a synthetic snapshot for benchmarks and demos.

    Writes <data-dir>/snapshot.db with random tokens spread over invented
    lists, then prints the store's statistics as JSON.
    """
    from appliance.synth import build_snapshot  # numpy only here

    path = snapshot_path(data_dir)
    if path.exists() and not force:
        fail(f"{path} exists; pass --force to replace it")
    phases = {"generate": "generating tokens", "write": "writing snapshot"}
    try:
        # One bar over both phases: each counts every token once.
        with click.progressbar(length=2 * n_tokens, label="synthetic snapshot", file=sys.stderr,
                               item_show_func=lambda phase: phases.get(phase, ""),
                               show_eta=True) as bar:
            build_snapshot(path, n_tokens, n_lists=n_lists, seed=seed, overwrite=force,
                           progress=lambda phase, n: bar.update(n, phase))
    except (SnapshotError, OSError) as exc:
        fail(getattr(exc, "message", None) or str(exc))
    with SnapshotStore(path, readonly=True) as store:
        click.echo(json.dumps(store.stats(), indent=2))


@snapshot.command()
@_data_dir_option
def stats(data_dir: Path) -> None:
    """Print what the snapshot holds: lists, versions, tokens, size on disk (JSON)."""
    try:
        with SnapshotStore(snapshot_path(data_dir), readonly=True) as store:
            summary = store.stats()
            summary["lists_detail"] = {
                info.list_id: {
                    "name": info.name, "scopes": list(info.scopes), "version": info.version,
                    "digest": info.state_digest.hex(),
                    "heartbeat_at": info.heartbeat_at.isoformat() if info.heartbeat_at else None,
                    "tokens": summary["tokens_per_list"].get(info.list_id, 0),
                }
                for info in store.lists()
            }
    except SnapshotError as exc:
        fail(exc.message)
    click.echo(json.dumps(summary, indent=2))
