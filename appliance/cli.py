"""The `gatecheck` command. Its JSON output is a contract (README, docs/cli.md).

Every failure a user can cause ends as one readable line (or one JSON error
object where the command's output is JSON), never a traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from contextlib import contextmanager, nullcontext
from datetime import date
from pathlib import Path

import click

from appliance.cli_common import data_dir_option, fail, iso_date
from appliance.verdict import CHANNELS
from appliance.documents import DocumentError, parse_payload
from appliance.documents.errors import InputTooLarge
from appliance.documents.model import MAX_PAYLOAD_BYTES


def _emit(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _fail_json(code: str, message: str) -> None:
    _emit({"error": {"code": code, "message": message}})
    sys.exit(1)



_today_option = click.option(
    "--today", callback=iso_date, metavar="YYYY-MM-DD",
    help="Reference date for two-digit years and boarding-pass flight dates (default: today).",
)


#: Subcommands imported only when used, so `gatecheck parse` at the counter
#: does not pay for the web app, SQLAlchemy and the sync agent.
_LAZY_COMMANDS = {
    "demo": ("appliance.demo", "demo"),
    "doctor": ("appliance.doctor", "doctor"),
    "journal": ("appliance.journal_cli", "journal"),
    "provision": ("appliance.provision", "provision"),
    "registry": ("registry.cli", "registry"),
    "scanner": ("hardware.cli", "scanner"),
    "serve": ("appliance.web_cli", "serve"),
    "snapshot": ("appliance.snapshot_cli", "snapshot"),
    "sync": ("sync.cli", "sync"),
}


class _OneLineUsageError(click.ClickException):
    """A usage error as one stderr line (click's own takes four), exit status 2."""

    exit_code = 2

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message())
        self.command_path = error.ctx.command_path if error.ctx is not None else "gatecheck"

    def show(self, file=None) -> None:
        message = self.format_message().rstrip(".")
        click.echo(f"{self.command_path}: {message} (see '{self.command_path} --help')", err=True)


#: click >= 8.2 raises this for a bare group, to print its help (older click just prints it).
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_usage_errors():
    try:
        yield
    except _NO_ARGS_IS_HELP:
        raise  # a bare group prints its help, as it should
    except click.UsageError as exc:
        raise _OneLineUsageError(exc) from None


class _LazyGroup(click.Group):
    """Imports subcommands on first use; every usage error below it is one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY_COMMANDS:
            module, attribute = _LAZY_COMMANDS[name]
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    # Options of `gatecheck` itself are parsed in make_context; everything
    # below it (subcommands, nested groups, their options) runs inside invoke.
    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context):
        with _one_line_usage_errors():
            return super().invoke(ctx)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gatecheck-appliance")
def main() -> None:
    """Gatecheck: check-in counter deny-list appliance."""


@main.command()
@data_dir_option
@click.option("--file", "path", type=click.Path(path_type=Path),
              help="Read the payload from this file instead of stdin.")
@_today_option
def parse(data_dir: Path | None, path: Path | None, today: date | None) -> None:
    """Parse one document payload (AAMVA, MRZ or BCBP) read exactly as bytes.

    Prints one JSON object and exits 0, even when check digits fail ("valid"
    is then false). An unreadable payload prints {"error": {...}} and exits 1.
    """
    try:
        data = _read_payload(path)
        doc = parse_payload(data, today=today)
    except OSError as exc:
        _fail_json("unreadable_file", f"cannot read {path}: {(exc.strerror or str(exc)).lower()}")
    except DocumentError as exc:
        _emit(exc.to_dict())
        sys.exit(1)
    _emit(doc.to_dict())


def _read_payload(path: Path | None) -> bytes:
    data = _read_capped(path)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise InputTooLarge(
            f"payload is larger than {MAX_PAYLOAD_BYTES} bytes; a travel document is smaller"
        )
    return data


def _read_capped(path: Path | None) -> bytes:
    """At most one byte past the limit, so an oversized input never fills memory."""
    if path is None:
        return sys.stdin.buffer.read(MAX_PAYLOAD_BYTES + 1)
    with open(path, "rb") as fh:
        return fh.read(MAX_PAYLOAD_BYTES + 1)


@main.command()
@data_dir_option
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@_today_option
def decode(data_dir: Path | None, images: tuple[Path, ...], today: date | None) -> None:
    """Find barcodes in images and parse each one.

    Prints a JSON list with one object per barcode found: symbology, the exact
    payload text, and the parsed document (or its error object).
    """
    from appliance.decode import DecodeError, ImageDecoder  # heavy imports only here

    decoder = ImageDecoder()
    found = []
    for image in images:
        try:
            barcodes = decoder.decode(image)
        except DecodeError as exc:
            _fail_json("unreadable_image", str(exc))
        for barcode in barcodes:
            try:
                document = parse_payload(barcode.payload, today=today).to_dict()
            except DocumentError as exc:
                document = exc.to_dict()
            found.append({
                "image": str(image),
                "symbology": barcode.symbology,
                "payload": barcode.text,
                "document": document,
            })
    _emit(found)


@main.command()
@data_dir_option
@click.option("--file", "path", type=click.Path(path_type=Path),
              help="Read the payload from this file instead of stdin.")
@click.option("--channel", type=click.Choice(sorted(CHANNELS)), default="scanner",
              show_default=True, help="How the payload arrived (recorded in the journal).")
@click.option("--operator", default=None, help="Operator id recorded with the verdict.")
def check(data_dir: Path | None, path: Path | None, channel: str, operator: str | None) -> None:
    """Check one payload against the on-device lists and print the verdict JSON.

    The verdict is journaled like a scan at the counter. Exit 0 whenever a
    verdict was reached (UNREADABLE included); 1 when the device itself
    cannot check (bad configuration, damaged snapshot or journal).
    """
    from appliance.checker import Checker
    from appliance.config import ConfigError, load_config
    from appliance.journal import Journal
    from appliance.journal_db import JournalDbError
    from appliance.private_files import private_dir
    from appliance.snapshot import SnapshotStore, snapshot_path
    from appliance.snapshot_errors import SnapshotError

    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        fail(str(exc))
    try:
        payload = _read_capped(path)  # oversized input is UNREADABLE with the parser's reason
    except OSError as exc:
        fail(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}")
    store_file = snapshot_path(config.data_dir)
    try:
        private_dir(config.data_dir)
        # Checking never creates the store: that is the sync agent's (or `snapshot synth`'s) job.
        with (SnapshotStore(store_file) if _store_exists(store_file) else nullcontext()) as store, \
                Journal(config.data_dir) as journal:
            decision = Checker(store, journal, config).check(payload, channel=channel, operator=operator)
    except (SnapshotError, JournalDbError) as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot use data directory {config.data_dir}: {(exc.strerror or str(exc)).lower()}")
    _emit(decision.to_dict())


def _store_exists(path: Path) -> bool:
    """A plain store file, or a generation pointer (even a dangling one, which opening reports)."""
    return path.is_symlink() or path.exists()


if __name__ == "__main__":  # pragma: no cover
    main()
