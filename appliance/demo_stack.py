"""Run the demo's processes together and stop them together.

A small supervisor, not a service manager: on a real device systemd runs
the same commands (systemd/). They start in order, each waited for (the
registry before the counter that enrols with it, the counter before the
scanner that posts to it). Each process gets its own session, so a Ctrl-C
at the terminal reaches only the supervisor, which then stops them all;
and the kernel stops them if the supervisor itself is killed. Each one's
output goes to a log file; when one dies, the supervisor says which, quotes
the last line of its log, and stops the rest.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: How long a process gets after SIGTERM before SIGKILL.
STOP_SECONDS = 10.0


def _die_with_parent() -> None:
    """In the child: SIGTERM when the supervisor dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG).

    Each process has its own session, so nothing else would stop it: a
    killed demo would leave a registry holding port 8000.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: Ctrl-C still stops everything
        pass


class DemoError(Exception):
    """Something the person running the demo must know, in one line."""


@dataclass
class Service:
    name: str
    argv: list[str]
    log: Path
    #: Polled during start; True once the service does its job.
    ready: Callable[[], bool] = lambda: True
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def last_words(self) -> str:
        try:
            lines = [line for line in self.log.read_text("utf-8", "replace").splitlines() if line.strip()]
        except OSError:
            return "(no log)"
        return lines[-1].strip() if lines else "(its log is empty)"


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers HTTP at all (any status)."""
    def check() -> bool:
        try:
            requests.get(url, timeout=1, allow_redirects=False)
        except requests.RequestException:
            return False
        return True
    return check


class Stack:
    """Processes started in order, each waited for, and stopped in reverse."""

    def __init__(self, *, start_timeout: float = 90.0) -> None:
        self.services: list[Service] = []
        self.start_timeout = start_timeout

    def add(self, service: Service) -> None:
        """Start ``service`` and wait until it is ready; DemoError if it dies or never gets there."""
        self.services.append(service)
        service.log.parent.mkdir(parents=True, exist_ok=True)
        with open(service.log, "ab") as log:
            service.process = subprocess.Popen(
                service.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **service.env}, start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while not service.ready():
            if service.process.poll() is not None:
                raise DemoError(f"{service.name} stopped while starting: {service.last_words()} "
                                f"(log: {service.log})")
            if time.monotonic() > deadline:
                raise DemoError(f"{service.name} was not ready after {self.start_timeout:.0f} s: "
                                f"{service.last_words()} (log: {service.log})")
            time.sleep(0.2)

    def dead(self) -> Service | None:
        """The first started service that has exited, if any."""
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                return service
        return None

    def stop(self) -> None:
        """SIGTERM to all, newest first, then wait for each; SIGKILL what has not stopped in time.

        All at once rather than one by one: the sync agent's long-poll ends
        as soon as the registry stops (it answers waiting polls with a
        heartbeat when told to stop), not after its full wait.
        """
        running = [s.process for s in reversed(self.services) if s.process is not None and s.process.poll() is None]
        for process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
