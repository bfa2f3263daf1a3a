"""Decode speed and read rates; prints markdown tables.

    .venv/bin/python bench/bench_decode.py            # about 4 minutes on 2 cores
    .venv/bin/python bench/bench_decode.py --quick    # fewer angles and repeats, about 1 minute
    .venv/bin/python bench/bench_decode.py --only timing   # one section: timing|generated|stress|skew|real

Timings are wall-clock on whatever else the machine is doing: run on an idle machine.

Sections:
1. time per frame (median, p95) for 640x480 and 1280x720 BGR frames holding a
   PDF417 licence (level and skewed), an Aztec or QR boarding pass, or nothing;
2. read rates on the generated degraded corpus (tests/support/images.py):
   bare zxing-cpp, bare pyzbar and our pipeline side by side, per symbology and
   degradation, then PDF417 per skew, then the 2 px/module stress set;
3. the skew search: measured skew estimate vs a fixed grid of turns;
4. the real photographs of ../shared/corpus/zxing-samples if present: bare
   zxing-cpp vs ours, upright and turned 90 degrees, and bare pyzbar.
"""

from __future__ import annotations

import argparse
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

from appliance.decode import ImageDecoder, load_pyzbar, read_with_pyzbar, to_gray  # noqa: E402
from tests.support.images import (  # noqa: E402
    AAMVA_CALIFORNIA,
    AAMVA_PAYLOADS,
    BCBP_PAYLOADS,
    BCBP_TWO_LEGS,
    DEGRADATIONS,
    FRAME_SIZE,
    SMALL_FRAME_SIZE,
    Case,
    place_in_frame,
    render,
)

CORPUS = REPO.parent / "shared" / "corpus" / "zxing-samples"


def bare_zxing(image) -> list[tuple[bytes, str]]:
    return [(bytes(r.bytes), r.text) for r in zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)]


def bare_pyzbar(gray: np.ndarray) -> list[tuple[bytes, str]]:
    return [(b.payload, b.text) for b in read_with_pyzbar(gray, ("QRCode", "Code128", "Code39", "EAN13", "ITF"))]


def ours(decoder: ImageDecoder, image) -> list[tuple[bytes, str]]:
    return [(b.payload, b.text) for b in decoder.decode(image)]


def rate(hits: list[bool]) -> str:
    return f"{sum(hits)}/{len(hits)} ({100 * sum(hits) / len(hits):.0f}%)" if hits else "-"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- timing


def timing(repeats: int) -> str:
    decoder = ImageDecoder()
    rows = []
    for size, module in ((SMALL_FRAME_SIZE, 2), (FRAME_SIZE, 3)):
        contents = {
            "PDF417 licence, level": (AAMVA_CALIFORNIA, "PDF417", 0.0, module),
            "PDF417 licence, 7.3 deg skew": (AAMVA_CALIFORNIA, "PDF417", 7.3, module),
            "Aztec boarding pass": (BCBP_TWO_LEGS, "Aztec", 0.0, module + 1),
            "QR boarding pass": (BCBP_TWO_LEGS, "QRCode", 0.0, module + 1),
            "no code": None,
        }
        for label, spec in contents.items():
            if spec is None:
                gray = place_in_frame(np.full((40, 40), 255, np.uint8), size=size)
                expected = None
            else:
                payload, symbology, skew, module_px = spec
                gray = place_in_frame(render(payload, symbology, module_px=module_px), skew=skew, size=size)
                expected = payload
            bgr = np.dstack([gray, gray, gray])  # what an OpenCV camera hands over
            times, found = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                found = decoder.decode(bgr)
                times.append((time.perf_counter() - start) * 1000)
            ok = "yes" if [b.payload for b in found] == ([expected] if expected else []) else "NO"
            stage = _stage_of(decoder, to_gray(bgr))
            p95 = float(np.percentile(times, 95))
            rows.append([f"{size[0]}x{size[1]}", label, f"{statistics.median(times):.1f}", f"{p95:.1f}", ok, stage])
    header = ["frame", "content", "median ms", "p95 ms", "correct", "read by pass"]
    return table(header, rows)


def _stage_of(decoder: ImageDecoder, gray: np.ndarray) -> str:
    for name, run in decoder._stages(gray):
        if run():
            return name.split()[0]
    return "(none: all passes ran)"


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
    parser.add_argument("--only", choices=("timing", "generated", "stress", "skew", "real"), help="run one section")
    args = parser.parse_args()
    repeats = 5 if args.quick else 15
    skews = (-15.0, -7.5, 0.0, 3.7, 10.0) if args.quick else tuple(np.arange(-15.0, 15.01, 2.5))
    search_skews = (-12.5, -10.0, 5.0, 8.8) if args.quick else (-15.0, -12.5, -10.0, -6.3, -5.0, 2.5, 5.0, 8.8, 10.0, 13.8, 15.0)

    sections = {
        "timing": ("Time per frame (BGR input, grayscale conversion included)", lambda: timing(repeats)),
        "generated": (
            "Generated corpus: read rates (exact bytes)",
            lambda: f"Skews {', '.join(f'{s:g}' for s in skews)} deg; PDF417 at 3 px/module, Aztec and QR at 4.\n\n"
            + generated(skews),
        ),
        "stress": ("Stress: PDF417 at 2 px/module (below the design point)", lambda: stress(skews)),
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
