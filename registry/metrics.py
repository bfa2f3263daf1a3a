"""What the registry tells Prometheus: its lists and its fleet, read from the database at each scrape (docs/metrics.md).

Why from the database and not prometheus_client counters: the registry runs
as several gunicorn worker processes (registry/serving.py), each with its
own memory. A gauge set in one worker is not in the worker that answers the
scrape, and a counter would count only that worker's share. Every series
here is a fact the database already holds (a list's version and publish
time, a device's last contact and last health report), so each scrape reads
it fresh, whichever worker answers, and nothing is lost at a restart.

A health report is untrusted JSON of any shape, perhaps from an older agent
(registry/fleet.py reads it): a field the device did not send is a missing
series, never an error. Per device, labels are the device id (16 hex digits
of its public key's hash, not a secret), a list id or a verdict: never a
name, a document number, a token or a user.

Cardinality: 13 + 3 x lists series per active device (22 with 3 lists), so 500
devices are ~11,000 series (measured: bench/bench_metrics.py): comfortable for one Prometheus.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from appliance.verdict import Verdict
from registry.devices import Device
from registry.fleet import is_silent, lists_as_of, read_health, staleness

VERDICTS = tuple(verdict.value for verdict in Verdict)


@dataclass(frozen=True)
class ListRow:
    """One list as the registry publishes it (UiServices.list_summaries)."""

    list_id: str
    version: int
    tokens: int | None
    published_at: int | None


@dataclass(frozen=True)
class DeviceRow:
    """One device and the text of its last health report, as stored."""

    device: Device
    health_json: str | None


def _age(now: float, at: float | None) -> float:
    return math.inf if at is None else max(0.0, now - at)


def _verdict_counts(health: Any) -> dict[str, int] | None:
    """``verdicts_24h`` of a health report: every verdict, or None (an older agent never sends it)."""
    counts = health.get("verdicts_24h") if isinstance(health, dict) else None
    if not isinstance(counts, dict):
        return None
    read = {verdict: counts.get(verdict) for verdict in VERDICTS}
    if not all(type(n) is int and n >= 0 for n in read.values()):
        return None
    return read  # type: ignore[return-value]


def _parse(health_json: str | None) -> Any:
    try:
        return json.loads(health_json) if health_json else None
    except ValueError:
        return None


class RegistryCollector:
    """The lists and the fleet ``devices`` (already limited to what the caller may see), at ``now``."""

    def __init__(self, lists: Iterable[ListRow], devices: Iterable[DeviceRow], *, now: float,
                 silent_after: float) -> None:
        self.lists = list(lists)
        self.devices = list(devices)
        self.now = now
        self.silent_after = silent_after

    def collect(self) -> Iterator[Metric]:
        yield from self._lists()
        yield from self._fleet()

    def _lists(self) -> Iterator[Metric]:
        version = GaugeMetricFamily("gatecheck_registry_list_version", "Current published version of each list.",
                                    labels=["list"])
        published = GaugeMetricFamily("gatecheck_registry_list_published_timestamp_seconds",
                                      "Unix time the current version was published; 0 if never.", labels=["list"])
        age = GaugeMetricFamily("gatecheck_registry_list_publish_age_seconds",
                                "Seconds since the current version was published; +Inf if never.", labels=["list"])
        tokens = GaugeMetricFamily("gatecheck_registry_list_tokens", "Tokens in the current version.",
                                   labels=["list"])
        for row in self.lists:
            version.add_metric([row.list_id], row.version)
            published.add_metric([row.list_id], row.published_at or 0)
            age.add_metric([row.list_id], _age(self.now, row.published_at))
            if row.tokens is not None:
                tokens.add_metric([row.list_id], row.tokens)
        yield from (version, published, age, tokens)

    def _fleet(self) -> Iterator[Metric]:
        heads = {row.list_id: row.version for row in self.lists}
        by_status: dict[str, int] = {}
        f = _DeviceFamilies()
        silent_total = stale_total = outbox_total = 0
        scans_total = dict.fromkeys(VERDICTS, 0)
        for item in self.devices:
            device = item.device
            by_status[device.status] = by_status.get(device.status, 0) + 1
            if not device.active:
                continue  # a revoked device reports nothing more; its series would only go stale
            d = device.device_id
            health = _parse(item.health_json)
            view = read_health(health, device.health_at)
            silent = is_silent(device.last_seen_at, device.enrolled_at, self.now, self.silent_after)
            max_age = device.profile.max_age_hours if device.profile is not None else None
            _, stale = staleness(device.lists_as_of, self.now, max_age)
            silent_total += silent
            stale_total += stale
            f.info.add_metric([d], {"org": device.org, "app_version": view.app_version, "scanner": view.scanner})
            f.contact.add_metric([d], _age(self.now, device.last_seen_at))
            f.silent.add_metric([d], 1 if silent else 0)
            f.report.add_metric([d], _age(self.now, device.health_at))
            f.stale.add_metric([d], 1 if stale else 0)
            for list_id in device.lists:
                f.list_age.add_metric([d, list_id], _age(self.now, lists_as_of(health, [list_id])))
                held = view.versions.get(list_id)
                if held is not None:
                    f.list_version.add_metric([d, list_id], held)
                    if list_id in heads:
                        f.behind.add_metric([d, list_id], max(0, heads[list_id] - held))
            for family, value in ((f.failures, view.failures), (f.outbox, view.outbox_pending),
                                  (f.disk, view.disk_free_bytes), (f.clock, view.clock_offset)):
                if value is not None:
                    family.add_metric([d], value)
            outbox_total += view.outbox_pending or 0
            counts = _verdict_counts(health)
            if counts is not None:
                for verdict, n in counts.items():
                    f.scans.add_metric([d, verdict], n)
                    scans_total[verdict] += n
        devices = GaugeMetricFamily("gatecheck_registry_devices", "Enrolled devices by status.", labels=["status"])
        for status, n in sorted(by_status.items()):
            devices.add_metric([status], n)
        yield devices
        yield from f.all()
        yield GaugeMetricFamily("gatecheck_fleet_devices_silent", "Active devices not heard from for longer than "
                                "the silence threshold.", value=silent_total)
        yield GaugeMetricFamily("gatecheck_fleet_devices_stale", "Active devices whose stalest list is past its "
                                "profile's max age (or was never verified).", value=stale_total)
        yield GaugeMetricFamily("gatecheck_fleet_outbox_depth", "Incident reports waiting on active devices, "
                                "summed over their last health reports.", value=outbox_total)
        fleet_scans = GaugeMetricFamily("gatecheck_fleet_scans_24h", "Scans over the day before each device's "
                                        "last health report, summed over devices that report them.",
                                        labels=["verdict"])
        for verdict, n in scans_total.items():
            fleet_scans.add_metric([verdict], n)
        yield fleet_scans


class _DeviceFamilies:
    """The per-device families, filled device by device."""

    def __init__(self) -> None:
        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["device", *labels])

        self.info = InfoMetricFamily("gatecheck_device", "An active device: its organisation, and what its last "
                                     "health report said of its software and scanner.", labels=["device"])
        self.contact = gauge("gatecheck_device_contact_age_seconds",
                             "Seconds since the device's last signed request; +Inf if never.")
        self.silent = gauge("gatecheck_device_silent", "1 if the device has been silent past the threshold.")
        self.report = gauge("gatecheck_device_health_report_age_seconds",
                            "Seconds since the device's last health report; +Inf if never.")
        self.stale = gauge("gatecheck_device_lists_stale", "1 if the device's stalest list is past its profile's "
                           "max age or never verified, as of its last health report.")
        self.list_age = gauge("gatecheck_device_list_age_seconds", "Seconds since the list's last verified heartbeat "
                              "on the device, per its last health report; +Inf if never verified or not reported.",
                              "list")
        self.list_version = gauge("gatecheck_device_list_version", "The list's version on the device, "
                                  "per its last health report.", "list")
        self.behind = gauge("gatecheck_device_list_versions_behind", "Published versions the device had not "
                            "applied yet, per its last health report.", "list")
        self.failures = gauge("gatecheck_device_sync_failures", "The device's failed polls in a row, "
                              "per its last health report.")
        self.outbox = gauge("gatecheck_device_outbox_depth", "Incident reports waiting on the device, "
                            "per its last health report.")
        self.disk = gauge("gatecheck_device_disk_free_bytes", "Free disk in the device's data directory, "
                          "per its last health report.")
        self.clock = gauge("gatecheck_device_clock_offset_seconds", "The device's clock minus the registry's "
                           "when its last health report arrived.")
        self.scans = gauge("gatecheck_device_scans_24h", "Scans over the day before the device's last health "
                           "report, by verdict (devices whose agent reports them).", "verdict")

    def all(self) -> Iterator[Metric]:
        return iter(vars(self).values())


def list_rows(summaries: Iterable[Mapping[str, Any]]) -> list[ListRow]:
    return [ListRow(s["list_id"], s["current_version"], s.get("token_count"), s.get("published_at"))
            for s in summaries]
