"""Wire bytes per added and removed entry, and encode/decode/digest time.

Run from the repository root::

    .venv/bin/python bench/bench_wire.py            # 100 k-change deltas
    .venv/bin/python bench/bench_wire.py --n 10000

Prints markdown on stdout. The data is synthetic but shaped like a real list
(see ``realistic_entries``): one list, a handful of categories, actions and
dates, and unique case numbers like ``NFL-2024-00012345``, each shared by the
2-3 tokens (one document token, 1-2 person tokens) of one listed person, as
in appliance/synth.py.
The "worst case" row gives every token its own random case number, so no two
additions share one. The naive alternative is the full snapshot the device
would download instead of the delta, for a list of ``--list-size`` tokens.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.records import Action, Entry, TokenKind  # noqa: E402
from sync.digest import StateDigest  # noqa: E402
from sync.snapshot_wire import decode_snapshot, encode_snapshot  # noqa: E402
from sync.wire import decode_payload, encode_delta  # noqa: E402

CATEGORIES = ("aviation-security", "violence", "fraud", "court-order", "sanctions")
REDRESS = ("", "Appeals: redress office, ref. on request", "RDN")


def realistic_entries(n: int, *, seed: int = 1, list_id: str = "nfl",
                      shared_case_numbers: bool = True) -> list[Entry]:
    """``n`` entries of one list, 2-3 tokens per listed person."""
    rng = random.Random(seed)
    out: list[Entry] = []
    start = rng.randrange(1, 50_000_000)
    case = start
    while len(out) < n:
        case += rng.randrange(1, 4)
        category = rng.choice(CATEGORIES)
        action = Action.DENY if category in ("aviation-security", "sanctions") else Action.REFER
        valid_from = date(2024, 1, 1) + timedelta(days=rng.randrange(60))
        valid_until = date(2026 + rng.randrange(3), 12, 31)
        redress = rng.choice(REDRESS)
        for i in range(rng.choice((2, 3))):
            number = case if shared_case_numbers else rng.randrange(100_000_000)
            out.append(Entry(
                rng.randbytes(12), list_id, TokenKind.DOCUMENT if i == 0 else TokenKind.PERSON,
                category, action, f"NFL-2024-{number:08d}", valid_from, valid_until, redress,
            ))
    return out[:n]


def measure(n: int, list_size: int) -> list[str]:
    rows = ["| payload | changes | wire bytes | bytes / change | encode | decode |",
            "|---|---:|---:|---:|---:|---:|"]

    def row(label: str, count: int, build, decode=None) -> bytes:
        t0 = time.perf_counter()
        data = build()
        t1 = time.perf_counter()
        if decode is None:
            decode_payload(data, max_bytes=len(data), max_entries=count)
        else:
            decode(data, count)
        t2 = time.perf_counter()
        rows.append(f"| {label} | {count:,} | {len(data):,} | {len(data) / count:.2f} |"
                    f" {(t1 - t0) * 1e3:.0f} ms | {(t2 - t1) * 1e3:.0f} ms |")
        return data

    adds = realistic_entries(n)
    row("additions, case number per person", n, lambda: encode_delta("nfl", 7, 8, adds, ()))
    worst = realistic_entries(n, seed=2, shared_case_numbers=False)
    row("additions, case number per token", n, lambda: encode_delta("nfl", 7, 8, worst, ()))
    removes = [os.urandom(12) for _ in range(n)]
    row("removals", n, lambda: encode_delta("nfl", 7, 8, (), removes))
    half = n // 2
    row("half added, half removed", n, lambda: encode_delta("nfl", 7, 8, adds[:half], removes[:half]))
    full = realistic_entries(list_size, seed=3)
    snapshot = row(f"naive: full snapshot of {list_size:,} (format v2)", list_size,
                   lambda: encode_snapshot("nfl", 8, bytes(2048), full, token_key_hash=bytes(32)),
                   lambda data, count: decode_snapshot(data, max_entries=count))
    rows.append("")
    rows.append(f"Naive alternative: every change costs the whole snapshot, {len(snapshot):,} bytes"
                f" ({len(snapshot) / n:.1f} bytes per change of a {n:,}-change delta).")
    t0 = time.perf_counter()
    StateDigest().apply(adds[:half], adds[half:])
    rows.append(f"State digest update for a {n:,}-change delta (sync/digest.py):"
                f" {(time.perf_counter() - t0) * 1e3:.0f} ms.")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="changes per delta")
    parser.add_argument("--list-size", type=int, default=1_000_000, help="tokens in the naive snapshot")
    args = parser.parse_args()
    print("\n".join(measure(args.n, args.list_size)))


if __name__ == "__main__":
    main()
