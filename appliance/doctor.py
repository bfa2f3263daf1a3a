"""`gatecheck doctor`: gather what a counter's IT person needs to know, and say what to fix.

The gathering is here and reads only: stores are opened read-only, a file
that is not there is a fact, not an error, and nothing is created but the
-wal/-shm side files SQLite makes for a reader of a database in WAL mode
(with the database's mode, and as root its owner). Doctor is often run as
root, which must not leave root-owned files behind in the service's
directory: journal.db is read only when it exists. The judgement is
appliance/doctor_checks.py's. docs/doctor.md.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import click

from appliance.cli_common import data_dir_option
from appliance.doctor_checks import (
    MIB,
    Facts,
    FileFacts,
    Level,
    ListFacts,
    OutboxFacts,
    SyncFacts,
    Thresholds,
    UnitFacts,
    evaluate,
    exit_status,
)

UNITS = ("gatecheck-appliance.service", "gatecheck-scanner.service", "gatecheck-sync.service")
#: Files that hold secrets or the device's records: each must be 0600 and owned like the directory.
PRIVATE_FILES = ("device.key", "device.key.next", "enrolment.json", "enrolment-answer.json", "registry-root.pub",
                 "gatecheck.toml", "provisioned.json", "sync.db", "journal.db",
                 # the scanner's and the scraper's bearer tokens, the operator sessions' signing secret
                 "api-token", "metrics-token", "web-secret")
COMMAND_TIMEOUT = 5.0


def gather(data_dir: Path, *, now: float | None = None) -> Facts:
    """Every fact evaluate() needs, read from the data directory and the system."""
    now = time.time() if now is None else now
    values: dict = {"now": now, "data_dir": str(data_dir)}
    try:
        st = data_dir.stat()
        values.update(dir_mode=stat.S_IMODE(st.st_mode), dir_uid=st.st_uid)
    except OSError:
        return Facts(**values, scanner=_scanner(data_dir, now), ntp_synchronized=_ntp(),
                     install_time=_install_time(), systemd=_under_systemd(), units=_units())
    values.update(_enrolment(data_dir))
    values.update(_files(data_dir))
    values.update(_config(data_dir))
    values.update(_store(data_dir))
    values.update(_outbox(data_dir))
    try:
        usage = shutil.disk_usage(data_dir)
        values.update(disk_free=usage.free, disk_total=usage.total)
    except OSError:
        pass
    return Facts(**values, scanner=_scanner(data_dir, now), sync=_sync(data_dir), ntp_synchronized=_ntp(),
                 install_time=_install_time(), systemd=_under_systemd(), units=_units())


def _enrolment(data_dir: Path) -> dict:
    from appliance.provision import read_key
    from sync.device_auth import device_id_for
    from sync.enrolment import ENROLMENT_FILE
    from sync.keys import raw_public_key

    key, problem = read_key(data_dir / "device.key")
    try:
        record = json.loads((data_dir / ENROLMENT_FILE).read_text("utf-8"))
        enrolled = record.get("device_id") if isinstance(record, dict) else None
    except (OSError, ValueError):
        enrolled = None
    return {"key_id": device_id_for(raw_public_key(key)) if key is not None else None, "key_problem": problem,
            "enrolled_id": enrolled}


def _files(data_dir: Path) -> dict:
    from appliance.snapshot import snapshot_path
    from appliance.snapshot_generations import resolve

    names = [data_dir / name for name in PRIVATE_FILES]
    store_file, _ = resolve(snapshot_path(data_dir))
    names.append(store_file)
    files = []
    for path in names:
        try:
            st = path.stat()
        except OSError:
            continue
        files.append(FileFacts(str(path.relative_to(data_dir)), stat.S_IMODE(st.st_mode), st.st_uid))
    return {"files": tuple(files)}


def _config(data_dir: Path) -> dict:
    from appliance.config import ConfigError, load_config

    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        return {"config_problem": str(exc)}
    return {"max_age_hours": config.max_age.total_seconds() / 3600, "fail_closed": config.fail_closed}


def _store(data_dir: Path) -> dict:
    from appliance.snapshot import SnapshotStore, snapshot_path
    from appliance.snapshot_errors import SnapshotError
    from appliance.snapshot_generations import resolve

    pointer = snapshot_path(data_dir)
    store_file, mark = resolve(pointer)
    if mark is None:
        return {"store_problem": f"no snapshot store in {data_dir}"}
    size = sum(p.stat().st_size for p in (store_file, Path(f"{store_file}-wal")) if p.exists())
    try:
        with SnapshotStore(pointer, readonly=True) as store:
            lists = tuple(ListFacts(info.list_id, info.version, _seconds(info.heartbeat_at), _seconds(info.signed_at),
                                    _seconds(info.valid_until)) for info in store.lists())
    except SnapshotError as exc:
        return {"store_problem": exc.message, "store_bytes": size}
    return {"lists": lists, "store_bytes": size}


def _seconds(moment) -> float | None:
    return moment.timestamp() if moment is not None else None


def _sync(data_dir: Path) -> SyncFacts | None:
    from sync.agent_state import AgentStateError, read_status

    try:
        status = read_status(data_dir)
    except AgentStateError:
        return None
    if status is None:
        return None
    return SyncFacts(status.last_success_at, status.last_error, status.failures)


def _outbox(data_dir: Path) -> dict:
    from appliance.journal_db import FILENAME, JournalDbError
    from appliance.outbox import Outbox

    if not (data_dir / FILENAME).is_file():
        return {}
    try:
        with Outbox(data_dir, readonly=True) as outbox:  # never migrates or locks the live journal
            pending = outbox.pending(1)
            depth = outbox.depth()
    except JournalDbError as exc:
        return {"outbox_problem": exc.message}
    oldest = pending[0] if pending else None
    return {"outbox": OutboxFacts(depth, oldest.created_at.timestamp() if oldest else None,
                                  oldest.last_error if oldest else None)}


def _scanner(data_dir: Path, now: float) -> dict:
    from appliance.device_status import scanner_state

    return scanner_state(data_dir, now)


def _run(*command: str) -> str | None:
    """A command's stdout, or None where it is missing, fails or hangs."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _ntp() -> bool | None:
    answer = _run("timedatectl", "show", "-p", "NTPSynchronized", "--value")
    if answer is None or answer.strip() not in ("yes", "no"):
        return None
    return answer.strip() == "yes"


def _install_time() -> float | None:
    """When this software's files were written: the clock cannot honestly be before it."""
    import appliance

    try:
        return Path(appliance.__file__).stat().st_mtime
    except OSError:
        return None


def _under_systemd() -> bool:
    """sd_booted(3): systemd is PID 1 exactly when /run/systemd/system/ exists."""
    return Path("/run/systemd/system").is_dir()


def _units() -> tuple[UnitFacts, ...]:
    if not _under_systemd():
        return ()
    units = []
    for name in UNITS:
        answer = _run("systemctl", "show", name, "-p", "LoadState", "-p", "ActiveState", "-p", "SubState",
                      "-p", "UnitFileState") or ""
        values = dict(line.split("=", 1) for line in answer.splitlines() if "=" in line)
        units.append(UnitFacts(name, values.get("LoadState", ""), values.get("ActiveState", ""),
                               values.get("SubState", ""), values.get("UnitFileState", "")))
    return tuple(units)


# -- the command -----------------------------------------------------------------------

_MARK = {Level.OK: "OK", Level.INFO: "INFO", Level.WARN: "WARN", Level.FAIL: "FAIL"}


@click.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@click.option("--min-free-mib", type=click.IntRange(0), default=None,
              help=f"Free disk below this fails (default {Thresholds().disk_fail_bytes // MIB} MiB).")
def doctor(data_dir: Path | None, as_json: bool, min_free_mib: int | None) -> None:
    """Check this counter and say what to fix: scanner, lists, sync, clock, disk, outbox, files, units.

    One line per check: OK, INFO, WARN or FAIL, and for anything not OK the
    fix. Exit status 1 when any check FAILs, else 0 (warnings included).
    docs/doctor.md describes every check.
    """
    from appliance.config import default_data_dir

    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    limits = Thresholds() if min_free_mib is None else Thresholds(disk_fail_bytes=min_free_mib * MIB)
    findings = evaluate(gather(data_dir), limits)
    if as_json:
        click.echo(json.dumps({"data_dir": str(data_dir), "ok": exit_status(findings) == 0,
                               "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            fix = f" -> {finding.fix}" if finding.fix and finding.level is not Level.OK else ""
            click.echo(f"{_MARK[finding.level]:<4}  {finding.check}: {finding.message}{fix}")
    sys.exit(exit_status(findings))
