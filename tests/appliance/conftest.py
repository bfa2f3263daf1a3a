"""Fixtures for the counter app: a real data dir and a real `gatecheck serve` process.

The data dir holds a small real snapshot (built with SnapshotStore), whose
entries are the keyed tokens (sync/identity.py) of the sample documents in
appliance/samples/, so a scan of a sample gives a real verdict:

- passport-td3.txt: its document token is on the no-fly list (DENY);
- licence-on.txt: its holder's name + date of birth is on it (REFER);
- licence-ca.txt: listed only on a hotel list, outside this airline
  counter's scope (CLEAR).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

from appliance.documents import parse_payload
from appliance.records import Action, Batch, Entry, ListInfo, TokenKind
from appliance.snapshot import SnapshotStore, snapshot_path
from sync.identity import identity_from_document

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "appliance" / "samples"
OPERATORS = {"agent-17": "2468", "agent-42": "1357", "agent-7": "8642", "agent-23": "9753"}
#: Operators granted the flag form; agent-42 and agent-7 are counter staff only.
REPORTERS = ("agent-17", "agent-23")
NOFLY = "utopia-nfl"
HOTEL = "utopia-hotels"
NOFLY_KEY = hashlib.sha256(b"test no-fly list key").digest()
HOTEL_KEY = hashlib.sha256(b"test hotel list key").digest()
DENY_REFERENCE = "NFL-2024-00012345"
REFER_REFERENCE = "NFL-2023-00000777"
REDRESS = "Write to the Traveller Redress Office of the Civil Aviation Authority, quoting the reference."
SERVER_START_TIMEOUT = 30


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _tokens(name: str, key: bytes):
    doc = parse_payload(sample(name), today=date.today())
    return identity_from_document(doc).tokens(key)


def write_config(data_dir: Path, **settings: str) -> None:
    # pbkdf2 with few rounds keeps sign-in fast in tests; devices use the default scrypt.
    settings = {"reporters": "[" + ", ".join(f'"{r}"' for r in REPORTERS) + "]", **settings}
    lines = ['scopes = ["air_travel"]']
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines.append("[operators]")
    for operator, pin in OPERATORS.items():
        lines.append(f'{operator} = "{generate_password_hash(pin, method="pbkdf2:sha256:1000")}"')
    (data_dir / "gatecheck.toml").write_text("\n".join(lines) + "\n")
    (data_dir / "gatecheck.toml").chmod(0o600)  # config.py refuses PIN hashes others can read


def build_snapshot(data_dir: Path, *, heartbeat_at: datetime | None = None) -> None:
    """The two sample lists, at version 1, verified at ``heartbeat_at`` (default now)."""
    now = datetime.now(timezone.utc)
    heartbeat_at = heartbeat_at or now
    today = now.date()
    with SnapshotStore(snapshot_path(data_dir)) as store:
        store.put_list(ListInfo(
            list_id=NOFLY, name="Utopia National No-Fly List",
            authority="Civil Aviation Authority of Utopia",
            legal_basis="Aviation Security Act, s. 12", scopes=("air_travel",),
            default_action=Action.DENY, token_key=NOFLY_KEY, redress=REDRESS,
        ))
        passport = _tokens("passport-td3.txt", NOFLY_KEY)
        ontario = _tokens("licence-on.txt", NOFLY_KEY)
        store.apply_batch(Batch(
            list_id=NOFLY, from_version=0, to_version=1,
            add=(
                Entry(passport.document, NOFLY, TokenKind.DOCUMENT, "aviation_security", Action.DENY,
                      DENY_REFERENCE, today - timedelta(days=30), today + timedelta(days=365)),
                *(Entry(token, NOFLY, TokenKind.PERSON, "aviation_security", Action.DENY,
                        REFER_REFERENCE, today - timedelta(days=30), today + timedelta(days=365))
                  for token in ontario.persons),
            ),
            state_digest=hashlib.sha256(b"nofly v1").digest(),
            signed_at=heartbeat_at, valid_until=heartbeat_at + timedelta(days=2),
        ))
        store.put_list(ListInfo(
            list_id=HOTEL, name="Utopia Hotel Defaulters", authority="Utopia District Court",
            legal_basis="Judgment Enforcement Act", scopes=("star_hotel",),
            default_action=Action.DENY, token_key=HOTEL_KEY,
        ))
        store.apply_batch(Batch(
            list_id=HOTEL, from_version=0, to_version=1,
            add=(Entry(_tokens("licence-ca.txt", HOTEL_KEY).document, HOTEL, TokenKind.DOCUMENT,
                       "judgment_debtor", Action.DENY, "UDC-2022-00000042",
                       today - timedelta(days=30), today + timedelta(days=365)),),
            state_digest=hashlib.sha256(b"hotel v1").digest(),
            signed_at=heartbeat_at, valid_until=heartbeat_at + timedelta(days=2),
        ))


def set_heartbeat(data_dir: Path, when: datetime) -> None:
    """What the sync agent does when the registry proves the lists current (another process)."""
    with SnapshotStore(snapshot_path(data_dir)) as store:
        for list_id in (NOFLY, HOTEL):
            store.record_heartbeat(list_id, signed_at=None, valid_until=None, heartbeat_at=when)


def make_data_dir(path: Path, **settings: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_config(path, **settings)
    build_snapshot(path)
    return path


def _serve_command(data_dir: Path) -> list[str]:
    """`gatecheck serve` through the real CLI group once it is registered there."""
    from appliance.cli import main

    if "serve" in getattr(main, "commands", {}):
        return [sys.executable, "-m", "appliance.cli", "serve", "--data-dir", str(data_dir), "--port", "0"]
    return [sys.executable, "-m", "appliance.web_cli", "--data-dir", str(data_dir), "--port", "0"]


@dataclass
class Server:
    """A running `gatecheck serve` subprocess on a free loopback port."""

    process: subprocess.Popen
    url: str
    data_dir: Path
    output: list[str]

    @property
    def token(self) -> str:
        return (self.data_dir / "api-token").read_text().strip()

    def api(self, path: str) -> str:
        return self.url.rstrip("/") + path

    def scan(self, payload: bytes, content_type: str = "application/octet-stream", **kw) -> requests.Response:
        return requests.post(self.api("/api/scan"), data=payload, timeout=10,
                             headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
                             **kw)

    def status(self) -> dict:
        response = requests.get(self.api("/api/status"), timeout=10,
                                headers={"Authorization": f"Bearer {self.token}"})
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(data_dir: Path) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        _serve_command(data_dir), cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = re.search(r"counter screen on (http://127\.0\.0\.1:\d+/)", line)
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(SERVER_START_TIMEOUT) or not url:
        process.kill()
        raise RuntimeError("gatecheck serve did not start:\n" + "".join(output))
    return Server(process, url[0], data_dir, output)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(make_data_dir(tmp_path_factory.mktemp("counter")))
    yield srv
    srv.stop()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(server: Server, operator: str = "agent-17", pin: str | None = None) -> requests.Session:
    """A browser-like session signed in through the real sign-in form."""
    session = requests.Session()
    page = session.get(server.api("/signin"), timeout=10)
    response = session.post(server.api("/signin"), timeout=10, data={
        "csrf_token": csrf_token(page.text), "operator": operator, "pin": pin or OPERATORS[operator],
    })
    assert response.status_code == 200 and response.url.rstrip("/") == server.url.rstrip("/"), response.text[:500]
    return session
