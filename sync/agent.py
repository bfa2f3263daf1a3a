"""The sync agent: fetch, verify, apply, confirm, for every list the device holds.

The updater of python-tuf's ngclient, for deny-lists. I/O lives here and at
the seam (sync/fetcher.py); every trust decision is the pure
:class:`~sync.trust.TrustedSet`'s. For one list, each fetched update goes:

1. **verify** envelope and payload against the pinned keys and the held state
   (signature before the payload is parsed: docs/envelope.md, steps 1-17);
2. **decode** the payload (sync/wire.py) and start ``apply_batch``: one
   store transaction, whose pass over the buckets works out the change and
   hands back the entries that removals and replacements take away;
3. **compute** the post-state digest from the held lanes and the change
   (sync/digest.py) and **confirm** it against the signed one *before* the
   store writes a bucket: ``apply_batch`` is one transaction, so "roll back"
   means never committing. On a mismatch nothing is applied, the agent logs
   it loudly and fetches a full snapshot (``?since=0&full=1``);
4. **stage** the new state in sync.db, let the store write and **commit**,
   then **commit** the staged state (sync/agent_state.py explains the crash
   recovery).

Pacing (issue 4, "Loop and pacing"): the first poll comes a random 0-60 s
after start, the registry's ``X-Gatecheck-Min-Wait`` is honoured, and after
N consecutive failures the wait is min(2^(N-1) x base x (1 + rand), cap),
Safe Browsing's rule scaled down to a counter. A stop (SIGTERM) is seen
between transactions, never inside one; a snapshot download, which is no
transaction (its file is discarded), ends at the next chunk.

Liveness: ``alive`` (the systemd watchdog ping, appliance/systemd_notify.py)
is called from this loop at least every ``wait_slice`` seconds while it
waits, and between lists, fetch rounds, download chunks, snapshot blocks and
outbox reports while it works, so a ping proves the loop itself is turning.
What cannot call back (one HTTP wait, a long-poll) must fit in the
watchdog's budget: sync/cli.py shortens the long-poll when it does not.

Housekeeping after a run: a health report to the registry every
``health_interval`` seconds (so IT sees a device that syncs but is, say,
running out of disk), and a compaction of the store in the quiet hour once
deltas have loosened its pages (docs/snapshot.md, "Compaction").
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

from appliance.device_status import app_version, scanner_state
from appliance.journal import verdicts_since
from appliance.outbox import Outbox
from appliance.records import Batch
from appliance.snapshot import SnapshotStore
from appliance.snapshot_errors import SnapshotError
from sync.agent_state import KIND_CERT, KIND_REVOCATION, AgentState, ListRecord
from sync.digest import StateDigest
from sync.envelope import Kind
from sync.agent_snapshot import (
    Download,
    check_disk,
    discard,
    download_payload,
    install_snapshot,
    read_answer,
    remove_stale_downloads,
)
from sync.errors import BehindRegistry, DigestMismatch, MixAndMatch, PayloadHashMismatch, SyncError
from sync.fetcher import FetchError, Fetcher, Response, open_stream
from sync.framing import FRAME_CERT, FRAME_REVOCATION, parse_frames
from sync.keys import KeyRing
from sync.token_keys import TokenKeyRefused, key_path, parse_key_answer
from sync.trust import TrustConfig, TrustedListState, TrustedSet
from sync.wire import decode_delta

log = logging.getLogger("gatecheck.sync")

MIN_WAIT_HEADER = "X-Gatecheck-Min-Wait"
#: The health report counts the journal's verdicts over this window (retention keeps at least a day).
VERDICT_WINDOW_SECONDS = 86_400


class RegistryRefused(SyncError):
    """The registry answered, but not with what the contract promises (an HTTP error)."""

    code = "registry_refused"


class Stopped(Exception):
    """A stop came during a snapshot download; the download is discarded (not a SyncError: nothing failed)."""


class NotConverging(SyncError):
    """A list did not reach a verified current state within the rounds one run allows."""

    code = "not_converging"


@dataclass(frozen=True)
class AgentConfig:
    """Pacing and limits of the agent, in seconds and bytes (docs/sync-agent.md)."""

    first_poll_max_delay: float = 60.0
    backoff_base: float = 30.0
    backoff_cap: float = 3600.0
    #: Floor between successful polls; the registry's Min-Wait may raise it.
    poll_interval: float = 1.0
    #: Long-poll: seconds the registry may hold a no-change poll (contract max 30).
    long_poll_wait: int = 25
    #: Fetches per list per run: a chain longer than one answer, or snapshot recovery.
    max_rounds: int = 6
    max_updates_bytes: int = 256 * 1024 * 1024
    max_keys_bytes: int = 64 * 1024
    max_answer_bytes: int = 64 * 1024
    max_entries: int = 60_000_000
    #: A snapshot download may take payload_size / this many seconds on top of the
    #: fetcher's deadline (a gigabyte: ~68 min at 256 KiB/s).
    min_download_bytes_per_second: int = 256 * 1024
    #: Free disk to leave after a snapshot's download and new store file.
    disk_reserve_bytes: int = 64 * 1024 * 1024
    outbox_batch: int = 100
    #: Seconds between health reports (POST /v1/health); 0 turns them off.
    health_interval: float = 300.0
    #: Local hour (0-23) in which the store may be compacted; None never compacts.
    compact_hour: int | None = 3
    #: Compact when the store holds at least this many tokens at more than compact_above bytes each.
    compact_min_tokens: int = 100_000
    compact_above: float = 24.0
    trust: TrustConfig = field(default_factory=TrustConfig)

    def __post_init__(self) -> None:
        for name in ("first_poll_max_delay", "backoff_base", "backoff_cap", "poll_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"AgentConfig.{name} must be a non-negative number of seconds, got {value!r}")
        if not 0 <= self.long_poll_wait <= 30:
            raise ValueError("AgentConfig.long_poll_wait must be 0..30 seconds (the registry's maximum)")
        if self.max_rounds < 2:
            raise ValueError("AgentConfig.max_rounds must be at least 2 (a delta, then a snapshot)")
        if self.health_interval < 0:
            raise ValueError("AgentConfig.health_interval must be a non-negative number of seconds")
        if self.compact_hour is not None and not 0 <= self.compact_hour <= 23:
            raise ValueError("AgentConfig.compact_hour must be an hour 0..23, or None")


@dataclass
class RunReport:
    """What one ``run_once`` did: versions reached, errors met and when to poll next."""

    ok: bool = True
    next_delay: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    health_sent: bool = False
    compacted: dict | None = None


@contextlib.contextmanager
def collector_paused():
    """No cyclic garbage collection while a delta is decoded and applied.

    A 100 k-change delta allocates about a million objects that all stay
    alive until it commits, so every automatic collection walks them again
    for nothing. The agent runs in its own process; the collector is back on
    (and runs as usual) as soon as the delta is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def backoff_delay(failures: int, *, base: float, cap: float, rand: float) -> float:
    """min(2^(N-1) x base x (1 + rand), cap) for N consecutive failures, rand in [0, 1)."""
    if failures < 1:
        return 0.0
    return min(2 ** min(failures - 1, 62) * base * (1 + rand), cap)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _error_of(response: Response) -> str:
    try:
        return json.loads(response.body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.body[:200].decode("utf-8", "replace")


class SyncAgent:
    """Keeps one snapshot store in step with the registry and empties the outbox.

    ``lists`` names the lists to sync; by default every list in the store
    (enrolment creates them there, with their token keys).
    """

    def __init__(self, store: SnapshotStore, state: AgentState, fetcher: Fetcher,
                 root_public_key: bytes, *, outbox: Outbox | None = None,
                 config: AgentConfig | None = None, lists: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 stop: threading.Event | None = None, alive: Callable[[], None] | None = None,
                 wait_slice: float = 1.0) -> None:
        self.store = store
        self.state = state
        self.fetcher = fetcher
        self.outbox = outbox
        self.config = config or AgentConfig()
        self.clock = clock
        self.rng = rng or random.Random()
        self.stop = stop or threading.Event()
        #: Called from the loop while it waits and works (the watchdog ping); must be cheap.
        self.alive = alive or (lambda: None)
        self.wait_slice = wait_slice
        self._lists = list(lists) if lists is not None else None
        self.keyring = KeyRing(root_public_key)
        for kind, data in state.key_statements():
            try:
                (self.keyring.add_cert if kind == KIND_CERT else self.keyring.add_revocation)(data)
            except SyncError as exc:  # e.g. a cert whose key was revoked later: stays refused
                log.debug("held key statement not re-admitted: %s", exc.message)
        self.trusted = TrustedSet(self.keyring, self.config.trust)
        self._health_due = 0.0  # the first run reports at once: a restart is news to IT
        self._compacted_at = 0.0

    # -- the loop ------------------------------------------------------------

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Poll until ``stop`` is set; the first poll comes 0..first_poll_max_delay s after start."""
        if stop is not None:
            self.stop = stop
        delay = self.rng.uniform(0, self.config.first_poll_max_delay)
        log.info("first poll in %.1f s", delay)
        while not self._wait(delay):
            delay = self.run_once().next_delay
        log.info("sync agent stopped")

    def _wait(self, delay: float) -> bool:
        """Wait ``delay`` seconds in slices, calling ``alive`` after each; True as soon as a stop comes.

        A backoff can be an hour: one ``stop.wait(delay)`` would starve the watchdog.
        """
        deadline = time.monotonic() + delay
        while True:
            self.alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.stop.is_set()
            if self.stop.wait(min(remaining, self.wait_slice)):
                return True

    def run_once(self) -> RunReport:
        """One poll of every list and one pass over the outbox; records the outcome."""
        report = RunReport()
        min_wait = 0.0
        try:
            self._refresh_keys()
            for list_id in self.list_ids():
                self.alive()
                if self.stop.is_set():
                    break
                try:
                    min_wait = max(min_wait, self.sync_list(list_id, report))
                except (FetchError, Stopped):
                    raise
                except (SyncError, SnapshotError) as exc:
                    message = f"list {list_id}: {exc.message}"
                    log.error("%s", message)
                    report.errors.append(message)
                finally:
                    current = self.state.get(list_id).state.version
                    report.versions[list_id] = current
            if self.outbox is not None and not self.stop.is_set():
                self._send_outbox(report)
        except Stopped:
            log.info("stopped during a snapshot download; it starts again on the next run")
            return report
        except FetchError as exc:
            log.warning("registry unreachable: %s", exc.message)
            report.errors.append(exc.message)
        except RegistryRefused as exc:  # e.g. 401 on /v1/keys for a revoked device: a failed run, not a crash
            log.error("%s", exc.message)
            report.errors.append(exc.message)
        now = self.clock()
        report.ok = not report.errors
        if report.ok:
            report.next_delay = max(min_wait, self.config.poll_interval)
            self.state.record_success(now, now + report.next_delay)
        else:
            failures = self.state.status().failures + 1
            report.next_delay = max(min_wait, backoff_delay(
                failures, base=self.config.backoff_base, cap=self.config.backoff_cap, rand=self.rng.random()))
            self.state.record_failure(now, report.errors[-1], failures, now + report.next_delay)
        if not self.stop.is_set():
            self._housekeeping(report, now)
        return report

    def list_ids(self) -> list[str]:
        if self._lists is not None:
            return list(self._lists)
        return [info.list_id for info in self.store.lists()]

    # -- keys ------------------------------------------------------------------

    def _refresh_keys(self) -> None:
        """Fetch the root-signed key statements; keep the ones the root really signed."""
        response = self.fetcher.fetch("GET", "/v1/keys", max_bytes=self.config.max_keys_bytes)
        if response.status != 200:
            raise RegistryRefused(f"GET /v1/keys: HTTP {response.status}: {_error_of(response)}")
        for kind, data, _ in parse_frames(response.body, max_envelope_bytes=self.config.max_keys_bytes):
            try:
                if kind == FRAME_CERT:
                    self.keyring.add_cert(data)
                    self.state.add_key_statement(KIND_CERT, data)
                elif kind == FRAME_REVOCATION:
                    self.keyring.add_revocation(data)
                    self.state.add_key_statement(KIND_REVOCATION, data)
            except SyncError as exc:  # a forged, revoked or superseded statement changes nothing
                log.warning("key statement refused: %s", exc.message)

    # -- one list ----------------------------------------------------------------

    def sync_list(self, list_id: str, report: RunReport | None = None) -> float:
        """Bring one list to the registry's current version; returns the registry's Min-Wait."""
        report = report if report is not None else RunReport()
        record = self._held(list_id)
        remove_stale_downloads(self.store.path.parent)
        want_snapshot = False
        progressed = False
        for _ in range(self.config.max_rounds):
            self.alive()
            if self.stop.is_set():
                return 0.0
            since = 0 if want_snapshot else record.state.version
            wait = 0 if (progressed or want_snapshot or not self._proven_recently(list_id)) \
                else self.config.long_poll_wait
            path = f"/v1/lists/{list_id}/updates?since={since}" + (
                "&full=1" if want_snapshot else f"&wait={wait}" if wait else "")
            ceiling = self.config.max_updates_bytes + self.config.trust.max_snapshot_bytes
            with open_stream(self.fetcher, "GET", path, max_bytes=self.config.max_updates_bytes,
                             ceiling=ceiling) as response:
                if response.status == 409:
                    log.warning("list %s: registry is behind the device's version %d; fetching a snapshot",
                                list_id, since)
                    want_snapshot = True
                    continue
                if response.status != 200:
                    whole = Response(response.status, response.headers, response.rest())
                    raise RegistryRefused(f"GET {path}: HTTP {response.status}: {_error_of(whole)}")
                min_wait = _min_wait(response)
                frames = read_answer(response, self.config.trust.max_envelope_bytes,
                                     lambda envelope, size, reader: self._download(record, envelope, size,
                                                                                   reader, response),
                                     progress=self.alive)
            try:
                if not frames:
                    raise RegistryRefused(f"GET {path}: empty answer (no update and no heartbeat)")
                current = False
                want_snapshot = False
                for envelope, payload in frames:
                    try:
                        record, current = self._apply(record, envelope, payload, report)
                    except BehindRegistry:
                        break  # the answer ended short of the head: ask again at once
                    except DigestMismatch as exc:
                        log.error("DIGEST MISMATCH on list %s at version %d: %s -- nothing applied, "
                                  "fetching a full snapshot", list_id, record.state.version, exc.message)
                        want_snapshot = True
                        break
                    progressed = True
            finally:
                discard(frames)
            if current and not want_snapshot:
                return min_wait
        raise NotConverging(f"not current after {self.config.max_rounds} fetches; will retry")

    def _proven_recently(self, list_id: str) -> bool:
        """Whether a heartbeat proved the held list current within two long-polls.

        A long-poll answers "no change" only when its wait ends; a device just
        enrolled, or back from an outage, would show its lists as out of date
        (REFER, failing closed) for that long. Until the list is proven
        current again the agent asks without waiting.
        """
        info = self.store.get_list(list_id)
        if info is None or info.heartbeat_at is None:
            return False
        age = self.clock() - info.heartbeat_at.timestamp()
        return 0 <= age <= 2 * self.config.long_poll_wait + 5

    def _held(self, list_id: str) -> ListRecord:
        """The held record, reconciled with the store after a crash or a lost sync.db."""
        info = self.store.get_list(list_id)
        if info is None:
            raise SnapshotError(f"list {list_id!r} is not in the snapshot store; enrol the device for it")
        record = self.state.reconcile(list_id, info.version)
        if record.state.version == info.version:
            return record
        # sync.db and the store disagree (sync.db lost, or a store built offline):
        # trust the store's version and recompute the lanes from its entries;
        # the next signed digest (delta or heartbeat) proves it or forces a snapshot.
        log.warning("list %s: sync state at version %d, store at %d; recomputing the digest from the store",
                    list_id, record.state.version, info.version)
        digest = StateDigest.of(self._ticking(self.store.iter_entries(list_id)))

        record = ListRecord(TrustedListState(list_id, info.version, digest.checksum()), digest.to_bytes())
        self.state.save(record)
        return record

    def _download(self, record: ListRecord, envelope: bytes, size: int, frames, response) -> Download:
        """A snapshot frame: check its envelope and the disk, then stream exactly its signed size to a file."""
        env = self.trusted.check_envelope(record.state, envelope, now=self.clock())
        if size != env.payload_size:
            raise PayloadHashMismatch(f"snapshot payload is {size} bytes but the envelope signed "
                                      f"{env.payload_size}: truncated or padded download")
        check_disk(self.store, env.list_id, size, self.config.disk_reserve_bytes)
        response.allow(size, size / self.config.min_download_bytes_per_second)
        log.info("list %s: downloading a %.1f MiB snapshot (version %d)", env.list_id, size / 2**20,
                 env.to_version)
        return download_payload(frames, self.store.path.parent, env.list_id, size, progress=self._download_tick)

    def _download_tick(self) -> None:
        """After each chunk of a snapshot download: ping, and give up the download if a stop came."""
        self.alive()
        if self.stop.is_set():
            raise Stopped("stopped during a snapshot download")

    def _ticking(self, items: Iterable, every: int = 65_536) -> Iterable:
        """``items``, calling ``alive`` every ``every`` of them (an O(n) pass over the store)."""
        for count, item in enumerate(items, 1):
            if count % every == 0:
                self.alive()
            yield item

    def _apply(self, record: ListRecord, envelope: bytes, payload: bytes | Download,
               report: RunReport) -> tuple[ListRecord, bool]:
        """Verify, confirm and apply one update; returns the new record and whether it is a heartbeat."""
        list_id = record.state.list_id
        if isinstance(payload, Download):
            new, tokens = install_snapshot(self.store, self.state, self.trusted, record, envelope, payload,
                                           max_entries=self.config.max_entries, now=self.clock(),
                                           fetch_key=self._fetch_token_key, progress=self.alive)
            report.snapshots.append(list_id)
            log.info("list %s: installed snapshot at version %d (%d tokens)", list_id, new.state.version, tokens)
            return new, False
        update = self.trusted.verify_update(record.state, envelope, payload or None, now=self.clock())
        env = update.envelope
        if update.kind is Kind.HEARTBEAT:
            held = StateDigest.from_bytes(record.lanes).checksum()
            new_state = self.trusted.confirm(record.state, update, held)
            self.store.record_heartbeat(list_id, signed_at=_utc(env.issued_at),
                                        valid_until=_utc(env.valid_until), heartbeat_at=_utc(self.clock()))
            new = ListRecord(new_state, record.lanes)
            self.state.save(new)
            return new, True
        with collector_paused():
            return self._apply_delta(record, update, report)

    def _apply_delta(self, record: ListRecord, update, report: RunReport) -> tuple[ListRecord, bool]:
        list_id, env = record.state.list_id, update.envelope
        decoded = decode_delta(update.payload, max_bytes=self.config.trust.max_payload_bytes(env.kind),
                               max_entries=self.config.max_entries)
        if (decoded.list_id, decoded.from_version, decoded.to_version) != \
                (env.list_id, env.from_version, env.to_version):
            raise MixAndMatch(f"payload is {decoded.list_id} {decoded.from_version}->{decoded.to_version}, "
                              f"its envelope {env.list_id} {env.from_version}->{env.to_version}")
        info = self.store.get_list(list_id)
        batch = Batch(list_id, info.version, env.to_version, decoded.adds, decoded.removes,
                      decoded.add_clearances, decoded.remove_clearances, env.post_state_digest,
                      _utc(env.issued_at), _utc(env.valid_until))

        def confirm(taken: list) -> None:
            # A removal, and an addition of a held token (which replaces it),
            # take the held entry out of the digest. apply_batch's bucket pass
            # finds them (``taken``) and calls this before it writes a bucket:
            # a mismatch raises here and nothing is committed.
            digest = StateDigest.from_bytes(record.lanes).apply(
                adds=[*decoded.adds, *decoded.add_clearances], removes=taken)
            new_state = self.trusted.confirm(record.state, update, digest.checksum())
            self.state.stage(ListRecord(new_state, digest.to_bytes()))

        try:
            self.store.apply_batch(batch, before_commit=confirm)
        except BaseException:
            self.state.discard_staged(list_id)
            raise
        new = self.state.commit_staged(list_id)
        log.info("list %s: %d -> %d (+%d -%d)", list_id, env.from_version, env.to_version,
                 len(decoded.adds), len(decoded.removes))
        return new, False

    def _fetch_token_key(self, list_id: str) -> bytes:
        """A re-keyed list's new token key (install_snapshot checks it against the signed snapshot)."""
        path = key_path(list_id)
        response = self.fetcher.fetch("GET", path, max_bytes=self.config.max_answer_bytes)
        if response.status != 200:
            raise TokenKeyRefused(f"GET {path} answered HTTP {response.status}: {_error_of(response)}")
        return parse_key_answer(response.body, list_id=list_id)

    # -- housekeeping --------------------------------------------------------------

    def _housekeeping(self, report: RunReport, now: float) -> None:
        """Health report when due, compaction in the quiet hour; neither fails the run."""
        if self.config.health_interval and now >= self._health_due:
            try:
                self._send_health(now)
                report.health_sent = True
                self._health_due = now + self.config.health_interval
            except FetchError as exc:  # the registry is down: the next run tries again
                log.debug("health report not sent: %s", exc.message)
            except SyncError as exc:
                log.warning("health report refused: %s", exc.message)
                self._health_due = now + self.config.health_interval
        if self._compaction_due(now):
            self._compacted_at = now
            try:
                report.compacted = self.store.compact(progress=self.alive)
                log.info("store compacted: %s", report.compacted)
            except SnapshotError as exc:
                log.warning("store not compacted: %s", exc.message)

    def health(self, now: float) -> dict:
        """What the registry's fleet view shows for this device (docs/sync-agent.md, "Health")."""
        status = self.state.status()
        stats = self.store.stats()
        lists = {}
        for info in self.store.lists():
            if self._lists is None or info.list_id in self._lists:
                lists[info.list_id] = {
                    "version": info.version, "tokens": stats["tokens_per_list"].get(info.list_id, 0),
                    "heartbeat_at": info.heartbeat_at.isoformat() if info.heartbeat_at else None}
        disk = shutil.disk_usage(self.store.path.parent)
        return {
            "clock": _utc(now).isoformat(),
            "app_version": app_version(),
            "scanner": scanner_state(self.store.path.parent),
            "lists": lists,
            "last_success_at": None if status.last_success_at is None else _utc(status.last_success_at).isoformat(),
            "failures": status.failures,
            "last_error": status.last_error,
            "outbox_pending": self.outbox.depth() if self.outbox is not None else 0,
            "store": {"tokens": stats["tokens"], "file_bytes": stats["file_bytes"],
                      "bytes_per_token": stats["bytes_per_token"]},
            "disk_free_bytes": disk.free,
            # Scans per verdict over the last day, from the journal (docs/sync-agent.md, "Health").
            "verdicts_24h": verdicts_since(self.store.path.parent, _utc(now - VERDICT_WINDOW_SECONDS)),
        }

    def _send_health(self, now: float) -> None:
        body = json.dumps(self.health(now), sort_keys=True).encode("utf-8")
        response = self.fetcher.fetch("POST", "/v1/health", body=body, headers={"Content-Type": "application/json"},
                                      max_bytes=self.config.max_answer_bytes)
        if response.status not in (200, 204):
            raise RegistryRefused(f"POST /v1/health: HTTP {response.status}: {_error_of(response)}")

    def _compaction_due(self, now: float) -> bool:
        """In the quiet hour, at most once a day, when deltas have loosened a large store's pages."""
        hour = self.config.compact_hour
        if hour is None or datetime.fromtimestamp(now).hour != hour or now - self._compacted_at < 20 * 3600:
            return False
        stats = self.store.stats()
        return (stats["tokens"] >= self.config.compact_min_tokens
                and (stats["bytes_per_token"] or 0) > self.config.compact_above)

    # -- outbox ----------------------------------------------------------------

    def _send_outbox(self, report: RunReport) -> None:
        """POST pending reports, a batch at a time, until the outbox is empty (idempotent by id).

        A report the registry refuses stays pending and the run moves on to
        the others in its batch; then the run stops sending, so a refused
        report is retried next run instead of in a tight loop.
        """
        while not self.stop.is_set():
            batch = self.outbox.pending(self.config.outbox_batch)
            if not batch or not all([self._send_report(item, report) for item in batch]):
                return

    def _send_report(self, item, report: RunReport) -> bool:
        """One report; True when the registry acknowledged it (False also when a stop came first)."""
        self.alive()
        if self.stop.is_set():
            return False
        body = json.dumps({"report_id": item.report_id, "report": item.report},
                          ensure_ascii=False, sort_keys=True).encode("utf-8")
        try:
            response = self.fetcher.fetch("POST", "/v1/incidents", body=body,
                                          headers={"Content-Type": "application/json"},
                                          max_bytes=self.config.max_answer_bytes)
        except FetchError as exc:
            self.outbox.mark_failed(item.report_id, exc.message)
            raise
        answer = _json(response)
        if (response.status == 200 and answer.get("status") == "acknowledged"
                and answer.get("report_id") == item.report_id):
            self.outbox.mark_acknowledged(item.report_id)
            report.acknowledged.append(item.report_id)
            return True
        reason = f"POST /v1/incidents: HTTP {response.status}: {_error_of(response)}"
        if response.status == 409:
            reason = f"report {item.report_id}: the registry holds different content under this id"
            log.error("%s", reason)
        self.outbox.mark_failed(item.report_id, reason)
        report.errors.append(reason)
        return False


def _json(response: Response) -> dict:
    try:
        value = json.loads(response.body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _min_wait(response: Response) -> float:
    raw = response.header(MIN_WAIT_HEADER)
    try:
        value = float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
    return value if 0 <= value <= 86_400 else 0.0
