"""`gatecheck doctor`'s judgement: facts about a device in, one finding per check out.

Pure: appliance/doctor.py gathers the facts (files, stores, the scanner
daemon's status, the clock, systemd); :func:`evaluate` only compares them
with :class:`Thresholds`, so every rule is tested with plain values and an
injected clock. Each finding says what is wrong and what to do about it
(docs/doctor.md lists every check and threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum

MIB = 1024 * 1024


class Level(IntEnum):
    """Worse is higher; the command exits 1 when any finding is FAIL."""

    OK = 0
    INFO = 1
    WARN = 2
    FAIL = 3


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    fix: str = ""

    def to_dict(self) -> dict:
        return {"check": self.check, "level": self.level.name, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Thresholds:
    """Where each check turns WARN or FAIL (docs/doctor.md, "Thresholds")."""

    #: Free disk below this, or below disk_fail_percent, fails: the agent keeps 64 MiB in reserve
    #: and the journal must still be able to commit a verdict.
    disk_fail_bytes: int = 256 * MIB
    disk_fail_percent: float = 2.0
    disk_warn_percent: float = 10.0
    #: A full snapshot of the lists held needs about 3x the store (download + new store) plus 64 MiB.
    snapshot_room_factor: float = 3.0
    snapshot_room_reserve: int = 64 * MIB
    #: A list not proven current for this long warns (capped at half the device's max age).
    fresh_warn_seconds: float = 3600.0
    #: The oldest report waiting in the outbox: WARN after an hour, FAIL after a day.
    outbox_warn_seconds: float = 3600.0
    outbox_fail_seconds: float = 86400.0
    #: The clock skew the registry and the device both allow (sync/device_auth.py, sync/trust.py).
    clock_tolerance_seconds: float = 300.0
    #: A clock this far past the newest signed heartbeat is suspicious (or the device is long offline).
    clock_ahead_seconds: float = 30 * 86400.0


@dataclass(frozen=True)
class FileFacts:
    name: str
    mode: int  # permission bits
    uid: int


@dataclass(frozen=True)
class ListFacts:
    """One list in the store. Times are Unix seconds; ``heartbeat_at`` is the device's clock."""

    list_id: str
    version: int
    heartbeat_at: float | None = None
    signed_at: float | None = None
    valid_until: float | None = None


@dataclass(frozen=True)
class SyncFacts:
    last_success_at: float | None = None
    last_error: str | None = None
    failures: int = 0


@dataclass(frozen=True)
class OutboxFacts:
    depth: int = 0
    oldest_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class UnitFacts:
    name: str
    load_state: str = ""  # loaded, not-found, masked…
    active_state: str = ""  # active, activating, inactive, failed…
    sub_state: str = ""
    unit_file_state: str = ""  # enabled, disabled…


@dataclass(frozen=True)
class Facts:
    """Everything doctor looked at. None means "could not be found out", with the reason beside it."""

    now: float
    data_dir: str
    dir_mode: int | None = None
    dir_uid: int | None = None
    files: tuple[FileFacts, ...] = ()
    key_id: str | None = None
    key_problem: str | None = None
    enrolled_id: str | None = None
    #: appliance/device_status.py scanner_state(): {"state": ok|disconnected|not running|unknown, "detail"}.
    scanner: dict = field(default_factory=dict)
    lists: tuple[ListFacts, ...] | None = None
    store_problem: str | None = None
    max_age_hours: float = 24.0
    fail_closed: bool = True
    config_problem: str | None = None
    sync: SyncFacts | None = None
    ntp_synchronized: bool | None = None
    #: The clock cannot be earlier than when this software was installed (mtime of its files).
    install_time: float | None = None
    disk_free: int | None = None
    disk_total: int | None = None
    store_bytes: int = 0
    outbox: OutboxFacts | None = None
    outbox_problem: str | None = None
    systemd: bool = False
    units: tuple[UnitFacts, ...] = ()


def evaluate(facts: Facts, limits: Thresholds = Thresholds()) -> list[Finding]:
    """Every check's finding, in the order doctor prints them."""
    if facts.dir_mode is None:
        return [Finding("data dir", Level.FAIL, f"{facts.data_dir} does not exist: this device is not provisioned",
                        _PROVISION), _scanner(facts), _clock(facts, limits), _ntp(facts), *_units(facts)]
    return [
        _enrolment(facts), _permissions(facts), _config(facts), _scanner(facts), *_snapshot(facts, limits),
        _sync(facts), _clock(facts, limits), _ntp(facts), _disk(facts, limits), _outbox(facts, limits),
        *_units(facts),
    ]


def exit_status(findings: list[Finding]) -> int:
    """1 when anything FAILs; WARN alone is 0 (a warning is for a person, not for a script to stop on)."""
    return 1 if any(f.level is Level.FAIL for f in findings) else 0


# -- the checks ----------------------------------------------------------------------

_PROVISION = "gatecheck provision --registry URL --code CODE (docs/provisioning.md)"


def _enrolment(facts: Facts) -> Finding:
    if facts.key_problem:
        return Finding("enrolment", Level.FAIL, facts.key_problem,
                       "re-provision with a new key: gatecheck provision --re-enroll --code CODE")
    if facts.enrolled_id is None:
        return Finding("enrolment", Level.FAIL, f"{facts.data_dir} is not enrolled", _PROVISION)
    if facts.key_id != facts.enrolled_id:
        held = f"device.key is device {facts.key_id}" if facts.key_id else "device.key is missing"
        return Finding("enrolment", Level.FAIL, f"enrolled as device {facts.enrolled_id} but {held}",
                       "gatecheck provision --re-enroll --code CODE, and ask IT to revoke the old id")
    return Finding("enrolment", Level.OK, f"enrolled as device {facts.enrolled_id}; device.key matches")


def _permissions(facts: Facts) -> Finding:
    if facts.dir_mode & 0o077:
        return Finding("files", Level.FAIL, f"{facts.data_dir} is mode {facts.dir_mode:o}: other users can look in",
                       f"chmod 700 {facts.data_dir}")
    for file in facts.files:
        if file.mode & 0o077:
            return Finding("files", Level.FAIL, f"{file.name} is mode {file.mode:o}: other users can read it",
                           f"chmod 600 {facts.data_dir}/{file.name}" + (
                               "; the key may have leaked: re-enrol (--re-enroll)" if file.name == "device.key"
                               else ""))
        if facts.dir_uid is not None and file.uid != facts.dir_uid:
            return Finding("files", Level.FAIL, f"{file.name} belongs to uid {file.uid}, the directory to uid "
                           f"{facts.dir_uid}: the services cannot use it",
                           f"chown {facts.dir_uid} {facts.data_dir}/{file.name} (run gatecheck as the service user)")
    return Finding("files", Level.OK, f"{facts.data_dir} is 0700 and its {len(facts.files)} private files 0600, "
                   "one owner")


def _config(facts: Facts) -> Finding:
    if facts.config_problem:
        return Finding("config", Level.FAIL, facts.config_problem, "fix gatecheck.toml (docs/configuration.md)")
    policy = "fail closed" if facts.fail_closed else "fail open"
    return Finding("config", Level.OK, f"gatecheck.toml loads; lists out of date after {facts.max_age_hours:g} h, "
                   f"then {policy}")


def _scanner(facts: Facts) -> Finding:
    state, detail = facts.scanner.get("state", "unknown"), facts.scanner.get("detail", "")
    if state == "ok":
        return Finding("scanner", Level.OK, detail)
    if state == "disconnected":
        return Finding("scanner", Level.FAIL, detail,
                       "check the scanner's cable and its udev name (docs/scanners.md); gatecheck scanner status")
    if state == "not running":
        return Finding("scanner", Level.FAIL, detail,
                       "systemctl restart gatecheck-scanner; journalctl -u gatecheck-scanner")
    return Finding("scanner", Level.WARN, detail or "no scanner status",
                   "start the scanner daemon (systemctl enable --now gatecheck-scanner), if this counter has one")


def _snapshot(facts: Facts, limits: Thresholds) -> list[Finding]:
    if facts.lists is None:
        return [Finding("lists", Level.FAIL, facts.store_problem or "no snapshot store", _PROVISION)]
    if not facts.lists:
        return [Finding("lists", Level.FAIL, "the snapshot holds no list: every scan is REFER", _PROVISION)]
    max_age = facts.max_age_hours * 3600
    warn_after = min(limits.fresh_warn_seconds, max_age / 2)
    consequence = "CLEAR becomes REFER" if facts.fail_closed else "CLEAR shows a warning"
    findings = []
    for item in facts.lists:
        check = f"list {item.list_id}"
        if item.heartbeat_at is None:
            findings.append(Finding(check, Level.FAIL, f"version {item.version}, never proven current: {consequence}",
                                    "let the sync agent run: systemctl status gatecheck-sync; gatecheck sync status"))
            continue
        age = facts.now - item.heartbeat_at
        said = f"version {item.version}, proven current {_duration(age)} ago (max age {_duration(max_age)})"
        if age > max_age:
            findings.append(Finding(check, Level.FAIL, f"{said}: out of date, {consequence}",
                                    "get the sync agent through to the registry (see the sync check)"))
        elif age > warn_after:
            findings.append(Finding(check, Level.WARN, f"{said}: out of date in {_duration(max_age - age)}",
                                    "get the sync agent through to the registry (see the sync check)"))
        else:
            findings.append(Finding(check, Level.OK, said))
    return findings


def _sync(facts: Facts) -> Finding:
    status = facts.sync
    if status is None or status.last_success_at is None:
        return Finding("sync", Level.FAIL, "the sync agent has never completed a run here",
                       "systemctl enable --now gatecheck-sync; gatecheck sync run --once shows why it fails")
    when = f"last success {_duration(facts.now - status.last_success_at)} ago"
    if status.failures:
        return Finding("sync", Level.WARN, f"{when}; the last {status.failures} run(s) failed: {status.last_error}",
                       "check the network and the registry URL; gatecheck sync status")
    return Finding("sync", Level.OK, when)


def _clock(facts: Facts, limits: Thresholds) -> Finding:
    now, tolerance = facts.now, limits.clock_tolerance_seconds
    reads = f"the clock reads {_utc(now)}"
    fix = "set the time (timedatectl set-time, or let NTP set it: timedatectl set-ntp true); a Pi has no RTC"
    signed = [item.signed_at for item in facts.lists or () if item.signed_at is not None]
    newest = max(signed, default=None)
    if newest is not None and now < newest - tolerance:
        return Finding("clock", Level.FAIL, f"{reads}, {_duration(newest - now)} before the newest heartbeat the "
                       f"registry signed ({_utc(newest)}): the clock went back", fix)
    if facts.install_time is not None and now < facts.install_time - tolerance:
        return Finding("clock", Level.FAIL, f"{reads}, before this software was installed "
                       f"({_utc(facts.install_time)})", fix)
    error = (facts.sync.last_error or "") if facts.sync and facts.sync.failures else ""
    if "clock" in error or ("heartbeat" in error and "expired at" in error):
        return Finding("clock", Level.FAIL, f"{reads}; the last sync failed on time: {error}", fix)
    if newest is not None and now > newest + limits.clock_ahead_seconds:
        return Finding("clock", Level.WARN, f"{reads}, {_duration(now - newest)} after the newest signed heartbeat"
                       f" ({_utc(newest)}): the device has been offline that long, or the clock is ahead", fix)
    basis = f"not before the newest signed heartbeat ({_utc(newest)})" if newest is not None \
        else "no signed heartbeat to compare with yet"
    return Finding("clock", Level.OK, f"{reads}; {basis}")


def _ntp(facts: Facts) -> Finding:
    if facts.ntp_synchronized is None:
        return Finding("ntp", Level.INFO, "NTP state unknown (no timedatectl answer)",
                       "make sure something keeps the clock set (systemd-timesyncd, chrony)")
    if not facts.ntp_synchronized:
        return Finding("ntp", Level.WARN, "the clock is not NTP-synchronised",
                       "timedatectl set-ntp true, and let the device reach an NTP server")
    return Finding("ntp", Level.OK, "the clock is NTP-synchronised")


def _disk(facts: Facts, limits: Thresholds) -> Finding:
    if facts.disk_free is None or not facts.disk_total:
        return Finding("disk", Level.WARN, "free space unknown", f"df -h {facts.data_dir}")
    free, percent = facts.disk_free, 100.0 * facts.disk_free / facts.disk_total
    said = f"{free / MIB:,.0f} MiB free ({percent:.1f} %) on the data directory's filesystem"
    fix = f"free space on the filesystem holding {facts.data_dir} (journalctl --vacuum-size, old logs)"
    if free < limits.disk_fail_bytes:
        return Finding("disk", Level.FAIL, f"{said}: below {limits.disk_fail_bytes / MIB:,.0f} MiB", fix)
    if percent < limits.disk_fail_percent:
        return Finding("disk", Level.FAIL, f"{said}: below {limits.disk_fail_percent:g} %", fix)
    room = limits.snapshot_room_factor * facts.store_bytes + limits.snapshot_room_reserve
    if free < room:
        return Finding("disk", Level.WARN, f"{said}: a full snapshot of the lists would need about "
                       f"{room / MIB:,.0f} MiB", fix)
    if percent < limits.disk_warn_percent:
        return Finding("disk", Level.WARN, f"{said}: below {limits.disk_warn_percent:g} %", fix)
    return Finding("disk", Level.OK, said)


def _outbox(facts: Facts, limits: Thresholds) -> Finding:
    if facts.outbox is None:
        if facts.outbox_problem:
            return Finding("outbox", Level.FAIL, facts.outbox_problem, "gatecheck journal verify")
        return Finding("outbox", Level.OK, "no reports queued (no journal yet)")
    box = facts.outbox
    if not box.depth:
        return Finding("outbox", Level.OK, "no reports waiting for the registry")
    age = facts.now - box.oldest_at if box.oldest_at is not None else 0.0
    said = f"{box.depth} report(s) waiting for the registry, the oldest for {_duration(age)}"
    if box.last_error:
        said += f" (last error: {box.last_error})"
    fix = "the sync agent sends them: see the sync check; gatecheck sync status"
    if age > limits.outbox_fail_seconds:
        return Finding("outbox", Level.FAIL, said, fix)
    if age > limits.outbox_warn_seconds:
        return Finding("outbox", Level.WARN, said, fix)
    return Finding("outbox", Level.OK, said)


#: A stopped scanner unit is a warning (a counter may have no scanner); the others are the counter.
_OPTIONAL_UNITS = frozenset({"gatecheck-scanner.service"})


def _units(facts: Facts) -> list[Finding]:
    if not facts.systemd:
        return [Finding("units", Level.INFO, "not under systemd: the units were not checked")]
    findings = []
    for unit in facts.units:
        check = unit.name.removesuffix(".service")
        logs = f"systemctl status {unit.name}; journalctl -u {unit.name}"
        if unit.load_state != "loaded":
            findings.append(Finding(check, Level.WARN, f"{unit.name} is {unit.load_state or 'unknown'}",
                                    "install the units (docs/deployment.md)"))
        elif unit.active_state == "failed":
            findings.append(Finding(check, Level.FAIL, f"{unit.name} failed ({unit.sub_state})", logs))
        elif unit.active_state == "active":
            findings.append(Finding(check, Level.OK, f"{unit.name} is running ({unit.unit_file_state})"))
        else:
            level = Level.WARN if unit.name in _OPTIONAL_UNITS or unit.active_state in ("activating", "reloading") \
                else Level.FAIL
            findings.append(Finding(check, level, f"{unit.name} is {unit.active_state} ({unit.unit_file_state})",
                                    f"systemctl enable --now {unit.name}"))
    return findings


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
