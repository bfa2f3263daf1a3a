"""The units in systemd/: readiness, watchdog, hardening, priorities, and systemd's own verdict on them.

systemd-analyze runs offline (no systemd needs to be running: the CI
machine's PID 1 is not systemd); the tests that need it skip where it is not
installed (Debian package systemd; .ci/run installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from appliance.provision import DONE_FILE
from tests.systemd.units import (KIOSK, SERVICES, SYSTEMD_ANALYZE, UNITS, exposure, parse_unit, value,
                                 values, words)

needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed "
                                   "(Debian package systemd; .ci/run installs it)")
NO_NETWORK = ("gatecheck-appliance.service", "gatecheck-scanner.service", "gatecheck-registry.service")


@pytest.fixture(scope="module", params=sorted(SERVICES))
def service(request):
    return request.param, parse_unit(UNITS / request.param)


def test_every_service_is_type_notify_with_a_watchdog_and_restarts_on_failure(service):
    name, unit = service
    assert value(unit, "Service", "Type") == "notify", name
    assert value(unit, "Service", "NotifyAccess") == "main", name  # a worker or child cannot speak for it
    assert re.fullmatch(r"\d+(s|min)", value(unit, "Service", "WatchdogSec") or ""), name
    assert value(unit, "Service", "Restart") == "on-failure", name
    assert value(unit, "Unit", "StartLimitIntervalSec") and value(unit, "Unit", "StartLimitBurst"), name


def test_every_service_has_the_hardening_directives(service):
    name, unit = service
    expected = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
                "CapabilityBoundingSet": "", "DevicePolicy": "closed", "RestrictNamespaces": "yes",
                "SystemCallArchitectures": "native", "UMask": "0077"}
    for key, want in expected.items():
        assert value(unit, "Service", key) == want, f"{name}: {key}={value(unit, 'Service', key)!r}"
    assert "@system-service" in values(unit, "Service", "SystemCallFilter"), name
    assert value(unit, "Service", "StateDirectory"), name
    user = value(unit, "Service", "User")
    assert user and user.startswith("gatecheck") and user != "root", name


def test_address_families_are_sd_notify_plus_ip_at_most(service):
    name, unit = service
    families = words(unit, "Service", "RestrictAddressFamilies")
    assert "AF_UNIX" in families and families <= {"AF_UNIX", "AF_INET", "AF_INET6"}, (name, families)


@pytest.mark.parametrize("name", NO_NETWORK)
def test_units_that_need_no_network_reach_loopback_only(name):
    unit = parse_unit(UNITS / name)
    assert values(unit, "Service", "IPAddressDeny") == ["any"]
    assert words(unit, "Service", "IPAddressAllow") == {"localhost"}


def test_the_appliance_units_share_one_user_and_the_data_directory():
    users = {(value(u, "Service", "User"), value(u, "Service", "StateDirectory"))
             for u in (parse_unit(UNITS / n) for n in
                       ("gatecheck-appliance.service", "gatecheck-sync.service", "gatecheck-scanner.service"))}
    assert users == {("gatecheck", "gatecheck")}


@pytest.mark.parametrize("name", ["gatecheck-appliance.service", "gatecheck-sync.service",
                                  "gatecheck-scanner.service"])
def test_device_units_wait_for_a_finished_provisioning_and_work_in_the_state_directory(name):
    unit = parse_unit(UNITS / name)
    # provisioned.json is written last, after the first sync is verified (docs/provisioning.md)
    assert value(unit, "Unit", "ConditionPathExists") == f"/var/lib/gatecheck/{DONE_FILE}"
    # not / (read-only under ProtectSystem=strict): lgpio makes its pipes in the working directory
    assert value(unit, "Service", "WorkingDirectory") == "%S/gatecheck"


def test_only_the_scanner_gets_the_scanner_group_and_its_devices_by_class():
    scanner = parse_unit(UNITS / "gatecheck-scanner.service")
    assert words(scanner, "Service", "SupplementaryGroups") == {"gatecheck-scanner"}
    allowed = [v.split()[0] for v in values(scanner, "Service", "DeviceAllow")]
    # Classes, not paths: a scanner plugged in after start gets a node a path rule never saw.
    assert allowed and all(a.startswith("char-") for a in allowed), allowed
    assert {"char-ttyACM", "char-ttyUSB", "char-input", "char-video4linux"} <= set(allowed)
    for name in set(SERVICES) - {"gatecheck-scanner.service"}:
        unit = parse_unit(UNITS / name)
        assert not values(unit, "Service", "SupplementaryGroups") and not values(unit, "Service", "DeviceAllow")
        assert value(unit, "Service", "PrivateDevices") == "yes", name


def test_no_unit_or_user_file_puts_anything_in_the_input_group():
    """`input` reads every keyboard on the machine, the operator's PIN included."""
    for path in [*UNITS.glob("*.service"), *UNITS.glob("sysusers.d/*.conf")]:
        for line in path.read_text().splitlines():
            if line.strip().startswith("#"):
                continue
            if re.match(r"\s*(Group|SupplementaryGroups|User)\s*=", line) or re.match(r"\s*[ugm]\s", line):
                assert not re.search(r"\binput\b", line), f"{path.name}: {line}"


def test_the_counter_and_the_scanner_run_above_the_sync_agent():
    def priority(name):
        unit = parse_unit(UNITS / name)
        return (int(value(unit, "Service", "CPUWeight")), int(value(unit, "Service", "IOWeight")),
                int(value(unit, "Service", "Nice")))

    sync = priority("gatecheck-sync.service")
    for name in ("gatecheck-appliance.service", "gatecheck-scanner.service"):
        cpu, io, nice = priority(name)
        assert cpu > sync[0] and io > sync[1] and nice < sync[2], name


@needs_analyze
@pytest.mark.parametrize(("name", "limit"), sorted(SERVICES.items()))
def test_systemd_analyze_security_exposure_is_within_the_target(name, limit):
    assert exposure(UNITS / name) <= limit


@needs_analyze
def test_systemd_analyze_verify_finds_nothing_wrong_with_any_unit(tmp_path):
    """verify checks the syntax and that ExecStart= names an executable: it runs in a root that has
    the programs (stubs) and systemd's own units, so only our units' faults are reported."""
    root = tmp_path / "root"
    for program in ("opt/gatecheck/bin/gatecheck", "usr/bin/cage", "usr/bin/chromium"):
        stub = root / program
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    system = "/usr/lib/systemd/system"
    if not os.path.isdir(system):
        pytest.skip(f"no {system} to verify the units' dependencies against")
    shutil.copytree(system, root / system.lstrip("/"), symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    names = [*sorted(SERVICES), KIOSK]
    for name in names:
        shutil.copy(UNITS / name, units / name)
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", f"--root={root}", *names],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), \
        result.stdout + result.stderr


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
                    reason="systemd-sysusers / systemd-tmpfiles are not installed (Debian package systemd)")
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles must be root to give the directory its owner")
def test_sysusers_and_tmpfiles_make_the_users_and_a_private_data_directory(tmp_path):
    (tmp_path / "etc").mkdir()
    for conf in ("gatecheck.conf", "gatecheck-registry.conf"):
        result = _run("systemd-sysusers", f"--root={tmp_path}", str(UNITS / "sysusers.d" / conf))
        assert result.returncode == 0, result.stderr
        result = _run("systemd-tmpfiles", f"--root={tmp_path}", "--create", str(UNITS / "tmpfiles.d" / conf))
        assert result.returncode == 0, result.stderr
    users = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert {"gatecheck", "gatecheck-kiosk", "gatecheck-registry"} <= set(users)
    assert "gatecheck-scanner" in groups and groups["gatecheck-scanner"][3] == ""  # no members: the unit adds it
    for directory, user in (("gatecheck", "gatecheck"), ("gatecheck-registry", "gatecheck-registry")):
        stat = (tmp_path / "var/lib" / directory).stat()
        assert (stat.st_mode & 0o777, stat.st_uid) == (0o700, int(users[user][2]))
