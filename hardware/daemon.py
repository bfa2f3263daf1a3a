"""The scanner daemon: every source's scans, in order, to the appliance's local API.

Each source (serial, keyboard wedge, camera, replay) runs ``Source.run`` on a
thread of its own and puts its scans on one inbox. The *main* loop alone
takes them off, posts each to ``POST /api/scan`` on the loopback address
with the device's scanner token, drives the indicators from the verdict,
writes the status file and pings the systemd watchdog (appliance/
systemd_notify.py): a hung main loop therefore stops the pings, and systemd
restarts the daemon, which is what WatchdogSec= is for.

A scan is delivered at least once: a post that timed out may have been
journaled, and is sent again (a duplicate journal record is better than a
traveller who was never checked). Payloads are personal data and are never
logged; the log says which source, its identity and its connection state.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Callable, Sequence

from appliance.private_files import write_private
from hardware.indicators import DENY, QUEUED, REFER, UNREADABLE, Indicators
from hardware.scan import CAMERA, STATUS_FILE, Scan, Source

log = logging.getLogger(__name__)

#: The status file is rewritten at least this often (device_status treats 30 s as stale).
STATUS_EVERY_SECONDS = 10.0
#: Retry delays while the appliance is down: quick at first (a restart takes seconds), then calmer.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 2.0
#: A source whose ``run`` raised is started again after this long.
SOURCE_RESTART_SECONDS = 5.0
#: How long a stop waits for each source thread.
SOURCE_JOIN_SECONDS = 3.0
CONNECT_TIMEOUT_SECONDS = 2.0
#: When a backlog is delivered at once, the indicators show the gravest verdict of it.
_GRAVITY = {DENY: 3, REFER: 2, UNREADABLE: 1}


# -- talking to the appliance --------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one post came to.

    ``verdict`` is set when the appliance judged the scan (200, or 422 with an
    UNREADABLE verdict). ``refused`` when it answered but judged nothing (an
    image with no barcode, a payload too large): sending it again cannot help.
    ``unreachable`` when the appliance did not answer usefully (refused
    connection, timeout, 5xx, a token it does not take): keep the scan.
    """

    verdict: str | None = None
    seq: int | None = None
    refused: str | None = None
    unreachable: str | None = None


class ApplianceClient:
    """POST /api/scan on the local counter app, with the scanner token from the data dir."""

    def __init__(self, url: str, token_file: Path, *, timeout: float = 10.0) -> None:
        import requests

        self._requests = requests
        self.url = url.rstrip("/") + "/api/scan"
        self.token_file = Path(token_file)
        self.timeout = (CONNECT_TIMEOUT_SECONDS, timeout)
        self.session = requests.Session()
        self.session.trust_env = False  # never through an HTTP proxy from the environment
        self.token = self.read_token()

    def read_token(self) -> str:
        """The token file's content; raises OSError or ValueError (empty) for the CLI to report."""
        token = self.token_file.read_text("ascii").strip()
        if not token:
            raise ValueError(f"{self.token_file} is empty")
        return token

    def post(self, scan: Scan) -> Answer:
        answer = self._post(scan)
        if answer.unreachable == "token refused":
            # The appliance makes a new token when its file is deleted (rotation): read it again.
            try:
                fresh = self.read_token()
            except (OSError, ValueError):
                return answer
            if fresh != self.token:
                self.token = fresh
                log.info("scanner token changed on disk; using the new one")
                answer = self._post(scan)
        return answer

    def _post(self, scan: Scan) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            if scan.image is not None:
                suffix = "jpg" if scan.image_type == "image/jpeg" else "png"
                response = self.session.post(self.url, headers=headers, timeout=self.timeout,
                                             files={"image": (f"frame.{suffix}", scan.image, scan.image_type)})
            else:
                headers["Content-Type"] = "application/octet-stream"
                params = {"channel": CAMERA} if scan.channel == CAMERA else None
                response = self.session.post(self.url, headers=headers, timeout=self.timeout,
                                             params=params, data=scan.payload)
        except self._requests.Timeout:
            return Answer(unreachable="no answer in time")
        except self._requests.ConnectionError:
            return Answer(unreachable="connection refused (is gatecheck serve running?)")
        except self._requests.RequestException as exc:
            return Answer(unreachable=type(exc).__name__)
        return interpret(response.status_code, _json(response))


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def interpret(status: int, body: dict) -> Answer:
    """The appliance's answer (docs/counter.md, POST /api/scan) as an :class:`Answer`. Pure."""
    verdict = body.get("verdict")
    if status in (200, 422) and isinstance(verdict, str):
        seq = body.get("seq")
        return Answer(verdict=verdict, seq=seq if isinstance(seq, int) else None)
    if status == 401:
        return Answer(unreachable="token refused")
    if status >= 500 or status in (404, 408, 429):
        # 404: something else answers on that port (or an older app); 503: busy.
        return Answer(unreachable=f"HTTP {status}")
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return Answer(refused=f"HTTP {status}" + (f" {code}" if isinstance(code, str) else ""))


# -- the bounded queue ---------------------------------------------------------------------


@dataclass
class Held:
    scan: Scan
    since: float
    announced: bool = False


class HeldScans:
    """The scans waiting for the appliance, oldest first, at most ``size`` of them.

    Why so few, and why the *oldest* go: a queued scan is a person standing at
    the counter waiting for a verdict. After a handful of scans with no
    answer the operator has heard the "queued" buzz and stopped scanning, and
    the first people in the queue have been sent on or asked to wait; their
    scans are stale. The newest scan is the person in front of the operator
    now. Memory only: a scan is personal data and is not written to disk
    here (the journal is the appliance's job), and a restart of the daemon
    means the operator scans again.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the queue holds at least one scan")
        self.size = size
        self._items: deque[Held] = deque()
        self.dropped = 0

    def add(self, scan: Scan, now: float) -> Held | None:
        """Queue ``scan``; returns the scan dropped to make room, if any."""
        dropped = None
        if len(self._items) >= self.size:
            dropped = self._items.popleft()
            self.dropped += 1
        self._items.append(Held(scan, now))
        return dropped

    def head(self) -> Held | None:
        return self._items[0] if self._items else None

    def pop(self) -> Held:
        return self._items.popleft()

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


# -- the daemon ----------------------------------------------------------------------------


class ScannerDaemon:
    """Runs the sources and delivers their scans; :meth:`run` returns when ``stop`` is set."""

    def __init__(self, sources: Sequence[Source], client: ApplianceClient, *, data_dir: Path,
                 queue_size: int = 5, indicators: Indicators | None = None, notifier=None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        from appliance.systemd_notify import ServiceNotifier

        self.sources = list(sources)
        self.client = client
        self.status_path = Path(data_dir) / STATUS_FILE
        self.held = HeldScans(queue_size)
        self.indicators = indicators or Indicators()
        self.notifier = notifier or ServiceNotifier()
        self.clock = clock
        self.wall = wall
        self.inbox: SimpleQueue[Scan] = SimpleQueue()
        self.delivered = 0
        self.refused = 0
        self.reachable: bool | None = None  # None until the first post
        self.appliance_detail = "no scan sent yet"
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_SECONDS
        self._threads: list[threading.Thread] = []
        self._started_at = wall()
        self._status_written: dict | None = None
        self._status_at = float("-inf")
        self._status_problem: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        for source in self.sources:
            log.info("source %s (%s): %s", source.state.name, source.state.kind, source.state.identity)
            thread = threading.Thread(target=self._run_source, args=(source, stop),
                                      name=f"source-{source.state.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._write_status(force=True)
        self.notifier.ready(f"{len(self.sources)} sources")
        log.info("scanner daemon running: %d sources, posting to %s", len(self.sources), self.client.url)
        try:
            while not stop.is_set():
                self.turn(stop)
        finally:
            self.notifier.stopping()
            for thread in self._threads:
                thread.join(SOURCE_JOIN_SECONDS)
            if len(self.held):
                log.warning("stopping with %s undelivered (the appliance was unreachable); "
                            "they are not kept", _scans(len(self.held)))
            self.indicators.close()
            self._write_status(force=True, running=False)
            log.info("scanner daemon stopped")

    def turn(self, stop: threading.Event) -> None:
        """One turn of the main loop: wait for a scan (at most ~1 s), deliver, report, ping."""
        self.notifier.watchdog()
        wait = self.notifier.loop_timeout
        if len(self.held):
            wait = max(0.0, min(wait, self._retry_at - self.clock()))
        try:
            scan = self.inbox.get(timeout=wait)
        except Empty:
            scan = None
        while scan is not None:
            self._hold(scan)
            try:
                scan = self.inbox.get_nowait()
            except Empty:
                scan = None
        self._deliver(stop)
        self._write_status()

    def _run_source(self, source: Source, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                source.run(self.inbox.put, stop)
                return  # a file that ended, a replay that is done
            except Exception as exc:  # noqa: BLE001 - one broken driver must not take the others down
                # Type and place only: an exception's message may quote the bytes it choked on.
                where = traceback.extract_tb(exc.__traceback__)[-1]
                log.error("source %s failed (%s at %s:%d); restarting it in %g s", source.state.name,
                          type(exc).__name__, Path(where.filename).name, where.lineno, SOURCE_RESTART_SECONDS)
                source.state.connected = False
                source.state.detail = f"failed: {type(exc).__name__}; restarting"
                stop.wait(SOURCE_RESTART_SECONDS)

    # -- delivery --------------------------------------------------------------------

    def _hold(self, scan: Scan) -> None:
        dropped = self.held.add(scan, self.clock())
        if dropped is not None:
            log.warning("queue full (%d scans): dropped the oldest, from %s, held %.0f s",
                        self.held.size, dropped.scan.source, self.clock() - dropped.since)
        if self.reachable is False:
            self._announce()
        self._retry_at = self.clock()  # a new scan is a good moment to try again: someone waits

    def _announce(self) -> None:
        """Sound QUEUED once for the scans newly held while the appliance is down."""
        new = [held for held in self.held if not held.announced]
        for held in new:
            held.announced = True
        if new:
            self.indicators.show(QUEUED)

    def _deliver(self, stop: threading.Event) -> None:
        if not len(self.held) or self.clock() < self._retry_at:
            return
        verdicts: list[str] = []
        while len(self.held) and not stop.is_set():
            self.notifier.watchdog()
            head = self.held.head()
            answer = self.client.post(head.scan)  # type: ignore[union-attr]
            if answer.unreachable is not None:
                self._down(answer.unreachable)
                break
            self._up()
            self.held.pop()
            if answer.verdict is not None:
                self.delivered += 1
                verdicts.append(answer.verdict)
            else:
                self.refused += 1
                log.warning("appliance refused a scan from %s: %s", head.scan.source, answer.refused)  # type: ignore[union-attr]
                verdicts.append(UNREADABLE)
        if verdicts:
            self.indicators.show(max(verdicts, key=lambda v: _GRAVITY.get(v, 0)))

    def _down(self, reason: str) -> None:
        if self.reachable is not False or reason != self.appliance_detail:
            log.warning("appliance unreachable at %s: %s; holding %s", self.client.url, reason,
                        _scans(len(self.held)))
        self.reachable = False
        self.appliance_detail = reason
        self._retry_at = self.clock() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_SECONDS)
        self._announce()

    def _up(self) -> None:
        if self.reachable is False:
            log.info("appliance reachable again; delivering %s held", _scans(len(self.held)))
        self.reachable = True
        self.appliance_detail = "answering"
        self._retry_delay = RETRY_FIRST_SECONDS

    # -- status file -----------------------------------------------------------------

    def status(self, running: bool = True) -> dict:
        """What ``gatecheck scanner status``, device_status and ``gatecheck doctor`` read."""
        return {
            "format": 1,
            "running": running,
            "pid": os.getpid(),
            "started_at": self._started_at,
            "appliance": {"url": self.client.url, "reachable": self.reachable, "detail": self.appliance_detail},
            "queued": len(self.held),
            "queue_size": self.held.size,
            "dropped": self.held.dropped,
            "delivered": self.delivered,
            "refused": self.refused,
            "sources": [source.state.to_dict() for source in self.sources],
            "indicators": self.indicators.status(),
        }

    def _write_status(self, *, force: bool = False, running: bool = True) -> None:
        """Write on every change and at least every STATUS_EVERY_SECONDS, atomically (rename)."""
        current = self.status(running)
        now = self.clock()
        if not force and current == self._status_written and now - self._status_at < STATUS_EVERY_SECONDS:
            return
        document = {**current, "updated_at": self.wall()}
        try:
            write_private(self.status_path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
        except OSError as exc:
            # The file only reports; scans must keep flowing on a full or read-only disk.
            problem = f"cannot write {self.status_path}: {exc.strerror or exc}"
            if problem != self._status_problem:
                log.warning("%s; scans still go to the appliance", problem)
                self._status_problem = problem
            self._status_at = now  # try again at the next interval, not on every turn of the loop
            return
        if self._status_problem is not None:
            log.info("status file written again")
            self._status_problem = None
        self._status_written = current
        self._status_at = now


def _scans(n: int) -> str:
    return f"{n} scan" if n == 1 else f"{n} scans"
