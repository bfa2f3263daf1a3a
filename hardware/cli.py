"""`gatecheck scanner run` and `gatecheck scanner status` (docs/scanners.md)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path

import click

from appliance.cli_common import data_dir_option, fail


@click.group()
def scanner() -> None:
    """The scanner daemon: scanners, camera and indicators to the counter app."""


@scanner.command()
@data_dir_option
@click.option("-v", "--verbose", is_flag=True, help="Also log debug detail (never payloads).")
def run(data_dir: Path | None, verbose: bool) -> None:
    """Run every configured source and post their scans to the counter app, until SIGTERM or Ctrl-C."""
    from appliance.config import ConfigError
    from hardware.config import build_source, load_scanner_config
    from hardware.daemon import ApplianceClient, ScannerDaemon
    from hardware.indicators import Indicators

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_scanner_config(data_dir)
        sources = [build_source(source) for source in config.sources]
    except ConfigError as exc:
        fail(str(exc))
    if not sources:
        fail(f"{config.data_dir / 'gatecheck.toml'}: no [[scanner.sources]] configured; see docs/scanners.md")
    try:
        client = ApplianceClient(config.appliance_url, config.token_file, timeout=config.timeout_seconds)
    except FileNotFoundError:
        fail(f"no scanner token at {config.token_file}: start the counter app (gatecheck serve) once "
             "to create it")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        fail(f"cannot read the scanner token {config.token_file}: {getattr(exc, 'strerror', None) or exc}")
    pins = config.indicators
    indicators = Indicators(pins.green, pins.red, pins.buzzer, active_high=pins.active_high)
    daemon = ScannerDaemon(sources, client, data_dir=config.data_dir, queue_size=config.queue_size,
                           indicators=indicators)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        daemon.run(stop)
    except OSError as exc:  # the status file cannot be written: a full or read-only data dir
        fail(f"scanner daemon stopped: {exc.strerror or exc}")


@scanner.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status file as it is.")
def status(data_dir: Path | None, as_json: bool) -> None:
    """What the running daemon last reported: the appliance, the queue and every source."""
    from appliance.config import default_data_dir
    from appliance.device_status import read_scanner_status, scanner_state
    from hardware.scan import STATUS_FILE

    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    document = read_scanner_status(data_dir)
    summary = scanner_state(data_dir)
    if as_json:
        click.echo(json.dumps({"state": summary, "status": document}, indent=2, sort_keys=True))
        raise SystemExit(0 if summary["state"] == "ok" else 1)
    click.echo(f"scanner: {summary['state']}: {summary['detail']}")
    if document is None:
        click.echo(f"(no readable {data_dir / STATUS_FILE})")
        raise SystemExit(1)
    updated = document.get("updated_at")
    if isinstance(updated, (int, float)):
        click.echo(f"updated {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(updated))} "
                   f"({max(0, time.time() - updated):.0f} s ago), pid {document.get('pid')}")
    appliance = document.get("appliance") or {}
    reachable = {True: "reachable", False: "UNREACHABLE", None: "not tried yet"}.get(appliance.get("reachable"), "?")
    click.echo(f"appliance {appliance.get('url')}: {reachable} ({appliance.get('detail')})")
    click.echo(f"queued {document.get('queued')} of {document.get('queue_size')}, "
               f"delivered {document.get('delivered')}, refused {document.get('refused')}, "
               f"dropped {document.get('dropped')}")
    for source in document.get("sources") or []:
        state = "connected" if source.get("connected") else "DISCONNECTED"
        click.echo(f"  {source.get('name')} ({source.get('kind')}): {state}, {source.get('detail')}")
        click.echo(f"    {source.get('identity')}; {source.get('scans')} scans")
    indicators = document.get("indicators") or {}
    click.echo(f"indicators: {'on' if indicators.get('available') else 'off'} ({indicators.get('detail')})")
    raise SystemExit(0 if summary["state"] == "ok" else 1)
