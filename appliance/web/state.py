"""What the counter web app keeps between requests, and where.

One ``CounterState`` per app. It owns the device's records (snapshot,
journal, outbox), runs scans through the Checker, and remembers three small
things in the data dir so that they survive a restart of ``gatecheck serve``:

- ``web-secret``: the key that signs session cookies (0600);
- ``api-token``: the bearer token the local scanner daemon sends (0600);
- ``metrics-token``: the bearer token a Prometheus scraper sends for
  ``GET /metrics`` (0600); a separate one, so a scraper cannot post scans;
- ``counter-operator.json``: who is signed in at this counter now, so a scan
  that arrives on the JSON API (from the hardware side, with no browser
  session) is recorded under that operator.

The parsed document of a recent scan (name, DOB, full number) is held in
memory only, for the screen; the journal keeps the masked audit record.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from appliance.checker import Checker
from appliance.config import DeviceConfig
from appliance.journal import Journal, JournalRecord
from appliance.metrics import CounterMetrics
from appliance.outbox import Outbox, OutboxError, OutboxItem
from appliance.private_files import private_dir
from appliance.records import ListInfo
from appliance.snapshot import SnapshotStore, snapshot_path
from appliance.verdict import Decision, freshness

SECRET_FILE = "web-secret"
API_TOKEN_FILE = "api-token"
METRICS_TOKEN_FILE = "metrics-token"
OPERATOR_FILE = "counter-operator.json"

#: A sign-in at the counter lasts one shift at most.
SHIFT = timedelta(hours=12)
#: Parsed documents held in memory for the screen (never written to disk).
RECENT_DETAILS = 64

#: Reports listed on the counter: an operator's newest, found among this many of the device's.
REPORTS_SHOWN = 10
REPORTS_SCANNED = 500

#: How often a running counter applies journal retention.
RETENTION_EVERY = timedelta(hours=1)
#: How long a page or an event waits for a verdict's fsync before going on without it.
DURABLE_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class Scan:
    """One scan as the web app returns it: the journal seq and the verdict dict."""

    seq: int
    decision: Decision
    record: JournalRecord

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.decision.to_dict()}


class _RecordingJournal:
    """The journal as the Checker sees it, keeping the record ``append`` returns.

    The Checker journals each verdict itself; the web app needs that record's
    seq (the SSE event id), which ``Checker.check`` does not return.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.appended: JournalRecord | None = None

    def append(self, record: dict[str, Any], **kwargs: Any) -> JournalRecord:
        self.appended = self._journal.append(record, **kwargs)
        return self.appended

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)


def _open_snapshot(path: Path) -> SnapshotStore:
    """The snapshot, read-only: the counter only reads it; the sync agent writes.

    One connection shared by the server's threads (SnapshotStore locks it),
    so the page cache is paid once. A device with no snapshot yet gets an
    empty, migrated one, which the verdict rules treat as out of date.
    """
    if not path.is_file():
        SnapshotStore(path).close()
    return SnapshotStore(path, readonly=True)


def _secret_file(path: Path, make) -> str:
    """Read a small 0600 file, creating it on first use.

    Written to a temporary name and linked into place, so a second process
    starting at the same moment reads either nothing or the whole value.
    """
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(make() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won; use its value
    finally:
        tmp.unlink()
    return path.read_text("ascii").strip()


class CounterState:
    """The device-side runtime behind the counter screen and the local API."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        private_dir(self.data_dir)
        # Appends commit to the WAL and are fsynced just behind (group commit),
        # so the disk is off the verdict's path; what the screen shows waits
        # for the fsync (events_after, settled).
        self.journal = Journal(self.data_dir, deferred_sync=True)
        self.outbox = Outbox(self.data_dir)
        self.snapshot = _open_snapshot(snapshot_path(self.data_dir))
        self._details: OrderedDict[int, Scan] = OrderedDict()
        self._details_lock = threading.Lock()
        self._new_scan = threading.Condition()
        self.closing = threading.Event()  # set on shutdown: event streams end at once
        self.api_token = _secret_file(self.data_dir / API_TOKEN_FILE, lambda: secrets.token_urlsafe(32))
        self.metrics_token = _secret_file(self.data_dir / METRICS_TOKEN_FILE, lambda: secrets.token_urlsafe(32))
        self.metrics = CounterMetrics(snapshot=self.snapshot, outbox=self.outbox, data_dir=self.data_dir,
                                      profile=config.profile)
        self._purged_at: datetime | None = None
        self._retention_lock = threading.Lock()
        self.apply_retention()

    # -- retention ----------------------------------------------------------------

    def apply_retention(self, now: datetime | None = None) -> int:
        """Purge journal records past their retention, at most once per RETENTION_EVERY.

        Runs at start and after scans, so a counter that is never restarted
        still forgets CLEAR verdicts after journal_clear_days.
        """
        now = now or datetime.now(timezone.utc)
        with self._retention_lock:  # waitress threads: one purge per period, not one each
            if self._purged_at is not None and now - self._purged_at < RETENTION_EVERY:
                return 0
            self._purged_at = now
        return self.journal.purge(now, clear_days=self.config.journal_clear_days,
                                  match_days=self.config.journal_match_days)

    # -- files in the data dir ------------------------------------------------

    def secret_key(self) -> str:
        return _secret_file(self.data_dir / SECRET_FILE, lambda: secrets.token_hex(32))

    def stop_streams(self) -> None:
        """End every open event stream (the server is shutting down)."""
        self.closing.set()
        with self._new_scan:
            self._new_scan.notify_all()

    def close(self) -> None:
        self.stop_streams()
        self.snapshot.close()
        self.journal.close()
        self.outbox.close()

    # -- who is at the counter --------------------------------------------------

    def set_operator(self, operator: str, now: datetime | None = None) -> None:
        """Record ``operator`` as signed in at this counter (replacing anyone before)."""
        now = now or datetime.now(timezone.utc)
        body = json.dumps({"operator": operator, "since": now.isoformat()})
        path = self.data_dir / OPERATOR_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def clear_operator(self, operator: str) -> None:
        """Sign ``operator`` out of the counter (a later sign-in by someone else stays)."""
        if self.current_operator() == operator:
            try:
                (self.data_dir / OPERATOR_FILE).unlink()
            except FileNotFoundError:
                pass

    def current_operator(self, now: datetime | None = None) -> str | None:
        """The operator signed in at this counter, if the sign-in is from this shift."""
        try:
            data = json.loads((self.data_dir / OPERATOR_FILE).read_text("utf-8"))
            operator = data["operator"]
            since = datetime.fromisoformat(data["since"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        now = now or datetime.now(timezone.utc)
        if operator not in self.config.operators or now - since > SHIFT:
            return None
        return operator

    # -- scanning ---------------------------------------------------------------

    def check(self, payload: bytes | None = None, *, channel: str, manual: dict | None = None,
              operator: str | None = None) -> Scan:
        """Judge and journal one scan; wake every open event stream."""
        journal = _RecordingJournal(self.journal)
        checker = Checker(self.snapshot, journal, self.config)  # type: ignore[arg-type]
        if operator is None:
            operator = self.current_operator()
        started = time.perf_counter()
        decision = checker.check(payload, channel=channel, operator=operator, manual=manual)
        self.metrics.observe(decision, time.perf_counter() - started)
        record = journal.appended
        if record is None:
            raise RuntimeError("the Checker returned a verdict without journaling it")
        scan = Scan(record.seq, decision, record)
        with self._details_lock:
            self._details[record.seq] = scan
            while len(self._details) > RECENT_DETAILS:
                self._details.popitem(last=False)
        with self._new_scan:
            self._new_scan.notify_all()
        self.apply_retention()
        return scan

    def detail(self, seq: int) -> Scan | None:
        """A recent scan with its parsed document, if this process still holds it."""
        with self._details_lock:
            return self._details.get(seq)

    def last_scan(self, since_seq: int = 0) -> Scan | None:
        """The newest scan held in memory after ``since_seq``."""
        with self._details_lock:
            newest = next(reversed(self._details), None)
            return self._details[newest] if newest is not None and newest > since_seq else None

    def head_seq(self) -> int:
        return self.journal.head()[0]

    def events_after(self, seq: int, limit: int = 100) -> list[dict[str, Any]]:
        """Journal records after ``seq``, as the SSE and polling payloads (masked audit view).

        Only records already on disk: the screen shows a verdict through
        these events, and must not show one a power cut could take back.
        """
        records = self.journal.since(seq, limit=limit)
        if records and not self.settled(records[-1].seq):
            durable = self.journal.durable_seq
            records = [record for record in records if record.seq <= durable]
        return [event_of(record) for record in records]

    def settled(self, seq: int) -> bool:
        """Wait (briefly) until journal record ``seq`` is on disk; False if it is not yet."""
        return self.journal.wait_durable(seq, timeout=DURABLE_WAIT_SECONDS)

    def wait_for_scan(self, after_seq: int, timeout: float) -> None:
        """Sleep until a scan newer than ``after_seq`` is made here, or ``timeout`` passes.

        Scans journaled by another process (``gatecheck check``) are not
        signalled; callers re-read the journal after every wait anyway.
        """
        with self._new_scan:
            if self.head_seq() <= after_seq and not self.closing.is_set():
                self._new_scan.wait(timeout)

    # -- reports ----------------------------------------------------------------

    def reports_by(self, operator: str, n: int = REPORTS_SHOWN) -> list[OutboxItem]:
        """``operator``'s newest reports, newest first: a report names a traveller,
        so each reporter sees only their own.

        Looks through the device's newest REPORTS_SCANNED reports; an older one
        drops off this list but its page still opens.
        """
        mine = [item for item in self.outbox.recent(REPORTS_SCANNED)
                if item.report.get("reporter") == operator]
        return mine[:n]

    def report_of(self, report_id: str, operator: str) -> OutboxItem | None:
        """Report ``report_id`` if ``operator`` filed it; None for a report that is
        someone else's or does not exist, so the two cannot be told apart."""
        try:
            item = self.outbox.get(report_id)
        except OutboxError:
            return None
        if item is None or item.report.get("reporter") != operator:
            return None
        return item

    # -- status -----------------------------------------------------------------

    def lists(self) -> list[ListInfo]:
        return self.snapshot.lists()

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        """List versions, freshness, outbox depth and journal size (GET /api/status)."""
        now = now or datetime.now(timezone.utc)
        profile = self.config.profile()
        lists = self.lists()
        fresh = freshness(lists, profile, now)
        head_seq, head_hash = self.journal.head()
        return {
            "lists": {
                info.list_id: {
                    "name": info.name,
                    "authority": info.authority,
                    "scopes": list(info.scopes),
                    "in_scope": profile.covers(info),
                    "version": info.version,
                    "digest": info.state_digest.hex(),
                    "heartbeat_at": _iso(info.heartbeat_at),
                    "valid_until": _iso(info.valid_until),
                }
                for info in lists
            },
            "freshness": {
                "as_of": _iso(fresh.as_of),
                "age_seconds": None if fresh.age is None else int(fresh.age.total_seconds()),
                "max_age_seconds": int(profile.max_age.total_seconds()),
                "stale": fresh.stale,
                "reason": fresh.reason(profile.scopes),
                "fail_closed": profile.fail_closed,
            },
            "scopes": sorted(profile.scopes),
            "outbox": {"depth": self.outbox.depth()},
            "journal": {"records": self.journal.count(), "head_seq": head_seq, "head_hash": head_hash},
            "operator": self.current_operator(now),
            "now": now.isoformat(),
        }


def event_of(record: JournalRecord) -> dict[str, Any]:
    """The event payload for one journal record: audit fields only, never the document."""
    data = record.to_dict()
    data.pop("prev_hash", None)
    return data


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()
