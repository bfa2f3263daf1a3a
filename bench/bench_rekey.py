"""Re-keying a list: `gatecheck registry list rekey` on an imported authority list of N rows.

Run alone from the repository root::

    .venv/bin/python bench/bench_rekey.py                  # 200,000 rows (about a million tokens)
    .venv/bin/python bench/bench_rekey.py --rows 20000     # a quicker look

Prints markdown on stdout (progress on stderr). Files go under
``bench/out/rekey`` (gitignored) and are deleted afterwards unless --keep.

The list is bench/bench_import.py's synthetic court list (two thirds pinyin
names, whose name expansion makes several person tokens a row), imported
with the real `import preview` and `import apply` commands (set-up, not
timed here). Then `list rekey` runs as its own process, timed from outside
with its peak RSS from ``wait4``: one transaction that expands every entry
again under the new key, rebuilds the published tokens and the digest from
nothing, publishes the version without a delta, and, after the commit,
builds the signed snapshot every device will download. The command's JSON
splits the transaction's time from the snapshot build's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_import import MAPPING, run, write_list  # noqa: E402

OUT = ROOT / "bench" / "out" / "rekey"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", action="store_true", help="keep bench/out/rekey afterwards")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    data, court, mapping = OUT / "registry", OUT / "court.csv", OUT / "mapping.json"
    print(f"writing {args.rows:,} rows ...", file=sys.stderr)
    write_list(court, args.rows, seed=args.seed)
    mapping.write_text(json.dumps(MAPPING))
    d = ["--data-dir", str(data)]
    run(["init", *d], "init")
    run(["list", "create", *d, "court", "--name", "Judgment defaulters", "--authority", "Court",
         "--legal-basis", "Defaulter provisions", "--default-action", "DENY", "--by", "bench"], "list create")
    _, _, _, preview = run(["import", "preview", *d, "--list", "court", "--mapping", str(mapping), "--by", "ann",
                            str(court)], "import preview (set-up)")
    run(["import", "apply", *d, preview["import_id"], "--confirmed-by", "ben"], "import apply (set-up)")

    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    seconds, cpu, rss, done = run(["list", "rekey", *d, "court", "--reason", "bench: a device was lost",
                                   "--by", "it"], "list rekey")
    payload = sorted((data / "snapshots" / "list-court").glob("v*.gcs"))[-1].stat().st_size
    db_bytes = sum(p.stat().st_size for p in data.glob("registry.db*"))
    tokens, entries = done["tokens"], done["entries"]
    print(f"## Re-keying a list — `bench/bench_rekey.py --rows {args.rows}` ({started}, load {load:.2f})\n")
    print(f"{entries:,} active entries, {tokens:,} tokens ({tokens / entries:.1f} a row), database "
          f"{db_bytes / 2**20:,.0f} MiB afterwards; the new version's snapshot payload is "
          f"{payload / 2**20:,.1f} MiB.\n")
    print("| step | wall s | tokens/s (wall) | peak RSS |")
    print("|---|---|---|---|")
    print(f"| re-key transaction (expand, rebuild, digest, commit) | {done['seconds']:.1f} | "
          f"{tokens / done['seconds']:,.0f} | |")
    print(f"| snapshot build after the commit | {done['snapshot_seconds']:.1f} | "
          f"{tokens / done['snapshot_seconds']:,.0f} | |")
    print(f"| `list rekey`, whole command ({cpu:.1f} s CPU) | {seconds:.1f} | {tokens / seconds:,.0f} | "
          f"{rss / 2**20:.0f} MiB |")
    if not args.keep:
        shutil.rmtree(OUT, ignore_errors=True)


if __name__ == "__main__":
    main()
