"""`gatecheck registry serve` as real processes: a gunicorn master and its workers (registry/serving.py).

Polls over real HTTP reach both worker processes and every answer verifies
as a device verifies it; SIGTERM ends a waiting long-poll with a heartbeat at
once and stops every process cleanly; an unusable data directory is refused
in one line before anything forks.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from registry.server import RegistryPaths
from sync.envelope import Kind, parse_envelope
from tests.registry.test_server import CLI, REPO, Counter, HttpClient, _free_port, cli, parse_frames


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "registry"
    cli("init", "--data-dir", d)
    cli("list", "create", "--data-dir", d, "nfl", "--name", "No-fly list", "--authority", "CAA",
        "--legal-basis", "Act s.12", "--scope", "air_travel", "--default-action", "DENY")
    return d


@pytest.fixture
def served(data_dir):
    """``registry serve --workers 2``: (base URL, master process), once both workers answer."""
    port = _free_port()
    proc = subprocess.Popen([*CLI, "serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "2",
                             "--threads", "4"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while len(children(proc.pid)) < 2 or not _answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"registry did not start: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def enrolled(url: str, data_dir: Path) -> Counter:
    counter = Counter(HttpClient(url), RegistryPaths(data_dir).root_public.read_bytes())
    assert counter.enroll(cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip()
                          ).status_code == 201
    counter.load_keys()
    return counter


def test_worker_processes_answer_polls_that_verify_and_see_cli_publishes(served, data_dir):
    url, proc = served
    workers = children(proc.pid)
    assert len(workers) == 2
    counter = enrolled(url, data_dir)
    for i in range(12):  # a new connection each, so polls spread over the workers; heartbeats never go back
        if i == 6:
            cli("entry", "add", "--data-dir", data_dir, "--list", "nfl", "--surnames", "Müller", "--dob",
                "1970-05-17", "--document", "P:DEU:C01X00T47", "--category", "aviation-security",
                "--reference", "NFL-1")
        response = counter.sync("nfl")
        kinds = [parse_envelope(envelope).kind for _, envelope, _ in parse_frames(response.data)]
        assert kinds == ([Kind.DELTA, Kind.HEARTBEAT] if i == 6 else [Kind.HEARTBEAT])
    assert counter.states["nfl"].version == 1
    assert children(proc.pid) == workers  # no worker died on the way


def test_sigterm_ends_a_waiting_long_poll_with_a_heartbeat_and_stops_every_process(served, data_dir):
    url, proc = served
    workers = children(proc.pid)
    counter = enrolled(url, data_dir)
    counter.sync("nfl")
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(counter.sync("nfl", wait=25)))
    waiter.start()
    time.sleep(0.5)  # the long-poll is waiting in a worker now
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    waiter.join(timeout=10)
    assert answers and answers[0].status_code == 200
    assert time.monotonic() - stopped_at < 5
    assert proc.wait(timeout=10) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_unusable_data_directory_is_refused_in_one_line_before_serving(data_dir, tmp_path):
    (RegistryPaths(data_dir).keys_dir / "bad.cert").write_bytes(b"not a certificate")
    for directory in (data_dir, tmp_path / "nothing-here"):
        done = subprocess.run([*CLI, "serve", "--data-dir", str(directory), "--port", str(_free_port())], cwd=REPO,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and "gunicorn" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
