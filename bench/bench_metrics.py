"""Metrics benchmark: what /metrics costs a counter and a registry, and what counting costs a scan.

Run alone from the repository root::

    .venv/bin/python bench/bench_metrics.py                   # a 2 M-token store, 500 registry devices
    .venv/bin/python bench/bench_metrics.py --tokens 50M      # reuses bench_verdict's 50 M store if present
    .venv/bin/python bench/bench_metrics.py --quick           # fewer samples

Prints markdown on stdout (progress on stderr). The counter's data dir is
``bench/out/metrics/<tokens>/`` (gitignored): its snapshot is reused, else
hard-linked from ``bench/out/verdict/<tokens>/`` (bench_verdict.py, same
seed; opened read-only here, so the shared file is never written), else
built with ``appliance.synth``.

What it measures
----------------
* **Scrape, in process.** ``CounterMetrics.render()`` of the app's
  CounterState: the scan counters, the histogram, and the scrape-time reads
  of the snapshot's lists (with ``stats()``), sync.db and the outbox (a
  sync.db and one queued report are written first, so every source is read).
* **Scrape over HTTP.** ``gatecheck serve`` as a real subprocess, ``GET
  /metrics`` with the metrics token on one keep-alive session.
* **Per scan.** ``CounterMetrics.observe`` alone in a tight loop; then
  ``CounterState.check`` (parse, lookup, rules, journal append) alternating
  scan by scan between the real metrics and a do-nothing stand-in, so both
  halves see the same load and the same payloads (each payload twice in a
  row, the order of the halves alternating); the ``perf_counter`` pair
  around the check is in both halves.
* **Registry scrape.** A registry with ``--devices`` enrolled devices, each
  with a health report for 3 lists and verdict counts, scraped through the
  Flask app with an IT admin's token.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import requests  # noqa: E402

from bench_snapshot import SEED, percentile  # noqa: E402
from verdict_serving import start_server  # noqa: E402

from appliance.config import DeviceConfig  # noqa: E402
from appliance.outbox import Outbox  # noqa: E402
from appliance.snapshot import SnapshotStore, snapshot_path  # noqa: E402
from appliance.synth import build_snapshot, token_key  # noqa: E402
from appliance.web.state import CounterState  # noqa: E402
from sync.agent_state import AgentState  # noqa: E402

OUT = ROOT / "bench" / "out" / "metrics"
VERDICT_OUT = ROOT / "bench" / "out" / "verdict"
SAMPLES = ROOT / "appliance" / "samples"
PAYLOADS = ("passport-td3.txt", "licence-on.txt", "licence-ca.txt", "idcard-td1.txt", "boarding-pass.txt")


def log(message: str) -> None:
    print(f"[bench_metrics] {message}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    text = text.strip().upper().replace("_", "")
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def summary_ms(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{percentile(ms, 50):.3f} | {percentile(ms, 99):.3f} | {max(ms):.3f}"


# --------------------------------------------------------------------------- the counter


def synthetic_tokens(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        with SnapshotStore(path, readonly=True) as store:
            lists = store.lists()
            tokens = store.stats()["tokens"]
    except Exception:  # a foreign or damaged file: not ours to reuse
        return None
    if not lists or any(info.token_key != token_key(info.list_id, SEED) for info in lists):
        return None
    return tokens


def ensure_data_dir(n_tokens: int) -> tuple[Path, str]:
    data_dir = OUT / str(n_tokens)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = snapshot_path(data_dir)
    near = lambda have: have is not None and n_tokens <= have <= n_tokens + 100  # noqa: E731
    if near(synthetic_tokens(path)):
        return data_dir, "reused"
    for stale in data_dir.glob("snapshot.db*"):
        stale.unlink()
    shared = snapshot_path(VERDICT_OUT / str(n_tokens))
    wal = shared.with_name(shared.name + "-wal")
    if near(synthetic_tokens(shared)) and (not wal.exists() or wal.stat().st_size == 0):
        os.link(shared, path)
        return data_dir, f"hard link to {shared.relative_to(ROOT)}"
    log(f"building a synthetic snapshot of {n_tokens:,} tokens")
    build_snapshot(path, n_tokens, seed=SEED, overwrite=True)
    return data_dir, "built"


def fill_other_sources(data_dir: Path) -> None:
    """A sync.db with a recent success and one queued report: every scrape-time source has rows."""
    with AgentState(data_dir) as state:
        state.record_success(time.time(), next_poll_at=time.time() + 60)
    with Outbox(data_dir) as outbox:
        outbox.enqueue({"kind": "incident", "category": "smoking_on_board"},
                       "00000000-0000-4000-8000-000000000001", at=datetime.now(timezone.utc) - timedelta(minutes=5))


class NullMetrics:
    """The stand-in for the 'without' half: same call, nothing counted."""

    def observe(self, decision, seconds) -> None:
        pass


def bench_counter(data_dir: Path, scrapes: int, scans: int) -> dict:
    state = CounterState(DeviceConfig(data_dir=data_dir))
    real = state.metrics
    try:
        real.render()  # warm: the first read opens pages
        render = []
        for _ in range(scrapes):
            started = time.perf_counter()
            body, _ = real.render()
            render.append(time.perf_counter() - started)
        size = len(body)

        payloads = [(SAMPLES / name).read_bytes() for name in PAYLOADS]
        decision = state.check(payloads[0], channel="scanner").decision
        n = 200_000
        started = time.perf_counter()
        for _ in range(n):
            real.observe(decision, 0.001)
        observe_ns = (time.perf_counter() - started) / n * 1e9

        with_metrics, without = [], []
        null = NullMetrics()
        for i in range(scans * 2):
            # Each payload is scanned twice in a row, once per half; the second scan of a pair finds
            # its pages warm, so which half goes first alternates from pair to pair.
            use_real = (i % 2 == 0) == ((i // 2) % 2 == 0)
            state.metrics = real if use_real else null  # type: ignore[assignment]
            payload = payloads[(i // 2) % len(payloads)]
            started = time.perf_counter()
            state.check(payload, channel="scanner")
            (with_metrics if use_real else without).append(time.perf_counter() - started)
        state.metrics = real
        state.journal.flush()
    finally:
        state.close()
    return {"render": render, "size": size, "observe_ns": observe_ns, "with": with_metrics, "without": without}


def bench_http(data_dir: Path, scrapes: int) -> list[float]:
    proc, url, _, output = start_server(data_dir)
    try:
        token = (data_dir / "metrics-token").read_text().strip()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        session.get(url + "/metrics", timeout=30).raise_for_status()
        times = []
        for _ in range(scrapes):
            started = time.perf_counter()
            response = session.get(url + "/metrics", timeout=30)
            response.content
            times.append(time.perf_counter() - started)
            response.raise_for_status()
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --------------------------------------------------------------------------- the registry


def bench_registry(n_devices: int, scrapes: int) -> dict:
    from click.testing import CliRunner
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from appliance.records import Action
    from registry.cli import registry as registry_cli
    from registry.server import create_app
    from sync.enrolment import EnrolmentProfile
    from sync.keys import raw_public_key

    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    try:
        data_dir = work / "registry"
        assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
        app = create_app({"DATA_DIR": str(data_dir)})
        svc, ui = app.extensions["gatecheck_registry"], app.extensions["gatecheck_ui"]
        lists = ["nfl", "travel-ban", "sanctions"]
        for list_id in lists:
            svc.registry.create_list(list_id, name=list_id, authority="bench", legal_basis="bench",
                                     scopes=["air_travel"], default_action=Action.DENY, by="bench")
        ui.accounts.create_user("prometheus", "a long enough passphrase", roles=["it_admin"], by="bench")
        token = ui.accounts.issue_token("prometheus", label="bench", by="bench")
        rng = random.Random(SEED)
        log(f"enrolling {n_devices} devices with health reports")
        now = time.time()
        for i in range(n_devices):
            code = svc.devices.issue_code(EnrolmentProfile.build(lists, organisation="DA"), ttl_seconds=3600,
                                          by="bench")
            device = svc.devices.enroll(code, raw_public_key(Ed25519PrivateKey.generate()), f"counter {i}")
            beat = datetime.fromtimestamp(now - rng.randint(0, 7200), timezone.utc).isoformat()
            svc.devices.record_health(device.device_id, {
                "clock": datetime.fromtimestamp(now, timezone.utc).isoformat(), "app_version": "0.1.0",
                "scanner": {"state": "connected", "detail": "serial"},
                "lists": {list_id: {"version": 0, "tokens": 1000, "heartbeat_at": beat} for list_id in lists},
                "failures": rng.choice([0, 0, 0, 2]), "outbox_pending": rng.choice([0, 0, 1]),
                "disk_free_bytes": 5 << 30,
                "verdicts_24h": {"CLEAR": rng.randint(0, 900), "REFER": rng.randint(0, 30), "DENY": rng.randint(0, 3),
                                 "UNREADABLE": rng.randint(0, 20)}})
            svc.devices.mark_seen(device.device_id)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        first = client.get("/metrics", headers=headers)
        assert first.status_code == 200, first.get_data(as_text=True)[:300]
        times = []
        for _ in range(scrapes):
            started = time.perf_counter()
            response = client.get("/metrics", headers=headers)
            times.append(time.perf_counter() - started)
        body = response.get_data(as_text=True)
        series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        svc.registry.engine.dispose()
        return {"times": times, "bytes": len(body), "series": series}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="2M", help="counter store size (default 2M)")
    parser.add_argument("--devices", type=int, default=500, help="registry devices (default 500)")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--no-registry", action="store_true")
    args = parser.parse_args()
    n_tokens = parse_size(args.tokens)
    scrapes, scans = (50, 300) if args.quick else (300, 2000)

    data_dir, source = ensure_data_dir(n_tokens)
    fill_other_sources(data_dir)
    gc.collect()
    log(f"counter: {n_tokens:,} tokens ({source}); {scrapes} scrapes, {scans} scans per half")
    counter = bench_counter(data_dir, scrapes, scans)
    log("counter over HTTP")
    http = bench_http(data_dir, scrapes)
    registry = None if args.no_registry else bench_registry(args.devices, max(20, scrapes // 10))

    load = os.getloadavg()[0]
    print(f"## Metrics — `bench/bench_metrics.py --tokens {args.tokens}` "
          f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {load:.2f} at the end)\n")
    print(f"Counter store: {n_tokens:,} tokens ({source}).\n")
    print("| what | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print(f"| scrape in process (`render()`, {counter['size']:,} bytes) | {scrapes} | {summary_ms(counter['render'])} |")
    print(f"| scrape over HTTP (`GET /metrics`) | {scrapes} | {summary_ms(http)} |")
    print(f"| `CounterState.check` with metrics | {scans} | {summary_ms(counter['with'])} |")
    print(f"| `CounterState.check` with a no-op observer | {scans} | {summary_ms(counter['without'])} |")
    if registry:
        print(f"| registry scrape, {args.devices} devices x 3 lists ({registry['series']:,} series, "
              f"{registry['bytes']:,} bytes) | {len(registry['times'])} | {summary_ms(registry['times'])} |")
    print()
    diff = statistics.median(counter["with"]) - statistics.median(counter["without"])
    print(f"`CounterMetrics.observe` alone: {counter['observe_ns']:.0f} ns a call (200,000 calls). "
          f"Median check with minus without: {diff * 1e6:+.1f} µs.")
    print(json.dumps({"observe_ns": round(counter["observe_ns"])}), file=sys.stderr)


if __name__ == "__main__":
    main()
