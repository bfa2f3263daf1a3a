"""Snapshot store benchmark: size on disk, build time, lookup latency and RSS.

Run alone from the repository root::

    .venv/bin/python bench/bench_snapshot.py            # 1 M and 10 M tokens
    .venv/bin/python bench/bench_snapshot.py --full     # and 50 M (about 15 min)

Prints markdown on stdout (progress on stderr). Data goes under
``bench/out/snapshot`` (gitignored) and is deleted afterwards unless --keep.

What it does
------------
* **Build.** ``appliance.synth.build_snapshot`` in a child process, so its
  peak RSS (VmHWM) is the build's own. Time is wall-clock for the whole build.
* **Size.** File bytes / tokens, and the token buckets table alone (SQLite's
  dbstat), after the build and after churn.
* **Lookups.** A fresh child process opens the store read-only, as the
  counter does, and imports nothing but the store. First it drops the file
  from the OS page cache (posix_fadvise DONTNEED) and times 10,000 lookups
  from cold: each reads its leaf page from the disk, as on a device whose
  RAM cannot cache the file. Then it reads the file once (into the OS page
  cache, not into its own memory) and, after 2,000 warm-up lookups, times
  one ``lookup()``
  call per token for 50,000 random hits and 50,000 random misses, and
  10,000 scans of 6 tokens (what a scan looks up: 1 document + 1-2 person
  tokens on 2-3 lists), with 1 hit or none. Hits are tokens sampled from
  random buckets of the file; misses are fresh random tokens. Per-call
  perf_counter_ns with the garbage collector off. RSS is VmRSS and VmHWM
  from /proc/self/status after all lookups. Other processes on the machine
  move the tails: the 1-minute load average is printed with each row.
* **Churn.** Three apply_batch calls each adding and removing 1 % of the
  tokens (at most 50,000 each way), as sync deltas would; time per batch
  and bytes per token afterwards (random inserts split pages), then
  ``compact()`` (VACUUM) and bytes per token after it. And a long run at
  1 M tokens: 40 such deltas, bytes per token along the way.
* **Schema choices** at 1 M tokens: the same records written as one row per
  token (a WITHOUT ROWID table keyed by the token; a rowid table keyed by
  the token's first 8 bytes) next to the bucket layout the store uses;
  each with the same meta tables. Size, insert time and the time to find a
  token's (meta, ref), warm, in-process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance import snapshot_codec as codec  # noqa: E402
from appliance import snapshot_schema as schema  # noqa: E402
from appliance.snapshot import SnapshotStore  # noqa: E402

SEED = 20250601
TARGET_BYTES = 24
TARGET_P99_US = 1000
TARGET_RSS_MB = 150
LOOKUPS = 100_000
COLD_LOOKUPS = 10_000
SCANS = 10_000
OUT = ROOT / "bench" / "out" / "snapshot"


def log(message: str) -> None:
    print(f"[bench_snapshot] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- child processes


def child_build(path: str, n_tokens: int, seed: int) -> None:
    from appliance.synth import build_snapshot

    started = time.perf_counter()
    build_snapshot(path, n_tokens, seed=seed, overwrite=True)
    print(json.dumps({"seconds": time.perf_counter() - started, "hwm_kib": status_kib("VmHWM")}))


def child_serve(path: str, hits_file: str, seed: int) -> None:
    """The counter's side: open read-only, look tokens up, report latencies and RSS."""
    rng = random.Random(seed)
    raw = Path(hits_file).read_bytes()
    hits = [raw[i:i + 12] for i in range(0, len(raw), 12)]
    store = SnapshotStore(path, readonly=True)

    def misses(n: int) -> list[bytes]:
        return [rng.randbytes(12) for _ in range(n)]

    def timed(calls: list[list[bytes]]) -> list[float]:
        lookup = store.lookup
        out = []
        gc.disable()
        for tokens in calls:
            t0 = time.perf_counter_ns()
            lookup(tokens)
            out.append((time.perf_counter_ns() - t0) / 1000)
        gc.enable()
        return out

    load = os.getloadavg()[0]
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    cold = timed([[t] for t in rng.sample(hits, COLD_LOOKUPS // 2) + misses(COLD_LOOKUPS // 2)])
    # Warm: the whole file in the OS page cache (not in this process's RSS),
    # as on a device whose RAM holds the file.
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)
    timed([[t] for t in rng.choices(hits, k=1000) + misses(1000)])  # warm-up
    hit = timed([[t] for t in rng.choices(hits, k=LOOKUPS // 2)])
    miss = timed([[t] for t in misses(LOOKUPS // 2)])
    scan_hit = timed([[rng.choice(hits)] + misses(5) for _ in range(SCANS)])
    scan_miss = timed([misses(6) for _ in range(SCANS)])
    found = sum(len(store.lookup([t])) for t in hits[:1000])
    summary = {name: {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}
               for name, v in [("cold", cold), ("hit", hit), ("miss", miss),
                               ("scan_hit", scan_hit), ("scan_miss", scan_miss)]}
    summary.update(rss_kib=status_kib("VmRSS"), hwm_kib=status_kib("VmHWM"), found=found, load=load)
    print(json.dumps(summary))


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- measurements


def sample_tokens(path: Path, n: int, seed: int) -> list[bytes]:
    """Tokens stored in the file: a random record of the bucket at or after a random key."""
    rng = random.Random(seed)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = []
    for _ in range(n):
        key = rng.randrange(codec.MIN_KEY, -codec.MIN_KEY)
        row = conn.execute("SELECT data FROM buckets WHERE start >= ? ORDER BY start LIMIT 1",
                           (key,)).fetchone() or conn.execute(
            "SELECT data FROM buckets ORDER BY start DESC LIMIT 1").fetchone()
        records = codec.decode(row[0])
        out.append(rng.choice(records).token)
    conn.close()
    return out


def table_bytes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    conn.close()
    return sizes


def file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def churn_rounds(path: Path, rounds: int, size: int, rng: random.Random) -> list[dict]:
    """``rounds`` apply_batch calls, each removing ``size`` stored no-fly tokens and adding as many."""
    from appliance.records import Batch

    out = []
    with SnapshotStore(path) as store:
        for _ in range(rounds):
            present = store.lookup(sample_tokens(path, size * 4, rng.randrange(1 << 30)))
            on_list = [e for e in present if e.list_id == "no-fly"]  # the largest list, 45 %
            template = on_list[0]
            removes = tuple(dict.fromkeys(e.token for e in on_list))[:size]
            adds = tuple(template.__class__(**{**template.__dict__, "token": rng.randbytes(12),
                                                 "reference": f"NFL-2025-{rng.randrange(10**8):08d}"})
                         for _ in range(size))
            version = store.get_list("no-fly").version
            started = time.perf_counter()
            store.apply_batch(Batch("no-fly", version, version + 1, add=adds, remove=removes))
            out.append({"adds": len(adds), "removes": len(removes),
                        "seconds": time.perf_counter() - started})
    return out  # closed: the WAL is checkpointed into the file


def bytes_per_token(path: Path) -> tuple[float, float]:
    """(whole file, buckets table) bytes per token of a closed store."""
    with SnapshotStore(path, readonly=True) as store:
        tokens = store.stats()["tokens"]
    return path.stat().st_size / tokens, table_bytes(path)["buckets"] / tokens


def churn(path: Path, n_tokens: int, seed: int) -> dict:
    """Three sync-sized deltas, then compact()."""
    rng = random.Random(seed)
    batches = churn_rounds(path, 3, max(1, min(n_tokens // 100, 50_000)), rng)
    after = bytes_per_token(path)
    with SnapshotStore(path) as store:
        started = time.perf_counter()
        store.compact()
        seconds = time.perf_counter() - started
    return {"batches": batches, "after": after, "compact_seconds": seconds,
            "compacted": bytes_per_token(path)}


def long_churn(out_dir: Path, seed: int, n_tokens: int = 1_000_000, rounds: int = 40) -> list[list]:
    """Where bytes per token settle when a store lives on sync deltas alone."""
    path = out_dir / "churn.db"
    log(f"long churn: {rounds} deltas of 1 % on {n_tokens:,} tokens")
    run_child("--child-build", str(path), str(n_tokens), str(seed))
    rng = random.Random(seed)
    rows = [[0, "0 %", *(f"{v:.2f}" for v in bytes_per_token(path))]]
    done = 0
    while done < rounds:
        step = min(10, rounds - done) if done else 5
        churn_rounds(path, step, n_tokens // 100, rng)
        done += step
        rows.append([done, f"{done} %", *(f"{v:.2f}" for v in bytes_per_token(path))])
    with SnapshotStore(path) as store:
        started = time.perf_counter()
        store.compact()
        seconds = time.perf_counter() - started
    rows.append([f"then compact() ({seconds:.1f} s)", "", *(f"{v:.2f}" for v in bytes_per_token(path))])
    for leftover in out_dir.glob("churn.db*"):
        leftover.unlink()
    return rows


def measure(n_tokens: int, out_dir: Path, seed: int, keep: bool) -> dict:
    path = out_dir / f"snapshot-{n_tokens}.db"
    log(f"building {n_tokens:,} tokens")
    build = run_child("--child-build", str(path), str(n_tokens), str(seed))
    sizes = table_bytes(path)
    result = {"tokens": n_tokens, "build": build, "file": file_bytes(path), "tables": sizes}
    with SnapshotStore(path, readonly=True) as store:
        stats = store.stats()
    result["meta_rows"] = stats["meta_rows"]
    log("sampling tokens")
    hits_file = out_dir / f"hits-{n_tokens}.bin"
    hits_file.write_bytes(b"".join(sample_tokens(path, 20_000, seed)))
    log("timing lookups in a fresh read-only process")
    result["serve"] = run_child("--child-serve", str(path), str(hits_file), str(seed))
    log("churn: apply_batch")
    result["churn"] = churn(path, n_tokens, seed)
    if not keep:
        for leftover in out_dir.glob(f"*-{n_tokens}.*"):
            leftover.unlink()
    return result


def compare_layouts(out_dir: Path, seed: int) -> list[list]:
    """The same 1 M records as one row per token (two ways) and as buckets."""
    n = 1_000_000
    src = out_dir / "layouts-buckets.db"
    log("schema choices: building the bucket store")
    build = run_child("--child-build", str(src), str(n), str(seed))
    conn = sqlite3.connect(src)
    records = [r for (data,) in conn.execute("SELECT data FROM buckets ORDER BY start")
               for r in codec.decode(data)]
    conn.close()
    hits = random.Random(seed).sample([r.token for r in records], 20_000)
    misses = [random.Random(seed + 1).randbytes(12) for _ in range(20_000)]
    layouts = {
        "row per token, WITHOUT ROWID, token BLOB PRIMARY KEY": (
            "CREATE TABLE tokens (token BLOB PRIMARY KEY, meta INTEGER, ref INTEGER) WITHOUT ROWID",
            "INSERT INTO tokens VALUES (?, ?, ?)", lambda r: (r.token, r.meta, signed32(r.ref)),
            "SELECT meta, ref FROM tokens WHERE token = ?", lambda t: (t,), None),
        "row per token, rowid = first 8 token bytes, last 4 in a column": (
            "CREATE TABLE tokens (id INTEGER PRIMARY KEY, tail INTEGER, meta INTEGER, ref INTEGER)",
            "INSERT INTO tokens VALUES (?, ?, ?, ?)",
            lambda r: (codec.token_key(r.token), int.from_bytes(r.token[8:], "big", signed=True),
                       r.meta, signed32(r.ref)),
            "SELECT tail, meta, ref FROM tokens WHERE id = ?", lambda t: (codec.token_key(t),),
            lambda t, row: row[0] == int.from_bytes(t[8:], "big", signed=True)),
    }
    rows = []
    for name, (ddl, insert, as_row, select, params, check) in layouts.items():
        path = out_dir / "layouts-alt.db"
        for stale in out_dir.glob("layouts-alt.db*"):
            stale.unlink()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        schema.migrate(conn)
        conn.execute("DROP TABLE buckets")
        conn.execute(f"ATTACH '{src}' AS src")
        for copied in ("lists", "redress", "meta"):
            conn.execute(f"INSERT INTO main.{copied} SELECT * FROM src.{copied}")
        conn.execute("DETACH src")
        conn.execute(ddl)
        started = time.perf_counter()
        conn.execute("BEGIN")
        # Sorted by the key of each layout, as a bulk build would insert them.
        conn.executemany(insert, sorted((as_row(r) for r in records), key=lambda row: row[0]))
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

        def find(token: bytes, conn=conn, select=select, params=params, check=check):
            return [row for row in conn.execute(select, params(token)).fetchall()
                    if check is None or check(token, row)]

        times = time_finds(find, hits, misses)
        sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        conn.close()
        rows.append([name, f"{seconds:.1f}", f"{path.stat().st_size / n:.2f}",
                     f"{sizes['tokens'] / n:.2f}", *times])
        path.unlink()
    conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    seek = "SELECT start, data FROM buckets WHERE start <= ? ORDER BY start DESC LIMIT 1"

    def find_bucket(token: bytes):
        row = conn.execute(seek, (codec.token_key(token),)).fetchone()
        return list(codec.find(row[1], token)) if row else []

    times = time_finds(find_bucket, hits, misses)
    sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    conn.close()
    rows.append([f"buckets of {codec.BUCKET_FILL}-{codec.BUCKET_MAX} packed 20-byte records (chosen)",
                 f"{build['seconds']:.1f} (whole synth build)", f"{src.stat().st_size / n:.2f}",
                 f"{sizes['buckets'] / n:.2f}", *times])
    for leftover in out_dir.glob("layouts-*"):
        leftover.unlink()
    return rows


def signed32(value: int) -> int:
    """A uint32 as the int32 with the same bits: SQLite stores it in 4 bytes, not 6."""
    return value - (1 << 32) if value >= 1 << 31 else value


def time_finds(find, hits: list[bytes], misses: list[bytes]) -> list[str]:
    for token in hits[:2000]:
        find(token)
    assert all(find(token) for token in hits[:100]), "a stored token was not found"
    out = []
    for tokens in (hits, misses):
        gc.disable()
        times = []
        for token in tokens:
            t0 = time.perf_counter_ns()
            find(token)
            times.append((time.perf_counter_ns() - t0) / 1000)
        gc.enable()
        out += [f"{percentile(times, 50):.1f}", f"{percentile(times, 99):.1f}"]
    return out


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               "unknown")
    mem = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "?")
    rows = [["date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")],
            ["platform", platform.platform()], ["CPU", f"{cpu} ({os.cpu_count()} logical)"],
            ["memory", mem], ["python", platform.python_version()],
            ["SQLite", sqlite3.sqlite_version], ["seed", str(SEED)],
            ["load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())]]
    return table(["", ""], rows)


def mb(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def report(results: list[dict], layouts: list[list] | None, long_rows: list[list] | None) -> None:
    print("## Size on disk and build time\n")
    print(f"Target: <= {TARGET_BYTES} bytes per token. 'buckets' is the token records table "
          "alone (dbstat); 'meta' is the deduplicated entry metadata with its hash index; the "
          "rest of the file is lists, redress texts and SQLite's own pages.\n")
    rows = []
    for r in results:
        n = r["tokens"]
        rows.append([f"{n:,}", f"{r['build']['seconds']:.1f}", mb(r["build"]["hwm_kib"]),
                     f"{r['file'] / 2**20:.0f}", f"{r['file'] / n:.2f}",
                     f"{r['tables'].get('buckets', 0) / n:.2f}",
                     f"{(r['tables'].get('meta', 0) + r['tables'].get('meta_key', 0)) / n:.2f}",
                     f"{r['meta_rows']:,}", "yes" if r["file"] / n <= TARGET_BYTES else "no"])
    print(table(["tokens", "build s", "build peak RSS MB", "file MB", "bytes/token (file)",
                 "bytes/token (buckets)", "bytes/token (meta + index)", "meta rows", "file <= 24"],
                rows) + "\n")

    print("## Lookup latency and RSS of a fresh read-only process (µs, warm OS page cache)\n")
    print(f"Target: p99 <= {TARGET_P99_US} µs, RSS <= {TARGET_RSS_MB} MB. One `lookup()` call per "
          f"token for {LOOKUPS // 2:,} hits and {LOOKUPS // 2:,} misses; scans are one call with "
          f"6 tokens ({SCANS:,} each).\n")
    rows = []
    for r in results:
        s = r["serve"]
        rows.append([f"{r['tokens']:,}",
                     *(f"{s[k]['p50']:.0f} / {s[k]['p99']:.0f}" for k in
                       ("hit", "miss", "scan_hit", "scan_miss")),
                     f"{max(s[k]['max'] for k in ('hit', 'miss')):.0f}",
                     mb(s["rss_kib"]), mb(s["hwm_kib"]), f"{s['load']:.1f}"])
    print(table(["tokens", "hit p50 / p99", "miss p50 / p99", "scan 6 (1 hit) p50 / p99",
                 "scan 6 (0 hits) p50 / p99", "single max", "VmRSS MB", "VmHWM MB",
                 "load avg (1 min)"], rows) + "\n")

    print(f"## Cold: {COLD_LOOKUPS:,} single lookups (half hits) after dropping the file from the "
          "OS page cache (µs)\n")
    print("What a device with too little RAM to cache the file sees: about one disk read per "
          "lookup. Depends on the disk; this machine's is a virtual disk.\n")
    print(table(["tokens", "p50", "p99", "max"],
                [[f"{r['tokens']:,}", *(f"{r['serve']['cold'][k]:.0f}" for k in ("p50", "p99", "max"))]
                 for r in results]) + "\n")

    print("## Churn: apply_batch of sync-sized deltas (random tokens, one list)\n")
    print("Three batches, each removing and adding 1 % of the tokens (at most 50,000 each way); "
          "bytes per token before, after them, and after compact().\n")
    rows = []
    for r in results:
        c = r["churn"]
        first = c["batches"][0]
        rows.append([f"{r['tokens']:,}", f"{first['adds']:,} + / {first['removes']:,} -",
                     " / ".join(f"{b['seconds']:.2f}" for b in c["batches"]),
                     f"{r['file'] / r['tokens']:.2f} -> {c['after'][0]:.2f}",
                     f"{r['tables'].get('buckets', 0) / r['tokens']:.2f} -> {c['after'][1]:.2f}",
                     f"{c['compact_seconds']:.1f}", f"{c['compacted'][0]:.2f}"])
    print(table(["tokens", "each batch", "apply s (3 batches)", "bytes/token file (before -> after)",
                 "bytes/token buckets (before -> after)", "compact() s",
                 "bytes/token file after compact()"], rows) + "\n")

    if long_rows:
        print("## Long churn: 1 % deltas on 1,000,000 tokens until 40 % of them were replaced\n")
        print("Random inserts split full pages; deletions leave holes. Where bytes per token "
              "settle, and what compact() (VACUUM) gives back.\n")
        print(table(["deltas applied", "tokens replaced", "bytes/token (file)",
                     "bytes/token (buckets)"], long_rows) + "\n")

    if layouts:
        print("## Schema choices at 1,000,000 tokens (same records, same meta tables)\n")
        print("Find = the SQL and decoding that turn a token into its (meta id, kind + case number), "
              "warm, in-process, 20,000 hits and 20,000 misses (µs).\n")
        print(table(["layout", "insert s (sorted)", "bytes/token (file)", "bytes/token (token table)",
                     "hit p50", "hit p99", "miss p50", "miss p99"], layouts) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="add the 50 M token snapshot")
    parser.add_argument("--sizes", help="comma-separated token counts instead of the defaults")
    parser.add_argument("--no-layouts", action="store_true",
                        help="skip the schema comparison and the long churn run")
    parser.add_argument("--keep", action="store_true", help="keep the built snapshots")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child-build", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build:
        return child_build(args.child_build[0], int(args.child_build[1]), int(args.child_build[2]))
    if args.child_serve:
        return child_serve(*args.child_serve[:2], int(args.child_serve[2]))

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        [1_000_000, 10_000_000] + ([50_000_000] if args.full else [])
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print("# Gatecheck snapshot store benchmark\n")
    print(machine() + "\n")
    results = [measure(n, args.out, SEED, args.keep) for n in sizes]
    layouts = None if args.no_layouts else compare_layouts(args.out, SEED)
    long_rows = None if args.no_layouts else long_churn(args.out, SEED)
    report(results, layouts, long_rows)
    print(f"_Total run time {time.perf_counter() - started:.0f} s._")


if __name__ == "__main__":
    main()
