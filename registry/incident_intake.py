"""Counter incident reports into the one review queue (issue 5: "Both land in one queue").

A device's outbox report is stored as it came (registry/devices.py
``incidents``) and acknowledged; then it is filed into the review queue
(registry/reports.py) under the list and category registry/incident_routing.py
chooses. Filing is idempotent by the device's report id, so a device that
sends again, or a sweep after a crash between storing and filing, never
queues a report twice. The operator named in the report is the reporter,
prefixed with the device id: a registry user can never be mistaken for them,
and the maker-checker rule still keeps them from deciding it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import literal, select

from registry.devices import DeviceRegistry, incidents
from registry.incident_routing import IncidentUnreadable, read_incident, route
from registry.reports import Identity, ReportError, ReportQueue, UnknownReport, reports

log = logging.getLogger(__name__)
SOURCE = "device"


def queue_id(device_report_id: str) -> str:
    """The queue's id of a device report: the device's UUID, so a resend finds it."""
    return f"DEV-{device_report_id}"


class IncidentIntake:
    def __init__(self, queue: ReportQueue, devices: DeviceRegistry, *, clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        self.devices = devices
        self.clock = clock

    def take(self, device_id: str, report_id: str, report: dict) -> str | None:
        """File one stored device report; returns its queue id, or None (logged, one line) when it cannot be."""
        rid = queue_id(report_id)
        try:
            return self.queue.get(rid).report_id
        except UnknownReport:
            pass
        device = self.devices.device(device_id)
        if device is None:
            log.warning("incident %s not queued: device %s is not enrolled", report_id, device_id)
            return None
        today = datetime.fromtimestamp(self.clock(), timezone.utc).date()
        try:
            incident = read_incident(report, received_on=today)
        except IncidentUnreadable as exc:
            log.warning("incident %s from %s not queued: %s", report_id, device_id, exc)
            return None
        where = route(incident.kind, device.lists, self.queue.policies())
        if where is None:
            log.warning("incident %s from %s not queued: none of its lists (%s) takes reports",
                        report_id, device_id, ", ".join(device.lists))
            return None
        narrative = incident.narrative or "(the counter sent no narrative)"
        if incident.kind:
            narrative = f"[counter: {incident.kind}] {narrative}"
        try:
            return self.queue.file(
                reporter=f"{device_id}:{incident.operator}", list_id=where.list_id, category=where.category,
                identity=Identity(incident.surnames, incident.given_names, incident.date_of_birth, incident.documents),
                trip=incident.trip or "(not given)", trip_date=incident.trip_date, narrative=narrative,
                org=device.org, source=SOURCE, report_id=rid)
        except ReportError as exc:
            try:  # filed by a concurrent resend: the same success
                return self.queue.get(rid).report_id
            except UnknownReport:
                log.warning("incident %s from %s not queued: %s", report_id, device_id, exc.message)
                return None

    def sweep(self) -> int:
        """File every stored device report the queue lacks (after a crash between storing and filing)."""
        c = incidents.c
        filed = select(reports.c.report_id).where(reports.c.source == SOURCE)
        with self.devices.engine.connect() as conn:
            waiting = conn.execute(select(c.report_id, c.device_id, c.report).where(
                (literal(queue_id("")) + c.report_id).not_in(filed)).order_by(c.received_at)).all()
        done = 0
        for row in waiting:
            if self.take(row.device_id, row.report_id, json.loads(row.report)) is not None:
                done += 1
        return done
