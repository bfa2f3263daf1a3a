"""`make demo`: one command runs the registry, the counter, its sync agent and a demo scanner.

The demo is run as a user runs it, a process that prints and waits for
Ctrl-C, on free ports instead of 8000 and 8080 so that tests can run side by
side. Its verdicts are real: the registry imports the lists, `gatecheck
provision` enrols the counter over HTTP, the agent syncs, the scanner
daemon replays the documents to the counter's API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
import requests

from appliance.demo_world import USERS, travellers

DEMO_FILES = ("01-listed-licence.txt", "02-clear-passport.txt", "03-listed-passport.txt",
              "04-namesake-idcard.txt", "05-boarding-pass.txt", "06-damaged-barcode.txt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """`gatecheck demo` as a child process, its output collected line by line."""

    def __init__(self, data_dir: Path, *, registry_port: int | None = None, counter_port: int | None = None):
        self.registry_port = registry_port or free_port()
        self.counter_port = counter_port or free_port()
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "demo", "--data-dir", str(data_dir),
             "--registry-port", str(self.registry_port), "--counter-port", str(self.counter_port),
             "--scan-interval", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def verdicts(self) -> list[str]:
        return [m.group(1) for line in self.lines
                if (m := re.match(r"\s+\d\d:\d\d:\d\d\s+(CLEAR|REFER|DENY|UNREADABLE)\s", line))]

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what} not seen in {timeout} s; demo said:\n{self.output[-3000:]}")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=5)
        return code


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (the demo's children all do)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline and int(pid) != os.getpid():
            found.append(cmdline)
    return found


def sign_in(url: str, username: str, password: str) -> requests.Response:
    session = requests.Session()
    page = session.get(f"{url}/login", timeout=10)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return session.post(f"{url}/login", data={"csrf_token": token.group(1), "username": username,
                                               "password": password}, timeout=10, allow_redirects=False)


def test_demo_runs_the_whole_system_stops_on_ctrl_c_and_a_second_run_reuses_it(tmp_path):
    data = tmp_path / "demo"
    demo = Demo(data)
    try:
        expected = [traveller.expected for traveller in travellers(date.today())]
        demo.wait_for(lambda: len(demo.verdicts()) >= len(expected), 240, "every demo document's verdict")
        # Each document in replay order gets the verdict the demo promises: the listed licence and
        # passport DENY, the namesake only REFER (a weak match never denies), the misread UNREADABLE.
        assert demo.verdicts()[:len(expected)] == expected
        assert {"CLEAR", "REFER", "DENY", "UNREADABLE"} <= set(expected)
        out = demo.output
        assert f"http://127.0.0.1:{demo.registry_port}/" in out and f"http://127.0.0.1:{demo.counter_port}/" in out
        listed = out[out.index("registry logins:"):out.index("The demo scanner shows")]
        logins = dict(re.findall(r"^  ([a-z0-9-]+)\s+(\S+)\s+\(", listed, re.M))
        assert set(logins) == {username for username, _, _ in USERS}
        # A printed login really opens the registry's pages.
        answer = sign_in(f"http://127.0.0.1:{demo.registry_port}", "reviewer-1", logins["reviewer-1"])
        assert answer.status_code == 302 and "/login" not in answer.headers["Location"]
        assert sorted(p.name for p in (data / "scanner-samples").iterdir()) == list(DEMO_FILES)
        for private in ("device.key", "gatecheck.toml", "snapshot.db"):  # the PIN hash, the lists
            assert (data / "device" / private).stat().st_mode & 0o777 == 0o600, private
        assert (data / "demo.json").stat().st_mode & 0o777 == 0o600
    finally:
        code = demo.interrupt()
    assert code == 0, demo.output[-2000:]
    assert "stopped." in demo.output and "Traceback" not in demo.output
    assert processes_using(data) == []  # registry, agent, counter and scanner all gone

    device_id = json.loads((data / "device" / "enrolment.json").read_text())["device_id"]
    imported = (data / "imports" / "demo-air-unruly.csv").stat().st_mtime_ns
    second = Demo(data)
    try:
        second.wait_for(lambda: "DENY" in second.verdicts(), 120, "a verdict on the second run")
        assert "first run" not in second.output and "importing" not in second.output
    finally:
        second.proc.kill()  # even a SIGKILLed demo leaves no registry holding its port
        second.proc.wait(timeout=10)
    assert json.loads((data / "device" / "enrolment.json").read_text())["device_id"] == device_id
    assert (data / "imports" / "demo-air-unruly.csv").stat().st_mtime_ns == imported
    deadline = time.monotonic() + 30
    while processes_using(data) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_using(data) == []


def test_a_port_in_use_is_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", "demo", "--data-dir", str(tmp_path / "d"),
                               "--registry-port", str(port), "--counter-port", str(free_port())],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and f"port {port}" in proc.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("damage", ["{not json", ""])
def test_a_damaged_demo_state_is_one_line(tmp_path, damage):
    data = tmp_path / "d"
    data.mkdir(mode=0o700)
    (data / "demo.json").write_text(damage or "[]")
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "demo", "--data-dir", str(data),
                           "--registry-port", str(free_port()), "--counter-port", str(free_port())],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "demo.json" in proc.stderr and "Traceback" not in proc.stderr


def test_a_first_run_interrupted_after_a_step_but_before_recording_it_finishes_on_the_next(tmp_path):
    """The kill lands after `registry init` and one `user add` ran but before demo.json said so."""
    from appliance.demo import DemoState, build_registry

    root = tmp_path / "d"
    root.mkdir(mode=0o700)
    gatecheck = [sys.executable, "-m", "appliance.cli", "registry"]
    subprocess.run([*gatecheck, "init", "--data-dir", str(root / "registry")], check=True, capture_output=True)
    state = DemoState(root / "demo.json")
    state.save(logins={"reporter": "the-one-saved-first"})  # saved before `user add`, as the demo does
    subprocess.run([*gatecheck, "user", "add", "reporter", "--data-dir", str(root / "registry"), "--role",
                    "reporter", "--password-stdin"], input=b"the-one-saved-first\n", check=True,
                   capture_output=True)

    said = []
    build_registry(root, state, said.append)
    assert state.done("init") and state.done("user:reporter") and state.done("code")
    assert state.data["logins"]["reporter"] == "the-one-saved-first"
    assert all(state.done(f"import:{spec}") for spec in ("demo-air-unruly", "demo-court-defaulters"))
