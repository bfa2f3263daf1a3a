"""What a counter device tells Prometheus: its scans, their latency and its lists' health (docs/metrics.md).

Two kinds of series, kept apart on purpose:

- **Scans and latency** happen in this process (the counter app is one
  waitress process), so they are ordinary prometheus_client instruments,
  updated on the verdict's path: a counter by verdict and channel and a
  histogram of ``Checker.check``'s time, whose buckets sit around the 5 ms
  target (docs/benchmarks.md). They count from the process's start, as a
  Prometheus counter does; ``rate()`` handles the restart.
- **State kept by other processes** (the snapshot the sync agent writes,
  sync.db, the outbox) is read when Prometheus scrapes, by a custom
  collector, never cached: a gauge updated by the agent's process would not
  be in this one. Each read is a few small rows, whatever the store's size.

No label ever carries a traveller's name, a document number, a token, an
operator or a secret: labels are list ids, verdicts, channels and sources.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from appliance.device_status import app_version
from appliance.journal_db import JournalDbError
from appliance.outbox import Outbox
from appliance.snapshot import SnapshotStore
from appliance.snapshot_errors import SnapshotError
from appliance.verdict import CHANNELS, Decision, DeviceProfile, Verdict, freshness
from sync.agent_state import read_status
from sync.errors import SyncError

#: Seconds. Fine below and around the 5 ms in-process target, coarse above it.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Where each scrape-time read comes from; ``gatecheck_metrics_source_up`` says whether it worked.
SOURCES = ("snapshot", "sync", "outbox")


class CounterMetrics:
    """The counter app's Prometheus registry: scan instruments plus the scrape-time collector.

    One per app (not prometheus_client's global registry), so two apps in one
    test process never share a count.
    """

    def __init__(self, *, snapshot: SnapshotStore, outbox: Outbox, data_dir: Path,
                 profile: Callable[[], DeviceProfile], clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        scans = Counter("gatecheck_scans", "Scans judged by this counter since the app started, "
                        "by verdict and channel.", ("verdict", "channel"), registry=self.registry)
        self._latency = Histogram("gatecheck_verdict_seconds", "Time from a scan's payload to its journaled "
                                  "verdict (Checker.check: parse, lookup, rules, journal append).",
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        # Every combination exists from the start at 0, so rate() and absent() see
        # a series before its first scan, and a scan costs a dict lookup, not labels().
        self._scans = {(verdict.value, channel): scans.labels(verdict.value, channel)
                       for verdict in Verdict for channel in sorted(CHANNELS)}
        self.registry.register(DeviceCollector(snapshot=snapshot, outbox=outbox, data_dir=data_dir,
                                               profile=profile, clock=clock))
        ProcessCollector(registry=self.registry)  # memory and CPU of the counter process

    def observe(self, decision: Decision, seconds: float) -> None:
        """Count one verdict and its time. On the verdict's path: a lookup and two atomic adds."""
        child = self._scans.get((decision.verdict.value, decision.channel))
        if child is not None:
            child.inc()
        self._latency.observe(seconds)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) of every series, read now, in the format ``accept`` asks for.

        prometheus_client's own negotiation: OpenMetrics for a Prometheus
        that asks for it, else the text format 0.0.4.
        """
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


class DeviceCollector:
    """Reads what other processes keep, at each scrape: lists, sync state, outbox."""

    def __init__(self, *, snapshot: SnapshotStore, outbox: Outbox, data_dir: Path,
                 profile: Callable[[], DeviceProfile], clock: Callable[[], float] = time.time) -> None:
        self.snapshot = snapshot
        self.outbox = outbox
        self.data_dir = Path(data_dir)
        self.profile = profile
        self.clock = clock
        # Read once: the code running is the code this process started with, even after an upgrade.
        self.version = app_version()

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        up = GaugeMetricFamily("gatecheck_metrics_source_up", "1 if the scrape could read this source, "
                               "0 if it failed (its series are then missing).", labels=["source"])
        for source, read in (("snapshot", self._lists), ("sync", self._sync), ("outbox", self._outbox)):
            try:
                families = list(read(now))
            except (SnapshotError, SyncError, JournalDbError):
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up
        info = InfoMetricFamily("gatecheck_build", "The gatecheck version this process runs.")
        info.add_metric([], {"version": self.version})
        yield info

    def _lists(self, now: float) -> Iterator[Metric]:
        profile = self.profile()
        with self.snapshot.read():  # one consistent view of every list
            lists = self.snapshot.lists()
            tokens = self.snapshot.stats()["tokens_per_list"]
        version = GaugeMetricFamily("gatecheck_list_version", "Version of each list in the snapshot.",
                                    labels=["list"])
        age = GaugeMetricFamily("gatecheck_list_age_seconds", "Seconds since the registry last proved the list "
                                "current (its last verified delta or heartbeat); +Inf if never.", labels=["list"])
        verified = GaugeMetricFamily("gatecheck_list_heartbeat_timestamp_seconds", "Unix time of the list's last "
                                     "verified heartbeat; 0 if never.", labels=["list"])
        in_scope = GaugeMetricFamily("gatecheck_list_in_scope", "1 if the device's scopes cover the list "
                                     "(its verdicts use it), else 0.", labels=["list"])
        count = GaugeMetricFamily("gatecheck_list_tokens", "Tokens the snapshot holds for the list.", labels=["list"])
        for info in lists:
            at = _seconds(info.heartbeat_at)
            version.add_metric([info.list_id], info.version)
            age.add_metric([info.list_id], math.inf if at is None else max(0.0, now - at))
            verified.add_metric([info.list_id], at or 0)
            in_scope.add_metric([info.list_id], 1 if profile.covers(info) else 0)
            count.add_metric([info.list_id], tokens.get(info.list_id, 0))
        fresh = freshness(lists, profile, datetime.fromtimestamp(now, timezone.utc))
        yield from (version, age, verified, in_scope, count)
        yield GaugeMetricFamily("gatecheck_lists_stale", "1 if the verdict rules find the in-scope lists out of "
                                "date (a fail-closed device then turns CLEAR into REFER), else 0.",
                                value=1 if fresh.stale else 0)
        yield GaugeMetricFamily("gatecheck_lists_max_age_seconds", "The profile's max_age: older in-scope lists "
                                "are stale.", value=profile.max_age.total_seconds())

    def _sync(self, now: float) -> Iterator[Metric]:
        status = read_status(self.data_dir)
        yield GaugeMetricFamily("gatecheck_sync_state_present", "1 once the sync agent has written sync.db, "
                                "0 before its first run.", value=0 if status is None else 1)
        if status is None:
            return
        yield GaugeMetricFamily("gatecheck_sync_consecutive_failures", "Failed polls in a row (0 after a "
                                "success).", value=status.failures)
        yield GaugeMetricFamily("gatecheck_sync_last_success_timestamp_seconds", "Unix time of the agent's "
                                "last successful poll; 0 if never.", value=status.last_success_at or 0)
        yield GaugeMetricFamily("gatecheck_sync_last_error_timestamp_seconds", "Unix time of the agent's "
                                "last error; 0 if never.", value=status.last_error_at or 0)

    def _outbox(self, now: float) -> Iterator[Metric]:
        oldest = self.outbox.pending(limit=1)
        yield GaugeMetricFamily("gatecheck_outbox_depth", "Incident reports the registry has not "
                                "acknowledged yet.", value=self.outbox.depth())
        yield GaugeMetricFamily("gatecheck_outbox_oldest_age_seconds", "Age of the oldest report not yet "
                                "acknowledged; 0 when none waits.",
                                value=max(0.0, now - oldest[0].created_at.timestamp()) if oldest else 0)


def _seconds(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # the store writes UTC; naive means UTC (appliance/verdict.py)
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
