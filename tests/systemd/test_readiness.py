"""Readiness and watchdog of the real `gatecheck` processes, run as their Type=notify units run them.

Each test starts the real command with ``$NOTIFY_SOCKET`` and
``$WATCHDOG_USEC`` (2 s, so a ping is due every second) pointing at a
socket the test reads (tests/systemd/notify.py), and checks what systemd
would see: READY=1 only once the service can do its job, WATCHDOG=1 from
the main loop for as long as it turns, STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sync.enrolment import write_enrolment
from tests.appliance.conftest import make_data_dir
from tests.sync.conftest import Device, RegistryServer, _free_port
from tests.systemd.notify import NotifySocket

REPO = Path(__file__).resolve().parents[2]
GATECHECK = [sys.executable, "-m", "appliance.cli"]
WATCHDOG_SECONDS = 2.0


@pytest.fixture
def notify():
    sock = NotifySocket()
    yield sock
    sock.close()


def _env(notify: NotifySocket, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATECHECK_", "NOTIFY_", "WATCHDOG_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **notify.env(WATCHDOG_SECONDS), **extra}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([*GATECHECK, *args], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stderr.close()


def _status(url: str, timeout: float = 10.0) -> int:
    """The HTTP status of GET ``url`` (any answer counts: the point is that something answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def assert_pings_keep_coming(notify: NotifySocket, since: float, seconds: float) -> list[float]:
    """WATCHDOG=1 at least every WatchdogSec over ``seconds``: systemd would never kill it."""
    time.sleep(seconds)
    pings = notify.times("WATCHDOG", after=since)
    marks = [since, *pings, time.monotonic()]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    assert len(pings) >= int(seconds / WATCHDOG_SECONDS), (pings, notify.all_fields())
    assert max(gaps) < WATCHDOG_SECONDS, f"a {max(gaps):.2f} s gap between pings (WatchdogSec=2s): {gaps}"
    return pings


def assert_stops_cleanly(proc: subprocess.Popen, notify: NotifySocket) -> None:
    asked = time.monotonic()
    status = _stop(proc)
    notify.wait_for("STOPPING", after=asked, timeout=5)
    assert status == 0


# -- the counter: `gatecheck serve` -------------------------------------------------------


def test_counter_says_ready_once_it_answers_then_pings_from_its_socket_loop(tmp_path, notify):
    data_dir = make_data_dir(tmp_path / "counter")
    proc = _start(["serve", "--data-dir", str(data_dir), "--port", "0"], _env(notify))
    try:
        ready = notify.wait_for("READY")
        url = re.search(r"http://127\.0\.0\.1:\d+/", ready.fields.get("STATUS", "")).group(0)
        assert _status(url + "api/status", timeout=2) == 401  # up at once: the API answers (no token)
        assert_pings_keep_coming(notify, ready.at, 3.5)
        assert_stops_cleanly(proc, notify)
    finally:
        _stop(proc)


def test_counter_that_cannot_listen_never_says_ready(tmp_path, notify):
    data_dir = make_data_dir(tmp_path / "counter")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _start(["serve", "--data-dir", str(data_dir), "--port", str(taken.getsockname()[1])], _env(notify))
        assert proc.wait(timeout=30) == 1
        error = proc.stderr.read()
        proc.stderr.close()
    assert "cannot listen" in error and "Traceback" not in error
    assert not notify.times("READY")


# -- the sync agent: `gatecheck sync run` -------------------------------------------------


def test_sync_agent_says_ready_after_its_checks_and_pings_between_polls(tmp_path, notify):
    registry = RegistryServer(tmp_path / "registry")
    registry.start()
    try:
        device = Device(tmp_path / "device", registry)
        write_enrolment(device.data_dir, device.answer, registry_url=registry.url)  # as provisioning records it
        # As gatecheck-sync.service runs it: no --registry, the URL comes from enrolment.json.
        proc = _start(["sync", "run", "--data-dir", str(device.data_dir), "--first-poll-max-delay", "0"],
                      _env(notify))
        try:
            ready = notify.wait_for("READY")
            assert_pings_keep_coming(notify, ready.at, 3.5)
            assert_stops_cleanly(proc, notify)
        finally:
            _stop(proc)
        # It really synced while it pinged: the poll recorded a success.
        result = subprocess.run([*GATECHECK, "sync", "status", "--data-dir", str(device.data_dir)], cwd=REPO,
                                capture_output=True, text=True, timeout=30)
        assert "last success:  never" not in result.stdout, result.stdout
    finally:
        registry.stop()


def _unenrolled_device(data_dir: Path) -> Path:
    """What `sync run` checks before READY: a 0600 device key and a pinned root key (any, here)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data_dir.mkdir(mode=0o700)
    key = data_dir / "device.key"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key.chmod(0o600)
    (data_dir / "registry-root.pub").write_bytes(os.urandom(32))
    return data_dir


def test_sync_agent_with_no_registry_url_anywhere_says_how_to_give_one(tmp_path, notify):
    data_dir = _unenrolled_device(tmp_path / "device")
    proc = _start(["sync", "run", "--data-dir", str(data_dir)], _env(notify))
    assert proc.wait(timeout=30) == 1
    error = proc.stderr.read()
    proc.stderr.close()
    assert "no registry URL: give --registry or $GATECHECK_REGISTRY" in error and "Traceback" not in error
    assert not notify.times("READY")


def test_sync_agent_without_its_device_key_never_says_ready(tmp_path, notify):
    data_dir = tmp_path / "device"
    data_dir.mkdir(mode=0o700)
    proc = _start(["sync", "run", "--data-dir", str(data_dir), "--registry", "http://127.0.0.1:9"], _env(notify))
    assert proc.wait(timeout=30) == 1
    error = proc.stderr.read()
    proc.stderr.close()
    assert "device key" in error and "Traceback" not in error
    assert not notify.times("READY")


def test_sync_agent_stuck_on_a_silent_registry_stops_pinging_then_pings_through_its_backoff(tmp_path, notify):
    """The ping comes from the agent's loop, not a helper thread: while one HTTP wait holds the loop,
    no ping (systemd would restart it); once the wait gives up, the backoff's sliced wait pings again."""
    data_dir = _unenrolled_device(tmp_path / "device")
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        proc = _start(["sync", "run", "--data-dir", str(data_dir), "--registry",
                       f"http://127.0.0.1:{silent.getsockname()[1]}", "--first-poll-max-delay", "0"], _env(notify))
        try:
            ready = notify.wait_for("READY")
            # WatchdogSec=2s: the agent waits at most 5 s for an answer (sync/cli.py fit_to_watchdog),
            # once for the keys and once for the health report it sends after a failed run.
            resumed = notify.wait_for("WATCHDOG", after=ready.at + 3.0, timeout=20)
            silence = [t for t in notify.times("WATCHDOG", after=ready.at) if t < resumed.at]
            last = max([ready.at, *silence])
            assert resumed.at - last > WATCHDOG_SECONDS, "pinged while its loop was stuck in an HTTP wait"
            assert_pings_keep_coming(notify, resumed.at, 3.5)  # the backoff (30 s or more) is a sliced wait
            assert_stops_cleanly(proc, notify)
        finally:
            _stop(proc)


# -- the registry: `gatecheck registry serve` (gunicorn) ------------------------------------------


def test_registry_master_says_ready_when_listening_and_pings_from_its_arbiter_loop(tmp_path, notify):
    registry = RegistryServer(tmp_path / "registry")  # a registry data directory, not yet served
    port = _free_port()
    proc = _start(["registry", "serve", "--data-dir", str(registry.data_dir), "--port", str(port),
                   "--workers", "1", "--threads", "4"], _env(notify))
    try:
        ready = notify.wait_for("READY")
        # The socket listens from READY on: a request made now is answered once the worker is up.
        assert _status(f"http://127.0.0.1:{port}/v1/keys", timeout=15) in (200, 401)
        assert_pings_keep_coming(notify, ready.at, 3.5)
        assert_stops_cleanly(proc, notify)
    finally:
        _stop(proc)
