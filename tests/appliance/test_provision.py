"""`gatecheck provision` as a subprocess against a real `gatecheck registry serve`, codes issued with the real CLI.

One registry serves the module (each test issues its own codes); the tests
that stop a registry get their own. Kills are real SIGKILLs of the
provisioning process, aimed at a step by reading the step lines it prints.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import update

from appliance.provision import ANSWER_FILE, DONE_FILE, NEXT_KEY_FILE, RETIRED_DIR
from appliance.snapshot import SnapshotStore, snapshot_path
from registry.db import make_engine
from registry.publish import DocumentRef, EntryFields
from registry.server import RegistryPaths
from sync.keys import raw_public_key
from tests.sync.conftest import GATECHECK, LIST, REPO, Device, RegistryServer, _free_port

ENTRIES = 300


def listed(i: int) -> EntryFields:
    surname = "".join(chr(ord("A") + (i // 26 ** k) % 26) for k in range(4))
    return EntryFields(surnames="Q" + surname, given_names="Alex", reference=f"NFL-{i:06d}",
                       category="aviation-security", date_of_birth=date(1970, 1 + i % 12, 1),
                       documents=(DocumentRef("P", "DEU", f"X{i:08d}"),))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = RegistryServer(tmp_path_factory.mktemp("registry") / "registry")
    server.api.add_entries(LIST, [listed(i) for i in range(ENTRIES)], by="officer-1")
    server.start()
    yield server
    server.stop()


def provision(data_dir: Path, *args: str, umask: int | None = None, timeout: float = 60):
    return subprocess.run([*GATECHECK, "provision", "--data-dir", str(data_dir), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def held(data_dir: Path) -> tuple[int, int, bool]:
    """(version, tokens, proven current) of the list on the device."""
    with SnapshotStore(snapshot_path(data_dir), readonly=True) as store:
        info = store.get_list(LIST)
        return info.version, store.stats()["tokens_per_list"].get(LIST, 0), info.heartbeat_at is not None


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("gatecheck:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def no_secret_leaked(data_dir: Path, *outputs: str) -> None:
    """Every file 0600 in a 0700 directory, no temporary file left, no private key in any output."""
    assert mode(data_dir) == 0o700
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert mode(path) == 0o600, path
        assert not path.name.endswith(".tmp"), path
    assert not any("PRIVATE KEY" in text for text in outputs)


def run_on_pty(command: list[str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (where click draws its bar); returns (status, stdout, terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            ready, _, _ = select.select([master], [], [], 60)
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), stdout, seen.decode(errors="replace")


# -- the happy path ---------------------------------------------------------------------

def test_a_new_device_gets_its_own_private_key_its_lists_a_progress_bar_and_a_summary(registry, tmp_path):
    data = tmp_path / "device"
    status, stdout, terminal = run_on_pty([*GATECHECK, "provision", "--data-dir", str(data), "--registry",
                                           registry.url, "--code", registry.enroll_code(), "--name", "counter 3"])
    assert status == 0, terminal
    record = json.loads((data / "enrolment.json").read_text())
    device_id = record["device_id"]
    assert record["registry_url"] == registry.url and record["name"] == "counter 3"

    # the key is the device's own: the registry holds only its public half
    key = load_pem_private_key((data / "device.key").read_bytes(), password=None)
    assert registry.devices.device(device_id).public_key == raw_public_key(key)
    assert mode(data / "device.key") == 0o600
    version, tokens, current = held(data)
    assert version == registry.api.current_version(LIST) and tokens > ENTRIES and current
    assert json.loads((data / DONE_FILE).read_text())["device_id"] == device_id
    assert not (data / ANSWER_FILE).exists()
    no_secret_leaked(data, stdout, terminal)

    # the progress bar is drawn on the terminal (stderr), the summary goes to stdout
    assert f"list {LIST}" in terminal and "100%" in terminal and "[####" in terminal
    assert "%" not in stdout
    assert f"provisioned device {device_id} (counter 3)" in stdout
    assert f"list {LIST}: version {version}, {tokens:,} tokens, verified" in stdout
    assert "digest(s) recomputed and matching" in stdout and "systemctl enable --now" in stdout

    # `gatecheck sync run` needs no --registry now: provisioning recorded it
    agent = subprocess.run([*GATECHECK, "sync", "run", "--data-dir", str(data), "--once"], cwd=REPO,
                           capture_output=True, text=True, timeout=60, env={**os.environ, "GATECHECK_REGISTRY": ""})
    assert agent.returncode == 0, agent.stderr


def test_files_are_private_from_creation_even_under_a_permissive_umask(registry, tmp_path):
    data = tmp_path / "device"
    proc = provision(data, "--registry", registry.url, "--code", registry.enroll_code(), umask=0)
    assert proc.returncode == 0, proc.stderr
    no_secret_leaked(data, proc.stdout, proc.stderr)


def test_a_second_run_on_a_provisioned_device_refuses_with_status_3_and_changes_nothing(registry, tmp_path):
    data = tmp_path / "device"
    assert provision(data, "--registry", registry.url, "--code", registry.enroll_code()).returncode == 0
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.suffix in (".key", ".json", ".toml", ".pub")}
    again = provision(data, "--registry", registry.url, "--code", registry.enroll_code())
    assert again.returncode == 3
    assert "already provisioned as device" in one_line(again.stderr) and again.stdout == ""
    assert {p.name: p.read_bytes() for p in data.iterdir() if p.suffix in (".key", ".json", ".toml", ".pub")} \
        == before


def test_re_enrolment_with_a_new_code_gives_a_new_device_id_and_retires_the_old_one(registry, tmp_path):
    data = tmp_path / "device"
    assert provision(data, "--registry", registry.url, "--code", registry.enroll_code()).returncode == 0
    old_id = json.loads((data / "enrolment.json").read_text())["device_id"]
    old_key = (data / "device.key").read_bytes()

    proc = provision(data, "--re-enroll", "--code", registry.enroll_code())  # the registry URL is remembered
    assert proc.returncode == 0, proc.stderr
    new_id = json.loads((data / "enrolment.json").read_text())["device_id"]
    assert new_id != old_id and (data / "device.key").read_bytes() != old_key
    assert f"gatecheck registry device revoke {old_id}" in proc.stdout
    retired = data / RETIRED_DIR / old_id
    assert json.loads((retired / "enrolment.json").read_text())["device_id"] == old_id
    assert not any(p.name.startswith("device.key") for p in data.rglob("*") if p.parent != data)
    assert not (data / NEXT_KEY_FILE).exists()
    assert held(data)[2]
    no_secret_leaked(data, proc.stdout, proc.stderr)
    # both ids exist at the registry until IT revokes the old one
    assert {old_id, new_id} <= {d.device_id for d in registry.devices.all_devices()}


def test_re_enrolment_without_a_new_code_is_refused_and_keeps_the_device(registry, tmp_path):
    data = tmp_path / "device"
    assert provision(data, "--registry", registry.url, "--code", registry.enroll_code()).returncode == 0
    proc = provision(data, "--re-enroll")
    assert proc.returncode == 1 and "needs a new enrolment code" in one_line(proc.stderr)
    assert held(data)[2] and (data / DONE_FILE).exists()


# -- failures: one line, nothing half-written ----------------------------------------------

def test_a_wrong_code_is_the_registrys_one_line_and_the_key_waits_for_the_right_one(registry, tmp_path):
    data = tmp_path / "device"
    wrong = provision(data, "--registry", registry.url, "--code", "AAAA-BBBB-CCCC-DDDD-EEEE")
    assert wrong.returncode == 1
    assert one_line(wrong.stderr) == ("gatecheck: the registry refused the enrolment: "
                                      "enrolment code is unknown or already used")
    assert sorted(p.name for p in data.iterdir()) == ["device.key"]
    no_secret_leaked(data, wrong.stdout, wrong.stderr)
    key = (data / "device.key").read_bytes()

    right = provision(data, "--registry", registry.url, "--code", registry.enroll_code())
    assert right.returncode == 0, right.stderr
    assert (data / "device.key").read_bytes() == key  # the same key, reused


def test_a_code_already_used_by_another_device_is_refused(registry, tmp_path):
    code = registry.enroll_code()
    assert provision(tmp_path / "first", "--registry", registry.url, "--code", code).returncode == 0
    second = provision(tmp_path / "second", "--registry", registry.url, "--code", code)
    assert second.returncode == 1 and "unknown or already used" in one_line(second.stderr)
    assert not (tmp_path / "second" / "enrolment.json").exists()


def test_an_expired_code_is_refused_with_the_registrys_message(registry, tmp_path):
    code = registry.enroll_code()
    engine = make_engine(RegistryPaths(registry.data_dir).database_url)
    from registry.devices import enrolment_codes

    with engine.begin() as conn:  # the code's day has passed (the registry compares with its own clock)
        conn.execute(update(enrolment_codes).where(enrolment_codes.c.used_at.is_(None)).values(expires_at=0))
    proc = provision(tmp_path / "device", "--registry", registry.url, "--code", code)
    assert proc.returncode == 1 and one_line(proc.stderr).endswith("enrolment code has expired; ask for a new one")


def test_a_registry_answering_with_another_root_key_is_refused_and_nothing_is_written(registry, tmp_path):
    data = tmp_path / "device"
    impostor_root = bytes(31) + b"\x01"
    result = provision(data, "--registry", registry.url, "--code", registry.enroll_code(),
                       "--root-key", impostor_root.hex())
    assert result.returncode == 1
    assert "not the" in one_line(result.stderr) and "--root-key" in result.stderr
    assert not (data / ANSWER_FILE).exists() and not (data / "registry-root.pub").exists()
    assert not (data / "enrolment.json").exists()


def test_the_right_root_key_given_out_of_band_is_pinned_and_shown(registry, tmp_path):
    data = tmp_path / "device"
    result = provision(data, "--registry", registry.url, "--code", registry.enroll_code(),
                       "--root-key", registry.root_public.hex())
    assert result.returncode == 0, result.stderr
    assert (data / "registry-root.pub").read_bytes() == registry.root_public
    assert registry.root_public.hex() in result.stdout


def test_plain_http_to_another_machine_is_refused_before_a_key_is_made(tmp_path):
    data = tmp_path / "device"
    result = provision(data, "--registry", "http://192.0.2.10:8480", "--code", "ABCD-EFGH-JKMN-PQRS-TVWX")
    assert result.returncode == 1 and "plain http" in one_line(result.stderr)
    assert not (data / "device.key").exists()


def test_a_dead_registry_is_one_line_naming_it(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"
    proc = provision(tmp_path / "device", "--registry", url, "--code", "ABCD-EFGH")
    assert proc.returncode == 1
    assert one_line(proc.stderr) == (f"gatecheck: cannot enrol: POST /v1/enroll: nothing answers at {url}"
                                     " (connection refused): is the registry running?")
    no_secret_leaked(tmp_path / "device", proc.stdout, proc.stderr)


def test_a_data_directory_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    proc = provision(tmp_path / "a-file" / "device", "--registry", "http://127.0.0.1:1", "--code", "X")
    assert proc.returncode == 1 and "cannot create the data directory" in one_line(proc.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_data_directory_of_another_user_is_refused_before_anything_is_written(tmp_path):
    data = tmp_path / "device"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)
    proc = provision(data, "--registry", "http://127.0.0.1:1", "--code", "X")
    assert proc.returncode == 1 and "run provision as that user" in one_line(proc.stderr)
    assert list(data.iterdir()) == []


# -- interrupted runs resume -------------------------------------------------------------

def kill_at_step(command: list[str], step: str) -> str:
    """Start ``command``, SIGKILL it the moment it prints the line starting ``step``; returns its stderr so far."""
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(step):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


@pytest.mark.parametrize("step, resumes_at", [
    ("[3/6] write the configuration", "[1/4] write the configuration"),  # the answer was saved
    ("[4/6] run the first full sync", "[1/3] run the first full sync"),
    (f"  list {LIST}", "[1/3] run the first full sync"),  # the bar's label: the answer is arriving
])
def test_kill_9_after_enrolment_resumes_without_the_code(registry, tmp_path, step, resumes_at):
    data = tmp_path / "device"
    command = [*GATECHECK, "provision", "--data-dir", str(data), "--registry", registry.url, "--code"]
    kill_at_step([*command, registry.enroll_code()], step)

    resumed = provision(data)  # neither the code (spent) nor the URL (saved) is needed again
    assert resumed.returncode == 0, resumed.stderr
    # the write may have finished before the kill landed: then the run resumes one step later
    assert resumes_at in resumed.stderr or "[1/3] run the first full sync" in resumed.stderr
    version, tokens, current = held(data)
    assert version == registry.api.current_version(LIST) and tokens > ENTRIES and current
    assert provision(data).returncode == 3
    no_secret_leaked(data, resumed.stdout, resumed.stderr)


def test_a_first_sync_that_fails_is_resumed_by_the_next_run(tmp_path):
    """The registry goes down between enrolment and the first sync: one line, then a rerun finishes."""
    server = RegistryServer(tmp_path / "registry")
    server.api.add_entries(LIST, [listed(i) for i in range(20)], by="officer-1")
    server.start()
    try:
        device = Device(tmp_path / "device", server)  # enrolled over HTTP, never synced
        server.stop()
        down = provision(device.data_dir, "--registry", server.url)
        assert down.returncode == 1
        assert one_line(down.stderr).startswith("gatecheck: the first sync failed: ")
        assert "run again to retry" in down.stderr and not (device.data_dir / DONE_FILE).exists()
        server.start()
        up = provision(device.data_dir, "--registry", server.url)
        assert up.returncode == 0, up.stderr
        assert held(device.data_dir)[2]
    finally:
        server.stop()


def test_a_re_enrolment_killed_after_the_registry_answered_is_finished_by_a_plain_rerun(registry, tmp_path):
    data = tmp_path / "device"
    assert provision(data, "--registry", registry.url, "--code", registry.enroll_code()).returncode == 0
    old_id = json.loads((data / "enrolment.json").read_text())["device_id"]
    kill_at_step([*GATECHECK, "provision", "--data-dir", str(data), "--re-enroll", "--code",
                  registry.enroll_code()], "[3/7] retire the old enrolment")
    assert (data / ANSWER_FILE).exists()
    rerun = provision(data)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((data / "enrolment.json").read_text())["device_id"] != old_id
    assert (data / RETIRED_DIR / old_id / "enrolment.json").exists() and held(data)[2]
    no_secret_leaked(data, rerun.stdout, rerun.stderr)


def test_ctrl_c_during_the_first_sync_is_one_line_and_the_rerun_resumes(registry, tmp_path):
    data = tmp_path / "device"
    proc = subprocess.Popen([*GATECHECK, "provision", "--data-dir", str(data), "--registry", registry.url,
                             "--code", registry.enroll_code()], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(f"  list {LIST}"):  # the progress bar started: the answer is arriving
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stderr.readlines()
    proc.stderr.close()
    status = proc.wait(timeout=60)
    if status == 0:
        pytest.skip("provisioning finished before SIGINT arrived")  # nothing left to resume
    assert status == 130, lines
    assert one_line("".join(lines)) == "gatecheck: interrupted; run the same command again to resume where it stopped"
    again = provision(data)  # enrolled: neither code nor URL needed
    assert again.returncode == 0, again.stderr
    assert held(data)[2]


def test_no_stale_temporary_file_survives_a_rerun(registry, tmp_path):
    data = tmp_path / "device"
    data.mkdir(mode=0o700)
    (data / ".device.key.4242.tmp").write_bytes(b"half a key")
    proc = provision(data, "--registry", registry.url, "--code", registry.enroll_code())
    assert proc.returncode == 0, proc.stderr
    assert not (data / ".device.key.4242.tmp").exists()

