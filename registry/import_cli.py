"""`gatecheck registry import`: authority list imports from the command line (docs/imports.md).

``preview`` streams the file with a progress bar and prints what applying
it would do; ``apply`` publishes it as one version once a second person
confirms (``--confirmed-by``, never the one who previewed). Files of a
million rows go this way: the web page takes smaller uploads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from appliance.cli_common import fail
from registry.cli_common import by_option, data_dir_option, registry_engine, who

#: Refused rows printed after a preview (`import show --refused N` for more).
SHOWN_REFUSALS = 20


def _emit(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _imports(data_dir: Path):
    from registry.audit import AuditLog
    from registry.import_run import Imports
    from registry.publish import Registry
    from registry.server import RegistryPaths
    from registry.signing import Signer

    engine = registry_engine(data_dir)
    paths = RegistryPaths(data_dir)
    return Imports(engine, Registry(engine, Signer.from_files(paths.signing_key, paths.signing_cert)),
                   AuditLog(engine))


def _mapping(value: str):
    from registry.importer import ImportMapping

    path = Path(value)
    if value.lstrip().startswith("{"):
        text = value
    elif path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        fail(f"--mapping {value!r} is neither a JSON file nor inline JSON")
    try:
        data = json.loads(text)
    except ValueError as exc:
        fail(f"--mapping is not JSON: {exc}")
    return ImportMapping.from_dict(data)


def _summary(imports, record, *, refused: int = SHOWN_REFUSALS) -> dict:
    out = record.to_dict()
    out["refused_rows"] = [r.__dict__ for r in imports.refusals(record.import_id, limit=refused)]
    out["removal_sample"] = imports.removal_sample(record.import_id)
    return out


def _bar(length: int, label: str):
    return click.progressbar(length=max(length, 1), label=label, file=sys.stderr, show_pos=False,
                             show_percent=True, show_eta=True)


class _Ticker:
    """Turns "done so far" callbacks into progress-bar steps."""

    def __init__(self, bar) -> None:
        self.bar, self.done = bar, 0

    def __call__(self, done: int) -> None:
        self.bar.update(done - self.done)
        self.done = done


@click.group("import")
def import_group() -> None:
    """Authority lists (a court's defaulters, say) from CSV or JSON: preview, then a second person applies."""


@import_group.command("preview")
@data_dir_option
@click.option("--list", "list_id", required=True, help="The list to import into.")
@click.option("--mapping", required=True, metavar="FILE|JSON",
              help="Which column fills which field, as a JSON file or inline JSON (docs/imports.md).")
@click.option("--format", "file_format", type=click.Choice(["csv", "json", "jsonl"]), default=None,
              help="Default: from the content (a JSON array, JSON lines, else CSV).")
@by_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_preview(data_dir: Path, list_id: str, mapping: str, file_format: str | None, by: str | None,
                   file: Path) -> None:
    """Dry run: additions, removals, unchanged and refused rows. Publishes nothing."""
    imports = _imports(data_dir)
    parsed = _mapping(mapping)
    record = imports.start(list_id, file, file_name=file.name, by=who(by), file_format=file_format)
    with _bar(file.stat().st_size, f"previewing {file.name}") as bar:
        record = imports.preview(record.import_id, parsed, by=who(by), path=file, progress=_Ticker(bar))
    _emit(_summary(imports, record))
    if record.status == "previewed":
        click.echo(f"To publish it, a second list admin runs: gatecheck registry import apply "
                   f"--data-dir {data_dir} {record.import_id} --confirmed-by NAME", err=True)
    else:
        click.echo("Nothing to apply: the file matches the list as it stands.", err=True)


@import_group.command("apply")
@data_dir_option
@click.argument("import_id")
@click.option("--confirmed-by", required=True, help="The second list admin, never the one who previewed it.")
def import_apply(data_dir: Path, import_id: str, confirmed_by: str) -> None:
    """Publish a previewed import as one version."""
    imports = _imports(data_dir)
    record = imports.get(import_id)
    with _bar((record.additions or 0) + (record.removals or 0), f"applying {import_id}") as bar:
        record = imports.apply(import_id, confirmed_by=confirmed_by, progress=_Ticker(bar))
    _emit(record.to_dict())


@import_group.command("show")
@data_dir_option
@click.argument("import_id")
@click.option("--refused", type=click.IntRange(0, 100_000), default=SHOWN_REFUSALS, show_default=True,
              help="How many refused rows to list.")
def import_show(data_dir: Path, import_id: str, refused: int) -> None:
    """One import: its counts, who previewed and confirmed it, and its refused rows."""
    imports = _imports(data_dir)
    _emit(_summary(imports, imports.get(import_id), refused=refused))


@import_group.command("list")
@data_dir_option
@click.option("--list", "list_id", default=None, help="Only this list's imports.")
def import_list(data_dir: Path, list_id: str | None) -> None:
    """Imports, newest first."""
    _emit([record.to_dict() for record in _imports(data_dir).history(list_id)])


@import_group.command("discard")
@data_dir_option
@click.argument("import_id")
@by_option
def import_discard(data_dir: Path, import_id: str, by: str | None) -> None:
    """Drop an import that will not be applied."""
    _emit(_imports(data_dir).discard(import_id, by=who(by)).to_dict())
