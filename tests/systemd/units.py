"""Read the repository's unit files as systemd does: sections, repeated keys, backslash continuations."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
UDEV = REPO / "udev"
#: The Type=notify services and the most exposure each may have (issue 6). The registry has no
#: target in the issue; it is held to the appliance's.
SERVICES = {
    "gatecheck-appliance.service": 2.0,
    "gatecheck-sync.service": 2.0,
    "gatecheck-scanner.service": 1.5,
    "gatecheck-registry.service": 2.0,
}
KIOSK = "gatecheck-kiosk.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """{section: [(key, value), ...]} in file order; a key may repeat (SystemCallFilter=, DeviceAllow=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit: dict, section: str, key: str) -> str | None:
    """The effective value of a single-valued key: the last assignment wins."""
    found = values(unit, section, key)
    return found[-1] if found else None


def words(unit: dict, section: str, key: str) -> set[str]:
    """A list-valued key's items over all its assignments (an empty assignment resets the list)."""
    items: set[str] = set()
    for v in values(unit, section, key):
        items = set() if not v else items | set(v.split())
    return items


def exposure(unit_file: Path) -> float:
    """``systemd-analyze security --offline=true``'s overall exposure level for one unit file."""
    result = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit_file)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, f"no exposure line in systemd-analyze's output:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))
