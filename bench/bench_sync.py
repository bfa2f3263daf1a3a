"""Sync benchmarks: delta apply, no-change poll throughput, propagation latency, snapshot install.

Run alone from the repository root::

    .venv/bin/python bench/bench_sync.py                 # about 4 min
    .venv/bin/python bench/bench_sync.py --apply-only    # section 1 alone, about 30 s
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
  (signature, size, payload SHA-256), decode, digest, sync.db stage +
  commit, store apply (one SQLite transaction, synchronous=FULL, which also
  finds the held entries that removals and replacements take out of the
  digest, in the bucket pass that writes them; the digest is checked inside
  that transaction, before it commits, and counted apart).
* **No-change polls (>= 2,000/s on 2 cores).** ``gatecheck registry serve``
  (gunicorn: a master and one worker process per core) as a real subprocess,
  K enrolled devices, and 1-3 load-generator processes on loopback, each
  keeping a few keep-alive connections busy with signed
  ``GET /v1/lists/<id>/updates?since=<head>``. Requests are signed once per
  device before the run (within the 300 s skew window) and sent as raw
  bytes, so the load generator stays cheap; it still shares the 2 cores, so
  the table gives the server's own CPU per poll and the load generator's.
  Then a per-poll cost breakdown and a profile, in-process.
  ``--polls-only`` runs this section alone.
* **Propagation (p95 <= 5 s).** The same server, and ``gatecheck sync run``
  as a real subprocess (long-poll 25 s, the default). The bench publishes an
  entry with ``Registry.add_entry`` on the same database (another process,
  so the server sees it by its 0.5 s database poll) and watches the device's
  snapshot store, read-only, until it holds the new version.
* **Snapshot build, transfer and install (50 M tokens <= 5 min).** Per
  size: a registry whose ``list_tokens`` is filled with synthetic rows in
  bulk (set-up), ``Registry.snapshot`` building the v2 payload file in its
  own process, ``gatecheck registry serve`` streaming it, and the real agent
  (``RequestsFetcher``, loopback) installing it into a store that also holds
  other lists. ``--install-only --install-sizes 50000000`` runs that alone.
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
from datetime import date, timedelta
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
from sync.wire import encode_delta  # noqa: E402

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
        if method != "GET":  # a health report or an incident: taken, not looked at
            return Response(204, {}, b"")
        since = int(path.split("since=")[1].split("&")[0])
        return Response(200, {"x-gatecheck-min-wait": "1"}, self.answers[since])


class Phases:
    """Times the functions the agent calls, by wrapping them for the duration of a run.

    Each phase counts its own time only: a phase called inside another (the
    digest check, which runs inside the store's transaction) is taken out of
    the outer one, so the phases add up to the total.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._restore: list = []
        self._inner: list[float] = []  # per open phase: seconds spent in phases inside it

    def wrap(self, owner, name: str, label: str) -> None:
        is_namespace = isinstance(owner, type) or type(owner).__name__ == "module"
        if not hasattr(owner, name):
            return  # not on this agent's path (e.g. an older or newer agent)
        saved = vars(owner)[name] if is_namespace else None
        original = getattr(owner, name)
        seconds, inner = self.seconds, self._inner

        def timed(*args, **kwargs):
            started = time.perf_counter()
            inner.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                seconds[label] = seconds.get(label, 0.0) + elapsed - inner.pop()
                if inner:
                    inner[-1] += elapsed

        setattr(owner, name, timed)
        self._restore.append((owner, name, saved, is_namespace))

    def instrument(self, agent: SyncAgent) -> None:
        self.wrap(agent.trusted, "verify_update", "verify")
        self.wrap(agent_module, "decode_delta", "decode")
        self.wrap(agent_module, "decode_delta", "decode")
        self.wrap(StateDigest, "apply", "digest")
        self.wrap(StateDigest, "of", "digest")
        self.wrap(agent.state, "stage", "sync.db")
        self.wrap(agent.state, "commit_staged", "sync.db")
        self.wrap(agent.store, "apply_batch", "store apply")

    def restore(self) -> None:
        for owner, name, saved, is_namespace in reversed(self._restore):
            if is_namespace:
                setattr(owner, name, saved)
            else:
                delattr(owner, name)
        self._restore.clear()


PHASES = ("verify", "decode", "digest", "sync.db", "store apply")


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
    # No health report or compaction after a run: the rows time the apply alone.
    agent = SyncAgent(store, state, answers, root_public, lists=[list_id],
                      config=AgentConfig(first_poll_max_delay=0, long_poll_wait=0, health_interval=0,
                                         compact_hour=None))
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


def print_apply(args, rows: list[list]) -> None:
    print(f"## 1. Delta apply on the device (target: {args.changes:,} changes <= {TARGET_APPLY_S:.0f} s)\n")
    print(f"The real `SyncAgent.run_once` (keys fetch, verify, decode, `apply_batch` with the digest "
          f"checked before it commits, sync.db) on one list of a store that also holds "
          f"{args.store_tokens:,} tokens of other lists; the list held {args.base_tokens:,} tokens "
          "before the second row. Deltas applied one after another (version 1, 2, ...). 'store apply' "
          "includes finding the entries that removals and replacements take out; 'digest' runs inside "
          "the store's transaction and is not counted in 'store apply'. 'encode' is the registry's "
          "`encode_delta`, not part of the device total. Seconds.\n")
    print(table(["delta", "payload bytes", "encode", *PHASES, "other", "total", "µs / change",
                 "<= 5 s"], rows) + "\n")


# --------------------------------------------------------------------------- registry server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryWorld:
    """A registry data directory made by `gatecheck registry init`, one list, a server subprocess."""

    list_id = "nfl"

    def __init__(self, out: Path, threads: int, workers: int | None = None) -> None:
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
        command = [GATECHECK, "registry", "serve", "--data-dir", str(self.data), "--port", str(self.port),
                   "--threads", str(threads)]
        if workers:
            command += ["--workers", str(workers)]
        self.server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(out / "server.log", "wb"))
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

    def server_pids(self) -> list[int]:
        """The gunicorn master and its worker processes."""
        pids = [self.server.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.server.pid:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, kernel) CPU seconds used so far by the server: the master and every worker."""
        user = kernel = 0
        for pid in self.server_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user, kernel = user + int(fields[11]), kernel + int(fields[12])
        tick = os.sysconf("SC_CLK_TCK")
        return user / tick, kernel / tick

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


# --------------------------------------------------------------------------- 2. no-change polls


def signed_requests(port: int, path: str, devices: list, timestamp: int) -> list[bytes]:
    """One raw HTTP/1.1 request per device, signed once for ``timestamp``.

    A signature stays acceptable for the registry's 300 s clock-skew window,
    so the load generator signs before the run, not per request; the server
    still verifies every request it gets.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync.device_auth import sign_request

    out = []
    for did, raw in devices:
        headers = sign_request(Ed25519PrivateKey.from_private_bytes(raw), "GET", path, timestamp, b"",
                               device_id=did)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    return out


class _Conn:
    """One keep-alive connection of the load generator, with at most one request in flight."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sent_at = 0.0
        self.request = b""


def _response_end(buf: bytearray) -> int:
    """Where the first complete response in ``buf`` ends, or -1 (status line, headers, Content-Length body)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    head = bytes(buf[:head_end]).lower()
    at = head.find(b"\r\ncontent-length:")
    length = 0
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:stop if stop >= 0 else len(head)])
    end = head_end + 4 + length
    return end if len(buf) >= end else -1


def load_worker(port: int, requests: list[bytes], connections: int, start_at: float, duration: float,
                queue) -> None:
    """One load process: ``connections`` keep-alive sockets driven by one selector loop.

    Built to cost the server's 2 cores little: requests are prepared bytes
    (``signed_requests``), responses are read only for their status and
    length, and nothing else happens per poll. Devices take turns, so
    consecutive polls carry different identities.
    """
    import selectors
    from array import array

    sel = selectors.DefaultSelector()
    latencies, statuses = array("d"), {}
    turn = 0

    def send(conn: _Conn) -> None:
        nonlocal turn
        conn.request = requests[turn % len(requests)]
        turn += 1
        conn.sent_at = time.perf_counter()
        conn.sock.sendall(conn.request)

    while time.time() < start_at:
        time.sleep(0.002)
    end = time.perf_counter() + duration
    cpu0 = os.times()
    conns = [_Conn(port) for _ in range(connections)]
    for conn in conns:
        send(conn)
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    reconnects = 0
    while sel.get_map():
        for key, _ in sel.select(timeout=5):
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:  # the server closed a kept-alive connection: open another, ask again
                sel.unregister(conn.sock)
                conn.sock.close()
                reconnects += 1
                if time.perf_counter() < end:
                    fresh = _Conn(port)
                    fresh.request, fresh.sent_at = conn.request, time.perf_counter()
                    fresh.sock.sendall(fresh.request)
                    sel.register(fresh.sock, selectors.EVENT_READ, fresh)
                continue
            conn.buf += data
            stop = _response_end(conn.buf)
            if stop < 0:
                continue
            now = time.perf_counter()
            latencies.append(now - conn.sent_at)
            status = bytes(conn.buf[9:12])
            statuses[status] = statuses.get(status, 0) + 1
            del conn.buf[:stop]
            if now < end:
                send(conn)
            else:
                sel.unregister(conn.sock)
                conn.sock.close()
    cpu1 = os.times()
    queue.put({"latencies": list(latencies), "statuses": {k.decode(): v for k, v in statuses.items()},
               "cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), "reconnects": reconnects})


def bench_polls(world: RegistryWorld, devices: list, procs_list: list[int], duration: float,
                connections: int) -> list[list]:
    if duration > 250:
        raise SystemExit("--duration must stay well inside the 300 s signature window")
    version = world.registry.current_version(world.list_id)
    path = f"/v1/lists/{world.list_id}/updates?since={version}"
    ctx = multiprocessing.get_context("fork")
    rows = []
    for procs in procs_list:
        log(f"polls: {procs} load process(es) x {connections} connections for {duration:.0f} s")
        load_before = os.getloadavg()[0]
        queue = ctx.Queue()
        start_at = time.time() + 1.0
        requests = signed_requests(world.port, path, devices, int(start_at))
        workers = [ctx.Process(target=load_worker, args=(world.port, requests[p::procs], connections, start_at,
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
        count = len(latencies)
        bad = sum(n for r in results for status, n in r["statuses"].items() if status != "200")
        user, kernel = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        load_cpu = sum(r["cpu"] for r in results)
        rows.append([procs, procs * connections, f"{count:,}", bad, f"**{count / duration:,.0f}**",
                     f"{percentile(latencies, 50) * 1e3:.2f}", f"{percentile(latencies, 99) * 1e3:.2f}",
                     f"{(user + kernel) / (wall1 - wall0):.2f}",
                     f"{(user + kernel) / count * 1e6:.0f} ({user / count * 1e6:.0f} + {kernel / count * 1e6:.0f})",
                     f"{load_cpu / count * 1e6:.0f}", f"{load_before:.2f}",
                     "yes" if count / duration >= TARGET_POLLS else "no"])
    return rows


def wsgi_poll(app, path: str, headers: dict):
    """A function calling the registry app once the way gunicorn does: a WSGI environ, no HTTP, no test client."""
    import io

    route, _, query = path.partition("?")
    base = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": route, "QUERY_STRING": query, "RAW_URI": path,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8480", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8480", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0)}
    base.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})

    def start_response(status, response_headers, exc_info=None):
        assert status.startswith("200"), status

    def call() -> None:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    return call


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

    headers = sign_request(key, "GET", path, int(time.time()), b"", device_id=did)
    pieces = [
        ("device from the cache (`DeviceCache.active`)", each(lambda: svc.device_cache.active(did))),
        ("  on a miss: `DeviceRegistry.device` (2 SQL statements; once per device and process)",
         each(lambda: svc.devices.device(did))),
        ("request signature check (`verify_request`, Ed25519 verify)",
         each(lambda: verify_request(device.public_key, "GET", path, headers, b"", time.time()))),
        ("list version (`HeadReader`, 1 prepared SQL statement)", each(lambda: svc.head_of(list_id))),
        ("heartbeat of this second from the cache (`HeartbeatCache.for_version`)",
         each(lambda: svc.heartbeats.for_version(list_id, version, time.time()))),
        ("  a new one: `Registry.heartbeat` (2 SQL statements + Ed25519 sign; once per list, second and "
         "process)", each(lambda: reg.heartbeat(list_id))),
        ("slow path, device 1 version behind (`_updates_with_heartbeat`)",
         each(lambda: _updates_with_heartbeat(reg, list_id, version - 1))),
        ("client-side signing (`sign_request`; the load generator does it before the run)",
         each(lambda: sign_request(key, "GET", path, int(time.time()), b"", device_id=did))),
        ("**whole no-change poll, in-process WSGI call** (`NoChangePolls`; no HTTP server)",
         each(wsgi_poll(app, path, headers))),
    ]
    return [[label, f"{us:.0f}"] for label, us in pieces]


def profile_poll(world: RegistryWorld, devices: list, n: int = 1500) -> list[list]:
    """cProfile of n in-process no-change polls: the functions with the most own time."""
    import cProfile
    import pstats

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from registry.server import create_app
    from sync.device_auth import sign_request

    app = create_app({"DATA_DIR": str(world.data)})
    version = world.registry.current_version(world.list_id)
    path = f"/v1/lists/{world.list_id}/updates?since={version}"
    did, raw = devices[0]
    key = Ed25519PrivateKey.from_private_bytes(raw)
    poll = wsgi_poll(app, path, sign_request(key, "GET", path, int(time.time()), b"", device_id=did))
    poll()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        poll()
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
    for name in ("sqlalchemy", "werkzeug", "flask", "jinja2", "click", "gunicorn"):
        if f"/{name}/" in filename:
            return {"sqlalchemy": "SQLAlchemy Core (statement building, compile cache, result rows)",
                    "werkzeug": "Werkzeug (request/response, headers, test client)",
                    "flask": "Flask (dispatch, app/request contexts)"}.get(name, name)
    if str(ROOT) in filename and "site-packages" not in filename:
        return "Gatecheck code (registry/, sync/)"
    return "Python standard library and built-ins"


# --------------------------------------------------------------------------- 3. propagation


class LiveDevice:
    """A counter enrolled with ``world``, its `gatecheck sync run` long-polling, and a read-only view of its store."""

    def __init__(self, world: RegistryWorld, out: Path, name: str) -> None:
        from sync.cli import DEVICE_KEY_FILE, ROOT_KEY_FILE
        from sync.keys import raw_public_key

        self.world = world
        device_dir = out / f"device-{name}"
        device_dir.mkdir(parents=True)
        generate_key_file(device_dir / DEVICE_KEY_FILE)
        public = raw_public_key(load_key_file(device_dir / DEVICE_KEY_FILE))
        code = world.devices.issue_code([world.list_id], ttl_seconds=3600, by="bench")
        world.devices.enroll(code, public, f"bench {name} counter")
        shutil.copyfile(world.paths.root_public, device_dir / ROOT_KEY_FILE)
        info = world.registry.list_info(world.list_id)
        with SnapshotStore(snapshot_path(device_dir)) as store:
            store.put_list(dataclasses.replace(info, version=0, state_digest=b""))
        self.agent = subprocess.Popen([GATECHECK, "sync", "run", "--data-dir", str(device_dir), "--registry",
                                       world.url, "--first-poll-max-delay", "0"], stdout=subprocess.DEVNULL,
                                      stderr=open(out / f"agent-{name}.log", "wb"))
        self.reader = SnapshotStore(snapshot_path(device_dir), readonly=True)
        if self.wait_for(world.registry.current_version(world.list_id), 30) is None:
            self.stop()
            raise SystemExit(f"the agent did not catch up within 30 s; see {out / f'agent-{name}.log'}")

    def wait_for(self, version: int, timeout: float) -> float | None:
        """perf_counter() when the device holds ``version``, or None after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.reader.get_list(self.world.list_id).version >= version:
                return time.perf_counter()
            time.sleep(0.002)
        return None

    def stop(self) -> None:
        self.reader.close()
        self.agent.send_signal(signal.SIGTERM)


def bench_propagation(world: RegistryWorld, out: Path, samples: int) -> dict:
    device = LiveDevice(world, out, "propagation")
    wait_for = device.wait_for
    try:
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
    finally:
        device.stop()
    return {"publish": publish, "total": total, "missed": missed, "agent": device.agent}


# --------------------------------------------------------------------------- 4. snapshot install

BIG = "big"
#: Tokens per step when filling the registry's list_tokens table.
FILL_STEP = 500_000


def _synthetic_rows(n: int, seed: int):
    """n rows of one list for `list_tokens`, in token order, ~2.5 tokens a person (as bench_wire)."""
    import numpy as np

    from bench_wire import CATEGORIES, REDRESS

    rng = np.random.default_rng(seed)
    persons = n // 2 + 1
    per_person = 2 + (rng.random(persons) < 0.5)
    owner = np.repeat(np.arange(persons), per_person)[:n]
    first = np.r_[True, owner[1:] != owner[:-1]]
    category = rng.integers(0, len(CATEGORIES), persons)[owner]
    valid_from = rng.integers(0, 3650, persons)[owner]  # daily over ten years: ~18,000 metadata rows
    valid_until = category % 3  # as appliance/synth.py: the term and the redress office go with the category
    redress = category % len(REDRESS)
    hi = rng.integers(0, 1 << 64, n, dtype=np.uint64, endpoint=False)
    lo = rng.integers(0, 1 << 32, n, dtype=np.uint32, endpoint=False)
    order = np.lexsort((lo, hi))
    start = date(2016, 1, 1)
    froms = [(start + timedelta(days=d)).isoformat() for d in range(3650)]
    untils = [f"{2027 + y}-12-31" for y in range(3)]
    actions = ["DENY" if c in ("aviation-security", "sanctions") else "REFER" for c in CATEGORIES]
    for at in range(0, n, FILL_STEP):
        part = order[at:at + FILL_STEP]
        tokens = np.empty((len(part), 12), np.uint8)
        tokens[:, :8] = hi[part].astype(">u8").view(np.uint8).reshape(-1, 8)
        tokens[:, 8:] = lo[part].astype(">u4").view(np.uint8).reshape(-1, 4)
        raw = tokens.tobytes()
        yield [(BIG, raw[i * 12:i * 12 + 12], int(o) + 1, "document" if f else "person", CATEGORIES[c],
                actions[c], f"NFL-2024-{int(o) + 10_000_000:08d}", froms[vf], untils[vu], REDRESS[r])
               for i, (o, f, c, vf, vu, r) in enumerate(zip(
                   owner[part].tolist(), first[part].tolist(), category[part].tolist(),
                   valid_from[part].tolist(), valid_until[part].tolist(), redress[part].tolist()))]


def _digest_part(args) -> bytes:
    """The digest lanes of the list's rows with tokens in [low, high): one half, in one process."""
    import sqlite3

    from appliance.records import Entry, TokenKind

    database, low, high = args
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    rows = conn.execute("SELECT token, kind, category, action, reference, valid_from, valid_until, redress"
                        " FROM list_tokens WHERE list_id = ? AND token >= ? AND token < ?", (BIG, low, high))
    entries = (Entry(t, BIG, TokenKind(k), c, Action(a), ref, date.fromisoformat(vf), date.fromisoformat(vu), r)
               for t, k, c, a, ref, vf, vu, r in rows)
    return StateDigest.of(entries).to_bytes()


def child_fill(data: str, n: int) -> None:
    """Registry side, set-up: list 'big' at version 1 holding n synthetic tokens, written straight into
    `list_tokens` (not through `add_entries`: 20 M people through the API would take hours), with the
    real digest of those rows in `versions`, as publishing would have left them."""
    import sqlite3
    from multiprocessing import Pool

    import numpy as np

    from registry.db import make_engine
    from registry.publish import Registry
    from registry.server import RegistryPaths

    paths = RegistryPaths(Path(data))
    registry = Registry(make_engine(paths.database_url), Signer.from_files(paths.signing_key, paths.signing_cert))
    registry.create_list(BIG, name="Big list", authority="Bench authority", legal_basis="Bench Act s.1",
                         scopes=["air_travel"], default_action=Action.DENY, by="bench")
    registry.engine.dispose()
    started = time.perf_counter()
    conn = sqlite3.connect(paths.database)
    conn.execute("PRAGMA synchronous = OFF")
    for rows in _synthetic_rows(n, seed=21):
        conn.executemany("INSERT INTO list_tokens (list_id, token, entry_id, kind, category, action, reference,"
                         " valid_from, valid_until, redress) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
    fill_s = time.perf_counter() - started
    started = time.perf_counter()
    halves = [(str(paths.database), b"", b"\x80" + bytes(11)), (str(paths.database), b"\x80" + bytes(11), b"\xff" * 13)]
    with Pool(2) as pool:
        parts = pool.map(_digest_part, halves)
    digest = StateDigest.from_bytes((np.frombuffer(parts[0], "<u2") + np.frombuffer(parts[1], "<u2")).tobytes())
    digest_s = time.perf_counter() - started
    conn.execute("INSERT INTO versions (list_id, version, published_at, published_by, digest, checksum,"
                 " token_count) VALUES (?, 1, ?, 'bench', ?, ?, ?)",
                 (BIG, int(time.time()), digest.to_bytes(), digest.checksum(), n))
    conn.execute("UPDATE lists SET current_version = 1 WHERE list_id = ?", (BIG,))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(json.dumps({"fill": fill_s, "registry_digest": digest_s,
                      "registry_db": paths.database.stat().st_size}))


def child_build(data: str) -> None:
    """Registry side: `Registry.snapshot` builds the v2 payload file from the database and signs it."""
    from registry.db import make_engine
    from registry.publish import Registry
    from registry.server import RegistryPaths

    paths = RegistryPaths(Path(data))
    registry = Registry(make_engine(paths.database_url), Signer.from_files(paths.signing_key, paths.signing_cert))
    started = time.perf_counter()
    _, payload = registry.snapshot(BIG)
    build_s = time.perf_counter() - started
    print(json.dumps({"build": build_s, "payload": payload.size, "build_hwm_kib": status_kib("VmHWM")}))


INSTALL_PHASES = ("download", "install (verify, decode, merge, build, swap)")


def child_install(device: str, url: str) -> None:
    """Device side: the real agent, over loopback HTTP with the real fetcher, installs the snapshot."""
    from sync.cli import DEVICE_KEY_FILE, ROOT_KEY_FILE
    from sync.device_auth import device_id_for
    from sync.fetcher import DeviceCredentials, RequestsFetcher
    from sync.keys import raw_public_key

    directory = Path(device)
    key = load_key_file(directory / DEVICE_KEY_FILE)
    fetcher = RequestsFetcher(url, DeviceCredentials(device_id_for(raw_public_key(key)), key))
    store = SnapshotStore(snapshot_path(directory))
    state = AgentState(directory)
    agent = SyncAgent(store, state, fetcher, (directory / ROOT_KEY_FILE).read_bytes(), lists=[BIG],
                      config=AgentConfig(first_poll_max_delay=0, long_poll_wait=0, health_interval=0,
                                         compact_hour=None))
    rss_before = status_kib("VmRSS")
    phases = Phases()
    phases.wrap(agent_module, "download_payload", INSTALL_PHASES[0])
    phases.wrap(agent_module, "install_snapshot", INSTALL_PHASES[1])
    started = time.perf_counter()
    try:
        report = agent.run_once()
    finally:
        total = time.perf_counter() - started
        phases.restore()
    if not report.ok or report.snapshots != [BIG]:
        raise SystemExit(f"the agent did not install the snapshot: {report.errors}")
    stats = store.stats()
    generations = [p.name for p in store.file.parent.iterdir()]
    store.close()
    state.close()
    print(json.dumps({"phases": phases.seconds, "total": total, "rss_before_kib": rss_before,
                      "hwm_kib": status_kib("VmHWM"), "tokens": stats["tokens_per_list"],
                      "store_file": stats["file_bytes"], "generation_files": generations}))


def _tree_bytes(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_install(out: Path, sizes: list[int], other_tokens: int) -> list[dict]:
    """Per size: fill a registry, build the snapshot file, serve it, install it on a device (real processes)."""
    import threading

    from appliance.synth import build_snapshot
    from registry.db import make_engine
    from registry.devices import DeviceRegistry
    from registry.publish import Registry
    from registry.server import RegistryPaths
    from sync.cli import DEVICE_KEY_FILE, ROOT_KEY_FILE
    from sync.keys import raw_public_key

    results = []
    for n in sizes:
        directory = out / f"install-{n}"
        data = directory / "registry"
        directory.mkdir(parents=True)
        subprocess.run([GATECHECK, "registry", "init", "--data-dir", str(data)], check=True, capture_output=True)
        log(f"install {n:,}: filling the registry's list_tokens (set-up, not timed as part of the target)")
        result = {"n": n, **_child("--child-fill", str(data), str(n))}
        log(f"install {n:,}: registry builds the snapshot file")
        result.update(_child("--child-build", str(data)))
        paths = RegistryPaths(data)
        engine = make_engine(paths.database_url)
        registry = Registry(engine, Signer.from_files(paths.signing_key, paths.signing_cert))
        device = directory / "device"
        device.mkdir(mode=0o700)
        generate_key_file(device / DEVICE_KEY_FILE)
        shutil.copyfile(paths.root_public, device / ROOT_KEY_FILE)
        devices = DeviceRegistry(engine)
        code = devices.issue_code([BIG], ttl_seconds=3600, by="bench")
        devices.enroll(code, raw_public_key(load_key_file(device / DEVICE_KEY_FILE)), "bench install counter")
        log(f"install {n:,}: device store with {other_tokens:,} tokens of four other lists")
        if other_tokens:
            build_snapshot(snapshot_path(device), other_tokens, seed=SEED)
        with SnapshotStore(snapshot_path(device)) as store:
            store.put_list(dataclasses.replace(registry.list_info(BIG), version=0, state_digest=b""))
        engine.dispose()
        result["device_before"] = _tree_bytes(device)
        port = free_port()
        server = subprocess.Popen([GATECHECK, "registry", "serve", "--data-dir", str(data), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = {"device": 0, "server_hwm_kib": 0}
        done = threading.Event()

        def watch() -> None:  # peak disk of the device directory, peak RSS of the server processes
            while not done.wait(0.25):
                peak["device"] = max(peak["device"], _tree_bytes(device))
                for pid in _server_pids(server.pid):
                    peak["server_hwm_kib"] = max(peak["server_hwm_kib"], _proc_kib(pid, "VmHWM"))

        try:
            _wait_port(port)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            log(f"install {n:,}: the agent downloads and installs it over loopback HTTP")
            result.update(_child("--child-install", str(device), f"http://127.0.0.1:{port}"))
        finally:
            done.set()
            server.terminate()
            server.wait(30)
        if result["tokens"].get(BIG) != n:
            raise SystemExit(f"the device holds {result['tokens'].get(BIG)} tokens of {BIG}, not {n:,}")
        result.update(peak_device=peak["device"], server_hwm_kib=peak["server_hwm_kib"],
                      device_after=_tree_bytes(device), payload_file=_tree_bytes(registry_snapshots(data)),
                      registry_db=result["registry_db"])
        results.append(result)
        shutil.rmtree(directory, ignore_errors=True)
    return results


def registry_snapshots(data: Path) -> Path:
    return data / "snapshots"


def _server_pids(pid: int) -> list[int]:
    """The server process and its children (a pre-forking server has workers)."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    return pids + [int(c) for c in children]


def _proc_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the registry server did not start within 30 s")


def print_install(results: list[dict], other_tokens: int) -> None:
    print(f"## 4. Snapshot build, transfer and install (target: {FULL_TOKENS:,} tokens <= "
          f"{TARGET_INSTALL_S / 60:.0f} min)\n")
    print("Real processes throughout. **Registry set-up (not part of the target):** the list's rows are "
          "written straight into `list_tokens` in token order with synthetic metadata (~2.5 tokens a "
          "person, 5 categories, valid-from spread daily over ten years, valid-until and redress text "
          "tied to the category: ~18,000 distinct metadata rows), not added through `add_entries`, and the list's digest is computed from those rows "
          "(two processes). **Registry build:** `Registry.snapshot` in its own process streams the rows by "
          "keyset pagination into the v2 payload file and signs it. **Transfer and install:** `gatecheck "
          "registry serve` streams the file; the real `SyncAgent` (`RequestsFetcher`, loopback HTTP) in "
          "another process downloads it to disk, verifies size, SHA-256 and lanes, and installs it as a "
          f"new store generation into a store that also holds {other_tokens:,} tokens of four other lists. "
          "Seconds; RSS is each process's VmHWM; disk is bytes on disk in the directory.\n")
    rows = []
    for r in results:
        t = r["phases"]
        rows.append([f"{r['n']:,}", f"{r['fill']:.0f}", f"{r['registry_digest']:.0f}", f"**{r['build']:.1f}**",
                     f"{r['payload'] / 2**20:,.1f}", f"{r['payload'] / r['n']:.2f}",
                     f"{t.get(INSTALL_PHASES[0], 0):.1f}", f"{t.get(INSTALL_PHASES[1], 0):.1f}",
                     f"**{r['total']:.1f}**", f"{r['total'] / r['n'] * 1e6:.2f}",
                     f"{r['build_hwm_kib'] / 1024:.0f}", f"{r['server_hwm_kib'] / 1024:.0f}",
                     f"{r['hwm_kib'] / 1024:.0f}",
                     f"{r['registry_db'] / 2**30:.2f}", f"{r['device_before'] / 2**30:.2f}",
                     f"{r['peak_device'] / 2**30:.2f}", f"{r['device_after'] / 2**30:.2f}",
                     "yes" if r["total"] <= TARGET_INSTALL_S else "no"])
    print(table(["tokens", "set-up: fill s", "set-up: digest s", "registry build s", "payload MiB",
                 "payload bytes/token", "device download s", "device install s", "device total s",
                 "µs / token", "registry build peak RSS MB", "server peak RSS MB", "agent peak RSS MB",
                 "registry db GiB", "device dir before GiB", "device dir peak GiB", "device dir after GiB",
                 "<= 5 min"], rows) + "\n")


# --------------------------------------------------------------------------- report


def run_polls(world: RegistryWorld, args) -> dict:
    log(f"polls: enrolling {args.devices} devices")
    devices = world.enroll(args.devices)
    procs = [int(p) for p in args.load_procs.split(",")]
    rows = bench_polls(world, devices, procs, args.duration, args.connections)
    profile, areas = profile_poll(world, devices)
    return {"rows": rows, "breakdown": poll_cost_breakdown(world, devices), "profile": profile, "areas": areas,
            "workers": len(world.server_pids()) - 1}


def print_polls(args, polls: dict) -> None:
    print(f"## 2. No-change polls (target: >= {TARGET_POLLS:,}/s on 2 cores)\n")
    print(f"`gatecheck registry serve` (gunicorn, {polls['workers']} worker processes x {args.threads} threads, "
          f"SQLite) on loopback; {args.devices} enrolled devices in rotation. Each load process keeps "
          f"{args.connections} keep-alive connections busy with signed `GET /v1/lists/nfl/updates?since=<head>` "
          f"(wait=0) back to back for {args.duration:.0f} s; requests are signed before the run (valid for the "
          f"300 s skew window) and sent as raw bytes, so the load generator stays cheap. **It runs on the same "
          f"{os.cpu_count()} cores as the server**, so polls/s is what the server reaches while sharing them. "
          "'server CPU' is the server processes' CPU seconds per wall second (1.0 = one core); 'load µs / poll' "
          "is the load processes' own CPU per poll; 'load avg' is the 1-minute load average before the row "
          "(other jobs on the machine included).\n")
    print(table(["load procs", "connections", "polls", "non-200", "polls/s", "p50 ms", "p99 ms",
                 "server CPU (cores)", "server CPU µs / poll (user + kernel)", "load µs / poll", "load avg",
                 ">= 2,000/s"],
                polls["rows"]) + "\n")
    print("Where one poll's time goes (in-process, µs per call, averaged over 1,000 calls):\n")
    print(table(["piece", "µs"], polls["breakdown"]) + "\n")
    print("cProfile of 1,500 in-process no-change polls (WSGI calls, no HTTP server), by own time:\n")
    print(table(["function", "calls / poll", "own µs / poll", "cumulative µs / poll", "share of own time"],
                polls["profile"]) + "\n")
    print("The same profile, own time by library:\n")
    print(table(["library", "own µs / poll (profiled)", "share"], polls["areas"]) + "\n")


def print_propagation(propagation: dict) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100_000, help="changes per delta")
    parser.add_argument("--base-tokens", type=int, default=200_000, help="tokens of the list before the deltas")
    parser.add_argument("--store-tokens", type=int, default=1_000_000,
                        help="synthetic tokens of other lists in the device store")
    parser.add_argument("--devices", type=int, default=500, help="enrolled devices for the poll load")
    parser.add_argument("--load-procs", default="1,2,3", help="load-generator process counts, one row each")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections per load process")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per poll-load row")
    parser.add_argument("--workers", type=int, default=None,
                        help="registry server processes (default: `registry serve`'s, one per core)")
    parser.add_argument("--threads", type=int, default=16, help="threads per registry server process")
    parser.add_argument("--apply-only", action="store_true", help="run section 1 (delta apply) alone")
    parser.add_argument("--polls-only", action="store_true", help="run section 2 (no-change polls) alone")
    parser.add_argument("--samples", type=int, default=30, help="propagation samples")
    parser.add_argument("--propagation-only", action="store_true", help="run section 3 (propagation) alone")
    parser.add_argument("--install-sizes", default="250000,1000000", help="snapshot sizes to install")
    parser.add_argument("--install-other-tokens", type=int, default=1_000_000,
                        help="tokens of other lists in the device store a snapshot is installed into")
    parser.add_argument("--install-only", action="store_true", help="run section 4 (snapshot install) alone")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/sync")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child-fill", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-build", help=argparse.SUPPRESS)
    parser.add_argument("--child-install", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_fill:
        return child_fill(args.child_fill[0], int(args.child_fill[1]))
    if args.child_build:
        return child_build(args.child_build)
    if args.child_install:
        return child_install(*args.child_install)

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    begun = time.perf_counter()
    print("# Gatecheck sync benchmark\n")
    print(machine() + "\n")
    if args.install_only:
        sizes = [int(s) for s in args.install_sizes.split(",") if s]
        print_install(bench_install(args.out, sizes, args.install_other_tokens), args.install_other_tokens)
        print(f"_Total run time {time.perf_counter() - begun:.0f} s._")
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)
        return
    if args.polls_only:
        log("registry: init, list, server")
        world = RegistryWorld(args.out, args.threads, args.workers)
        try:
            polls = run_polls(world, args)
        finally:
            world.stop()
        print_polls(args, polls)
        print(f"_Total run time {time.perf_counter() - begun:.0f} s._")
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)
        return

    if not args.propagation_only:
        apply_rows = bench_apply(args.out, args.changes, args.base_tokens, args.store_tokens)
        print_apply(args, apply_rows)
    if args.apply_only:
        print(f"_Total run time {time.perf_counter() - begun:.0f} s._")
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)
        return

    log("registry: init, list, server")
    world = RegistryWorld(args.out, args.threads, args.workers)
    try:
        polls = None if args.propagation_only else run_polls(world, args)
        propagation = bench_propagation(world, args.out, args.samples)
    finally:
        world.stop()
    agent = propagation["agent"]
    try:
        agent.wait(10)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    if polls is not None:
        print_polls(args, polls)
    print_propagation(propagation)
    if args.propagation_only:
        print(f"_Total run time {time.perf_counter() - begun:.0f} s._")
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)
        return

    sizes = [int(s) for s in args.install_sizes.split(",") if s]
    print_install(bench_install(args.out, sizes, args.install_other_tokens), args.install_other_tokens)
    print(f"_Total run time {time.perf_counter() - begun:.0f} s._")
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
