"""`gatecheck provision`: make a new counter's key, enrol it, write its configuration, sync and verify.

The I/O around appliance/provision_plan.py, which decides from the data
directory's files what is left to do. Each step here does one thing and
leaves the file that says it is done, so a run stopped anywhere (Ctrl-C,
kill -9, power cut, dead registry) is resumed by running it again. The
enrolment itself is sync/enrolment.py's (``enrolment_request``,
``parse_answer``, ``write_enrolment``); the first sync is the sync agent's
``run_once`` (sync/agent.py), with a progress bar drawn from the bytes its
fetcher reads (sync/fetch_progress.py). docs/provisioning.md.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli_common import data_dir_option
from appliance.private_files import FILE_MODE, private_dir, write_private
from appliance.provision_plan import (
    DirState,
    Plan,
    ProvisionError,
    Refusal,
    Request,
    Step,
    check_root_key,
    check_transport,
    plan,
)
from sync.cli import DEVICE_KEY_FILE, REGISTRY_URL_KEY, ROOT_KEY_FILE
from sync.device_auth import device_id_for
from sync.enrolment import ENROLMENT_FILE
from sync.keys import raw_public_key

NEXT_KEY_FILE = "device.key.next"
ANSWER_FILE = "enrolment-answer.json"
DONE_FILE = "provisioned.json"
RETIRED_DIR = "retired"
DONE_FORMAT = "gatecheck-provisioned/1"
ANSWER_FORMAT = "gatecheck-enrolment-answer/1"
#: An enrolment answer is a few kilobytes (64 lists at most); anything far bigger is not one.
ANSWER_MAX_BYTES = 1024 * 1024
#: The test check's document: ICAO Doc 9303 Part 4's specimen passport (Anna Maria Eriksson of
#: Utopia), a made-up person, so the check journals nobody real (and into a throwaway journal).
TEST_DOCUMENT = (b"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
                 b"L898902C36UTO7408122F1204159ZE184226B<<<<<10\n")
UNITS = ("gatecheck-sync.service", "gatecheck-appliance.service", "gatecheck-scanner.service")
#: Exit status when Ctrl-C (SIGINT) stopped the run: 128 + 2, as a shell reports it.
EXIT_INTERRUPTED = 130


# -- what the directory holds ----------------------------------------------------------

def read_key(path: Path) -> tuple[Ed25519PrivateKey | None, str | None]:
    """(the key, None), (None, why it cannot be used), or (None, None) when there is no file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path} cannot be read: {exc.strerror}"
    if mode & 0o077:
        return None, f"{path} is readable by other users (mode {mode & 0o777:o}); a device key must be 0600"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return None, f"{path} is not a readable private key ({exc})"
    if not isinstance(key, Ed25519PrivateKey):
        return None, f"{path} is not an Ed25519 private key"
    return key, None


def _key_id(key: Ed25519PrivateKey | None) -> str | None:
    return device_id_for(raw_public_key(key)) if key is not None else None


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"{path} cannot be read ({exc}); move it away and run again") from None
    if not isinstance(value, dict):
        raise ProvisionError(f"{path} is not a JSON object; move it away and run again")
    return value


def read_state(data_dir: Path) -> DirState:
    """The facts appliance/provision_plan.py plans from."""
    key, key_problem = read_key(data_dir / DEVICE_KEY_FILE)
    next_key, _ = read_key(data_dir / NEXT_KEY_FILE)  # an unusable next key is simply made again
    saved = _read_json(data_dir / ANSWER_FILE) or {}
    answer = saved.get("answer") if isinstance(saved.get("answer"), dict) else {}
    enrolment = _read_json(data_dir / ENROLMENT_FILE) or {}
    done = _read_json(data_dir / DONE_FILE) or {}
    return DirState(
        key_id=_key_id(key), key_problem=key_problem, next_key_id=_key_id(next_key),
        answer_for=answer.get("device_id"), answer_registry=saved.get("registry"),
        enrolled_id=enrolment.get("device_id"), enrolled_registry=enrolment.get(REGISTRY_URL_KEY),
        provisioned_id=done.get("device_id"))


def prepare_dir(data_dir: Path) -> None:
    """A 0700 directory this user owns and can write, without the temporary files of a killed run."""
    try:
        private_dir(data_dir)
        owner = data_dir.stat().st_uid
    except OSError as exc:
        raise ProvisionError(f"cannot create the data directory {data_dir}: {exc.strerror}") from None
    if owner != os.geteuid():
        name = _user_name(owner)
        raise Refusal(f"{data_dir} belongs to {name}: run provision as that user (sudo -u {name} gatecheck "
                      "provision …), so that the services can read the files it writes")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ProvisionError(f"{data_dir} is not writable by this user; fix its mode (chmod 700 {data_dir})")
    for name in (DEVICE_KEY_FILE, NEXT_KEY_FILE, ANSWER_FILE, DONE_FILE, ENROLMENT_FILE, ROOT_KEY_FILE):
        for stale in data_dir.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


# -- the steps -------------------------------------------------------------------------

def make_key(path: Path) -> str:
    """A new Ed25519 key pair; the private half is written 0600 from its first byte. Returns the device id."""
    key = Ed25519PrivateKey.generate()
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return _key_id(key)


def _load_key(path: Path) -> Ed25519PrivateKey:
    key, problem = read_key(path)
    if key is None:
        raise ProvisionError(problem or f"{path} is missing")
    return key


def enroll(data_dir: Path, key_path: Path, registry: str, code: str, name: str,
           root_key: bytes | None = None) -> str:
    """POST the code and the public key; save the checked answer. Returns the device id.

    With ``root_key`` (``--root-key``, taken from the registry's operators out
    of band) an answer pinning any other root is refused and nothing is saved:
    whoever answered is not that registry.
    """
    from sync.enrolment import EnrolmentError, enrolment_request, parse_answer
    from sync.fetcher import FetchError, RequestsFetcher

    public_key = raw_public_key(_load_key(key_path))
    device_id = device_id_for(public_key)
    fetcher = RequestsFetcher(registry, None, timeout=15.0, deadline=60.0)
    try:
        response = fetcher.fetch("POST", "/v1/enroll", body=enrolment_request(code.strip(), public_key, name),
                                 headers={"Content-Type": "application/json"}, max_bytes=ANSWER_MAX_BYTES)
    except FetchError as exc:
        raise ProvisionError(f"cannot enrol: {exc.message}") from None
    finally:
        fetcher.close()
    code_name, message = _error_of(response.body)
    if response.status == 409 and code_name == "already_enrolled":
        if key_path.name == NEXT_KEY_FILE:  # a re-enrolment's own key: the rerun makes another
            key_path.unlink()
        raise ProvisionError(f"the registry already enrolled this device's key as {device_id} (an earlier run lost"
                             f" its answer): ask IT to revoke device {device_id}, then run again with --re-enroll"
                             " and the same code (it was not spent)")
    if response.status != 201:
        reason = message or f"HTTP {response.status} from {registry}/v1/enroll: is this the registry's URL?"
        raise ProvisionError(f"the registry refused the enrolment: {reason}")
    try:
        parsed = parse_answer(response.body, public_key=public_key)
        answer = json.loads(response.body)
    except (EnrolmentError, ValueError) as exc:
        raise ProvisionError(f"the registry's answer cannot be used ({getattr(exc, 'message', exc)}); the code is"
                             f" spent: ask IT to revoke device {device_id} and for a new code") from None
    if root_key is not None and parsed.root_public_key != root_key:
        raise ProvisionError(f"{registry} answered with root key {parsed.root_public_key.hex()[:16]}…, not the "
                             f"{root_key.hex()[:16]}… given with --root-key: nothing was written; check the URL and "
                             f"the key, and ask IT to revoke device {device_id} and for a new code")
    saved = {"format": ANSWER_FORMAT, "registry": registry, "answer": answer}
    write_private(data_dir / ANSWER_FILE, json.dumps(saved, indent=2, sort_keys=True).encode())
    return device_id


def _error_of(body: bytes) -> tuple[str | None, str | None]:
    """The registry's ``{"error": {"code", "message"}}``, or (None, None) for any other body."""
    try:
        error = json.loads(body)["error"]
        return str(error.get("code")), " ".join(str(error["message"]).split())[:300]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None


def retire(data_dir: Path, old_id: str | None) -> Path:
    """Put the old enrolment's records aside, drop its lists, and make the new key the device's.

    The old private key is deleted, not kept: with it, anyone holding a
    backup could still sign as the old device until IT revokes it. The old
    lists go too: they hold the old enrolment's token keys and are fetched
    again under the new one. Idempotent, in this order, so that a rerun
    after a kill finishes the job.
    """
    from appliance.snapshot import snapshot_path
    from appliance.snapshot_generations import generation_dir
    from sync.agent_snapshot import DOWNLOAD_PREFIX, DOWNLOAD_SUFFIX
    from sync.agent_state import state_path

    backup = private_dir(data_dir / RETIRED_DIR / (old_id or "unknown"))
    for name in (ENROLMENT_FILE, ROOT_KEY_FILE, DONE_FILE):  # enrolment.json first: then it is not enrolled
        if (data_dir / name).exists():
            os.replace(data_dir / name, backup / name)
    store = snapshot_path(data_dir)
    for path in (store, state_path(data_dir)):
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(generation_dir(store), ignore_errors=True)
    for download in data_dir.glob(f"{DOWNLOAD_PREFIX}*{DOWNLOAD_SUFFIX}"):
        download.unlink(missing_ok=True)
    if (data_dir / NEXT_KEY_FILE).exists():
        os.replace(data_dir / NEXT_KEY_FILE, data_dir / DEVICE_KEY_FILE)
    return backup


def write_configuration(data_dir: Path) -> None:
    """The saved answer into the data directory (sync/enrolment.py's write_enrolment), then forget it."""
    from sync.enrolment import EnrolmentError, parse_answer, write_enrolment

    saved = _read_json(data_dir / ANSWER_FILE) or {}
    public_key = raw_public_key(_load_key(data_dir / DEVICE_KEY_FILE))
    try:
        answer = parse_answer(saved.get("answer"), public_key=public_key)
        write_enrolment(data_dir, answer, registry_url=saved.get("registry"))
    except EnrolmentError as exc:
        raise ProvisionError(exc.message) from None
    (data_dir / ANSWER_FILE).unlink()


def first_sync(data_dir: Path, registry: str) -> None:
    """One full run of the sync agent, every list brought to the registry's current version."""
    from appliance.snapshot import SnapshotStore, snapshot_path
    from sync.agent import AgentConfig, SyncAgent
    from sync.agent_state import AgentState
    from sync.fetch_progress import ProgressFetcher
    from sync.fetcher import DeviceCredentials, RequestsFetcher

    key = _load_key(data_dir / DEVICE_KEY_FILE)
    root = (data_dir / ROOT_KEY_FILE).read_bytes()
    fetcher = RequestsFetcher(registry, DeviceCredentials(_key_id(key), key))
    try:
        with SnapshotStore(snapshot_path(data_dir)) as store, AgentState(data_dir) as state:
            agent = SyncAgent(store, state, ProgressFetcher(fetcher, _progress_bar), root,
                              config=AgentConfig(first_poll_max_delay=0, long_poll_wait=0))
            report = agent.run_once()
    finally:
        fetcher.close()
    if not report.ok:
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise ProvisionError(f"the first sync failed: {report.errors[0]}{more}; run again to retry")


@contextmanager
def _progress_bar(list_id: str, total: int | None):
    if total is None:
        click.echo(f"  list {list_id}: receiving", err=True)
        yield _Uncounted()
        return
    with click.progressbar(length=total, label=f"  list {list_id}", file=sys.stderr, show_percent=True,
                           show_eta=True, width=32) as bar:
        yield bar


class _Uncounted:
    def update(self, n_bytes: int) -> None:
        pass


@dataclass(frozen=True)
class Verification:
    digests: int
    verdict: str
    reasons: tuple[str, ...]


def verify(data_dir: Path) -> Verification:
    """Recompute every list's digest (as `gatecheck sync verify`) and run one test check through the counter's pipeline.

    The test check journals into a throwaway journal: the device's own
    journal keeps only real scans.
    """
    from appliance.checker import Checker
    from appliance.config import ConfigError, load_config
    from appliance.journal import Journal
    from appliance.snapshot import SnapshotStore, snapshot_path
    from sync.agent_snapshot import audit_list
    from sync.agent_state import AgentState

    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        raise ProvisionError(str(exc)) from None
    with SnapshotStore(snapshot_path(data_dir)) as store, AgentState(data_dir) as state:
        lists = [info.list_id for info in store.lists()]
        for list_id in lists:
            audit = audit_list(store, state, list_id, adopt=True)
            if not audit.ok:
                raise ProvisionError(f"list {list_id}: the digest of the synced list does not match the signed one;"
                                     " run again (the next sync fetches a full snapshot)")
        with tempfile.TemporaryDirectory(prefix="gatecheck-provision-check-") as scratch, \
                Journal(scratch) as journal:
            decision = Checker(store, journal, config).check(TEST_DOCUMENT)
    checked = {used.list_id for used in decision.freshness.lists}
    if decision.stale or checked != set(lists):
        reason = decision.freshness.reason(config.scopes) or f"it checked {sorted(checked)}, not {lists}"
        raise ProvisionError(f"the test check did not run against current lists: {reason}"
                             " (is the clock right? see gatecheck doctor)")
    return Verification(len(lists), decision.verdict.value, decision.reasons)


def finish(data_dir: Path, registry: str) -> None:
    """provisioned.json: the first sync was verified for this device; a rerun refuses."""
    from appliance.snapshot import SnapshotStore, snapshot_path

    device_id = _key_id(_load_key(data_dir / DEVICE_KEY_FILE))
    with SnapshotStore(snapshot_path(data_dir), readonly=True) as store:
        lists = {info.list_id: info.version for info in store.lists()}
    record = {"format": DONE_FORMAT, "device_id": device_id, "registry": registry, "lists": lists,
              "provisioned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_private(data_dir / DONE_FILE, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


# -- the command -----------------------------------------------------------------------

def run_plan(data_dir: Path, the_plan: Plan, code: str | None, name: str, say=click.echo, *,
             root_key: bytes | None = None) -> Verification | None:
    """Carry out the plan's steps in order, saying each one on stderr."""
    if Step.RETIRE in the_plan.steps:
        _refuse_while_units_run()
    verification = None
    for number, step in enumerate(the_plan.steps, 1):
        say(f"[{number}/{len(the_plan.steps)}] {step.value}", err=True)
        if step is Step.MAKE_KEY:
            make_key(data_dir / DEVICE_KEY_FILE)
        elif step is Step.MAKE_NEXT_KEY:
            make_key(data_dir / NEXT_KEY_FILE)
        elif step is Step.ENROLL:
            key = NEXT_KEY_FILE if the_plan.enrols_next_key else DEVICE_KEY_FILE
            enroll(data_dir, data_dir / key, the_plan.registry, code or "", name, root_key)
        elif step is Step.RETIRE:
            backup = retire(data_dir, the_plan.retiring)
            say(f"      old enrolment kept in {backup}; its private key was deleted", err=True)
        elif step is Step.WRITE:
            write_configuration(data_dir)
        elif step is Step.SYNC:
            first_sync(data_dir, the_plan.registry)
        elif step is Step.VERIFY:
            verification = verify(data_dir)
        elif step is Step.FINISH:
            finish(data_dir, the_plan.registry)
    return verification


def _refuse_while_units_run() -> None:
    """Re-enrolment deletes the lists the counter and the agent hold open: they must be stopped first."""
    if not Path("/run/systemd/system").is_dir():  # sd_booted(3)
        return
    try:
        running = subprocess.run(["systemctl", "is-active", "--quiet", *UNITS], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return
    if running:
        raise Refusal(f"stop the device's services before re-enrolling: sudo systemctl stop {' '.join(UNITS)}")


@click.command()
@click.option("--registry", "registry_url", metavar="URL", default=None,
              help="The registry's base URL (recorded in enrolment.json; later runs and `sync run` reuse it).")
@click.option("--code", metavar="CODE", default=None,
              help="The one-time enrolment code from IT (`gatecheck registry device enroll-code`).")
@data_dir_option
@click.option("--name", default=None, help="This device's name on the registry's device pages (default: host name).")
@click.option("--re-enroll", "re_enroll", is_flag=True,
              help="Replace the enrolment: a new key, a new device id (needs a new code; IT revokes the old id).")
@click.option("--root-key", metavar="HEX", default=None,
              help="The registry's root public key (64 hex digits, from IT): refuse a registry that pins another.")
@click.option("--insecure-http", is_flag=True,
              help="Allow plain http:// to another machine (a closed provisioning network only).")
def provision(registry_url: str | None, code: str | None, data_dir: Path | None, name: str | None,
              re_enroll: bool, root_key: str | None, insecure_http: bool) -> None:
    """Provision this device: key, enrolment, configuration, first sync, verification (docs/provisioning.md).

    Safe to run again: a run stopped anywhere resumes where it stopped.
    Exit status 0 when provisioned, 1 on a failure (one line on stderr), 3
    when the device was already provisioned (nothing is done).
    """
    from appliance.config import ConfigError, default_data_dir
    from appliance.journal_db import JournalDbError
    from appliance.snapshot_errors import SnapshotError
    from sync.errors import SyncError

    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    try:
        pinned = check_root_key(root_key) if root_key is not None else None
        prepare_dir(data_dir)
        the_plan = plan(read_state(data_dir), Request(registry_url, code, re_enroll))
        check_transport(the_plan.registry, insecure_http=insecure_http)
        if the_plan.code_unused:
            click.echo("note: enrolment is already done; the code was not used", err=True)
        verification = run_plan(data_dir, the_plan, code, name or socket.gethostname() or "counter",
                                root_key=pinned)
        print_summary(data_dir, verification, the_plan)
    except ProvisionError as exc:
        _exit(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        _exit("interrupted; run the same command again to resume where it stopped", EXIT_INTERRUPTED)
    except OSError as exc:
        _exit(_os_error(exc, data_dir), 1)
    except ConfigError as exc:
        _exit(str(exc), 1)
    except (SyncError, SnapshotError, JournalDbError) as exc:
        _exit(exc.message, 1)


def _exit(message: str, status: int) -> None:
    click.echo(f"gatecheck: {message}", err=True)
    sys.exit(status)


def _os_error(exc: OSError, data_dir: Path) -> str:
    where = exc.filename or data_dir
    if exc.errno == errno.ENOSPC:
        return f"no space left on the disk holding {data_dir}: free some space and run again to resume"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: {exc.strerror} (run as the user that owns {data_dir})"
    return f"{where}: {exc.strerror or exc}"


# -- the summary -----------------------------------------------------------------------

def print_summary(data_dir: Path, verification: Verification | None, the_plan: Plan) -> None:
    """What the device is now, what it holds, where its files are, and what to do next."""
    from appliance.config import load_config
    from appliance.snapshot import SnapshotStore, snapshot_path

    record = _read_json(data_dir / ENROLMENT_FILE) or {}
    profile = record.get("profile", {})
    config = load_config(data_dir)
    now = time.time()
    with SnapshotStore(snapshot_path(data_dir), readonly=True) as store:
        lists = store.lists()
        tokens = store.stats()["tokens_per_list"]
    echo = click.echo
    echo(f"provisioned device {record.get('device_id')} ({record.get('name', '')!s})")
    echo(f"  registry:      {the_plan.registry}")
    root = data_dir / ROOT_KEY_FILE
    if root.exists():  # compare with the key `gatecheck registry init` printed, if --root-key was not given
        echo(f"  root key:      {root.read_bytes().hex()} (pinned)")
    echo(f"  organisation:  {profile.get('organisation') or '(none)'}, {profile.get('kind', '?')}, scopes "
         f"{', '.join(profile.get('scopes', []))}; lists out of date after {profile.get('max_age_hours', '?'):g} h,"
         f" then {'fail closed (CLEAR becomes REFER)' if config.fail_closed else 'fail open (CLEAR with a warning)'}")
    for info in lists:
        fresh = "never verified"
        if info.heartbeat_at is not None:
            age = max(0.0, now - info.heartbeat_at.timestamp())
            fresh = f"verified {_ago(age)}, fresh until {_when(info.heartbeat_at.timestamp() + config.max_age.total_seconds())}"
        echo(f"  list {info.list_id}: version {info.version}, {tokens.get(info.list_id, 0):,} tokens, {fresh}")
    if verification is not None:
        because = f" ({verification.reasons[0]})" if verification.reasons else ""
        echo(f"  verified:      {verification.digests} list digest(s) recomputed and matching; a test check of"
             f" ICAO's specimen passport gave {verification.verdict}{because} against current lists")
    echo(f"  files:         {data_dir} (0700): {DEVICE_KEY_FILE} ({FILE_MODE:04o}, never leaves the device), "
         f"{ENROLMENT_FILE}, {ROOT_KEY_FILE}, gatecheck.toml, snapshot.db, sync.db, {DONE_FILE}")
    if the_plan.retiring:
        echo(f"  replaced:      device {the_plan.retiring}; ask IT to revoke it "
             f"(gatecheck registry device revoke {the_plan.retiring} --reason re-enrolled)")
    echo(f"  next:          sudo systemctl enable --now {' '.join(UNITS)}; then gatecheck doctor")


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
