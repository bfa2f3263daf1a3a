"""Verdict benchmark: scan -> verdict latency in process and over local HTTP, RSS, bytes per token.

Run alone from the repository root::

    .venv/bin/python bench/bench_verdict.py                    # 1 M, 10 M and 50 M tokens
    .venv/bin/python bench/bench_verdict.py --sizes 1M,10M     # some sizes only
    .venv/bin/python bench/bench_verdict.py --quick            # 1 M tokens, fewer scans
    .venv/bin/python bench/bench_verdict.py --quick --burn 1   # with one CPU-burning process
    git archive HEAD~3 | tar -x -C /tmp/before                # then, before against after:
    .venv/bin/python bench/bench_verdict.py --sizes 50M --compare-with /tmp/before

Prints markdown on stdout (progress on stderr). Each size gets a data dir
``bench/out/verdict/<tokens>/`` (gitignored) that is kept between runs: its
synthetic snapshot is reused when it already holds the right number of
tokens (a 50 M build takes ~40 s), or copied from one that
``bench/bench_snapshot.py --keep`` left behind (same seed), else built.

What it does, at each size
--------------------------
* **Snapshot.** ``appliance.synth.build_snapshot`` (seed ``SEED``), then the
  bundled sample documents' real tokens (``token_key(list_id, SEED)``, the
  synthetic lists' keys) are added with ``apply_batch``, so that scans of
  them hit; every list gets a fresh heartbeat, so no verdict is stale. The
  file is read once first, so it sits in the OS page cache (warm; the cold
  case is in bench_snapshot.py), and ``os.sync()`` flushes what a fresh
  build left to write back before anything is timed.
* **Cases.** An airline counter (scope ``air_travel``: no-fly, travel-ban
  and sanctions are in scope, hotel-safety is not), cycling through:
  a passport whose document token is on no-fly (DENY); an Ontario licence
  whose name + birth date is on sanctions (REFER, a person hit); a
  California licence listed on the hotel list only (CLEAR, out of scope);
  the same licence with a new random number on every scan (CLEAR, a fresh
  miss each time, so SQLite's own page cache does not help); an expired TD1
  ID card (REFER, document problem, no hit) and a boarding pass alone
  (REFER, weak identity). Hits are the first two.
* **In process.** ``Checker.check`` as the counter runs it: parse, tokens,
  snapshot reads in one read transaction, verdict rules and the journal
  append, with each journal mode in ``JOURNAL_MODES``, alternating check by
  check: ``deferred`` (what ``gatecheck serve`` opens: commit, fsync just
  behind on a thread) and ``full`` (an fsync inside every append). After
  each check, outside its time, the bench waits until the record is on disk
  ('on disk'). The store is opened read-only, as the counter does. The
  store and journal are handed to the Checker inside thin timing wrappers
  that delegate every call, to split out the snapshot reads (BEGIN,
  ``lists()``, ``lookup()``, ``clearances()``, COMMIT) and the journal
  append of the same checks. perf_counter_ns per check, garbage collector
  on (a counter runs with it).
* **Over HTTP** (bench/verdict_serving.py). ``gatecheck serve --port 0`` as a real subprocess on the
  same data dir; one ``requests.Session`` (keep-alive) POSTs the raw
  payloads to ``/api/scan`` with the bearer token; time per request until
  the whole response is read. An ``/api/events`` stream read on a thread
  gives the time until each scan's event arrives (sent once on disk: what
  the screen waits for). ``--compare-with TREE`` also starts the server of
  another source tree (an older commit from ``git archive``) on a twin data
  dir holding a hard link to the same snapshot, and the two servers take
  turns scan by scan: a before/after comparison under the same load.
* **Camera frames** (unless ``--no-camera``): ``CAMERA_FRAMES`` posted as
  multipart images after the raw scans, from a 1280x720 JPEG to the largest
  frame accepted and a frame with no code (the decoder's worst case), then
  four of those at once; time per request and the server's VmHWM after
  each kind.
* **RSS.** VmRSS and VmHWM from ``/proc/<pid>/status`` of the server after
  its start, after the raw scans and after the camera frames.
* **Pauses** (``--pause-ms MS``): a pause after each scan (in process,
  after its record is on disk). 0, the default, sends scans back to back,
  so each append can land on the previous one's fsync as it ends; a
  counter scans seconds apart.
* **Background load** (``--burn N``): N processes spinning on a core each
  while everything is measured, at niceness ``--burn-nice`` (0: as urgent
  as the counter; 19: background work a device ranks below it); the
  1-minute load average is recorded with each table.
* **Bytes per token.** ``SnapshotStore.stats()`` after the sample entries
  were added.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_snapshot import SEED, machine, table  # noqa: E402
from verdict_serving import log, proc_kib, run_http, summary  # noqa: E402

from appliance.checker import Checker  # noqa: E402
from appliance.config import DeviceConfig  # noqa: E402
from appliance.documents import parse_payload  # noqa: E402
from appliance.journal import Journal  # noqa: E402
from appliance.records import Action, Batch, Entry, TokenKind  # noqa: E402
from appliance.snapshot import SnapshotStore, snapshot_path  # noqa: E402
from appliance.synth import token_key  # noqa: E402
from sync.identity import identity_from_document  # noqa: E402

TARGET_INPROC_P99_MS = 5.0
TARGET_HTTP_P99_MS = 15.0
TARGET_BYTES = 24.0
TARGET_RSS_MB = 150.0
OUT = ROOT / "bench" / "out" / "verdict"
SAMPLES = ROOT / "appliance" / "samples"
KEPT_SNAPSHOTS = ROOT / "bench" / "out" / "snapshot"  # bench_snapshot.py --keep
SCOPES = ("air_travel",)


def parse_size(text: str) -> int:
    text = text.strip().upper().replace("_", "")
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


# --------------------------------------------------------------------------- snapshot


def child_build(path: str, n_tokens: int) -> None:
    """Build in a child process: its peak RSS is the build's own, not this script's."""
    from appliance.synth import build_snapshot

    started = time.perf_counter()
    build_snapshot(path, n_tokens, seed=SEED, overwrite=True)
    print(json.dumps({"seconds": time.perf_counter() - started, "hwm_kib": proc_kib("self", "VmHWM")}))


def synthetic_tokens(path: Path) -> int | None:
    """Tokens of a synthetic snapshot made with SEED, or None if ``path`` is not one."""
    if not path.is_file():
        return None
    try:
        with SnapshotStore(path, readonly=True) as store:
            lists = store.lists()
            tokens = store.stats()["tokens"]
    except Exception:  # any damage or a foreign file: rebuild
        return None
    if not lists or any(info.token_key != token_key(info.list_id, SEED) for info in lists):
        return None
    return tokens


def ensure_snapshot(n_tokens: int, data_dir: Path) -> dict:
    """A synthetic snapshot of ~n_tokens in data_dir: reused, copied or built."""
    path = snapshot_path(data_dir)
    slack = len(SAMPLE_ENTRIES) * 3  # the sample entries this script adds on top
    have = synthetic_tokens(path)
    if have is not None and n_tokens <= have <= n_tokens + slack:
        return {"source": "reused"}
    kept = KEPT_SNAPSHOTS / f"snapshot-{n_tokens}.db"
    if synthetic_tokens(kept) == n_tokens:
        log(f"copying {kept.relative_to(ROOT)}")
        for stale in data_dir.glob("snapshot.db*"):
            stale.unlink()
        shutil.copyfile(kept, path)
        return {"source": "copied from bench_snapshot"}
    log(f"building a synthetic snapshot of {n_tokens:,} tokens")
    proc = subprocess.run([sys.executable, __file__, "--child-build", str(path), str(n_tokens)],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"synthetic build of {n_tokens:,} tokens failed")
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"source": "built", **built}


@dataclass(frozen=True)
class SampleEntry:
    """A sample document listed on a synthetic list under that list's real key."""

    sample: str
    list_id: str
    kind: TokenKind
    action: Action
    reference: str


SAMPLE_ENTRIES = (
    SampleEntry("passport-td3.txt", "no-fly", TokenKind.DOCUMENT, Action.DENY, "NFL-2024-90000001"),
    SampleEntry("licence-on.txt", "sanctions", TokenKind.PERSON, Action.DENY, "CTS-2023-90000002"),
    SampleEntry("licence-ca.txt", "hotel-safety", TokenKind.DOCUMENT, Action.REFER, "HSR-2022-90000003"),
)


def prepare(data_dir: Path) -> dict:
    """Add the sample entries (once), give every list a fresh heartbeat, return stats()."""
    now = datetime.now(timezone.utc)
    today = now.date()
    with SnapshotStore(snapshot_path(data_dir)) as store:
        for spec in SAMPLE_ENTRIES:
            doc = parse_payload((SAMPLES / spec.sample).read_bytes(), today=today)
            keyed = identity_from_document(doc).tokens(token_key(spec.list_id, SEED))
            tokens = [keyed.document] if spec.kind is TokenKind.DOCUMENT else list(keyed.persons)
            held = {e.token for e in store.lookup(tokens) if e.list_id == spec.list_id}
            if held >= set(tokens):
                continue
            info = store.get_list(spec.list_id)
            store.apply_batch(Batch(
                list_id=spec.list_id, from_version=info.version, to_version=info.version + 1,
                add=tuple(Entry(token, spec.list_id, spec.kind, "BENCH-SAMPLE", spec.action,
                                spec.reference, today - timedelta(days=30), today + timedelta(days=365),
                                "Redress text of the benchmark's sample entry")
                          for token in tokens),
                state_digest=os.urandom(32), signed_at=now, valid_until=now + timedelta(days=1),
            ))
        for info in store.lists():
            store.record_heartbeat(info.list_id, signed_at=None, valid_until=None, heartbeat_at=now)
    with SnapshotStore(snapshot_path(data_dir), readonly=True) as store:
        return store.stats()


def warm_page_cache(path: Path) -> None:
    """Read the file once so the OS caches it (not this process: SQLite does not mmap it)."""
    with open(path, "rb", buffering=0) as fh:
        while fh.read(1 << 20):
            pass


# --------------------------------------------------------------------------- scan cases


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    hit: bool
    payloads: tuple[bytes, ...]  # cycled through, one per scan


def cases(rng: random.Random, fresh: int) -> list[Case]:
    def raw(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    ca = raw("licence-ca.txt")
    # Same length as Y4821937, so the AAMVA header's offsets stay right; the
    # parser accepts it and every scan is a document no one has scanned yet.
    fresh_ca = tuple(ca.replace(b"Y4821937", b"Y%07d" % rng.randrange(10**7)) for _ in range(fresh))
    return [
        Case("passport TD3, document token on no-fly", "DENY", True, (raw("passport-td3.txt"),)),
        Case("Ontario licence, name + DOB on sanctions", "REFER", True, (raw("licence-on.txt"),)),
        Case("California licence, listed only out of scope", "CLEAR", False, (ca,)),
        Case("California licence, new number each scan", "CLEAR", False, fresh_ca),
        Case("TD1 ID card, expired, not listed", "REFER", False, (raw("idcard-td1.txt"),)),
        Case("boarding pass alone", "REFER", False, (raw("boarding-pass.txt"),)),
    ]


def schedule(all_cases: list[Case], total: int) -> list[tuple[int, bytes]]:
    """Round robin over the cases, so load on the machine falls on all of them alike."""
    out = []
    per_case = -(-total // len(all_cases))
    for i in range(per_case):
        for c, case in enumerate(all_cases):
            out.append((c, case.payloads[i % len(case.payloads)]))
    return out


# --------------------------------------------------------------------------- in process


class _TimedRead:
    def __init__(self, owner: "TimedStore", inner) -> None:
        self.owner, self.inner = owner, inner

    def __enter__(self):
        t0 = time.perf_counter_ns()
        self.inner.__enter__()
        self.owner.ns += time.perf_counter_ns() - t0
        return self.owner

    def __exit__(self, *exc):
        t0 = time.perf_counter_ns()
        result = self.inner.__exit__(*exc)
        self.owner.ns += time.perf_counter_ns() - t0
        return result


class TimedStore:
    """The real SnapshotStore, with the time spent in it added up (``ns``; ``lookup_ns``)."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store, self.ns, self.lookup_ns = store, 0, 0

    def read(self):
        return _TimedRead(self, self.store.read())

    def lists(self):
        t0 = time.perf_counter_ns()
        out = self.store.lists()
        self.ns += time.perf_counter_ns() - t0
        return out

    def lookup(self, tokens):
        t0 = time.perf_counter_ns()
        out = self.store.lookup(tokens)
        spent = time.perf_counter_ns() - t0
        self.ns += spent
        self.lookup_ns += spent
        return out

    def clearances(self, tokens):
        t0 = time.perf_counter_ns()
        out = self.store.clearances(tokens)
        self.ns += time.perf_counter_ns() - t0
        return out


class TimedJournal:
    """The real Journal, with the time spent in ``append`` added up and the last seq kept."""

    def __init__(self, journal: Journal) -> None:
        self.journal, self.ns, self.seq = journal, 0, 0

    def append(self, record, **kwargs):
        t0 = time.perf_counter_ns()
        out = self.journal.append(record, **kwargs)
        self.ns += time.perf_counter_ns() - t0
        self.seq = out.seq
        return out


#: Journal configurations compared in process: name -> Journal(deferred_sync=...).
#: "deferred" is what `gatecheck serve` runs; "full" fsyncs inside every append.
JOURNAL_MODES = {"deferred": True, "full": False}


def run_in_process(data_dir: Path, all_cases: list[Case], n_checks: int,
                   pause: float = 0.0) -> dict[str, dict]:
    """Checker.check with each journal mode, alternating check by check, so load hits both alike.

    After each check (outside its time) the bench waits until the record is
    on disk: a counter's scans are seconds apart, so each fsync ends before
    the next scan; 'on disk' is the time from the check's start to then.
    """
    store = TimedStore(SnapshotStore(snapshot_path(data_dir), readonly=True))
    config = DeviceConfig(data_dir=data_dir, scopes=frozenset(SCOPES))
    runs = {}
    for mode, deferred in JOURNAL_MODES.items():
        journal_dir = data_dir / f"inproc-{mode}"
        shutil.rmtree(journal_dir, ignore_errors=True)
        journal_dir.mkdir()
        journal = TimedJournal(Journal(journal_dir, deferred_sync=deferred))
        runs[mode] = {"journal": journal, "checker": Checker(store, journal, config),  # type: ignore[arg-type]
                      "verdicts": {c: set() for c in range(len(all_cases))},
                      "cases": {c: [] for c in range(len(all_cases))},
                      "total": [], "snap": [], "lookups": [], "append": [], "rest": [], "durable": []}
        for c, payload in schedule(all_cases, 60):  # warm-up: imports, statement cache
            runs[mode]["checker"].check(payload)
    load = os.getloadavg()[0]
    modes = list(JOURNAL_MODES)
    for i, (c, payload) in enumerate(schedule(all_cases, n_checks)):
        for mode in (modes if i % 2 == 0 else modes[::-1]):
            run = runs[mode]
            journal = run["journal"]
            store.ns = store.lookup_ns = journal.ns = 0
            t0 = time.perf_counter_ns()
            decision = run["checker"].check(payload)
            spent = time.perf_counter_ns() - t0
            journal.journal.wait_durable(journal.seq)
            run["durable"].append(time.perf_counter_ns() - t0)
            if pause:
                time.sleep(pause)
            run["verdicts"][c].add(decision.verdict.value)
            run["cases"][c].append(spent)
            run["total"].append(spent)
            run["snap"].append(store.ns)
            run["lookups"].append(store.lookup_ns)
            run["append"].append(journal.ns)
            run["rest"].append(spent - store.ns - journal.ns)
    store.store.close()
    out = {}
    for mode, run in runs.items():
        run["journal"].journal.close()
        per_case = run["cases"]
        hits = [t for c, ts in per_case.items() if all_cases[c].hit for t in ts]
        misses = [t for c, ts in per_case.items() if not all_cases[c].hit for t in ts]
        out[mode] = {"load": load, "all": summary(run["total"]), "hits": summary(hits),
                     "misses": summary(misses), "snapshot": summary(run["snap"]),
                     "lookup": summary(run["lookups"]), "journal": summary(run["append"]),
                     "rest": summary(run["rest"]), "durable": summary(run["durable"]),
                     "cases": {c: summary(ts) for c, ts in per_case.items()},
                     "verdicts": {c: sorted(v) for c, v in run["verdicts"].items()}}
    return out


# --------------------------------------------------------------------------- report


def ms(s: dict) -> str:
    return f"{s['p50']:.2f} / {s['p99']:.2f}"


def size_label(n: int) -> str:
    return f"{n / 1e6:g} M" if n >= 1_000_000 else f"{n:,}"


def mb(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def mark(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def report(results: list[dict], all_cases: list[Case]) -> None:
    big = max(r["tokens"] for r in results)
    print("## Targets\n")
    print("In process: `Checker.check` with the journal as `gatecheck serve` opens it "
          "(deferred sync); the per-commit fsync (FULL) it replaced in brackets. RSS: the server's "
          "peak over raw scans and camera frames.\n")
    rows = []
    for r in results:
        n = r["tokens"]
        inproc, full = r["inproc"]["deferred"]["all"]["p99"], r["inproc"]["full"]["all"]["p99"]
        http = r["http"]["all"]["p99"]
        bpt = r["stats"]["bytes_per_token"]
        rss = r["http"]["final_hwm"] / 1024  # the peak, >= VmRSS at any moment
        rows.append([f"{n:,}", f"{inproc:.2f} ({mark(inproc <= TARGET_INPROC_P99_MS)}) [FULL {full:.2f}]",
                     f"{http:.2f} ({mark(http <= TARGET_HTTP_P99_MS)})",
                     f"{bpt:.2f} ({mark(bpt <= TARGET_BYTES)})",
                     f"{rss:.0f} ({mark(rss <= TARGET_RSS_MB)})"])
    print(table(["tokens", f"verdict p99 in process, ms (<= {TARGET_INPROC_P99_MS:g})",
                 f"scan -> verdict p99 over HTTP, ms (<= {TARGET_HTTP_P99_MS:g})",
                 f"bytes/token (<= {TARGET_BYTES:g})",
                 f"server RSS MB, peak (VmHWM) (<= {TARGET_RSS_MB:g})"], rows) + "\n")
    for r in results:
        other = r["http"]["compare"]
        if other:
            print(f"Compared server (`{other['label']}`), same run: scan -> verdict p99 "
                  f"{other['all']['p99']:.2f} ms over HTTP.\n")
    if big < 50_000_000:
        print(f"The latency targets are set at 50,000,000 tokens; this run's largest snapshot "
              f"has {big:,}.\n")

    print("## Verdict latency in process: `Checker.check` (ms, p50 / p99)\n")
    print(f"{results[0]['inproc']['deferred']['all']['n']:,} checks per size and journal mode, "
          "round robin over the cases below, the two modes alternating check by check. 'snapshot "
          "reads' is the time inside the store (read transaction, lists(), lookup(), clearances()); "
          "'lookup()' the lookup call alone; 'journal append' the hash-chained insert (with FULL, "
          "its fsync); 'rest' parse, tokens (HMAC per in-scope list) and the verdict rules. "
          "'on disk' is from the check's start until the record is fsynced (not part of the "
          "verdict's time with deferred sync: the screen waits for it, the API answer does not).\n")
    rows = []
    for r in results:
        for mode in JOURNAL_MODES:
            p = r["inproc"][mode]
            rows.append([f"{r['tokens']:,}", mode, ms(p["all"]), f"{p['all']['max']:.1f}", ms(p["hits"]),
                         ms(p["misses"]), ms(p["snapshot"]), ms(p["lookup"]), ms(p["journal"]),
                         ms(p["rest"]), ms(p["durable"]), f"{p['load']:.2f}"])
    print(table(["tokens", "journal", "all checks", "max", "hits", "misses", "snapshot reads",
                 "lookup()", "journal append", "rest", "on disk", "load avg (1 min)"], rows) + "\n")

    print("## Scan -> verdict over local HTTP: `POST /api/scan` to `gatecheck serve` (ms, p50 / p99)\n")
    print(f"{results[0]['http']['all']['n']:,} scans per size, one keep-alive session, raw "
          "payloads as `application/octet-stream`, timed until the whole response is read. "
          "'event' is from the POST's start until the scan's event arrives on an open "
          "`/api/events` stream, which sends only records already on disk: what the screen waits "
          "for. With --compare-with, the two servers take turns, scan by scan.\n")
    rows = []
    for r in results:
        for h in filter(None, (r["http"], r["http"]["compare"])):
            event = ms(h["event"]) if h["event"] else "-"
            if h["events_missing"]:
                event += f" ({h['events_missing']} never arrived)"
            rows.append([f"{r['tokens']:,}", h["label"], ms(h["all"]), f"{h['all']['max']:.1f}",
                         ms(h["hits"]), ms(h["misses"]), event, f"{h['start_seconds']:.1f}",
                         f"{h['load']:.2f}"])
    print(table(["tokens", "server", "all scans", "max", "hits", "misses", "event on the stream",
                 "server start s", "load avg (1 min)"], rows) + "\n")

    print("## Per case (ms, p50 / p99)\n")
    headers = ["case", "expected"]
    for r in results:
        headers += [f"in process {size_label(r['tokens'])}", f"HTTP {size_label(r['tokens'])}"]
    rows = []
    for c, case in enumerate(all_cases):
        row = [case.name + (" (hit)" if case.hit else ""), case.expected]
        for r in results:
            got = set(r["http"]["verdicts"][c])
            for mode in JOURNAL_MODES:
                got |= set(r["inproc"][mode]["verdicts"][c])
            flag = "" if got == {case.expected} else f" (got {', '.join(sorted(got))})"
            row += [ms(r["inproc"]["deferred"]["cases"][c]) + flag, ms(r["http"]["cases"][c])]
        rows.append(row)
    print(table(headers, rows) + "\n")

    if any(r["http"]["camera"] for r in results):
        print("## Camera frames: `POST /api/scan` with a multipart image, after the raw scans\n")
        print("Frames of sensor noise (or a lit gradient) around the sample licence's PDF417 "
              "(verdict CLEAR), or with no code at all; time per request (ms) and the server's "
              "VmHWM / VmRSS (MB) after each kind, in order.\n")
        rows = []
        for r in results:
            for f in r["http"]["camera"]:
                rows.append([f"{r['tokens']:,}", f["name"], f"{f['bytes'] / 1e6:.2f}", str(f["n"]),
                             f"{f['ms']['p50']:.0f}",
                             "-" if math.isnan(f["ms"]["max"]) else f"{f['ms']['max']:.0f}",
                             mb(f["hwm"]), mb(f["rss"])])
        print(table(["tokens", "frame", "MB", "n", "p50 ms (all 4: wall time)", "max ms",
                     "VmHWM after MB", "VmRSS after MB"], rows) + "\n")

    print("## Server memory and snapshot size\n")
    rows = []
    for r in results:
        h, s = r["http"], r["stats"]
        build = r["snapshot"]
        made = (f"built in {build['seconds']:.1f} s (peak RSS {mb(build['hwm_kib'])} MB)"
                if build["source"] == "built" else build["source"])
        rows.append([f"{r['tokens']:,}", f"{s['tokens']:,}", f"{s['file_bytes'] / 2**20:.0f}",
                     f"{s['bytes_per_token']:.2f}", mb(h["idle"]["rss"]), mb(h["after"]["rss"]),
                     mb(h["after"]["hwm"]), mb(h["final_hwm"]), made])
    print(table(["tokens", "tokens held (+ samples)", "file MB", "bytes/token (stats())",
                 "server VmRSS after start MB", "VmRSS after raw scans MB", "VmHWM after raw scans MB",
                 "VmHWM after camera frames MB", "snapshot"], rows) + "\n")


# --------------------------------------------------------------------------- background load


BURNER = "while True:\n    pass\n"


@contextlib.contextmanager
def burners(n: int, nice: int = 0):
    """``n`` processes spinning on a core each, at ``nice``: a known background load for the tails."""
    procs = [subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.DEVNULL,
                              preexec_fn=lambda: os.nice(nice))
             for _ in range(n)]
    try:
        if procs:
            time.sleep(2.0)  # let the scheduler and the load average see them
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", help="comma-separated token counts (1M,10M,50M)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer scans; 1 M tokens unless --sizes is given")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--burn", type=int, default=0, metavar="N",
                        help="run N CPU-burning processes while measuring (controlled background load)")
    parser.add_argument("--burn-nice", type=int, default=0, metavar="NICE",
                        help="niceness of the burners (19: background work the device ranks below "
                             "the counter)")
    parser.add_argument("--no-camera", action="store_true", help="skip the camera frames")
    parser.add_argument("--pause-ms", type=float, default=0.0, metavar="MS",
                        help="pause between scans (a counter scans seconds apart; 0: back to back)")
    parser.add_argument("--compare-with", type=Path, metavar="TREE",
                        help="also run `gatecheck serve` from this source tree (e.g. an older commit "
                             "exported with git archive), scans alternating between the two")
    parser.add_argument("--child-build", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build:
        return child_build(args.child_build[0], int(args.child_build[1]))

    default = "1M" if args.quick else "1M,10M,50M"
    sizes = [parse_size(s) for s in (args.sizes or default).split(",")]
    n_checks, n_scans = (600, 300) if args.quick else (2400, 1200)
    started = time.perf_counter()
    header = machine()  # load average at start is in it
    all_cases = cases(random.Random(SEED), fresh=max(n_checks, n_scans))
    results = []
    for n in sizes:
        data_dir = args.out / str(n)
        data_dir.mkdir(parents=True, exist_ok=True)
        made = ensure_snapshot(n, data_dir)
        log(f"{n:,} tokens: adding the sample entries, fresh heartbeats")
        stats = prepare(data_dir)
        warm_page_cache(snapshot_path(data_dir))
        os.sync()  # a fresh build's writeback must not land in the journal's fsyncs below
        with burners(args.burn, args.burn_nice):
            log(f"{n:,} tokens: {n_checks:,} checks in process")
            inproc = run_in_process(data_dir, all_cases, n_checks, pause=args.pause_ms / 1000)
            log(f"{n:,} tokens: {n_scans:,} scans over HTTP")
            hits = {c for c, case in enumerate(all_cases) if case.hit}
            http = run_http(data_dir, schedule(all_cases, 60), schedule(all_cases, n_scans), hits,
                            camera=not args.no_camera, compare_with=args.compare_with,
                            pause=args.pause_ms / 1000)
        results.append({"tokens": n, "snapshot": made, "stats": stats, "inproc": inproc, "http": http})
    print("# Gatecheck verdict benchmark\n")
    print(header + "\n")
    print(f"Data in `{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}`; "
          f"device scope {', '.join(SCOPES)}; warm OS page cache; "
          f"{args.burn} CPU-burning process(es) at nice {args.burn_nice} running while measuring; "
          f"{args.pause_ms:g} ms pause between scans.\n")
    report(results, all_cases)
    print(f"_Total run time {time.perf_counter() - started:.0f} s._")


if __name__ == "__main__":
    main()
