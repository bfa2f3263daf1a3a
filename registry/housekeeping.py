"""Scheduled registry work: expiry publishes, and filing device reports a crash left behind.

Issue 5: "Every entry has a valid-until. Expired entries are removed by a
scheduled publish." Each server process runs ``Housekeeper`` in a thread,
and `gatecheck registry housekeeping` runs one pass (for a cron job or a
systemd timer). However many run, a lease row in the database lets one
process at a time do a pass, so two never publish the same expiry.

Jobs are registered as plain callables (``add_job``): the clearance
register's expiry and the sweep of unfiled device reports are two
(``housekeeper_for``). A job that fails is logged in one line and the others still run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from registry import db
from registry.audit import AuditLog
from registry.db import RegistryError
from registry.publish import Registry

log = logging.getLogger(__name__)

#: Seconds between passes in a server process; expiry is a date, so minutes late is on time.
DEFAULT_EVERY_SECONDS = 300
FIRST_PASS_SECONDS = 15
EXPIRY_ACTOR = "registry:expiry"

metadata = MetaData()

#: Who may run a named job until when (Unix seconds).
leases = Table(
    "job_leases", metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("until", BigInteger, nullable=False),
)


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Lease:
    """A compare-and-set lease: ``take`` is True for one holder until the lease runs out."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        metadata.create_all(engine)

    def take(self, holder: str, *, now: int, seconds: int) -> bool:
        c = leases.c
        with self.engine.begin() as conn:
            taken = conn.execute(update(leases).where(and_(c.name == self.name, or_(
                c.until < now, c.holder == holder))).values(holder=holder, until=now + seconds)).rowcount
            if taken:
                return True
            if conn.execute(select(c.name).where(c.name == self.name)).first() is not None:
                return False
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(leases).values(name=self.name, holder=holder, until=now + seconds))
            return True
        except IntegrityError:  # another process inserted it first
            return False


@dataclass
class PassReport:
    """What one pass did: published expiries by list, and job failures in one line each."""

    expired: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def expire_all(registry: Registry, audit: AuditLog, *, now: float) -> dict[str, int]:
    """Publish the removal of every entry past its valid-until, one version per list that has any."""
    today = datetime.fromtimestamp(now, timezone.utc).date()
    with registry.engine.connect() as conn:
        list_ids = list(conn.execute(select(db.lists.c.list_id).order_by(db.lists.c.list_id)).scalars())
    done: dict[str, int] = {}
    for list_id in list_ids:
        published = registry.expire_entries(list_id, today=today, by=EXPIRY_ACTOR, now=now)
        if published is None:
            continue
        done[list_id] = len(published.entry_ids)
        with registry.engine.begin() as conn:
            audit.append(conn, actor=EXPIRY_ACTOR, action="entry.expire", subject=f"list:{list_id}",
                         reason=f"valid-until before {today.isoformat()}",
                         after={"version": published.version, "entries": list(published.entry_ids)}, at=int(now))
    return done


class Housekeeper:
    """One pass of every job, under the lease; run by a thread in each server process."""

    def __init__(self, registry: Registry, audit: AuditLog, *, every_seconds: int = DEFAULT_EVERY_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry, self.audit = registry, audit
        self.every_seconds = every_seconds
        self.clock = clock
        self.lease = Lease(registry.engine, "housekeeping")
        self.jobs: dict[str, Callable[[float], int]] = {}
        self._stop = threading.Event()

    def add_job(self, name: str, job: Callable[[float], int]) -> None:
        """``job(now)`` returns how many things it did; it may raise RegistryError to say why not."""
        self.jobs[name] = job

    def run_once(self, *, holder: str | None = None) -> PassReport | None:
        """One pass, or None when another process holds the lease."""
        now = self.clock()
        if not self.lease.take(holder or holder_name(), now=int(now), seconds=max(60, self.every_seconds)):
            return None
        report = PassReport()
        try:
            report.expired = expire_all(self.registry, self.audit, now=now)
        except RegistryError as exc:
            report.failures.append(f"expiry: {exc.message}")
        for name, job in self.jobs.items():
            try:
                report.counts[name] = job(now)
            except RegistryError as exc:
                report.failures.append(f"{name}: {exc.message}")
        for line in report.failures:
            log.warning("housekeeping %s", line)
        if report.expired:
            log.info("housekeeping expired %s", ", ".join(f"{n} on {k}" for k, n in report.expired.items()))
        return report

    def start(self, *, first_after: float = FIRST_PASS_SECONDS) -> threading.Thread:
        """A pass soon after start (a restart may have missed midnight), then every ``every_seconds``."""
        def loop() -> None:
            wait = min(first_after, self.every_seconds)
            while not self._stop.wait(wait):
                wait = self.every_seconds
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - one bad pass must not end the schedule
                    log.exception("housekeeping pass failed; the next one runs in %s s", self.every_seconds)

        thread = threading.Thread(target=loop, name="registry-housekeeping", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def housekeeper_for(app, *, every_seconds: int = DEFAULT_EVERY_SECONDS) -> Housekeeper:
    """The housekeeper of a registry app (registry/server.py create_app), with every register's jobs."""
    services, ui = app.extensions["gatecheck_registry"], app.extensions["gatecheck_ui"]
    keeper = Housekeeper(services.registry, ui.audit, every_seconds=every_seconds, clock=services.clock)
    keeper.add_job("device reports filed", lambda now: ui.intake.sweep())
    keeper.add_job("clearances expired", lambda now: len(ui.clearances.expire(
        today=datetime.fromtimestamp(now, timezone.utc).date())))
    return keeper
