"""A stolen or shared device: list keys and the journal are readable by the service user only."""

import stat
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_check_creates_a_private_data_dir_and_private_databases(tmp_path):
    data_dir = tmp_path / "device"
    gatecheck = Path(sys.executable).with_name("gatecheck")
    proc = subprocess.run([str(gatecheck), "check", "--data-dir", str(data_dir)],
                          input=(SAMPLES / "passport-td3.txt").read_bytes(), capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _mode(data_dir) == 0o700
    databases = [p for p in data_dir.iterdir() if p.name.startswith("journal.db")]
    assert {p.name for p in databases} >= {"journal.db"}
    assert not (data_dir / "snapshot.db").exists()  # checking never creates the store
    for path in databases:  # -wal and -shm files included
        assert _mode(path) == 0o600, path.name
