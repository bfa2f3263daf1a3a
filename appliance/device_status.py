"""What a device says about itself in its health report: the app's version and the scanner's state.

One place for both: the sync agent reports whatever :func:`scanner_state`
returns (sync/agent.py ``health()``), and the registry's device pages show
it (registry/fleet.py reads it, whatever its shape). The scanner's state
comes from the status file the scanner daemon (hardware/daemon.py) rewrites
while it runs.
"""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path

from hardware.scan import STATUS_FILE, STATUS_STALE_SECONDS

PACKAGE = "gatecheck-appliance"
UNKNOWN = "unknown"
OK = "ok"
DISCONNECTED = "disconnected"
NOT_RUNNING = "not running"


def app_version() -> str:
    """The installed package's version; "unknown" when running from a tree that was never installed."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def read_scanner_status(data_dir: str | os.PathLike) -> dict | None:
    """The scanner daemon's status file (hardware/scan.py STATUS_FILE) as written, or None if absent or unreadable."""
    try:
        with open(Path(data_dir) / STATUS_FILE, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def scanner_state(data_dir: str | os.PathLike, now: float | None = None) -> dict[str, str]:
    """``{"state": ..., "detail": ...}`` for the fleet view and ``gatecheck doctor``.

    - "ok": the daemon runs, every source is connected and the appliance answers;
    - "disconnected": the daemon runs but a source is unplugged, or the
      appliance does not answer (scans are being held);
    - "not running": the daemon stopped, or its file is older than
      STATUS_STALE_SECONDS (it rewrites it every 10 s while alive);
    - "unknown": no status file (no daemon has run here) or one that cannot be read.

    Never names a payload: the file holds none.
    """
    path = Path(data_dir) / STATUS_FILE
    if not path.exists():
        return {"state": UNKNOWN, "detail": "no scanner daemon has reported on this device"}
    document = read_scanner_status(data_dir)
    if document is None:
        return {"state": UNKNOWN, "detail": f"{STATUS_FILE} cannot be read"}
    now = time.time() if now is None else now
    updated = document.get("updated_at")
    if not isinstance(updated, (int, float)) or isinstance(updated, bool):
        return {"state": UNKNOWN, "detail": f"{STATUS_FILE} has no updated_at"}
    if document.get("running") is False:
        return {"state": NOT_RUNNING, "detail": f"the scanner daemon stopped {_ago(now - updated)}"}
    if now - updated > STATUS_STALE_SECONDS:
        return {"state": NOT_RUNNING, "detail": f"no word from the scanner daemon for {_ago(now - updated, ago=False)}"}
    problems = []
    sources = [s for s in document.get("sources") or [] if isinstance(s, dict)]
    for source in sources:
        if not source.get("connected"):
            problems.append(f"{source.get('name')} ({source.get('kind')}) disconnected: {source.get('detail')}")
    appliance = document.get("appliance") if isinstance(document.get("appliance"), dict) else {}
    if appliance.get("reachable") is False:
        problems.append(f"appliance unreachable ({appliance.get('detail')}), {document.get('queued', 0)} scans held")
    if not sources:
        problems.append("no sources configured")
    if problems:
        return {"state": DISCONNECTED, "detail": "; ".join(str(p) for p in problems)[:200]}
    names = ", ".join(f"{s.get('name')} ({s.get('kind')})" for s in sources)
    return {"state": OK, "detail": f"{len(sources)} connected: {names}"[:200]}


def _ago(seconds: float, *, ago: bool = True) -> str:
    seconds = max(0.0, seconds)
    text = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 \
        else f"{seconds / 3600:.0f} h"
    return f"{text} ago" if ago else text
