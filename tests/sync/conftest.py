"""Real processes for the crash and outage tests: a registry server and a device.

``live_registry`` is a registry data directory (made with the admin CLI) served by
``gatecheck registry serve`` as a subprocess on a free 127.0.0.1 port. The
test publishes through the same Python API the CLI uses, on the same SQLite
file. ``live_device`` is a device data directory enrolled over HTTP; its agent
runs as ``python -m appliance.cli sync run --once`` subprocesses. The device learns
everything from the enrolment answer (sync/enrolment.py), as a provisioned counter would.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.snapshot import SnapshotStore, snapshot_path
from registry.cli import registry as registry_cli
from registry.db import make_engine
from registry.devices import DeviceRegistry
from registry.publish import Registry
from registry.server import RegistryPaths
from registry.signing import Signer
from sync.enrolment import enrolment_request, parse_answer, write_enrolment
from sync.keys import raw_public_key

REPO = Path(__file__).resolve().parents[2]
GATECHECK = [sys.executable, "-m", "appliance.cli"]
LIST = "nfl"
#: Debian's libfaketime (package faketime), which .ci/run installs; None where absent.
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


class FakeClock:
    """A wall clock shared by real processes through libfaketime, moved by rewriting one file.

    Each process started with ``env`` reads its offset from the file on
    every clock read (FAKETIME_NO_CACHE), so a running server sees the days
    pass too. Monotonic clocks move with it: with DONT_FAKE_MONOTONIC,
    libfaketime 0.9.10 fails every absolute ``clock_nanosleep`` with EINVAL,
    so no ``time.sleep`` (gunicorn's master sleeps) could run. Socket and
    select timeouts are relative and do not see the jump.
    """

    def __init__(self, directory: Path) -> None:
        if LIBFAKETIME is None:
            pytest.skip("libfaketime is not installed (Debian package faketime; .ci/run installs it)")
        self.file = directory / "faketime"
        self.offset = 0.0
        self.set(0)
        self.env = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(self.file),
                    "FAKETIME_NO_CACHE": "1"}

    def set(self, offset_seconds: float) -> None:
        """Every process on this clock now reads real time + ``offset_seconds``."""
        self.offset = offset_seconds
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{offset_seconds:+.0f}\n")
        tmp.replace(self.file)

    def now(self) -> float:
        return time.time() + self.offset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin(*args) -> str:
    result = CliRunner().invoke(registry_cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class RegistryServer:
    """A registry data directory and its `registry serve` process (stop and start again at will)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        _admin("init", "--data-dir", data_dir)
        _admin("list", "create", "--data-dir", data_dir, LIST, "--name", "No-fly list", "--authority", "CAA",
               "--legal-basis", "Aviation Act s.12", "--scope", "air_travel", "--default-action", "DENY")
        paths = RegistryPaths(data_dir)
        engine = make_engine(paths.database_url)
        self.api = Registry(engine, Signer.from_files(paths.signing_key, paths.signing_cert))
        self.devices = DeviceRegistry(engine)
        self.root_public = paths.root_public.read_bytes()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Serve on the same port every time: the device knows one URL."""
        for _ in range(20):  # the port may linger a moment after a stop
            self.proc = subprocess.Popen(
                [*GATECHECK, "registry", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
                cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 15
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
            time.sleep(0.25)
        raise RuntimeError(f"registry did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc.stderr.close()
            self.proc = None

    def enroll_code(self) -> str:
        return _admin("device", "enroll-code", "--data-dir", self.data_dir, "--lists", LIST).strip()


class Device:
    """A counter's data directory, enrolled with the registry, and its agent as a subprocess."""

    def __init__(self, data_dir: Path, registry: RegistryServer, env: dict[str, str] | None = None, *,
                 code: str | None = None) -> None:
        """Enrol with ``code`` (an enrolment code bound to a profile), or a fresh code for LIST."""
        self.data_dir = data_dir
        self.registry = registry
        #: Where the agent goes; a test may put a proxy in between (tests/support/hostile_proxy.py).
        self.registry_url = registry.url
        self.env = {**os.environ, **(env or {}), "GATECHECK_HOME": str(data_dir)}
        data_dir.mkdir(mode=0o700)
        self.key = key = Ed25519PrivateKey.generate()
        key_file = data_dir / "device.key"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
        # Enrolment is HTTP and sync/enrolment.py only: the answer brings the lists with their
        # token keys, the root key to pin and the profile; nothing is read from the registry's files.
        body = enrolment_request(code or registry.enroll_code(), raw_public_key(key), "counter 7")
        request = urllib.request.Request(registry.url + "/v1/enroll", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            self.answer = parse_answer(response.read(), public_key=raw_public_key(key))
        write_enrolment(data_dir, self.answer)
        self.device_id = self.answer.device_id

    def agent_command(self, data_dir: Path | None = None) -> list[str]:
        return [*GATECHECK, "sync", "run", "--data-dir", str(data_dir or self.data_dir),
                "--registry", self.registry_url, "--once", "--first-poll-max-delay", "0"]

    def start_agent(self, data_dir: Path | None = None) -> subprocess.Popen:
        """The agent as a process; ``data_dir`` runs it on a copy of this device's files."""
        return subprocess.Popen(self.agent_command(data_dir), cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def run_agent(self, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.agent_command(), cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def gatecheck(self, *args, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*GATECHECK, *args, "--data-dir", str(self.data_dir)], cwd=REPO, input=input,
                              capture_output=True, timeout=60, env=self.env)

    @contextlib.contextmanager
    def store(self):
        store = SnapshotStore(snapshot_path(self.data_dir))
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def live_registry(tmp_path):
    server = RegistryServer(tmp_path / "registry")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_device(tmp_path, live_registry) -> Device:
    return Device(tmp_path / "device", live_registry)


@pytest.fixture
def fake_clock(tmp_path) -> FakeClock:
    return FakeClock(tmp_path)


@pytest.fixture
def clocked_registry(tmp_path, fake_clock):
    """``live_registry`` whose server process runs on ``fake_clock``."""
    server = RegistryServer(tmp_path / "registry", env=fake_clock.env)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clocked_device(tmp_path, clocked_registry, fake_clock) -> Device:
    """``live_device`` whose agent and CLI processes run on ``fake_clock``."""
    return Device(tmp_path / "device", clocked_registry, env=fake_clock.env)
