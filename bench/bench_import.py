"""Authority list import throughput: a million-row court list through `gatecheck registry import`.

Run alone from the repository root::

    .venv/bin/python bench/bench_import.py                 # 1,000,000 rows
    .venv/bin/python bench/bench_import.py --rows 100000   # a quicker look

Prints markdown on stdout (progress on stderr). Files go under
``bench/out/import`` (gitignored) and are deleted afterwards unless --keep.

What it does
------------
A synthetic court list (CSV: case number, surname, given names, birth date,
national ID number, expiry; two thirds pinyin names, one third European
names with diacritics, so the name expansion of docs/name-variants.md does
real work) is imported into a fresh registry data directory made by
`gatecheck registry init`. Each step is the real command as its own
process, timed from outside, its peak RSS read from ``wait4``:

1. ``import preview`` of the new list: every row mapped, looked up, its
   tokens expanded, staged (all additions);
2. ``import apply`` by a second person: one version with every entry
   (too big for a delta: devices take the snapshot);
3. ``import preview`` of the same file again: every row unchanged, nothing
   to apply (the no-op);
4. ``import preview`` + ``apply`` of the next day's file, 1 % of rows
   changed and 1 % gone, 1 % new: a change small enough for a delta.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATECHECK = ROOT / ".venv" / "bin" / "gatecheck"
OUT = ROOT / "bench" / "out" / "import"
MAPPING = {"columns": {"reference": "case_no", "surnames": "surname", "given_names": "given", "date_of_birth": "dob",
                       "document_number": "id_no", "valid_until": "until"},
           "defaults": {"category": "judgment-default", "document_class": "I", "document_issuer": "CHN"}}
PINYIN_SURNAMES = ("Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo He Gao Lin Luo Zheng Liang Xie "
                   "Song Tang Han Feng Deng Cao Peng Zeng Xiao Tian Dong Yuan Pan Jiang Cai Yu Du Ye Cheng Wei Su Lu "
                   "Ding Ren Shen Yao").split()
PINYIN_SYLLABLES = ("wei min jun li hua ming jie tao qiang lei yan fang xin yu hong jing ping hui bo chao gang xiu "
                    "lan ying jian guo dong zhi hao").split()
EUROPEAN_SURNAMES = ("Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann García "
                     "Fernández González Rodríguez López Martínez Sánchez Pérez Dubois Lefèvre Rossi Bianchi "
                     "Kowalski Nowak Wiśniewski Dvořák Novák Svoboda Horváth Nagy Ivanović Jovanović O'Brien "
                     "Ó Súilleabháin").split()
EUROPEAN_GIVEN = ("Hans Peter Anna Maria José Luis Carmen François Hélène Giulia Marco Piotr Agnieszka Jiří Eva "
                  "Zoltán Ana Milan Seán Áine").split()


def person(rng: random.Random, i: int) -> dict:
    if i % 3:
        surname = rng.choice(PINYIN_SURNAMES)
        given = (rng.choice(PINYIN_SYLLABLES) + rng.choice(PINYIN_SYLLABLES)).capitalize()
    else:
        surname = rng.choice(EUROPEAN_SURNAMES)
        given = " ".join(rng.sample(EUROPEAN_GIVEN, rng.choice((1, 1, 2))))
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    until = date(2027, 1, 1) + timedelta(days=rng.randrange(5 * 365))
    return {"case_no": f"({2015 + i % 10})京{i % 97:04d}执{i:07d}号", "surname": surname, "given": given,
            "dob": born.isoformat(), "id_no": f"{110000 + i % 9000:06d}{born:%Y%m%d}{i % 10000:04d}",
            "until": until.isoformat()}


def write_list(path: Path, rows: int, *, seed: int, day: int = 0) -> None:
    """Day 0: ``rows`` cases. Day 1: 1 % changed (a new expiry), 1 % gone, 1 % new."""
    rng = random.Random(seed)
    header = ["case_no", "surname", "given", "dob", "id_no", "until"]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n")
        for i in range(rows + (rows // 100 if day else 0)):
            row = person(rng, i)
            if day and i < rows:
                if i % 100 == 1:
                    continue  # the case closed
                if i % 100 == 2:
                    row["until"] = "2033-12-31"  # the court extended the term
            elif i >= rows and not day:
                break
            fh.write(",".join(row[h] for h in header) + "\n")


def run(args: list[str], label: str) -> tuple[float, float, int, dict | None]:
    """Run a gatecheck command; (wall seconds, CPU seconds, peak RSS in bytes, its JSON output).

    CPU seconds (user + system, from wait4) are the work itself; on a shared
    machine the wall time also holds the time spent waiting for a core.
    """
    started = time.perf_counter()
    proc = subprocess.Popen([str(GATECHECK), "registry", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{label} failed: {out.decode(errors='replace')[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    print(f"  {label}: {seconds:.1f} s ({cpu:.1f} s CPU)", file=sys.stderr)
    text = out.decode()
    return seconds, cpu, usage.ru_maxrss * 1024, json.loads(text) if text.strip().startswith(("{", "[")) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", action="store_true", help="keep bench/out/import afterwards")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    data = OUT / "registry"
    day0, day1, mapping = OUT / "court-day0.csv", OUT / "court-day1.csv", OUT / "mapping.json"
    print(f"writing {args.rows:,} rows ...", file=sys.stderr)
    write_list(day0, args.rows, seed=args.seed)
    write_list(day1, args.rows, seed=args.seed, day=1)
    mapping.write_text(json.dumps(MAPPING))
    d = ["--data-dir", str(data)]
    run(["init", *d], "init")
    run(["list", "create", *d, "court", "--name", "Judgment defaulters", "--authority", "Court",
         "--legal-basis", "Defaulter provisions", "--default-action", "DENY", "--by", "bench"], "list create")
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    results = []

    def step(name: str, rows: int, argv: list[str]) -> dict | None:
        seconds, cpu, rss, out = run(argv, name)
        results.append((name, rows, seconds, cpu, rss))
        return out

    first = step("preview, new list (all additions)", args.rows,
                 ["import", "preview", *d, "--list", "court", "--mapping", str(mapping), "--by", "ann", str(day0)])
    assert first["additions"] == args.rows, first
    applied = step("apply (one version, no delta)", args.rows,
                   ["import", "apply", *d, first["import_id"], "--confirmed-by", "ben"])
    same = step("preview, same file again (all unchanged)", args.rows,
                ["import", "preview", *d, "--list", "court", "--mapping", str(mapping), "--by", "ann", str(day0)])
    assert same["status"] == "unchanged", same
    nxt = step("preview, next day (1 % changed, 1 % gone, 1 % new)", args.rows,
               ["import", "preview", *d, "--list", "court", "--mapping", str(mapping), "--by", "ann", str(day1)])
    moved = nxt["additions"] + nxt["removals"]
    step("apply, next day", moved, ["import", "apply", *d, nxt["import_id"], "--confirmed-by", "ben"])

    db_bytes = sum(p.stat().st_size for p in data.glob("registry.db*"))
    print(f"## Authority list import — `bench/bench_import.py --rows {args.rows}` ({started}, load {load:.2f})\n")
    print(f"{args.rows:,}-row CSV, {day0.stat().st_size / 2**20:.0f} MiB; version {applied['applied_version']} "
          f"made by the first apply; next day: {nxt['additions']:,} additions, {nxt['removals']:,} removals, "
          f"{nxt['unchanged']:,} unchanged. Database afterwards {db_bytes / 2**30:.2f} GiB.\n")
    print("| step | rows | wall s | rows/s (wall) | CPU s | rows/CPU s | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name, rows, seconds, cpu, rss in results:
        print(f"| {name} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | {cpu:.1f} | {rows / cpu:,.0f} | "
              f"{rss / 2**20:.0f} MiB |")
    if not args.keep:
        shutil.rmtree(OUT, ignore_errors=True)


if __name__ == "__main__":
    main()
