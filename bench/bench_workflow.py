"""Registry workflow latency: a reviewer's accept, and an appeal's lift, to published and to the counter.

Run alone from the repository root::

    .venv/bin/python bench/bench_workflow.py --samples 30     # about 2 min

Issue 5 asks for the time "from accept to published, and from lift to
published". Per sample the bench files a report (reporter-1), a reviewer
accepts it (``ReportQueue.accept``: the claim, the entry's publish, the
report's update and its audit record), then someone appeals the new entry
and a second reviewer upholds the appeal (``Appeals.uphold``: the removal is
published). Each is timed twice:

* **published**: the call returns, so version N+1 is committed, signed and
  servable;
* **at the counter**: a real ``gatecheck sync run`` (long-poll, the default)
  against ``gatecheck registry serve`` (gunicorn) holds version N+1 in its
  store. The decisions are taken in this process, as a web worker would take
  them, on the same database; the server sees them by its 0.5 s change poll,
  as its other workers would (a decision taken in the worker that holds the
  long-poll wakes it at once, so this is the slower case).

Prints markdown on stdout, progress on stderr; files go under
``bench/out/workflow`` and are deleted unless --keep.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_snapshot import machine, percentile, table  # noqa: E402
from bench_sync import LiveDevice, RegistryWorld  # noqa: E402

from registry.appeals import Appeals  # noqa: E402
from registry.audit import AuditLog  # noqa: E402
from registry.reports import Identity, ReportQueue  # noqa: E402
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy  # noqa: E402
from registry.publish import DocumentRef  # noqa: E402

OUT = ROOT / "bench" / "out" / "workflow"
SEED = 20261127
#: Issue 4's propagation target, the bound a decision must also meet at the counter.
TARGET_P95_S = 5.0


def log(message: str) -> None:
    print(f"[bench_workflow] {message}", file=sys.stderr, flush=True)


def summary(label: str, values: list[float]) -> list:
    ms = [v * 1e3 for v in values]
    return [label, len(ms), f"{statistics.median(ms):.0f}", f"{percentile(ms, 95):.0f}", f"{max(ms):.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep bench/out/workflow")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    world = RegistryWorld(OUT, threads=16)
    audit = AuditLog(world.registry.engine)
    queue = ReportQueue(world.registry.engine, world.registry, audit)
    appeals = Appeals(world.registry.engine, world.registry, queue, audit)
    queue.set_policy(ListPolicy(world.list_id, AVIATION_CATEGORIES), by="bench")
    device = LiveDevice(world, OUT, "workflow")
    rng = random.Random(SEED)
    timings: dict[str, list[float]] = {k: [] for k in ("accept", "accept_counter", "lift", "lift_counter")}
    missed = 0
    try:
        for i in range(args.samples):
            report_id = queue.file(
                reporter="reporter-1", list_id=world.list_id, category="smoking_on_board",
                identity=Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "SWE", f"L{i:07d}C"),)),
                trip="DA 1234", trip_date=date(2026, 11, 20), narrative="Smoked in the lavatory during descent.")
            for action in ("accept", "lift"):
                time.sleep(rng.uniform(0.2, 2.0))  # land anywhere in the agent's long-poll cycle
                started = time.perf_counter()
                if action == "accept":
                    entry_id = queue.accept(report_id, reviewer="reviewer-1").entry_id
                else:
                    appeal = appeals.file(entry_id, grounds="Not the passenger on that flight.", filed_by="desk-1")
                    started = time.perf_counter()  # the lift, not the filing
                    appeals.uphold(appeal.appeal_id, reviewer="reviewer-2", decision="Wrong person; lifted.")
                published = time.perf_counter()
                applied = device.wait_for(world.registry.current_version(world.list_id), 15)
                if applied is None:
                    missed += 1
                    continue
                timings[action].append(published - started)
                timings[f"{action}_counter"].append(applied - started)
            log(f"sample {i + 1}/{args.samples}: accept {timings['accept_counter'][-1] * 1e3:.0f} ms, "
                f"lift {timings['lift_counter'][-1] * 1e3:.0f} ms to the counter")
    finally:
        device.stop()
        world.stop()
        if not args.keep:
            shutil.rmtree(OUT, ignore_errors=True)
    print("## Registry workflow: decision to published, and to the counter\n")
    print(machine())
    print()
    print(table(["step", "samples", "p50 ms", "p95 ms", "max ms"], [
        summary("accept → published (committed, signed)", timings["accept"]),
        summary("accept → applied at the counter", timings["accept_counter"]),
        summary("lift (appeal upheld) → published", timings["lift"]),
        summary("lift → applied at the counter", timings["lift_counter"]),
    ]))
    worst = max(percentile(timings["accept_counter"], 95), percentile(timings["lift_counter"], 95))
    print(f"\n{missed} decisions not applied within 15 s. Counter p95 {'<=' if worst <= TARGET_P95_S else '>'} "
          f"{TARGET_P95_S:.0f} s.")


if __name__ == "__main__":
    main()
