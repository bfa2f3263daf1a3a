"""Tell systemd a service is ready, alive and stopping (sd_notify(3), Type=notify units).

Every long-running Gatecheck process (counter app, scanner daemon, sync agent,
registry master) calls :meth:`ServiceNotifier.ready` once it really serves,
and :meth:`ServiceNotifier.watchdog` from its *main loop*: a ping from a
helper thread would keep a service "alive" whose main loop had hung, which is
exactly what WatchdogSec= is there to catch.

The datagram itself is sent by gunicorn's sd_notify (already a dependency for
the registry), which handles abstract socket names and is a no-op outside
systemd. Without ``$NOTIFY_SOCKET`` every method does nothing.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Mapping

from gunicorn.systemd import sd_notify

log = logging.getLogger(__name__)


class ServiceNotifier:
    """One process's messages to its service manager."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if env is None else env
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.clock = clock
        self.interval = self._watchdog_interval(env)
        self._last_ping = float("-inf")

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        """Half of WatchdogSec= (sd_watchdog_enabled(3) advises pinging at half the timeout)."""
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None  # meant for another process (e.g. the parent of a fork)
        return int(usec) / 2_000_000

    def _send(self, state: str) -> None:
        if self.enabled:
            sd_notify(state, log)

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self._last_ping = self.clock()

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        """Ping if the watchdog is on and half its interval has passed; cheap enough for every loop turn."""
        if self.interval is None or not self.enabled:
            return
        now = self.clock()
        if now - self._last_ping >= self.interval:
            self._last_ping = now
            self._send("WATCHDOG=1")

    @property
    def loop_timeout(self) -> float:
        """How long a main loop may block between pings (a quarter of WatchdogSec=, at most 1 s)."""
        return 1.0 if self.interval is None else min(1.0, self.interval / 2)
