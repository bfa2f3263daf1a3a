"""Decode speed and read rates; prints markdown tables.

    .venv/bin/python bench/bench_decode.py            # about 15 minutes on 2 cores
    .venv/bin/python bench/bench_decode.py --quick    # fewer angles and repeats, about 5 minutes
    .venv/bin/python bench/bench_decode.py --only timing   # one section: timing|generated|stress|sweep|skew|real

Timings are wall-clock on whatever else the machine is doing: run on an idle
machine (the timing table ends with the load average before and after).

Sections:
1. time per frame (median, p95) for 640x480 and 1280x720 BGR frames of each
   kind a counter camera sees (empty counter, a passport page without a
   barcode, a level or tilted PDF417 licence, an Aztec or QR boarding pass, a
   Code 128 ticket), and for a weighted mix of them (MIX);
2. read rates on the generated degraded corpus (tests/support/images.py):
   bare zxing-cpp, bare pyzbar and our pipeline side by side, per symbology and
   degradation (PDF417, Aztec, QR, Code 128, Code 39, EAN-13), then PDF417 per
   skew, then the 2 px/module stress set;
3. a fine sweep: PDF417 every 0.5 degrees (flat) and 3 degrees (held upright),
   Aztec and QR every degree, each with every degradation;
   then the skew search: measured skew estimate vs a fixed grid of turns;
4. the real photographs of ../shared/corpus/zxing-samples if present: bare
   zxing-cpp vs ours, upright and turned 90 degrees, and bare pyzbar.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import numpy as np
import zxingcpp
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from appliance.decode import LINEAR_FORMATS, ImageDecoder, load_pyzbar, read_with_pyzbar, to_gray  # noqa: E402
from tests.support.images import (  # noqa: E402
    AAMVA_PAYLOADS,
    BCBP_PAYLOADS,
    BCBP_TWO_LEGS,
    DEGRADATIONS,
    FRAME_SIZE,
    LINEAR_PAYLOADS,
    SMALL_FRAME_SIZE,
    Case,
    degrade,
    place_in_frame,
    render,
    render_document_without_code,
    render_zxing,
)

CORPUS = REPO.parent / "shared" / "corpus" / "zxing-samples"


def bare_zxing(image) -> list[tuple[bytes, str]]:
    return [(bytes(r.bytes), r.text) for r in zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)]


def bare_pyzbar(gray: np.ndarray) -> list[tuple[bytes, str]]:
    return [(b.payload, b.text) for b in read_with_pyzbar(gray, ("QRCode", *LINEAR_FORMATS))]


def ours(decoder: ImageDecoder, image) -> list[tuple[bytes, str]]:
    return [(b.payload, b.text) for b in decoder.decode(image)]


def rate(hits: list[bool]) -> str:
    if not hits:
        return "-"
    share = 100 * sum(hits) / len(hits)
    return f"{sum(hits)}/{len(hits)} ({share:.0f}%)" if share == round(share) else f"{sum(hits)}/{len(hits)} ({share:.1f}%)"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- timing

# A counter camera's day, per 20 frames (an assumption, stated in docs/benchmarks.md):
# half of them nobody is presenting anything, two show a passport page (print, no
# barcode), seven a licence (three level, four tilted) and three a boarding pass or ticket.
MIX = {
    "no code: empty counter": 8,
    "no code: passport page": 2,
    "PDF417 licence, level": 3,
    "PDF417 licence, tilted 1.5-14.5 deg": 4,
    "Aztec boarding pass": 1,
    "QR boarding pass": 1,
    "Code128 ticket": 1,
}


def frame_kinds(size: tuple[int, int]) -> dict[str, list[tuple[np.ndarray, bytes | None]]]:
    """Frames of each kind at one camera size, each with the payload it must give (None: nothing).

    PDF417 at 2 px/module in 640x480 and 3 in 1280x720; the 2-D boarding passes one
    pixel more; the passport page and Code 128 scaled to fit.
    """
    small = size == SMALL_FRAME_SIZE
    module = 2 if small else 3
    licences = list(AAMVA_PAYLOADS.values())

    def framed(code, skew=0.0, degradation="clean", seed=0):
        return degrade(place_in_frame(code, skew=skew, size=size, seed=seed), degradation, seed=seed)

    pdf = {p: render(p, "PDF417", module_px=module) for p in licences}
    ticket = b"EABC123 YULFRA 0834" if small else LINEAR_PAYLOADS["Code128"]
    page = render_document_without_code(width=440 if small else 800, text_px=12 if small else 20)
    blank = np.full((60, 90), 255, np.uint8)
    return {
        "no code: empty counter": [(framed(blank, 7.0, d, seed), None) for seed, d in enumerate(DEGRADATIONS)],
        "no code: passport page": [(framed(page, s, d), None) for s in (0.0, 4.0) for d in ("clean", "noise")],
        "PDF417 licence, level": [(framed(pdf[p], 0.0, d), p) for p in licences for d in ("clean", "noise")],
        "PDF417 licence, tilted 1.5-14.5 deg": [
            (framed(pdf[licences[i % 3]], s, d), licences[i % 3])
            for i, (s, d) in enumerate([(1.5, "clean"), (-4.0, "noise"), (7.3, "clean"), (-11.0, "blur"), (14.5, "all")])
        ],
        "Aztec boarding pass": [(framed(render(BCBP_TWO_LEGS, "Aztec", module_px=module + 1), s), BCBP_TWO_LEGS) for s in (0.0, 6.0)],
        "QR boarding pass": [(framed(render(BCBP_TWO_LEGS, "QRCode", module_px=module + 1), s), BCBP_TWO_LEGS) for s in (0.0, -6.0)],
        "Code128 ticket": [(framed(render_zxing(ticket, "Code128", module_px=module), s), ticket) for s in (0.0, 5.0)],
    }


def timing(repeats: int) -> str:
    """Median and p95 wall-clock per frame, BGR in, over every frame of a kind times ``repeats``."""
    decoder = ImageDecoder()
    rows = []
    load_before = os.getloadavg()[0]
    for size in (SMALL_FRAME_SIZE, FRAME_SIZE):
        kinds = frame_kinds(size)
        per_kind: dict[str, list[float]] = {}
        for label, frames in kinds.items():
            times, correct, passes = [], 0, defaultdict(int)
            for gray, expected in frames:
                bgr = np.dstack([gray, gray, gray])  # what an OpenCV camera hands over
                for _ in range(repeats):
                    start = time.perf_counter()
                    found = decoder.decode(bgr)
                    times.append((time.perf_counter() - start) * 1000)
                correct += [b.payload for b in found] == ([expected] if expected else [])
                passes[_stage_of(decoder, to_gray(bgr))] += 1
            per_kind[label] = times
            read_by = ", ".join(f"{name} {n}" if len(passes) > 1 else name for name, n in sorted(passes.items()))
            rows.append([f"{size[0]}x{size[1]}", label, len(frames), *_ms(times), f"{correct}/{len(frames)}", read_by])
        mix = _weighted_ms({label: (per_kind[label], weight) for label, weight in MIX.items()})
        rows.append([f"{size[0]}x{size[1]}", "**realistic mix** (below)", sum(MIX.values()), *mix, "", ""])
    load_after = os.getloadavg()[0]
    header = ["frame", "content", "frames", "median ms", "p95 ms", "correct", "read by pass"]
    return table(header, rows) + f"\n\nLoad average (1 min) {load_before:.2f} before, {load_after:.2f} after."


def _ms(times: list[float]) -> list[str]:
    return [f"{statistics.median(times):.1f}", f"{float(np.percentile(times, 95)):.1f}"]


def _weighted_ms(kinds: dict[str, tuple[list[float], int]]) -> list[str]:
    """Median and p95 of a mix: each kind's timings together weigh what its share of frames does."""
    times = np.concatenate([np.asarray(t) for t, _ in kinds.values()])
    weights = np.concatenate([np.full(len(t), w / len(t)) for t, w in kinds.values()])
    order = np.argsort(times)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return [f"{times[order][np.searchsorted(cumulative, q)]:.1f}" for q in (0.5, 0.95)]


def _stage_of(decoder: ImageDecoder, gray: np.ndarray) -> str:
    ran = 0
    for name, run in decoder._stages(gray):
        ran += 1
        if run():
            return " ".join(w for w in name.split() if not w[-1].isdigit())
    return "none (net only)" if ran == 1 else f"none ({ran} passes)"


# --------------------------------------------------------------------------- generated corpus


def generated(skews: tuple[float, ...]) -> str:
    decoder = ImageDecoder()
    by_kind: dict[tuple[str, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    by_skew: dict[float, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    cases = []
    for skew in skews:
        for degradation in DEGRADATIONS:
            cases += [Case(n, "PDF417", p, skew, degradation, 3) for n, p in AAMVA_PAYLOADS.items()]
            cases += [Case(n, s, p, skew, degradation, 4) for n, p in BCBP_PAYLOADS.items() for s in ("Aztec", "QRCode")]
            cases += [Case(s, s, LINEAR_PAYLOADS[s], skew, degradation, 3) for s in ("Code128", "Code39", "EAN13")]
    for case in cases:
        gray = case.frame()
        hits = {
            "zxing-cpp": any(p == case.payload for p, _ in bare_zxing(gray)),
            "pyzbar": any(p == case.payload for p, _ in bare_pyzbar(gray)),
            "ours": [p for p, _ in ours(decoder, gray)] == [case.payload],
        }
        for backend, hit in hits.items():
            by_kind[(case.symbology, case.degradation)][backend].append(hit)
            if case.symbology == "PDF417":
                by_skew[abs(case.skew)][backend].append(hit)
    kinds = sorted(by_kind)
    rows = [[s, d] + [rate(by_kind[(s, d)][b]) for b in ("zxing-cpp", "pyzbar", "ours")] for s, d in kinds]
    totals = defaultdict(list)
    for key in kinds:
        for b in ("zxing-cpp", "pyzbar", "ours"):
            totals[b] += by_kind[key][b]
    rows.append(["**all**", ""] + [rate(totals[b]) for b in ("zxing-cpp", "pyzbar", "ours")])
    out = table(["symbology", "degradation", "bare zxing-cpp", "bare pyzbar", "ours"], rows)
    skew_rows = [[f"{s:g}"] + [rate(by_skew[s][b]) for b in ("zxing-cpp", "ours")] for s in sorted(by_skew)]
    out += "\n\nPDF417 (3 px/module, all degradations) by absolute skew:\n\n"
    out += table(["skew deg", "bare zxing-cpp", "ours"], skew_rows)
    return out


def stress(skews: tuple[float, ...]) -> str:
    decoder = ImageDecoder()
    rows = []
    for degradation in DEGRADATIONS:
        bare, mine = [], []
        for skew in skews:
            for name, payload in AAMVA_PAYLOADS.items():
                gray = Case(name, "PDF417", payload, skew, degradation, 2).frame()
                bare.append(any(p == payload for p, _ in bare_zxing(gray)))
                mine.append([p for p, _ in ours(decoder, gray)] == [payload])
        rows.append([degradation, rate(bare), rate(mine)])
    return table(["PDF417 at 2 px/module", "bare zxing-cpp", "ours"], rows)


def sweep(step: float) -> str:
    """Every degradation of every licence at every ``step`` degrees, flat and held upright; Aztec and QR."""
    decoder = ImageDecoder()
    angles = [float(a) for a in np.arange(-15.0, 15.01, step)]
    sets = {
        f"PDF417, every {step:g} deg": [
            Case(n, "PDF417", p, a, d, 3) for a in angles for d in DEGRADATIONS for n, p in AAMVA_PAYLOADS.items()
        ],
        "PDF417 held upright (frame turned 90 deg), every 3 deg": [
            Case(n, "PDF417", p, float(a), d, 3, quarter_turn=True)
            for a in np.arange(-15.0, 15.01, 3.0) for d in DEGRADATIONS for n, p in AAMVA_PAYLOADS.items()
        ],
        "Aztec and QR, every 1 deg": [
            Case(n, s, p, float(a), d, 4)
            for s in ("Aztec", "QRCode") for a in np.arange(-15.0, 15.01, 1.0) for d in DEGRADATIONS
            for n, p in [list(BCBP_PAYLOADS.items())[int(a) % 2]]
        ],
    }
    rows = []
    for label, cases in sets.items():
        misses = [c.id for c in cases if [b.payload for b in decoder.decode(c.frame())] != [c.payload]]
        rows.append([label, rate([c.id not in misses for c in cases]), ", ".join(misses) or "-"])
    return table(["set", "ours", "missed"], rows)


def skew_search(skews: tuple[float, ...]) -> str:
    variants = {
        "estimated skew (default)": ImageDecoder(),
        "grid -15..15 step 5, no estimate": ImageDecoder(measure_skew=False, skew_angles=(-5, 5, -10, 10, -15, 15)),
    }
    results: dict[str, dict[str, list[bool]]] = {name: defaultdict(list) for name in variants}
    times: dict[str, list[float]] = defaultdict(list)
    for skew in skews:
        on_grid = "on grid" if skew % 5 == 0 else "between"
        for degradation in DEGRADATIONS:
            for name, payload in AAMVA_PAYLOADS.items():
                gray = Case(name, "PDF417", payload, skew, degradation, 3).frame()
                for label, decoder in variants.items():
                    start = time.perf_counter()
                    hit = [p for p, _ in ours(decoder, gray)] == [payload]
                    times[label].append((time.perf_counter() - start) * 1000)
                    results[label][on_grid].append(hit)
    rows = [
        [label, rate(results[label]["on grid"]), rate(results[label]["between"]), f"{statistics.median(times[label]):.0f}"]
        for label in variants
    ]
    return table(["skew search", "skews on the 5 deg grid", "skews between", "median ms"], rows)


# --------------------------------------------------------------------------- real corpus


def real_corpus() -> str:
    if not CORPUS.is_dir():
        return f"(corpus not found at {CORPUS}; skipped)"
    decoder = ImageDecoder()
    counts: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for image in sorted(CORPUS.glob("*/*")):
        if image.suffix not in (".png", ".webp", ".jpg"):
            continue
        text = image.with_suffix(".txt")
        expected = text.read_bytes() if text.exists() else image.with_suffix(".bin").read_bytes()

        def hit(found, expected=expected):
            return any(p == expected or t.encode("utf-8") == expected for p, t in found)

        with Image.open(image) as opened:
            upright = opened.copy()
        folder = image.parent.name
        for turn in (0, 90):
            picture = upright.rotate(turn, expand=True) if turn else upright
            counts[folder][f"bare {turn}"].append(hit(bare_zxing(picture)))
            counts[folder][f"ours {turn}"].append(hit(ours(decoder, picture)))
        counts[folder]["pyzbar 0"].append(hit(bare_pyzbar(to_gray(upright))))
    columns = ["bare 0", "ours 0", "bare 90", "ours 90", "pyzbar 0"]
    rows = [[folder] + [rate(counts[folder][c]) for c in columns] for folder in sorted(counts)]
    totals = {c: [h for f in counts for h in counts[f][c]] for c in columns}
    rows.append(["**all**"] + [rate(totals[c]) for c in columns])
    header = ["folder", "bare zxing-cpp upright", "ours upright", "bare zxing-cpp 90 deg", "ours 90 deg", "bare pyzbar upright"]
    return table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer angles and repeats")
    parser.add_argument(
        "--only", choices=("timing", "generated", "stress", "sweep", "skew", "real"), help="run one section"
    )
    args = parser.parse_args()
    repeats = 5 if args.quick else 15
    skews = (-15.0, -7.5, 0.0, 3.7, 10.0) if args.quick else tuple(np.arange(-15.0, 15.01, 2.5))
    search_skews = (-12.5, -10.0, 5.0, 8.8) if args.quick else (-15.0, -12.5, -10.0, -6.3, -5.0, 2.5, 5.0, 8.8, 10.0, 13.8, 15.0)

    sections = {
        "timing": ("Time per frame (BGR input, grayscale conversion included)", lambda: timing(repeats)),
        "generated": (
            "Generated corpus: read rates (exact bytes)",
            lambda: f"Skews {', '.join(f'{s:g}' for s in skews)} deg; PDF417 and 1D at 3 px/module, Aztec and QR at 4.\n\n"
            + generated(skews),
        ),
        "stress": ("Stress: PDF417 at 2 px/module (below the design point)", lambda: stress(skews)),
        "sweep": ("Fine skew sweep (exact bytes, only the expected payload)", lambda: sweep(2.5 if args.quick else 0.5)),
        "skew": (
            "Skew search: measured estimate vs fixed grid (PDF417, 3 px/module, all degradations)",
            lambda: skew_search(search_skews),
        ),
        "real": ("Real photographs (../shared/corpus/zxing-samples)", real_corpus),
    }
    print("# Decode benchmark\n")
    zbar = 'present' if load_pyzbar() else 'ABSENT (libzbar missing)'
    print(f"zxing-cpp {version('zxing-cpp')}, pyzbar {version('pyzbar')} with zbar {zbar}\n")
    for key, (title, run) in sections.items():
        if args.only in (None, key):
            print(f"## {title}\n")
            print(run(), "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
