"""`gatecheck serve` under test for bench_verdict.py: scans over HTTP, the event stream, camera frames.

Runs the server as a real subprocess (this tree's, and another tree's for a
before/after comparison), times POST /api/scan and the arrival of each
scan's event on /api/events, and posts camera frames while watching the
server's VmHWM. Not run alone: bench_verdict.py drives it and prints the tables.
"""

from __future__ import annotations

import http.client
import io
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_snapshot import SEED, percentile  # noqa: E402

from appliance.snapshot import snapshot_path  # noqa: E402

SAMPLES = ROOT / "appliance" / "samples"
SERVER_START_TIMEOUT = 120.0
#: (case number, payload) per scan.
Plan = list[tuple[int, bytes]]


def log(message: str) -> None:
    print(f"[bench_verdict] {message}", file=sys.stderr, flush=True)


def proc_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def summary(values_ns: list[int]) -> dict:
    ms = [v / 1e6 for v in values_ns]
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms)}


def start_server(data_dir: Path, server_root: Path = ROOT) -> tuple[subprocess.Popen, str, float, list[str]]:
    """``gatecheck serve`` from ``server_root``: this tree, or another one (``--compare-with``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(server_root)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "serve", "--data-dir", str(data_dir), "--port", "0"],
        cwd=server_root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    url: list[str] = []
    ready = threading.Event()

    def drain() -> None:  # keep reading, so a chatty server never blocks on a full pipe
        for line in proc.stdout:
            output.append(line)
            if not url and "counter screen on " in line:
                url.append(line.split("counter screen on ", 1)[1].split()[0])
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(SERVER_START_TIMEOUT) or not url:
        proc.kill()
        raise RuntimeError("gatecheck serve did not start:\n" + "".join(output))
    return proc, url[0].rstrip("/"), time.perf_counter() - started, output


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class EventWatcher:
    """Reads /api/events in a thread and notes when each scan's event arrives (what the screen waits for)."""

    def __init__(self, url: str, token: str, after: int) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.conn.request("GET", f"/api/events?after={after}", headers={"Authorization": f"Bearer {token}"})
        self.response = self.conn.getresponse()
        self.arrivals: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            while not self.stop.is_set():
                chunk = self.response.read1(65536)
                if not chunk:
                    return
                now = time.perf_counter_ns()
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    for line in event.split(b"\n"):
                        if line.startswith(b"id: "):
                            self.arrivals.setdefault(int(line[4:]), now)
        except (OSError, http.client.HTTPException):
            return

    def close(self) -> None:
        self.stop.set()
        self.conn.close()


def camera_frame(rng: random.Random, size: tuple[int, int], fmt: str, grain: int = 256,
                 code: bool = True) -> bytes:
    """A photo-like frame around the sample licence's PDF417 (or none).

    ``grain`` 256 is full sensor noise in every channel (the file is as big
    as a real frame of that size gets); less is a lit gradient with that many
    grey levels of noise, so a large PNG still fits in 8 MiB.
    """
    import numpy as np
    from PIL import Image

    width, height = size
    noise = np.random.default_rng(rng.randrange(2**32))
    if grain >= 256:
        frame = noise.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        light = (np.linspace(60, 200, width, dtype=np.float32)[None, :]
                 + np.linspace(0, 40, height, dtype=np.float32)[:, None]).astype(np.uint8)
        grey = light + noise.integers(0, grain, (height, width), dtype=np.uint8)
        frame = grey[:, :, None].repeat(3, axis=2)
    if code:
        symbol = np.asarray(Image.open(SAMPLES / "licence-ca.png").convert("RGB"))
        top, left = (height - symbol.shape[0]) // 2, (width - symbol.shape[1]) // 2
        frame[top - 40:top + symbol.shape[0] + 40, left - 40:left + symbol.shape[1] + 40] = 255
        frame[top:top + symbol.shape[0], left:left + symbol.shape[1]] = symbol
    out = io.BytesIO()
    # Noise does not compress: a noisy PNG is stored as it is, a smooth one deflated.
    png = {"compress_level": 0 if grain >= 256 else 6}
    Image.fromarray(frame).save(out, fmt, **({"quality": 90} if fmt == "JPEG" else png))
    return out.getvalue()


#: Camera frames posted after the raw scans: (name, size, format, grain, expected status,
#: times). 1920x1080 is about the most pixels accepted (appliance/web/inputs.py); the
#: frame with no code is the decoder's worst case: every pass runs on the whole frame.
CAMERA_FRAMES = (
    ("counter camera 1280x720 JPEG", (1280, 720), "JPEG", 256, 200, 10),
    ("1920x1080 JPEG", (1920, 1080), "JPEG", 256, 200, 5),
    ("1900x1100 PNG, full noise (~6 MB)", (1900, 1100), "PNG", 256, 200, 5),
    ("1920x1080 PNG, lit gradient", (1920, 1080), "PNG", 4, 200, 3),
    ("1920x1080 JPEG, noise, no code (422)", (1920, 1080), "JPEG", 256, 422, 2),
)
CONCURRENT_UPLOADS = 4


def run_camera(endpoint: str, token: str, pid: int) -> list[dict]:
    """Camera frames on POST /api/scan, the server's VmHWM after each kind; then 4 of the worst at once."""
    import requests

    rng = random.Random(SEED)
    rows = []

    def post(data: bytes, status: int) -> int:
        t0 = time.perf_counter_ns()
        response = requests.post(endpoint, files={"image": ("frame", data)}, timeout=300,
                                 headers={"Authorization": f"Bearer {token}"})
        spent = time.perf_counter_ns() - t0
        if response.status_code != status or (status == 200 and response.json()["verdict"] != "CLEAR"):
            raise RuntimeError(f"camera frame answered {response.status_code}: {response.text[:300]}")
        return spent

    for name, size, fmt, grain, status, times in CAMERA_FRAMES:
        data = camera_frame(rng, size, fmt, grain, code=status == 200)
        spent = [post(data, status) for _ in range(times)]
        rows.append({"name": name, "bytes": len(data), "n": times, "ms": summary(spent),
                     "hwm": proc_kib(pid, "VmHWM"), "rss": proc_kib(pid, "VmRSS")})
    worst = data  # the last kind: no code
    threads = [threading.Thread(target=post, args=(worst, 422)) for _ in range(CONCURRENT_UPLOADS)]
    t0 = time.perf_counter_ns()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows.append({"name": f"{CONCURRENT_UPLOADS} of the frame with no code at once", "bytes": len(worst),
                 "n": CONCURRENT_UPLOADS, "ms": {"p50": (time.perf_counter_ns() - t0) / 1e6,
                                                 "p99": float("nan"), "max": float("nan")},
                 "hwm": proc_kib(pid, "VmHWM"), "rss": proc_kib(pid, "VmRSS")})
    return rows


class ServerRun:
    """One `gatecheck serve` under test: its process, keep-alive session, event stream and timings."""

    def __init__(self, label: str, data_dir: Path, root: Path, n_cases: int) -> None:
        import requests

        for stale in data_dir.glob("journal.db*"):
            stale.unlink()
        self.label, self.data_dir = label, data_dir
        self.proc, self.url, self.start_seconds, _ = start_server(data_dir, root)
        self.idle = {"rss": proc_kib(self.proc.pid, "VmRSS"), "hwm": proc_kib(self.proc.pid, "VmHWM")}
        self.token = (data_dir / "api-token").read_text().strip()
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {self.token}",
                                     "Content-Type": "application/octet-stream"})
        self.watcher: EventWatcher | None = None
        self.verdicts: dict[int, set[str]] = {c: set() for c in range(n_cases)}
        self.per_case: dict[int, list[int]] = {c: [] for c in range(n_cases)}
        self.total: list[int] = []
        self.started: dict[int, int] = {}

    def scan(self, payload: bytes) -> dict:
        response = self.session.post(self.url + "/api/scan", data=payload, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"{self.label}: /api/scan answered {response.status_code}: "
                               f"{response.text[:300]}")
        return response.json()

    def watch(self, after: int) -> None:
        self.watcher = EventWatcher(self.url, self.token, after=after)

    def timed_scan(self, c: int, payload: bytes) -> None:
        t0 = time.perf_counter_ns()
        verdict = self.scan(payload)
        spent = time.perf_counter_ns() - t0
        self.started[verdict["seq"]] = t0
        self.verdicts[c].add(verdict["verdict"])
        self.per_case[c].append(spent)
        self.total.append(spent)

    def result(self, hit_cases: set[int], load: float) -> dict:
        deadline = time.monotonic() + 10
        arrivals = self.watcher.arrivals if self.watcher else {}
        while len(arrivals) < len(self.started) and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = [arrivals[seq] - t0 for seq, t0 in self.started.items() if seq in arrivals]
        after = {"rss": proc_kib(self.proc.pid, "VmRSS"), "hwm": proc_kib(self.proc.pid, "VmHWM")}
        hits = [t for c, ts in self.per_case.items() if c in hit_cases for t in ts]
        misses = [t for c, ts in self.per_case.items() if c not in hit_cases for t in ts]
        return {"label": self.label, "load": load, "start_seconds": self.start_seconds,
                "idle": self.idle, "after": after, "all": summary(self.total),
                "hits": summary(hits), "misses": summary(misses),
                "event": summary(shown) if shown else None,
                "events_missing": len(self.started) - len(shown),
                "camera": [], "final_hwm": after["hwm"],
                "cases": {c: summary(ts) for c, ts in self.per_case.items()},
                "verdicts": {c: sorted(v) for c, v in self.verdicts.items()}}

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.session.close()
        stop_server(self.proc)


def twin_data_dir(data_dir: Path) -> Path:
    """A second data dir on the same snapshot file (a hard link: one page cache for both servers)."""
    twin = data_dir.with_name(data_dir.name + "-compare")
    twin.mkdir(exist_ok=True)
    for stale in twin.glob("snapshot.db*"):
        stale.unlink()
    try:
        os.link(snapshot_path(data_dir), snapshot_path(twin))
    except OSError:
        shutil.copyfile(snapshot_path(data_dir), snapshot_path(twin))
    return twin


def run_http(data_dir: Path, warm_up: Plan, plan: Plan, hits: set[int], camera: bool,
             compare_with: Path | None = None, pause: float = 0.0) -> dict:
    """POST /api/scan to this tree's server, and, with ``compare_with``, to that tree's server
    on a twin data dir, the two taking turns scan by scan so that load falls on both alike.

    ``plan`` is (case number, payload) per scan; ``hits`` the case numbers that hit a list.
    """
    n_cases = max(c for c, _ in plan) + 1
    runs = [ServerRun("this tree", data_dir, ROOT, n_cases)]
    try:
        if compare_with is not None:
            runs.append(ServerRun(str(compare_with), twin_data_dir(data_dir), compare_with, n_cases))
        for run in runs:
            for c, payload in warm_up:  # first requests import lazily
                head = run.scan(payload)["seq"]
            run.watch(after=head)
        load = os.getloadavg()[0]
        for i, (c, payload) in enumerate(plan):
            for run in (runs if i % 2 == 0 else runs[::-1]):
                run.timed_scan(c, payload)
                if pause:
                    time.sleep(pause)
        results = [run.result(hits, load) for run in runs]
        if camera:
            ours = runs[0]
            results[0]["camera"] = run_camera(ours.url + "/api/scan", ours.token, ours.proc.pid)
            results[0]["final_hwm"] = results[0]["camera"][-1]["hwm"]
    finally:
        for run in runs:
            run.close()
    return {**results[0], "compare": results[1] if len(results) > 1 else None}
