"""`gatecheck scanner run` against a real counter app, both as real processes.

The counter app (`gatecheck serve`) holds a real snapshot (tests/appliance/
conftest.py): the sample passport is denied, the Ontario licence referred,
the California licence clear. The daemon replays sample files (and reads a
serial scanner on a pseudo-terminal); its indicators drive gpiozero's mock
pins (GPIOZERO_PIN_FACTORY=mock), the only stand-in, for GPIO this machine
lacks. What arrived is read back from the counter's own API.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from appliance.device_status import scanner_state
from hardware.scan import STATUS_FILE
from tests.appliance.conftest import REPO, SAMPLES, Server, make_data_dir, sample, start_server
from tests.support.images import AAMVA_CALIFORNIA, AAMVA_ONTARIO, place_in_frame, render_pdf417

START_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_on(data_dir: Path, port: int) -> Server:
    """`gatecheck serve` on a chosen port (the daemon must know it before the counter starts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    up = threading.Event()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            output.append(line)
            if re.search(r"counter screen on http://", line):
                up.set()
        up.set()

    threading.Thread(target=read, daemon=True).start()
    if not up.wait(START_TIMEOUT) or process.poll() is not None:
        process.kill()
        raise RuntimeError("gatecheck serve did not start:\n" + "".join(output))
    return Server(process, f"http://127.0.0.1:{port}/", data_dir, output)


class Daemon:
    """A `gatecheck scanner run` subprocess and its status file."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
        env.update(PYTHONUNBUFFERED="1", GPIOZERO_PIN_FACTORY="mock")
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-scanner.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "scanner", "run", "--data-dir", str(data_dir)],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def status(self) -> dict:
        try:
            return json.loads((self.data_dir / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, predicate, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status and predicate(status):
                return status
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"daemon status never matched; last: {json.dumps(self.status(), indent=1)}\n"
                             f"log:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        return self.process.returncode


def add_scanner_table(data_dir: Path, text: str) -> None:
    config = data_dir / "gatecheck.toml"
    config.write_text(config.read_text() + "\n" + text)


def journal(server: Server, after: int = 0) -> list[dict]:
    response = requests.get(server.api(f"/api/scans?after={after}"), timeout=10,
                            headers={"Authorization": f"Bearer {server.token}"})
    response.raise_for_status()
    return response.json()["events"]


def wait_journal(server: Server, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = journal(server)
        if len(events) >= count:
            return events
        time.sleep(0.1)
    raise AssertionError(f"journal has {len(journal(server))} events, expected {count}")


def write_video(path: Path, payload: bytes, frames: int) -> Path:
    """A video file holding a licence's PDF417 for ``frames`` frames: a camera the test can make."""
    import cv2

    frame = cv2.cvtColor(place_in_frame(render_pdf417(payload, module_px=2), size=(640, 480)), cv2.COLOR_GRAY2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


def damaged_licence_photo(path: Path) -> Path:
    """A licence photo whose PDF417 lost a third of its columns to a scratch: nothing can read it."""
    frame = place_in_frame(render_pdf417(AAMVA_ONTARIO, module_px=2), size=(640, 480))
    frame[:, 250:400] = 255
    Image.fromarray(np.asarray(frame)).save(path)
    return path


@pytest.fixture
def counter(tmp_path):
    server = start_server(make_data_dir(tmp_path / "counter"))
    yield server
    server.stop()


def test_replayed_and_serial_scans_are_judged_journaled_and_shown_on_the_indicators(counter, tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    shutil.copy(SAMPLES / "passport-td3.txt", demo / "1-passport.txt")
    shutil.copy(SAMPLES / "licence-ca.txt", demo / "2-licence-ca.txt")
    shutil.copy(SAMPLES / "boarding-pass.png", demo / "3-boarding-pass.png")
    damaged_licence_photo(demo / "4-damaged.png")
    video = write_video(tmp_path / "desk.avi", AAMVA_CALIFORNIA, frames=20)
    master, slave = os.openpty()
    port = os.ttyname(slave)
    os.close(slave)
    add_scanner_table(counter.data_dir, f"""
[scanner]
appliance_url = "{counter.url}"

[[scanner.sources]]
kind = "replay"
name = "demo"
path = "{demo}"
interval_seconds = 0.2
loop = false

[[scanner.sources]]
kind = "serial"
name = "front-desk"
port = "{port}"

[[scanner.sources]]
kind = "camera"
name = "desk-camera"
device = "{video}"
fps = 10

[scanner.indicators]
green = 17
red = 27
buzzer = 22
""")
    daemon = Daemon(counter.data_dir)
    try:
        daemon.wait(lambda s: s["delivered"] + s["refused"] == 5
                    and any(src["name"] == "front-desk" and src["connected"] for src in s["sources"]))
        os.write(master, sample("licence-on.txt"))  # the serial scanner reads the Ontario licence
        status = daemon.wait(lambda s: s["delivered"] == 5)
    finally:
        code = daemon.stop()
        os.close(master)
    log = daemon.output()
    assert code == 0, log

    events = [(e["verdict"], e["channel"], e["masked_document_number"]) for e in journal(counter)]
    # The camera's one scan (the California licence in the video, decoded by the daemon) came
    # whenever its thread got there; the replay and the serial scanner came in their order.
    from_video = ("REFER", "camera", "******562")
    assert events.count(from_video) == 1
    events.remove(from_video)
    assert [event[:2] for event in events] == [
        ("DENY", "scanner"), ("CLEAR", "scanner"), ("REFER", "camera"), ("REFER", "scanner")]
    assert status["refused"] == 1  # the damaged photo: the appliance found no barcode, journaled nothing
    assert status["indicators"]["available"] is True
    assert status["indicators"]["played"] == {"DENY": 1, "CLEAR": 1, "REFER": 3, "UNREADABLE": 1}
    assert status["queued"] == 0 and status["dropped"] == 0

    # The log names each source and its state, and never a payload.
    assert "source demo (replay): replay of 4 files" in log
    assert "source front-desk (serial)" in log and f"connected to {port}" in log
    assert f"source desk-camera (camera): {video}" in log and "camera desk-camera: end of the video file" in log
    for secret in (b"L898902C3", b"ERIKSSON", b"TREMBLAY", b"D1234562", b"SAMPLE"):
        assert secret.decode() not in log
    final = json.loads((counter.data_dir / STATUS_FILE).read_text())
    assert final["running"] is False
    assert scanner_state(counter.data_dir)["state"] == "not running"


def test_while_the_appliance_is_down_scans_are_held_buzzed_and_delivered_in_order_once_it_is_back(tmp_path):
    data_dir = make_data_dir(tmp_path / "counter")
    token = data_dir / "api-token"
    token.write_text(secrets.token_urlsafe(32) + "\n")
    token.chmod(0o600)
    demo = tmp_path / "demo"
    demo.mkdir()
    for i, name in enumerate(["licence-ca.txt", "passport-td3.txt", "licence-on.txt", "licence-ca.txt"]):
        shutil.copy(SAMPLES / name, demo / f"{i}-{name}")
    port = free_port()
    add_scanner_table(data_dir, f"""
[scanner]
appliance_url = "http://127.0.0.1:{port}"
queue_size = 3

[[scanner.sources]]
kind = "replay"
name = "demo"
path = "{demo}"
interval_seconds = 0.1
loop = false

[scanner.indicators]
buzzer = 22
""")
    daemon = Daemon(data_dir)
    server = None
    try:
        held = daemon.wait(lambda s: s["queued"] == 3 and s["dropped"] == 1 and s["sources"][0]["scans"] == 4)
        assert held["appliance"]["reachable"] is False
        assert held["indicators"]["played"].get("QUEUED", 0) >= 1
        assert held["delivered"] == 0
        assert scanner_state(data_dir)["state"] == "disconnected"
        assert "3 scans held" in scanner_state(data_dir)["detail"]

        server = serve_on(data_dir, port)
        delivered = daemon.wait(lambda s: s["delivered"] == 3 and s["queued"] == 0, timeout=30)
        assert delivered["appliance"]["reachable"] is True
        # the oldest scan (the first California licence) was dropped; the rest came in scan order
        assert [e["verdict"] for e in journal(server)] == ["DENY", "REFER", "CLEAR"]
        assert delivered["indicators"]["played"]["DENY"] == 1  # the gravest of the backlog
    finally:
        code = daemon.stop()
        if server is not None:
            server.stop()
    log = daemon.output()
    assert code == 0, log
    assert "queue full (3 scans): dropped the oldest, from demo" in log
    assert "appliance unreachable" in log and "appliance reachable again; delivering 3 scans held" in log


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    return subprocess.run([sys.executable, "-m", "appliance.cli", "scanner", *args, "--data-dir", str(data_dir)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("table, message", [
    ('[scanner]\nqueue_size = "five"\n', "gatecheck: gatecheck.toml: scanner.queue_size must be a whole number"),
    ("", "no [[scanner.sources]] configured"),
    ('[[scanner.sources]]\nkind = "replay"\npath = "nowhere"\n',
     "gatecheck: gatecheck.toml: scanner.sources[0] "),
    (f'[[scanner.sources]]\nkind = "replay"\npath = "{SAMPLES}"\n', "no scanner token at "),
])
def test_a_bad_config_or_a_missing_token_is_one_line_and_exit_1(tmp_path, table, message):
    data_dir = make_data_dir(tmp_path / "device")
    add_scanner_table(data_dir, table)
    result = run_cli("run", data_dir=data_dir)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / STATUS_FILE).exists()


def test_a_payload_the_daemon_decoded_from_a_camera_is_journaled_under_the_camera_channel(counter):
    headers = {"Authorization": f"Bearer {counter.token}", "Content-Type": "application/octet-stream"}
    answer = requests.post(counter.api("/api/scan?channel=camera"), data=sample("passport-td3.txt"),
                           headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["channel"] == "camera"
    assert answer.json()["verdict"] == "DENY"
    refused = requests.post(counter.api("/api/scan?channel=manual"), data=sample("passport-td3.txt"),
                            headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_channel"
    assert [e["channel"] for e in journal(counter)] == ["camera"]  # the refusal stored nothing


def test_a_status_file_that_cannot_be_written_costs_the_status_not_the_scans(counter, tmp_path):
    """A full or read-only disk under the status file: one warning, and the scans still reach the counter."""
    demo = tmp_path / "demo"
    demo.mkdir()
    shutil.copy(SAMPLES / "passport-td3.txt", demo / "1-passport.txt")
    shutil.copy(SAMPLES / "licence-ca.txt", demo / "2-licence-ca.txt")
    (counter.data_dir / STATUS_FILE).mkdir()  # a directory where the file goes: every write fails
    add_scanner_table(counter.data_dir, f"""
[scanner]
appliance_url = "{counter.url}"

[[scanner.sources]]
kind = "replay"
name = "demo"
path = "{demo}"
interval_seconds = 0.2
loop = false
""")
    daemon = Daemon(counter.data_dir)
    try:
        events = wait_journal(counter, 2)
        assert daemon.process.poll() is None  # still running
    finally:
        code = daemon.stop()
    log = daemon.output()
    assert code == 0, log
    assert [e["verdict"] for e in events] == ["DENY", "CLEAR"]
    assert log.count(f"cannot write {counter.data_dir / STATUS_FILE}") == 1 and "Traceback" not in log
