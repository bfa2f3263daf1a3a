"""The scanner daemon as its Type=notify unit runs it: READY once sources run, watchdog from the main loop.

The real `gatecheck scanner run` process gets ``$NOTIFY_SOCKET`` and
``$WATCHDOG_USEC`` pointing at a socket this test reads
(tests/systemd/notify.py). The appliance is down for the whole test, so the
main loop is busy holding and retrying scans: the pings must keep coming.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from hardware.scan import STATUS_FILE
from tests.appliance.conftest import REPO, SAMPLES, make_data_dir
from tests.hardware.test_daemon import add_scanner_table, free_port
from tests.systemd.notify import NotifySocket

WATCHDOG_SECONDS = 2.0


@pytest.fixture
def notify():
    sock = NotifySocket()
    yield sock
    sock.close()


def test_ready_then_watchdog_pings_from_the_main_loop_while_scans_are_held_then_stopping(tmp_path, notify):
    data_dir = make_data_dir(tmp_path / "device")
    (data_dir / "api-token").write_text(secrets.token_urlsafe(32))
    add_scanner_table(data_dir, f"""
[scanner]
appliance_url = "http://127.0.0.1:{free_port()}"

[[scanner.sources]]
kind = "replay"
path = "{SAMPLES / 'passport-td3.txt'}"
interval_seconds = 0.3
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATECHECK_", "NOTIFY_", "WATCHDOG_"))}
    env.update(notify.env(WATCHDOG_SECONDS), PYTHONUNBUFFERED="1")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "scanner", "run", "--data-dir", str(data_dir)],
                               cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        ready = notify.wait_for("READY")
        assert (data_dir / STATUS_FILE).exists()  # the status file is there before READY
        time.sleep(3.2)
        pings = notify.times("WATCHDOG", after=ready.at)
        process.send_signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING", timeout=10)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()  # type: ignore[union-attr]
    assert ready.at - started < 15
    assert len(pings) >= 2, notify.all_fields()
    # ServiceNotifier pings once half of WatchdogSec= has passed, and the loop turns every quarter:
    # at most three quarters apart, well inside the watchdog (some room for a busy test machine).
    gaps = [b - a for a, b in zip([ready.at, *pings], pings)]
    assert max(gaps) <= WATCHDOG_SECONDS * 0.85, gaps
    assert stopping.at > pings[-1]
    assert "appliance unreachable" in stderr
