"""How `gatecheck registry serve` runs the device API: gunicorn, one process per core.

One Python process tops out near one core (the GIL): about 1,000-1,400
requests a second for any Flask route on the benchmark machine, below issue
4's 2,000 polls a second. So the registry runs a gunicorn master and several
worker processes sharing one listening socket.

* **gthread workers.** Each process has a pool of ``threads``; a long-poll
  holds one thread while it waits, and idle keep-alive connections wait in
  the worker's poller without one.
* **Per-process state.** Each worker builds its own app after the fork: its
  own SQLAlchemy engine (a SQLite connection must not cross a fork), its own
  signer read from the key files, its own caches (registry/poll_cache.py).
  SQLite runs in WAL mode, so the workers' reads never wait for a publisher.
  The master builds one app first, only to check the data directory and
  create missing tables, and closes its connections before forking.
* **Scheduled work.** Each worker runs registry/housekeeping.py's thread
  (expiry publishes, filing device reports a crash left unfiled); a lease
  row in the database gives each pass to one worker.
* **Stopping.** SIGTERM to the master stops the workers gracefully: each
  ends its waiting long-polls at once with a heartbeat (``ListChanges.close``)
  and finishes what is in flight within ``GRACEFUL_SECONDS``.
* **systemd** (Type=notify, docs/deployment.md). The arbiter itself sends
  READY=1 once its socket listens; :class:`WatchedArbiter` pings the watchdog
  from the master's own loop (which also reaps and respawns workers) and
  says STOPPING=1 when it halts. Workers send nothing: under
  NotifyAccess=main systemd would ignore them anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.gthread import ThreadWorker

from appliance.systemd_notify import ServiceNotifier
from registry.housekeeping import housekeeper_for
from registry.server import create_app

#: In-flight requests get this long after SIGTERM; long-polls end at once anyway.
GRACEFUL_SECONDS = 5
#: Idle keep-alive connections are kept this long: an agent polls again after the 1 s Min-Wait.
KEEPALIVE_SECONDS = 5


def default_workers() -> int:
    """One worker process per core, and at least two (one busy process must not stall every poll)."""
    return max(2, os.cpu_count() or 1)


class RegistryWorker(ThreadWorker):
    """gunicorn's gthread worker that ends waiting long-polls when asked to stop."""

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        services = getattr(getattr(self, "wsgi", None), "extensions", {}).get("gatecheck_registry")
        if services is not None:
            services.changes.close()


class WatchedArbiter(Arbiter):
    """gunicorn's master, pinging systemd's watchdog on every turn of its main loop.

    ``Arbiter.run`` waits for signals (at most a second), then murders
    timed-out workers and spawns missing ones, forever; ``wait_for_signals``
    is the one call made on every turn, so the ping goes there. A master
    stuck anywhere in that loop stops pinging.
    """

    def __init__(self, app, notifier: ServiceNotifier) -> None:
        self.notifier = notifier
        super().__init__(app)

    def wait_for_signals(self, timeout: float = 1.0):
        self.notifier.watchdog()
        return super().wait_for_signals(timeout=min(timeout, self.notifier.loop_timeout))

    def halt(self, reason=None, exit_status=0):
        self.notifier.stopping()
        super().halt(reason, exit_status)


class RegistryApplication(BaseApplication):
    """The device API of one data directory, as a gunicorn application."""

    def __init__(self, data_dir: Path, options: dict) -> None:
        self.data_dir = data_dir
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        app = create_app({"DATA_DIR": str(self.data_dir)})  # in each worker, after the fork
        housekeeper_for(app).start()  # every worker offers; the lease lets one at a time do a pass
        return app

    def run(self) -> None:
        """BaseApplication.run with the watched arbiter."""
        try:
            WatchedArbiter(self, ServiceNotifier()).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(data_dir: Path, *, host: str, port: int, workers: int, threads: int) -> None:
    """Run the master until SIGTERM or SIGINT; raises RegistryError if the data directory is unusable."""
    app = create_app({"DATA_DIR": str(data_dir)})  # fail here, in one line, not in every worker
    housekeeper_for(app)  # its lease table now, before the fork: two workers creating it at once collide
    services = app.extensions["gatecheck_registry"]
    services.registry.engine.dispose()  # no connection may cross the fork
    print(f"registry serving on http://{bind_address(host, port)} ({workers} processes x {threads} threads)",
          file=sys.stderr, flush=True)
    RegistryApplication(data_dir, {
        "bind": [bind_address(host, port)],
        "workers": workers,
        "threads": threads,
        "worker_class": f"{__name__}.RegistryWorker",
        "graceful_timeout": GRACEFUL_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        "proc_name": "gatecheck-registry",
        "control_socket_disable": True,  # no shared control socket in $HOME; nothing uses it
        "errorlog": "-",
        "loglevel": "info",
    }).run()
