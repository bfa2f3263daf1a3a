"""`make demo`'s job: a device with demo lists gives each kind of verdict on the bundled samples."""

import subprocess
import sys
from pathlib import Path


def test_demo_lists_give_deny_refer_and_clear_and_a_verified_journal(tmp_path):
    gatecheck = Path(sys.executable).with_name("gatecheck")
    proc = subprocess.run([str(gatecheck), "demo", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    verdicts = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()
                if line.endswith((".txt",)) or ".txt " in line}
    assert verdicts["licence-ca.txt"] == "DENY"  # document token on the airline list
    assert verdicts["passport-td3.txt"] == "REFER"  # name + date of birth only: never DENY
    assert verdicts["licence-on.txt"] == "CLEAR"  # listed on a hotel list: not this counter's scope
    assert verdicts["boarding-pass.txt"] == "REFER"  # a weak identity
    assert "journal ok: 5 records, chain intact" in proc.stdout
    assert "PIN" in proc.stdout


def test_running_the_demo_twice_reloads_the_lists_and_keeps_the_journal(tmp_path):
    gatecheck = Path(sys.executable).with_name("gatecheck")
    for _ in range(2):
        proc = subprocess.run([str(gatecheck), "demo", "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert "journal ok: 10 records, chain intact" in proc.stdout
