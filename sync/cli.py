"""``gatecheck sync``: run the sync agent, and show what it last did.

The data directory holds, besides snapshot.db and journal.db:
``device.key`` (this device's Ed25519 private key, PKCS#8 PEM, 0600; its
device id is derived from the public half, sync/device_auth.py) and
``registry-root.pub`` (the pinned 32-byte raw root public key).

Under systemd (Type=notify, docs/deployment.md) ``sync run`` says READY=1
once its start-up checks pass (keys load, stores open) and pings the
watchdog from the agent's own loop (sync/agent.py, "Liveness").
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

DEVICE_KEY_FILE = "device.key"
ROOT_KEY_FILE = "registry-root.pub"
#: The key of enrolment.json (sync/enrolment.py ENROLMENT_FILE) that names the
#: registry the device enrolled with, when provisioning recorded it.
REGISTRY_URL_KEY = "registry_url"
#: Seconds an HTTP exchange may take beyond its long-poll wait (RequestsFetcher's 40 s for a 25 s wait).
HTTP_MARGIN = 15.0


def _fail(message: str) -> None:
    from appliance.cli_common import fail

    fail(message)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _load_device_key(path: Path) -> Ed25519PrivateKey:
    try:
        if path.stat().st_mode & 0o077:
            _fail(f"{path} is readable by others; a device key must be 0600")
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        _fail(f"cannot load the device key {path}: {exc}")
    if not isinstance(key, Ed25519PrivateKey):
        _fail(f"{path} is not an Ed25519 private key")
    return key


@click.group()
def sync() -> None:
    """Keep this device's deny-lists in step with the registry (docs/sync-agent.md)."""


@sync.command()
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Device data directory (snapshot.db, journal.db, sync.db, device.key).")
@click.option("--registry", "registry_url", envvar="GATECHECK_REGISTRY", default=None,
              help="Registry base URL, e.g. http://127.0.0.1:8480 (default: $GATECHECK_REGISTRY, else the URL "
                   f"provisioning recorded in DATA_DIR/enrolment.json as {REGISTRY_URL_KEY!r}).")
@click.option("--root-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Pinned registry root public key, 32 raw bytes (default: DATA_DIR/{ROOT_KEY_FILE}).")
@click.option("--first-poll-max-delay", type=float, default=60.0, show_default=True,
              help="The first poll comes a random 0..N seconds after start.")
@click.option("--once", is_flag=True,
              help="Poll once without waiting for changes, send the outbox, and exit (status 1 if it failed).")
@click.option("-v", "--verbose", is_flag=True, help="Log every applied update.")
def run(data_dir: Path, registry_url: str | None, root_key: Path | None, first_poll_max_delay: float,
        once: bool, verbose: bool) -> None:
    """Run the sync agent until SIGTERM or Ctrl-C (it stops between transactions)."""
    from appliance.outbox import Outbox
    from appliance.snapshot import SnapshotStore, snapshot_path
    from appliance.snapshot_errors import SnapshotError
    from appliance.systemd_notify import ServiceNotifier
    from sync.agent import AgentConfig, SyncAgent
    from sync.agent_state import AgentState
    from sync.device_auth import device_id_for
    from sync.errors import SyncError
    from sync.fetcher import DeviceCredentials, RequestsFetcher
    from sync.keys import raw_public_key

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry_url = registry_url or _enrolled_registry(data_dir)
    key = _load_device_key(data_dir / DEVICE_KEY_FILE)
    root_path = root_key or data_dir / ROOT_KEY_FILE
    try:
        root = root_path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read the pinned root key {root_path}: {exc.strerror}")
    device = DeviceCredentials(device_id_for(raw_public_key(key)), key)
    stop = threading.Event()
    notifier = ServiceNotifier()
    config = _agent_config(AgentConfig, first_poll_max_delay, once)
    wait, timeout = fit_to_watchdog(notifier.interval, wait=config.long_poll_wait, timeout=HTTP_TIMEOUT)
    if (wait, timeout) != (config.long_poll_wait, HTTP_TIMEOUT):
        logging.getLogger("gatecheck.sync").warning(
            "long-polls shortened to %d s and HTTP waits to %g s to fit WatchdogSec=%g s",
            wait, timeout, 2 * notifier.interval)
        config = replace(config, long_poll_wait=wait)
    try:
        store = SnapshotStore(snapshot_path(data_dir))
        agent = SyncAgent(store, AgentState(data_dir), RequestsFetcher(registry_url, device, timeout=timeout),
                          root, outbox=Outbox(data_dir), config=config, stop=stop,
                          alive=notifier.watchdog, wait_slice=notifier.loop_timeout)
    except (SyncError, SnapshotError) as exc:
        _fail(exc.message)
    if once:
        report = agent.run_once()
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(0 if report.ok else 1)

    def on_signal(*_: object) -> None:
        notifier.stopping()  # now: a snapshot being installed finishes before the loop sees the stop
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    notifier.ready(status=f"syncing with {registry_url}")
    agent.run_forever(stop)


@sync.command()
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Device data directory.")
def status(data_dir: Path) -> None:
    """Last success, last error, list versions and freshness, next poll."""
    import time

    from sync.agent_state import AgentState, state_path

    if not state_path(data_dir).is_file():
        _fail(f"no sync state in {data_dir}: the agent has not run yet")
    with AgentState(data_dir) as state:
        s = state.status()
        click.echo(f"last success:  {_when(s.last_success_at)}")
        click.echo(f"last error:    {_when(s.last_error_at)}" + (f"  {s.last_error}" if s.last_error else ""))
        click.echo(f"failures:      {s.failures} in a row")
        click.echo(f"next poll:     {_when(s.next_poll_at)}")
        now = time.time()
        for list_id, record in state.lists().items():
            held = record.state
            fresh = "fresh" if held.is_fresh(now) else "STALE"
            click.echo(f"list {list_id}: version {held.version}, current as of "
                       f"{_when(held.heartbeat_issued_at)} ({fresh} until {_when(held.heartbeat_valid_until)})")


@sync.command()
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Device data directory.")
@click.option("--list", "list_ids", multiple=True, help="Only this list (repeatable; default: every list).")
def verify(data_dir: Path, list_ids: tuple[str, ...]) -> None:
    """Recompute each list's digest from the store and compare it with the verified one (slow: O(tokens)).

    A snapshot is installed without recomputing its digest (docs/sync-agent.md);
    this is the explicit audit, about 10 µs a token. On a mismatch the store's
    own digest is recorded, so the next poll's signed digest fails and the
    agent fetches a fresh snapshot; the exit status is 1.
    """
    from appliance.snapshot import SnapshotStore, snapshot_path
    from appliance.snapshot_errors import SnapshotError
    from sync.agent_snapshot import audit_list
    from sync.agent_state import AgentState, state_path

    if not state_path(data_dir).is_file():
        _fail(f"no sync state in {data_dir}: the agent has not run yet")
    mismatches = 0
    try:
        with SnapshotStore(snapshot_path(data_dir), readonly=True) as store, AgentState(data_dir) as state:
            for list_id in list_ids or [info.list_id for info in store.lists()]:
                if store.get_list(list_id) is None:
                    _fail(f"no list {list_id!r} in the snapshot store")
                audit = audit_list(store, state, list_id, adopt=True)
                where = f"list {list_id}: version {audit.version}, {audit.entries:,} elements,"
                if audit.ok:
                    click.echo(f"{where} digest matches the verified one ({audit.store_checksum.hex()[:16]}…)")
                elif audit.held_checksum is None:
                    mismatches += 1
                    click.echo(f"{where} NOT VERIFIED at this version; the next poll checks it")
                else:
                    mismatches += 1
                    click.echo(f"{where} MISMATCH: the store gives {audit.store_checksum.hex()[:16]}…, the "
                               f"verified digest is {audit.held_checksum.hex()[:16]}…; the next poll fetches"
                               " a full snapshot")
    except SnapshotError as exc:
        _fail(exc.message)
    raise SystemExit(1 if mismatches else 0)


#: RequestsFetcher's wait for a connection or the next bytes, when no watchdog asks for less.
HTTP_TIMEOUT = 40.0


def fit_to_watchdog(budget: float | None, *, wait: int, timeout: float) -> tuple[int, float]:
    """The long-poll wait and HTTP timeout that fit between two watchdog pings.

    One HTTP exchange is the one thing the agent's loop cannot interrupt to
    ping (a long-poll holds it ``wait`` seconds, a silent registry up to
    ``timeout``), so both must stay under ``budget``, the seconds between
    pings (half of WatchdogSec=). None (no watchdog) changes nothing.
    """
    if budget is None:
        return wait, timeout
    timeout = min(timeout, max(budget - 5.0, 5.0))
    return max(0, min(wait, int(timeout - HTTP_MARGIN))), timeout


def _enrolled_registry(data_dir: Path) -> str:
    """The registry URL provisioning recorded in enrolment.json, or one line saying how to give one."""
    from sync.enrolment import ENROLMENT_FILE

    path = data_dir / ENROLMENT_FILE
    try:
        url = json.loads(path.read_text("utf-8")).get(REGISTRY_URL_KEY)
    except FileNotFoundError:
        url = None
    except (OSError, ValueError, AttributeError) as exc:
        _fail(f"cannot read the registry URL from {path}: {exc}")
    if not isinstance(url, str) or not url:
        _fail(f"no registry URL: give --registry or $GATECHECK_REGISTRY ({path} does not record one)")
    return url


def _agent_config(config_class, first_poll_max_delay: float, once: bool):
    """A one-shot run must not sit in a long-poll: it asks, applies, sends and exits."""
    if once:
        return config_class(first_poll_max_delay=first_poll_max_delay, long_poll_wait=0)
    return config_class(first_poll_max_delay=first_poll_max_delay)
