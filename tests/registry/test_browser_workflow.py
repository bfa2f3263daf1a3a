"""Issue 5's whole loop in real headless Chromium against real processes.

An IT admin issues an enrolment code on the registry's pages; a counter
device enrols with it over HTTP and its sync agent (`gatecheck sync run`,
long-polling) keeps its snapshot current. A reporter files a report by
pasting the traveller's passport MRZ; a second person, a reviewer, accepts
it; the device receives the entry and `gatecheck check` on that passport
says DENY. A third person records the traveller's appeal and upholds it: the
removal reaches the device and the same scan is CLEAR again.

The registry is `gatecheck registry serve` (gunicorn), the device is a data
directory of its own; nothing is shared between them but HTTP. Skipped,
with the reason, where /usr/bin/chromium is missing (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.snapshot import SnapshotStore, snapshot_path
from registry.audit import AuditLog
from registry.reports import ReportQueue
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from sync.enrolment import enrolment_request, parse_answer, write_enrolment
from sync.keys import raw_public_key
from appliance.specimens.mrz import MRZFields, encode
from tests.sync.conftest import GATECHECK, LIST, REPO, RegistryServer

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed "
                                "(apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

PASSWORD = "correct horse battery staple"
USERS = {"it-admin": "it_admin", "reporter-1": "reporter", "reviewer-1": "reviewer", "reviewer-2": "reviewer"}
#: The traveller: a passport valid for years to come, scanned as its MRZ.
SCAN = "\n".join(encode(MRZFields("TD3", "P", "SWE", "L898902C3", "ERIKSSON", "ANNA MARIA", date(1974, 8, 12), "F",
                                  date.today() + timedelta(days=3 * 365), "SWE")))
TIMEOUT_MS = 15_000


def admin(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([*GATECHECK, "registry", *args], cwd=REPO, input=stdin, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def registry(tmp_path):
    server = RegistryServer(tmp_path / "registry")
    queue = ReportQueue(server.api.engine, server.api, AuditLog(server.api.engine))
    queue.set_policy(ListPolicy(LIST, AVIATION_CATEGORIES), by="list-admin")
    for username, role in USERS.items():
        admin("user", "add", username, "--data-dir", str(server.data_dir), "--role", role, "--password-stdin",
              "--by", "test", stdin=PASSWORD + "\n")
    server.start()
    yield server
    server.stop()


class Counter:
    """A device data directory enrolled over HTTP with a code, and its long-polling sync agent."""

    def __init__(self, data_dir, registry: RegistryServer, code: str) -> None:
        self.data_dir, self.registry = data_dir, registry
        data_dir.mkdir(mode=0o700)
        key = Ed25519PrivateKey.generate()
        (data_dir / "device.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (data_dir / "device.key").chmod(0o600)
        request = urllib.request.Request(
            registry.url + "/v1/enroll", data=enrolment_request(code, raw_public_key(key), "counter 12"),
            method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            write_enrolment(data_dir, parse_answer(response.read(), public_key=raw_public_key(key)))
        self.env = {**os.environ, "GATECHECK_HOME": str(data_dir)}
        self.agent = subprocess.Popen(
            [*GATECHECK, "sync", "run", "--data-dir", str(data_dir), "--registry", registry.url,
             "--first-poll-max-delay", "0"], cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
            stderr=(data_dir.parent / "agent.log").open("wb"))

    def holds(self, version: int, timeout: float = 20) -> None:
        """Wait until the device's store is at ``version`` of the list, proved current by the registry."""
        deadline = time.monotonic() + timeout
        held = None
        while time.monotonic() < deadline:
            if snapshot_path(self.data_dir).exists():
                with SnapshotStore(snapshot_path(self.data_dir), readonly=True) as store:
                    info = store.get_list(LIST)
                    held = info.version if info and info.heartbeat_at else None
                if held == version:
                    return
            time.sleep(0.1)
        log = (self.data_dir.parent / "agent.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"the device holds version {held}, not {version}, after {timeout} s; agent:\n{log}")

    def verdict(self, scan: str) -> str:
        """The counter's verdict on ``scan``, as `gatecheck check` gives it (and journals it)."""
        proc = subprocess.run([*GATECHECK, "check", "--data-dir", str(self.data_dir)], cwd=REPO, env=self.env,
                              input=scan.encode(), capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["verdict"]

    def stop(self) -> None:
        self.agent.terminate()
        try:
            self.agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


def signed_in(browser, registry: RegistryServer, username: str):
    """A fresh browser context (its own cookies) with ``username`` signed in; returns its page."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(registry.url + "/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(registry.url + "/")
    return page


def test_report_review_sync_deny_appeal_lift_clear(tmp_path, registry, browser):
    it = signed_in(browser, registry, "it-admin")
    it.goto(registry.url + "/enrolment-codes/new")
    it.get_by_label(LIST).check()
    it.get_by_role("button", name="Issue the code").click()
    code = it.locator(".enrolment-code code").inner_text()
    assert len(code.replace("-", "")) == 20

    counter = Counter(tmp_path / "counter", registry, code)
    try:
        counter.holds(0)
        assert counter.verdict(SCAN) == "CLEAR"

        reporter = signed_in(browser, registry, "reporter-1")
        reporter.goto(registry.url + "/reports/new")
        reporter.get_by_label("List and category").select_option(f"{LIST}|smoking_on_board")
        reporter.get_by_label("Scanned document").fill(SCAN)
        reporter.get_by_label("Flight or stay", exact=True).fill("DA 1234")
        reporter.get_by_label("Date of the flight or stay").fill("2026-11-20")
        reporter.get_by_label("What happened").fill("Smoked in the lavatory during the descent and refused to stop.")
        reporter.get_by_role("button", name="File the report").click()
        reporter.wait_for_url(registry.url + "/reports/mine")
        assert "pending" in reporter.locator("main").inner_text()

        reviewer = signed_in(browser, registry, "reviewer-1")
        reviewer.goto(registry.url + "/review")
        reviewer.get_by_role("row", name="ERIKSSON").get_by_role("link").first.click()
        reviewer.get_by_role("button", name="Accept and list").click()
        assert "accepted" in reviewer.locator("main").inner_text().lower()
        counter.holds(1)
        assert counter.verdict(SCAN) == "DENY"

        desk = signed_in(browser, registry, "reviewer-2")
        desk.goto(registry.url + "/entries")
        desk.get_by_role("row", name="ERIKSSON").get_by_role("link").first.click()
        desk.get_by_label("How it reached you").fill("letter of 2026-11-24, case CR-4711")
        desk.get_by_label("The traveller's grounds").fill("She was not on flight DA 1234; her passport was stolen.")
        desk.get_by_role("button", name="Record the appeal").click()
        desk.locator("form[action$='/uphold'] textarea").fill("Upheld: the traveller was not on the flight.")
        desk.get_by_role("button", name="Uphold and lift the entry").click()
        assert "upheld" in desk.locator("main").inner_text().lower()
        counter.holds(2)
        assert counter.verdict(SCAN) == "CLEAR"
    finally:
        counter.stop()
