"""What a device says about itself in its health report: the app's version and the scanner's state.

One place for both, so that issue 6's scanner daemon fills in
:func:`scanner_state` here and nothing else changes: the sync agent reports
whatever it returns (sync/agent.py ``health()``), and the registry's device
pages show it (registry/fleet.py reads it, whatever its shape).
"""

from __future__ import annotations

import os
from importlib import metadata

PACKAGE = "gatecheck-appliance"
UNKNOWN = "unknown"


def app_version() -> str:
    """The installed package's version; "unknown" when running from a tree that was never installed."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def scanner_state(data_dir: str | os.PathLike) -> dict[str, str]:
    """``{"state": ..., "detail": ...}`` for the fleet view.

    No scanner daemon runs yet (issue 6), so nothing on the device knows
    whether a scanner is attached; "unknown" says exactly that rather than
    a guess. Issue 6 reads its daemon's status from ``data_dir`` here.
    """
    return {"state": UNKNOWN, "detail": "no scanner daemon reports its state yet"}
