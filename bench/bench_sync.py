"""Sync benchmarks: delta apply, no-change poll throughput, propagation latency, snapshot install.

Run alone from the repository root::

    .venv/bin/python bench/bench_sync.py                 # about 4 min
    .venv/bin/python bench/bench_sync.py --install-sizes 250000,1000000,2000000

Prints markdown on stdout (progress on stderr). Files go under
``bench/out/sync`` (gitignored) and are deleted afterwards unless --keep.

What it does
------------
* **Apply (issue 4: 100 k-change apply <= 5 s).** Signed deltas built with
  sync/wire.py, sync/digest.py and registry/signing.py's ``Signer`` (the
  registry's own calls, without its database), served to the real
  ``SyncAgent.run_once`` through a ``Fetcher`` that hands out those bytes.
  The device store also holds a synthetic snapshot (``--store-tokens``,
  other lists) so the buckets are as big as on a device. Each phase of the
  agent's path is timed by wrapping the function it calls: verify
  (signature, size, payload SHA-256), decode, look up held entries (removals
  and replacements take their entries out of the digest), digest, sync.db
  stage + commit, store apply (one SQLite transaction, synchronous=FULL).
* **No-change polls (>= 2,000/s on 2 cores).** ``gatecheck registry serve``
  (waitress) as a real subprocess, K enrolled devices, and load-generator
  processes on loopback sending signed ``GET /v1/lists/<id>/updates?since=<head>``
  (signatures cached per device and second). The load generator runs on
  the same 2 cores as the server: the table gives the server's own CPU
  seconds per poll too. Then a per-poll cost breakdown, in-process.
* **Propagation (p95 <= 5 s).** The same server, and ``gatecheck sync run``
  as a real subprocess (long-poll 25 s, the default). The bench publishes an
  entry with ``Registry.add_entry`` on the same database (another process,
  so the server sees it by its 0.5 s database poll) and watches the device's
  snapshot store, read-only, until it holds the new version.
* **Snapshot install (50 M tokens <= 5 min).** A child process per size:
  entries encoded as a snapshot payload, signed, installed by the real
  agent (``replace_list``) into an empty store. 50 M is extrapolated, and
  labelled so.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_snapshot import machine, percentile, status_kib, table  # noqa: E402
from bench_wire import realistic_entries  # noqa: E402

from appliance.records import Action, ListInfo  # noqa: E402
from appliance.snapshot import SnapshotStore, snapshot_path  # noqa: E402
from sync.framing import FRAME_CERT, frame_key_statement, frame_update  # noqa: E402
from registry.signing import Signer, generate_key_file, issue_cert, load_key_file  # noqa: E402
from sync import agent as agent_module  # noqa: E402
from sync.agent import AgentConfig, SyncAgent  # noqa: E402
from sync.agent_state import AgentState  # noqa: E402
from sync.digest import StateDigest  # noqa: E402
from sync.envelope import EnvelopeFields, Kind, heartbeat  # noqa: E402
from sync.fetcher import Response  # noqa: E402
from sync.wire import encode_delta, encode_snapshot  # noqa: E402

SEED = 20250601
OUT = ROOT / "bench" / "out" / "sync"
GATECHECK = str(Path(sys.executable).with_name("gatecheck"))
TARGET_APPLY_S = 5.0
TARGET_POLLS = 2000
TARGET_P95_S = 5.0
TARGET_INSTALL_S = 300.0
FULL_TOKENS = 50_000_000


def log(message: str) -> None:
    print(f"[bench_sync] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- keys and signed bytes


def make_signer(directory: Path) -> tuple[bytes, Signer]:
    """A pinned root and an online signing key certified by it, as `registry init` makes them."""
    directory.mkdir(parents=True, exist_ok=True)
    root_public = generate_key_file(directory / "root.pem")
    signing_public = generate_key_file(directory / "signing.pem")
    now = int(time.time())
    cert = issue_cert(load_key_file(directory / "root.pem"), signing_public,
                      not_before=now - 300, not_after=now + 86_400, sequence=1)
    return root_public, Signer(load_key_file(directory / "signing.pem"), cert)


def signed_answer(signer: Signer, kind: Kind, list_id: str, from_version: int, to_version: int,
                  payload: bytes, checksum: bytes) -> bytes:
    """An updates answer as registry/server.py frames it: the update, then a heartbeat."""
    now = int(time.time())
    envelope = signer.sign(EnvelopeFields(kind, list_id, from_version, to_version, now, now + 86_400,
                                          checksum, hashlib.sha256(payload).digest(), len(payload)))
    beat = signer.sign(heartbeat(list_id, to_version, checksum, issued_at=now, valid_until=now + 3600))
    return frame_update(envelope, payload) + frame_update(beat, b"")


class PreparedAnswers:
    """A ``sync.fetcher.Fetcher`` serving signed bytes built in this process: the network seam only.

    Keys come from the signer's certificate; ``/updates?since=N`` gets the
    answer stored for N. Everything after the seam is the real agent.
    """

    def __init__(self, signer: Signer) -> None:
        self.keys = frame_key_statement(FRAME_CERT, signer.cert_bytes)
        self.answers: dict[int, bytes] = {}

    def fetch(self, method, path, *, body=None, headers=None, max_bytes):
        if path == "/v1/keys":
            return Response(200, {}, self.keys)
        since = int(path.split("since=")[1].split("&")[0])
        return Response(200, {"x-gatecheck-min-wait": "1"}, self.answers[since])


class Phases:
    """Times the functions the agent calls, by wrapping them for the duration of a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._restore: list = []

    def wrap(self, owner, name: str, label: str) -> None:
        is_namespace = isinstance(owner, type) or type(owner).__name__ == "module"
        saved = vars(owner)[name] if is_namespace else None
        original = getattr(owner, name)
        seconds = self.seconds

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)
        self._restore.append((owner, name, saved, is_namespace))

    def instrument(self, agent: SyncAgent) -> None:
        self.wrap(agent.trusted, "verify_update", "verify")
        self.wrap(agent_module, "decode_payload", "decode")
        self.wrap(agent.store, "lookup", "lookup held")
        self.wrap(StateDigest, "apply", "digest")
        self.wrap(StateDigest, "of", "digest")
        self.wrap(agent.state, "stage", "sync.db")
        self.wrap(agent.state, "commit_staged", "sync.db")
        self.wrap(agent.store, "apply_batch", "store apply")
        self.wrap(agent.store, "replace_list", "store apply")

    def restore(self) -> None:
        for owner, name, saved, is_namespace in reversed(self._restore):
            if is_namespace:
                setattr(owner, name, saved)
            else:
                delattr(owner, name)
        self._restore.clear()


PHASES = ("verify", "decode", "lookup held", "digest", "sync.db", "store apply")


def timed_run(agent: SyncAgent) -> dict:
    phases = Phases()
    phases.instrument(agent)
    started = time.perf_counter()
    try:
        report = agent.run_once()
    finally:
        total = time.perf_counter() - started
        phases.restore()
    if not report.ok:
        raise SystemExit(f"the agent refused a benchmark update: {report.errors}")
    out = {label: phases.seconds.get(label, 0.0) for label in PHASES}
    out["total"] = total
    out["other"] = total - sum(out[label] for label in PHASES)
    return out


def new_device(directory: Path, list_id: str, store_tokens: int) -> tuple[SnapshotStore, AgentState]:
    directory.mkdir(parents=True, exist_ok=True)
    path = snapshot_path(directory)
    if store_tokens:
        from appliance.synth import build_snapshot

        build_snapshot(path, store_tokens, seed=SEED, overwrite=True)
    store = SnapshotStore(path)
    store.put_list(ListInfo(list_id, "Bench list", "Bench authority", "Bench Act s.1", ("air_travel",),
                            Action.DENY, os.urandom(32)))
    return store, AgentState(directory)


# --------------------------------------------------------------------------- 1. delta apply


def bench_apply(out: Path, n: int, base_tokens: int, store_tokens: int) -> list[list]:
    list_id = "bench"
    if base_tokens < n + n // 2:
        raise SystemExit("--base-tokens must be at least 1.5 x --changes (removals and replacements use them)")
    root_public, signer = make_signer(out / "keys-apply")
    log(f"apply: device store with {store_tokens:,} synthetic tokens on other lists")
    store, state = new_device(out / "device-apply", list_id, store_tokens)
    answers = PreparedAnswers(signer)
    agent = SyncAgent(store, state, answers, root_public, lists=[list_id],
                      config=AgentConfig(first_poll_max_delay=0, long_poll_wait=0))
    held: dict[bytes, object] = {}
    digest = StateDigest()
    base = realistic_entries(base_tokens, seed=11, list_id=list_id)
    fresh = realistic_entries(2 * n, seed=12, list_id=list_id)
    half = n // 2
    base_tokens_list = [e.token for e in base]
    plan = [
        (f"{base_tokens:,} additions to an empty list (the list's first delta)", base, []),
        (f"{half:,} added + {n - half:,} removed", fresh[:half], base_tokens_list[:n - half]),
        (f"{n:,} added", fresh[half:half + n], []),
        (f"{n:,} removed", [], [e.token for e in fresh[half:half + n]]),
        (f"{n:,} replaced (held tokens, new valid-until)",
         [dataclasses.replace(e, valid_until=e.valid_until.replace(year=2031)) for e in base[n - half:n - half + n]],
         []),
    ]
    rows = []
    version = 0
    for label, adds, removes in plan:
        started = time.perf_counter()
        payload = encode_delta(list_id, version, version + 1, adds, removes)
        encode_s = time.perf_counter() - started
        gone = [held[t] for t in removes] + [held[e.token] for e in adds if e.token in held]
        digest.apply(adds=adds, removes=gone)
        for token in removes:
            del held[token]
        held.update((e.token, e) for e in adds)
        answers.answers[version] = signed_answer(signer, Kind.DELTA, list_id, version, version + 1,
                                                 payload, digest.checksum())
        log(f"apply: {label}")
        t = timed_run(agent)
        version += 1
        assert store.get_list(list_id).version == version
        changes = len(adds) + len(removes)
        rows.append([label, f"{len(payload):,}", f"{encode_s:.2f}",
                     *(f"{t[p]:.2f}" for p in PHASES), f"{t['other']:.2f}", f"**{t['total']:.2f}**",
                     f"{t['total'] / changes * 1e6:.0f}",
                     "" if changes < n else ("yes" if t["total"] <= TARGET_APPLY_S else "no")])
    store.close()
    state.close()
    return rows


# --------------------------------------------------------------------------- registry server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryWorld:
    """A registry data directory made by `gatecheck registry init`, one list, a server subprocess."""

    list_id = "nfl"

    def __init__(self, out: Path, threads: int) -> None:
        from registry.db import make_engine
        from registry.devices import DeviceRegistry
        from registry.publish import Registry
        from registry.server import RegistryPaths

        self.data = out / "registry"
        subprocess.run([GATECHECK, "registry", "init", "--data-dir", str(self.data)], check=True,
                       capture_output=True)
        self.paths = RegistryPaths(self.data)
        engine = make_engine(self.paths.database_url)
        self.registry = Registry(engine, Signer.from_files(self.paths.signing_key, self.paths.signing_cert))
        self.devices = DeviceRegistry(engine)
        self.registry.create_list(self.list_id, name="No-fly list", authority="Civil Aviation Authority",
                                  legal_basis="Aviation Act s.12", scopes=["air_travel"],
                                  default_action=Action.DENY, by="bench")
        self.serial = 0
        self.registry.add_entries(self.list_id, [self.entry() for _ in range(20)], by="bench")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = subprocess.Popen(
            [GATECHECK, "registry", "serve", "--data-dir", str(self.data), "--port", str(self.port),
             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_up()

    def entry(self):
        from datetime import date

        from registry.publish import DocumentRef, EntryFields

        self.serial += 1
        return EntryFields(surnames="Muller", given_names="Hans", reference=f"NFL-2024-{self.serial:08d}",
                           category="aviation-security", date_of_birth=date(1970, 5, 17),
                           documents=(DocumentRef("P", "DEU", f"C01X{self.serial:05d}"),),
                           valid_from=date(2024, 1, 1), valid_until=date(2030, 12, 31))

    def _wait_up(self) -> None:
        import requests

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/v1/keys", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit("the registry server did not start within 20 s")

    def enroll(self, n: int) -> list[tuple[str, bytes]]:
        """n enrolled devices: (device id, raw private key)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from sync.keys import raw_public_key

        out = []
        for i in range(n):
            key = Ed25519PrivateKey.generate()
            code = self.devices.issue_code([self.list_id], ttl_seconds=3600, by="bench")
            device = self.devices.enroll(code, raw_public_key(key), f"bench counter {i}")
            out.append((device.device_id, key.private_bytes_raw()))
        return out

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


# --------------------------------------------------------------------------- 2. no-change polls


def load_worker(url: str, path: str, devices: list, start_at: float, duration: float, queue) -> None:
    import requests
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync.device_auth import sign_request

    keys = [(did, Ed25519PrivateKey.from_private_bytes(raw)) for did, raw in devices]
    session = requests.Session()
    signed: dict = {}
    second = None
    latencies, bad = [], 0
    while time.time() < start_at:
        time.sleep(0.005)
    end, i = start_at + duration, 0
    while True:
        now = time.time()
        if now >= end:
            break
        if int(now) != second:
            second, signed = int(now), {}
        did, key = keys[i % len(keys)]
        i += 1
        headers = signed.get(did)
        if headers is None:
            headers = signed[did] = sign_request(key, "GET", path, second, b"", device_id=did)
        started = time.perf_counter()
        response = session.get(url + path, headers=headers, timeout=10)
        _ = response.content
        latencies.append(time.perf_counter() - started)
        bad += response.status_code != 200
    queue.put({"latencies": latencies, "bad": bad})


def bench_polls(world: RegistryWorld, devices: list, procs_list: list[int], duration: float) -> list[list]:
    version = world.registry.current_version(world.list_id)
    path = f"/v1/lists/{world.list_id}/updates?since={version}"
    ctx = multiprocessing.get_context("fork")
    rows = []
    for procs in procs_list:
        log(f"polls: {procs} load process(es) for {duration:.0f} s")
        queue = ctx.Queue()
        start_at = time.time() + 1.0
        workers = [ctx.Process(target=load_worker, args=(world.url, path, devices[p::procs], start_at,
                                                         duration, queue)) for p in range(procs)]
        for w in workers:
            w.start()
        while time.time() < start_at:
            time.sleep(0.01)
        cpu0, wall0 = world.cpu_seconds(), time.perf_counter()
        results = [queue.get() for _ in workers]
        cpu1, wall1 = world.cpu_seconds(), time.perf_counter()
        for w in workers:
            w.join()
        latencies = [x for r in results for x in r["latencies"]]
        count, bad = len(latencies), sum(r["bad"] for r in results)
        cpu_per_poll = (cpu1 - cpu0) / count
        rows.append([procs, f"{count:,}", bad, f"**{count / duration:,.0f}**",
                     f"{percentile(latencies, 50) * 1e3:.2f}", f"{percentile(latencies, 99) * 1e3:.2f}",
                     f"{(cpu1 - cpu0) / (wall1 - wall0):.2f}", f"{cpu_per_poll * 1e6:.0f}",
                     f"{1 / cpu_per_poll:,.0f}",
                     "yes" if count / duration >= TARGET_POLLS else "no"])
    return rows


def poll_cost_breakdown(world: RegistryWorld, devices: list, n: int = 1000) -> list[list]:
    """Where one no-change poll's time goes, measured piece by piece in this process."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from registry.server import _updates_with_heartbeat, create_app
    from sync.device_auth import sign_request, verify_request

    app = create_app({"DATA_DIR": str(world.data)})
    svc = app.extensions["gatecheck_registry"]
    reg, list_id = svc.registry, world.list_id
    version = reg.current_version(list_id)
    path = f"/v1/lists/{list_id}/updates?since={version}"
    did, raw = devices[0]
    key = Ed25519PrivateKey.from_private_bytes(raw)
    device = svc.devices.device(did)

    def each(fn) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6

    client = app.test_client()

    def whole() -> None:
        response = client.get(path, headers=sign_request(key, "GET", path, int(time.time()), b"", device_id=did))
        assert response.status_code == 200, response.data

    headers = sign_request(key, "GET", path, int(time.time()), b"", device_id=did)
    pieces = [
        ("device lookup (`DeviceRegistry.device`, SQL)", each(lambda: svc.devices.device(did))),
        ("request signature check (`verify_request`, Ed25519)",
         each(lambda: verify_request(device.public_key, "GET", path, headers, b"", time.time()))),
        ("`Registry.current_version` (SQL; the route calls it once)", each(lambda: reg.current_version(list_id))),
        ("`updates_since` + `heartbeat` (`_updates_with_heartbeat`: 2 list reads, 1 version read,"
         " 1 Ed25519 signature)", each(lambda: _updates_with_heartbeat(reg, list_id, version))),
        ("  of which `heartbeat` alone", each(lambda: reg.heartbeat(list_id))),
        ("  of which the Ed25519 signature alone",
         each(lambda: reg.signer.sign(heartbeat(list_id, version, b"\0" * 32, issued_at=int(time.time()),
                                                valid_until=int(time.time()) + 3600)))),
        ("client-side signing (`sign_request`, not on the server)",
         each(lambda: sign_request(key, "GET", path, int(time.time()), b"", device_id=did))),
        ("**whole request in-process** (Flask test client, signing included)", each(whole)),
    ]
    return [[label, f"{us:.0f}"] for label, us in pieces]


def profile_poll(world: RegistryWorld, devices: list, n: int = 1500) -> list[list]:
    """cProfile of n in-process polls: the functions with the most own time."""
    import cProfile
    import pstats

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from registry.server import create_app
    from sync.device_auth import sign_request

    app = create_app({"DATA_DIR": str(world.data)})
    client = app.test_client()
    version = world.registry.current_version(world.list_id)
    path = f"/v1/lists/{world.list_id}/updates?since={version}"
    did, raw = devices[0]
    key = Ed25519PrivateKey.from_private_bytes(raw)
    headers = sign_request(key, "GET", path, int(time.time()), b"", device_id=did)
    client.get(path, headers=headers)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        client.get(path, headers=headers)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    by_tottime = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    for (filename, line, func), (cc, nc, tt, ct, _) in by_tottime:
        where = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append([f"`{func}` ({where}:{line})", f"{nc / n:.1f}", f"{tt / n * 1e6:.0f}",
                     f"{ct / n * 1e6:.0f}", f"{tt / total * 100:.1f} %"])
    rows.append(["total profiled, per poll", "", f"{total / n * 1e6:.0f}", "", "100 %"])
    areas: dict[str, float] = {}
    for (filename, _, func), (_, _, tt, _, _) in stats.stats.items():
        areas[_area(filename, func)] = areas.get(_area(filename, func), 0.0) + tt
    summary = [[area, f"{tt / n * 1e6:.0f}", f"{tt / total * 100:.0f} %"]
               for area, tt in sorted(areas.items(), key=lambda kv: kv[1], reverse=True)]
    return rows, summary


def _area(filename: str, func: str) -> str:
    """Which library a profiled function's own time belongs to."""
    if "ed25519" in func.lower() or "cryptography" in filename:
        return "cryptography (Ed25519 sign + verify)"
    if "sqlite3" in func:
        return "sqlite3 (the C library: SQL execution)"
    for name in ("sqlalchemy", "werkzeug", "flask", "jinja2", "click"):
        if f"/{name}/" in filename:
            return {"sqlalchemy": "SQLAlchemy Core (statement building, compile cache, result rows)",
                    "werkzeug": "Werkzeug (request/response, headers, test client)",
                    "flask": "Flask (dispatch, app/request contexts)"}.get(name, name)
    if str(ROOT) in filename and "site-packages" not in filename:
        return "Gatecheck code (registry/, sync/)"
    return "Python standard library and built-ins"


# --------------------------------------------------------------------------- 3. propagation


def bench_propagation(world: RegistryWorld, out: Path, samples: int) -> dict:
    from sync.cli import DEVICE_KEY_FILE, ROOT_KEY_FILE
    from sync.keys import raw_public_key

    device_dir = out / "device-propagation"
    device_dir.mkdir(parents=True)
    generate_key_file(device_dir / DEVICE_KEY_FILE)
    public = raw_public_key(load_key_file(device_dir / DEVICE_KEY_FILE))
    code = world.devices.issue_code([world.list_id], ttl_seconds=3600, by="bench")
    world.devices.enroll(code, public, "bench propagation counter")
    shutil.copyfile(world.paths.root_public, device_dir / ROOT_KEY_FILE)
    info = world.registry.list_info(world.list_id)
    with SnapshotStore(snapshot_path(device_dir)) as store:
        store.put_list(dataclasses.replace(info, version=0, state_digest=b""))
    agent = subprocess.Popen([GATECHECK, "sync", "run", "--data-dir", str(device_dir), "--registry", world.url,
                              "--first-poll-max-delay", "0"], stdout=subprocess.DEVNULL,
                             stderr=open(out / "agent.log", "wb"))
    try:
        reader = SnapshotStore(snapshot_path(device_dir), readonly=True)

        def wait_for(version: int, timeout: float) -> float | None:
            deadline = time.perf_counter() + timeout
            while time.perf_counter() < deadline:
                if reader.get_list(world.list_id).version >= version:
                    return time.perf_counter()
                time.sleep(0.002)
            return None

        if wait_for(world.registry.current_version(world.list_id), 30) is None:
            raise SystemExit(f"the agent did not catch up within 30 s; see {out / 'agent.log'}")
        rng = random.Random(SEED)
        publish, total, missed = [], [], 0
        for i in range(samples):
            time.sleep(rng.uniform(0.2, 2.0))  # land anywhere in the agent's cycle
            started = time.perf_counter()
            world.registry.add_entry(world.list_id, world.entry(), by="bench")
            published = time.perf_counter()
            version = world.registry.current_version(world.list_id)
            applied = wait_for(version, 15)
            if applied is None:
                missed += 1
                continue
            publish.append(published - started)
            total.append(applied - started)
            log(f"propagation {i + 1}/{samples}: {total[-1] * 1e3:.0f} ms")
        reader.close()
    finally:
        agent.send_signal(signal.SIGTERM)
    return {"publish": publish, "total": total, "missed": missed, "agent": agent}


# --------------------------------------------------------------------------- 4. snapshot install


def child_build(out: str, n: int) -> None:
    """Registry side of one snapshot of n tokens: encode, digest, sign; the answer goes to a file."""
    directory = Path(out)
    root_public, signer = make_signer(directory / "keys")
    started = time.perf_counter()
    entries = realistic_entries(n, seed=21, list_id="big")
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    payload = encode_snapshot("big", 1, entries)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    checksum = StateDigest.of(entries).checksum()
    digest_s = time.perf_counter() - started
    answers = PreparedAnswers(signer)
    (directory / "answer.bin").write_bytes(signed_answer(signer, Kind.SNAPSHOT, "big", 0, 1, payload, checksum))
    (directory / "keys.bin").write_bytes(answers.keys)
    (directory / "root.pub").write_bytes(root_public)
    print(json.dumps({"payload": len(payload), "generate": generate_s, "encode": encode_s,
                      "registry_digest": digest_s, "build_hwm_kib": status_kib("VmHWM")}))


def child_install(out: str) -> None:
    """Device side: the real agent installs the snapshot answer from child_build into an empty store."""
    directory = Path(out)
    store, state = new_device(directory / "device", "big", 0)
    answers = PreparedAnswers.__new__(PreparedAnswers)
    answers.keys = (directory / "keys.bin").read_bytes()
    answers.answers = {0: (directory / "answer.bin").read_bytes()}
    agent = SyncAgent(store, state, answers, (directory / "root.pub").read_bytes(), lists=["big"],
                      config=AgentConfig(first_poll_max_delay=0, long_poll_wait=0))
    rss_before = status_kib("VmRSS")
    t = timed_run(agent)
    assert store.get_list("big").version == 1
    store.close()  # checkpoints the WAL into the file
    state.close()
    print(json.dumps({"phases": t, "rss_before_kib": rss_before, "hwm_kib": status_kib("VmHWM"),
                      "file": snapshot_path(directory / "device").stat().st_size}))


def bench_install(out: Path, sizes: list[int]) -> list[dict]:
    results = []
    for n in sizes:
        log(f"install: snapshot of {n:,} tokens (two child processes: registry, device)")
        directory = out / f"install-{n}"
        directory.mkdir(parents=True)
        result = {"n": n}
        for args in (["--child-build", str(directory), str(n)], ["--child-install", str(directory)]):
            done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
            result.update(json.loads(done.stdout.strip().splitlines()[-1]))
        results.append(result)
        shutil.rmtree(directory, ignore_errors=True)
    return results


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100_000, help="changes per delta")
    parser.add_argument("--base-tokens", type=int, default=200_000, help="tokens of the list before the deltas")
    parser.add_argument("--store-tokens", type=int, default=1_000_000,
                        help="synthetic tokens of other lists in the device store")
    parser.add_argument("--devices", type=int, default=50, help="enrolled devices for the poll load")
    parser.add_argument("--load-procs", default="1,3", help="load-generator process counts, one row each")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per poll-load row")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads of the registry server")
    parser.add_argument("--samples", type=int, default=30, help="propagation samples")
    parser.add_argument("--install-sizes", default="250000,1000000", help="snapshot sizes to install")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/sync")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child-build", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-install", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build:
        return child_build(args.child_build[0], int(args.child_build[1]))
    if args.child_install:
        return child_install(args.child_install)

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    begun = time.perf_counter()
    print("# Gatecheck sync benchmark\n")
    print(machine() + "\n")

    apply_rows = bench_apply(args.out, args.changes, args.base_tokens, args.store_tokens)
    print(f"## 1. Delta apply on the device (target: {args.changes:,} changes <= {TARGET_APPLY_S:.0f} s)\n")
    print(f"The real `SyncAgent.run_once` (keys fetch, verify, decode, digest, confirm, sync.db, "
          f"`apply_batch`) on one list of a store that also holds {args.store_tokens:,} tokens of "
          f"other lists; the list held {args.base_tokens:,} tokens before the second row. Deltas "
          "applied one after another (version 1, 2, ...). 'encode' is the registry's `encode_delta`, "
          "not part of the device total. Seconds.\n")
    print(table(["delta", "payload bytes", "encode", *PHASES, "other", "total", "µs / change",
                 "<= 5 s"], apply_rows) + "\n")

    log("registry: init, list, server")
    world = RegistryWorld(args.out, args.threads)
    try:
        devices = world.enroll(args.devices)
        procs = [int(p) for p in args.load_procs.split(",")]
        poll_rows = bench_polls(world, devices, procs, args.duration)
        breakdown = poll_cost_breakdown(world, devices)
        profile, areas = profile_poll(world, devices)
        propagation = bench_propagation(world, args.out, args.samples)
    finally:
        world.stop()
    agent = propagation["agent"]
    try:
        agent.wait(10)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()

    print(f"## 2. No-change polls (target: >= {TARGET_POLLS:,}/s on 2 cores)\n")
    print(f"`gatecheck registry serve` (waitress, {args.threads} threads, SQLite) on loopback; "
          f"{args.devices} enrolled devices in rotation; each load process is one `requests.Session` "
          f"sending signed `GET /v1/lists/nfl/updates?since=<head>` (wait=0) back to back for "
          f"{args.duration:.0f} s. **The load generator runs on the same {os.cpu_count()} cores as the "
          "server**, so polls/s is a lower bound; 'server CPU' is the server process's own CPU "
          "seconds per wall second (1.0 = one core), and 'polls/s per server core' = 1 / (server CPU "
          "per poll). waitress runs one Python process: the GIL caps it near one core.\n")
    print(table(["load procs", "polls", "non-200", "polls/s", "p50 ms", "p99 ms", "server CPU (cores)",
                 "server CPU µs / poll", "polls/s per server core", ">= 2,000/s"], poll_rows) + "\n")
    print("Where one poll's time goes (in-process, µs per call, averaged over 1,000 calls):\n")
    print(table(["piece", "µs"], breakdown) + "\n")
    print("cProfile of 1,500 in-process polls (Flask test client), by own time:\n")
    print(table(["function", "calls / poll", "own µs / poll", "cumulative µs / poll", "share of own time"],
                profile) + "\n")
    print("The same profile, own time by library:\n")
    print(table(["library", "own µs / poll (profiled)", "share"], areas) + "\n")

    total, publish = propagation["total"], propagation["publish"]
    print(f"## 3. Approval -> applied on the device, long-poll (target: p95 <= {TARGET_P95_S:.0f} s)\n")
    print("`gatecheck sync run` (real subprocess, long-poll wait 25 s, poll interval 1 s, registry "
          "Min-Wait 1 s) against the server above. Each sample: `Registry.add_entry` in the bench "
          "process (a different process from the server, so the server notices by its 0.5 s database "
          "poll), then the device's snapshot store is read every 2 ms until it holds the new version. "
          "Samples are spaced 0.2-2.0 s apart at random, so some land while the agent sleeps its "
          "1 s Min-Wait between polls.\n")
    if total:
        rows = [["publish (registry transaction)", *(f"{percentile(publish, p) * 1e3:.0f}" for p in (50, 95)),
                 f"{max(publish) * 1e3:.0f}"],
                ["approval -> applied on device", *(f"**{percentile(total, p) * 1e3:.0f}**" for p in (50, 95)),
                 f"{max(total) * 1e3:.0f}"]]
        print(table(["ms", "p50", "p95", "max"], rows) + "\n")
    print(f"{len(total)} samples applied, {propagation['missed']} not applied within 15 s; "
          f"mean {statistics.mean(total) * 1e3:.0f} ms. p95 <= 5 s: "
          f"{'yes' if total and percentile(total, 95) <= TARGET_P95_S else 'no'}.\n")

    sizes = [int(s) for s in args.install_sizes.split(",") if s]
    install = bench_install(args.out, sizes)
    print(f"## 4. Snapshot install (target: {FULL_TOKENS:,} tokens <= {TARGET_INSTALL_S / 60:.0f} min)\n")
    print("Registry side: `encode_snapshot` of realistic entries (bench_wire.py), digest from scratch, "
          "signing, in one child process. Device side, in another: the real agent installs the answer "
          "with `replace_list` into an empty store; 'device peak RSS' is that child's VmHWM. Seconds.\n")
    rows = []
    for r in install:
        t = r["phases"]
        rows.append([f"{r['n']:,}", f"{r['payload'] / 2**20:.1f}", f"{r['payload'] / r['n']:.2f}",
                     f"{r['encode']:.1f}", f"{r['registry_digest']:.1f}",
                     *(f"{t[p]:.1f}" for p in ("verify", "decode", "digest", "store apply")),
                     f"{t['other']:.1f}", f"**{t['total']:.1f}**", f"{t['total'] / r['n'] * 1e6:.1f}",
                     f"{r['hwm_kib'] / 1024:.0f}", f"{r['build_hwm_kib'] / 1024:.0f}", f"{r['file'] / r['n']:.1f}"])
    print(table(["tokens", "payload MiB", "bytes/token", "registry encode", "registry digest", "verify",
                 "decode", "device digest", "store replace_list", "other", "device total",
                 "µs / token", "device peak RSS MB", "registry peak RSS MB", "store bytes/token"], rows) + "\n")
    big = max(install, key=lambda r: r["n"])
    per_token = big["phases"]["total"] / big["n"]
    scale = FULL_TOKENS / big["n"]
    print(f"**Estimate, not measured:** scaling the {big['n']:,}-token run linearly, a {FULL_TOKENS:,}-token "
          f"install would take about {per_token * FULL_TOKENS / 60:.0f} min on the device "
          f"(target {TARGET_INSTALL_S / 60:.0f} min), its payload would be about "
          f"{big['payload'] * scale / 2**20:,.0f} MiB (the agent reads at most "
          f"{AgentConfig().max_updates_bytes // 2**20} MiB per answer), and holding every decoded entry "
          f"in memory at once would need roughly {(big['hwm_kib'] - big['rss_before_kib']) * scale / 2**20:,.0f} "
          "GiB of device RSS (VmHWM growth during the install, scaled), besides the registry's encode "
          f"(~{big['encode'] * scale / 60:.0f} min) and digest (~{big['registry_digest'] * scale / 60:.0f} min).\n")
    print(f"_Total run time {time.perf_counter() - begun:.0f} s._")
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
