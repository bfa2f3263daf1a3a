"""What IT sees of a device: its health report read into plain values, staleness and silence. Pure.

A health report is whatever the device last posted to ``/v1/health``
(sync/agent.py ``health()``): untrusted JSON, perhaps from an older agent,
perhaps from a broken one. Every reader here takes a value of any shape and
gives back something a page can show, never an exception.

Two clocks matter, and they are different:

* **last contact** is when the registry last heard from the device at all
  (any signed request; ``last_seen_at``, written at most once a minute). A
  device silent for longer than a threshold is lost, off or cut off.
* **lists as of** is the stalest subscribed list's last *verified*
  heartbeat, as the device reported it. Its age is what the device's
  verdict rules compare with the profile's ``max_age`` (appliance/verdict.py):
  past it, a fail-closed device turns CLEAR into REFER.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from datetime import datetime
from typing import Any, Iterable, Mapping

UNKNOWN = "unknown"


def _iso_seconds(value: Any) -> int | None:
    """Unix seconds of an ISO 8601 time with an offset; None for anything else."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return int(moment.timestamp()) if moment.tzinfo is not None else None


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _short_text(value: Any, limit: int = 120) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def lists_as_of(health: Any, lists: Iterable[str]) -> int | None:
    """The oldest verified heartbeat among ``lists`` in a health report; None if any was never verified."""
    reported = health.get("lists") if isinstance(health, dict) else None
    if not isinstance(reported, dict):
        return None
    oldest = None
    for list_id in lists:
        item = reported.get(list_id)
        at = _iso_seconds(item.get("heartbeat_at")) if isinstance(item, dict) else None
        if at is None:
            return None
        oldest = at if oldest is None else min(oldest, at)
    return oldest


@dataclass(frozen=True)
class ListState:
    """One subscribed list on one device, beside the registry's head."""

    list_id: str
    device_version: int | None  # None: the device has not reported it
    head: int | None  # None: the list is not in the registry

    @property
    def behind(self) -> int | None:
        if self.device_version is None or self.head is None:
            return None
        return max(0, self.head - self.device_version)


@dataclass(frozen=True)
class HealthView:
    """The parts of a health report the device pages show."""

    reported_at: int | None
    app_version: str
    scanner: str
    scanner_detail: str | None
    outbox_pending: int | None
    failures: int | None
    last_error: str | None
    clock_offset: int | None  # device clock minus registry clock when the report arrived, seconds
    disk_free_bytes: int | None
    versions: Mapping[str, int]


def read_health(health: Any, reported_at: int | None) -> HealthView:
    """A health report of any shape as display values (``unknown`` where the device said nothing usable)."""
    h = health if isinstance(health, dict) else {}
    scanner = h.get("scanner")
    scanner = scanner if isinstance(scanner, dict) else {}
    device_clock = _iso_seconds(h.get("clock"))
    versions = {}
    if isinstance(h.get("lists"), dict):
        for list_id, item in h["lists"].items():
            version = _count(item.get("version")) if isinstance(item, dict) else None
            if isinstance(list_id, str) and version is not None:
                versions[list_id] = version
    return HealthView(
        reported_at=reported_at,
        app_version=_short_text(h.get("app_version"), 40) or UNKNOWN,
        scanner=_short_text(scanner.get("state"), 40) or UNKNOWN,
        scanner_detail=_short_text(scanner.get("detail"), 200),
        outbox_pending=_count(h.get("outbox_pending")),
        failures=_count(h.get("failures")),
        last_error=_short_text(h.get("last_error"), 300),
        clock_offset=None if device_clock is None or reported_at is None else device_clock - reported_at,
        disk_free_bytes=_count(h.get("disk_free_bytes")),
        versions=versions,
    )


def list_states(lists: Iterable[str], health: HealthView, heads: Mapping[str, int]) -> tuple[ListState, ...]:
    return tuple(ListState(list_id, health.versions.get(list_id), heads.get(list_id)) for list_id in lists)


def is_silent(last_contact: int | None, enrolled_at: int, now: float, silent_after: float) -> bool:
    """No contact for longer than ``silent_after`` seconds (never since enrolment counts from enrolment)."""
    return now - (last_contact if last_contact is not None else enrolled_at) > silent_after


def staleness(as_of: int | None, now: float, max_age_hours: float | None) -> tuple[int | None, bool]:
    """(age in seconds, stale?) of the device's lists; never verified is stale."""
    if as_of is None:
        return None, True
    age = max(0, int(now - as_of))
    return age, max_age_hours is not None and age > max_age_hours * 3600


def age_text(seconds: int | float | None) -> str:
    """"3 d 4 h", "2 h 5 min", "40 s": how long ago, for people."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


@dataclass(frozen=True)
class FleetRow:
    """One device as IT's pages show it: the device, its last health report read, and what is wrong."""

    device: Any  # registry.devices.Device
    health: HealthView
    lists: tuple[ListState, ...]
    contact_age: int | None  # seconds since the last contact; None: never
    silent: bool
    lists_age: int | None  # seconds since the stalest verified heartbeat; None: never verified
    stale: bool

    @property
    def behind(self) -> bool:
        return any(state.behind for state in self.lists)


def fleet_row(device: Any, health_json: str | None, heads: Mapping[str, int], *, now: float,
              silent_after: float) -> FleetRow:
    """Read one device for display; ``health_json`` is the stored report text (any shape)."""
    try:
        health = json.loads(health_json) if health_json else None
    except ValueError:
        health = None
    view = read_health(health, device.health_at)
    max_age = device.profile.max_age_hours if device.profile is not None else None
    lists_age, stale = staleness(device.lists_as_of, now, max_age)
    return FleetRow(
        device=device, health=view, lists=list_states(device.lists, view, heads),
        contact_age=None if device.last_seen_at is None else max(0, int(now - device.last_seen_at)),
        silent=device.active and is_silent(device.last_seen_at, device.enrolled_at, now, silent_after),
        lists_age=lists_age, stale=device.active and stale)
