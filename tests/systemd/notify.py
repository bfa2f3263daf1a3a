"""A stand-in for systemd's notification socket: what a Type=notify service tells its manager.

systemd passes a service ``$NOTIFY_SOCKET`` (and ``$WATCHDOG_USEC``) and
reads sd_notify(3) datagrams from it. This binds an abstract unix datagram
socket (no path-length limit, nothing left on disk), hands out the same
environment, and records each message with the time it arrived, so a test
can run the real `gatecheck` process exactly as the unit would.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Message:
    at: float  # time.monotonic() on arrival
    fields: dict[str, str] = field(default_factory=dict)


class NotifySocket:
    """Collects sd_notify datagrams on a thread; ``wait_for`` blocks until one arrives."""

    def __init__(self) -> None:
        self.name = f"gatecheck-test-{os.getpid()}-{os.urandom(4).hex()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def env(self, watchdog_seconds: float | None = 2.0) -> dict[str, str]:
        """What systemd sets for a Type=notify unit with WatchdogSec= (no WATCHDOG_PID: the pid is not known yet)."""
        env = {"NOTIFY_SOCKET": "@" + self.name}
        if watchdog_seconds is not None:
            env["WATCHDOG_USEC"] = str(int(watchdog_seconds * 1_000_000))
        return env

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._cond:
                self.messages.append(Message(time.monotonic(), fields))
                self._cond.notify_all()

    def wait_for(self, key: str, value: str = "1", *, after: float = 0.0, timeout: float = 30.0) -> Message:
        """The first message with ``key=value`` that arrived after ``after`` (monotonic); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages:
                    if message.at >= after and message.fields.get(key) == value:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {key}={value} within {timeout} s; got {self.all_fields()}")
                self._cond.wait(left)

    def times(self, key: str, value: str = "1", *, after: float = 0.0) -> list[float]:
        with self._cond:
            return [m.at for m in self.messages if m.at >= after and m.fields.get(key) == value]

    def all_fields(self) -> list[dict[str, str]]:
        with self._cond:
            return [m.fields for m in self.messages]

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        self._thread.join(timeout=2)
