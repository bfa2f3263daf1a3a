"""`gatecheck demo` (`make demo`): the whole system on one machine, started with one command.

The first run builds a local registry with two synthetic authority lists
(appliance/demo_world.py) through the same commands an operator uses:
`registry init`, `list create`, `list categories`, `user add`, an import
previewed by one list admin and applied by another, and an enrolment code
for an airline counter, which `gatecheck provision` uses to enrol the
demo counter. Every run then starts the registry, the counter's sync agent,
the counter screen and a demo scanner that replays sample documents, and
prints each verdict as the counter reaches it. Ctrl-C stops everything; a
second run reuses the data and starts in seconds.

Everything stays on 127.0.0.1, in SQLite files under the data directory.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from datetime import date, datetime
from pathlib import Path

import click

from appliance.cli_common import fail
from appliance.demo_stack import DemoError, Service, Stack, answers
from appliance.private_files import private_dir, write_private
from appliance.provision_plan import EXIT_ALREADY_PROVISIONED

STATE_FILE = "demo.json"
#: Seconds between two documents from the demo scanner.
SCAN_INTERVAL = 4.0


def _gatecheck(*args: str, stdin: str | None = None, timeout: float = 600, done: tuple[int, ...] = (0,),
               already: str | None = None) -> str:
    """Run a `gatecheck` command as an operator would; its one-line error becomes a DemoError.

    ``done`` are the exit statuses that mean success (`provision` says 3 when
    already provisioned); an error containing ``already`` means an earlier,
    interrupted run did the step but was stopped before recording it.
    """
    try:
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DemoError(f"`gatecheck {' '.join(args[:3])}` did not finish in {timeout:.0f} s") from None
    if proc.returncode not in done:
        lines = [line for line in proc.stderr.splitlines() if line.strip()] or ["(no message)"]
        if already is not None and already in lines[-1]:
            return proc.stdout
        raise DemoError(f"`gatecheck {' '.join(args[:3])}` failed: {lines[-1].strip()}")
    return proc.stdout


class DemoState:
    """What the first run has done so far, so an interrupted first run resumes (0600: it holds logins)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = json.loads(path.read_text("utf-8")) if path.exists() else {}
        except (OSError, ValueError) as exc:
            raise DemoError(f"{path} is damaged ({exc}); delete the demo directory to start afresh") from None
        if not isinstance(self.data, dict):
            raise DemoError(f"{path} is damaged (not a JSON object); delete the demo directory to start afresh")

    def done(self, step: str) -> bool:
        return step in self.data.get("done", [])

    def mark(self, step: str, **values) -> None:
        self.data.setdefault("done", []).append(step)
        self.save(**values)

    def save(self, **values) -> None:
        self.data.update(values)
        write_private(self.path, json.dumps(self.data, indent=2).encode())


def build_registry(root: Path, state: DemoState, say) -> None:
    """The demo registry: keys, the two lists, the users, the imported entries, the counter's code."""
    from appliance import demo_world as world

    registry = str(root / "registry")
    if not state.done("init"):
        say("creating the registry (root key, signing key)")
        _gatecheck("registry", "init", "--data-dir", registry, already="already holds registry keys")
        state.mark("init")
    for spec in world.LISTS:
        step = f"list:{spec['list_id']}"
        if state.done(step):
            continue
        _gatecheck("registry", "list", "create", spec["list_id"], "--data-dir", registry, "--name", spec["name"],
                   "--authority", spec["authority"], "--legal-basis", spec["legal_basis"],
                   *[arg for scope in spec["scopes"] for arg in ("--scope", scope)],
                   "--default-action", spec["default_action"], "--redress", spec["redress"], "--by", "list-admin-1",
                   already="already exists")
        state.mark(step)
    if not state.done("categories"):
        _gatecheck("registry", "list", "categories", world.AVIATION_LIST["list_id"], "--data-dir", registry,
                   "--preset", "aviation", "--by", "list-admin-1", "--reason", "demo airline's taxonomy")
        state.mark("categories")
    logins = dict(state.data.get("logins", {}))
    for username, roles, orgs in world.USERS:
        step = f"user:{username}"
        if state.done(step):
            continue
        # The password is recorded before the user is made, so an interrupted run's user keeps a known one.
        logins.setdefault(username, secrets.token_urlsafe(12))
        state.save(logins=logins)
        _gatecheck("registry", "user", "add", username, "--data-dir", registry, "--password-stdin", "--by", "demo",
                   *[arg for role in roles for arg in ("--role", role)],
                   *[arg for org in orgs for arg in ("--org", org)], stdin=logins[username] + "\n",
                   already=f"user '{username}' exists")
        state.mark(step)
    imports = root / "imports"
    imports.mkdir(exist_ok=True)
    for spec in world.LISTS:
        step = f"import:{spec['list_id']}"
        if state.done(step):
            continue
        rows = world.import_rows(spec["list_id"], date.today())
        say(f"importing {len(rows):,} entries into {spec['list_id']} (previewed by list-admin-1, "
            "applied by list-admin-2)")
        csv_path = imports / f"{spec['list_id']}.csv"
        csv_path.write_text(world.rows_csv(rows), "utf-8")
        preview = json.loads(_gatecheck("registry", "import", "preview", str(csv_path), "--data-dir", registry,
                                        "--list", spec["list_id"], "--mapping", json.dumps(world.IMPORT_MAPPING),
                                        "--by", "list-admin-1"))
        if preview.get("status") == "previewed":
            _gatecheck("registry", "import", "apply", preview["import_id"], "--data-dir", registry,
                       "--confirmed-by", "list-admin-2")
        state.mark(step)
    if not state.done("code"):
        code = _gatecheck("registry", "device", "enroll-code", "--data-dir", registry, "--lists",
                          ",".join(spec["list_id"] for spec in world.LISTS), "--org", world.AIRLINE,
                          "--kind", "airline_counter", "--reason", "the demo counter", "--by", "it-admin").strip()
        state.mark("code", code=code)


def provision_counter(root: Path, registry_url: str, state: DemoState, say) -> None:
    if state.done("provision"):
        return
    say("enrolling the demo counter with its code (gatecheck provision)")
    _gatecheck("provision", "--registry", registry_url, "--code", state.data["code"],
               "--data-dir", str(root / "device"), "--name", "demo counter", done=(0, EXIT_ALREADY_PROVISIONED))
    state.mark("provision")


def configure_counter(root: Path, counter_port: int, state: DemoState, scan_interval: float) -> None:
    """The counter's own settings on top of its enrolment: port, an operator, the demo scanner."""
    import tomli_w
    from werkzeug.security import generate_password_hash

    from appliance.config import CONFIG_FILE
    if "pin" not in state.data:
        state.mark("pin", pin=f"{secrets.randbelow(10**6):06d}")
    path = root / "device" / CONFIG_FILE
    try:
        settings = tomllib.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DemoError(f"{path} is damaged ({exc}); delete the demo directory to start afresh") from None
    settings["port"] = counter_port
    operators = settings.setdefault("operators", {})
    if "demo" not in operators:
        operators["demo"] = generate_password_hash(state.data["pin"])
    settings["reporters"] = sorted(set(settings.get("reporters", [])) | {"demo"})
    settings["scanner"] = {"sources": [{"kind": "replay", "name": "demo-scanner",
                                        "path": str(root / "scanner-samples"),
                                        "interval_seconds": scan_interval}]}
    write_private(path, tomli_w.dumps(settings).encode())


def write_samples(root: Path) -> list:
    """Today's documents for the demo scanner (expiry dates move with the calendar)."""
    from appliance import demo_world as world

    folder = root / "scanner-samples"
    folder.mkdir(exist_ok=True)
    travellers = world.travellers(date.today())
    for stale in set(folder.iterdir()) - {folder / t.file for t in travellers}:
        stale.unlink()  # an older demo's file would be replayed too
    for traveller in travellers:
        (folder / traveller.file).write_bytes(traveller.payload)
    return travellers


def services(root: Path, registry_port: int, counter_port: int) -> list[Service]:
    gatecheck = [sys.executable, "-m", "appliance.cli"]
    device, logs = str(root / "device"), root / "logs"
    registry_url = f"http://127.0.0.1:{registry_port}"
    return [
        Service("registry", [*gatecheck, "registry", "serve", "--data-dir", str(root / "registry"),
                             "--port", str(registry_port), "--workers", "2", "--threads", "8"],
                logs / "registry.log", answers(f"{registry_url}/login")),
        Service("sync agent", [*gatecheck, "sync", "run", "--data-dir", device, "--registry", registry_url,
                               "--first-poll-max-delay", "0"], logs / "sync.log"),
        Service("counter", [*gatecheck, "serve", "--data-dir", device, "--port", str(counter_port)],
                logs / "counter.log", answers(f"http://127.0.0.1:{counter_port}/login")),
        Service("demo scanner", [*gatecheck, "scanner", "run", "--data-dir", device], logs / "scanner.log"),
    ]


class VerdictFeed:
    """The counter's journal as it grows, read through its local API (the screen's own feed)."""

    def __init__(self, counter_url: str, token_file: Path) -> None:
        self.url = f"{counter_url}/api/scans"
        self.token_file = token_file
        self.after = None

    def new_lines(self) -> list[str]:
        import requests

        try:
            headers = {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}
            if self.after is None:  # start at the present: old runs' scans are history
                self.after = requests.get(self.url, params={"after": 0, "limit": 1}, headers=headers,
                                          timeout=2).json()["head_seq"]
            answer = requests.get(self.url, params={"after": self.after}, headers=headers, timeout=2).json()
        except (OSError, ValueError, KeyError, requests.RequestException):
            return []
        lines = []
        for event in answer.get("events", []):
            self.after = event["seq"]
            why = "; ".join(event["reasons"] + event["notes"]) or "no match on any list in scope"
            at = datetime.fromisoformat(event["at"]).astimezone().strftime("%H:%M:%S")
            lines.append(f"  {at}  {event['verdict']:<10}  {event['channel']:<7}  {why}")
        return lines


def _free(port: int) -> None:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(f"port {port} on 127.0.0.1 is in use (another demo?); stop it, or choose "
                            "another with --registry-port / --counter-port") from None


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".demo"),
              show_default=True, help="Where the demo keeps its registry, counter and logs.")
@click.option("--registry-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--counter-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--scan-interval", type=click.FloatRange(0.2, 3600), default=SCAN_INTERVAL, show_default=True,
              help="Seconds between two documents from the demo scanner.")
def demo(data_dir: Path, registry_port: int, counter_port: int, scan_interval: float) -> None:
    """Run a registry, a counter, its sync agent and a demo scanner on 127.0.0.1 until Ctrl-C."""
    root = data_dir.resolve()

    def say(text: str) -> None:
        click.echo(f"· {text}")

    stack = None
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        for port in (registry_port, counter_port):
            _free(port)
        private_dir(root)
        state = DemoState(root / STATE_FILE)
        if not state.done("provision"):
            say(f"first run: building the demo in {root} (under a minute; later runs reuse it)")
        build_registry(root, state, say)
        registry, agent, counter, scanner = services(root, registry_port, counter_port)
        stack = Stack()
        stack.add(registry)  # first: provisioning enrols over HTTP
        provision_counter(root, f"http://127.0.0.1:{registry_port}", state, say)
        configure_counter(root, counter_port, state, scan_interval)
        travellers = write_samples(root)
        stack.add(agent)
        stack.add(counter)
        feed = VerdictFeed(f"http://127.0.0.1:{counter_port}", root / "device" / "api-token")
        feed.new_lines()  # from here on: the scanner's first document is the first line shown
        stack.add(scanner)
        _welcome(root, registry_port, counter_port, state, travellers, scan_interval)
        while not stopping:
            dead = stack.dead()
            if dead is not None:
                raise DemoError(f"the {dead.name} stopped: {dead.last_words()} (log: {dead.log})")
            for line in feed.new_lines():
                click.echo(line)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except DemoError as exc:
        _stop(stack)
        fail(str(exc))
    except OSError as exc:
        _stop(stack)
        fail(f"the demo cannot use {data_dir}: {exc.strerror or exc}")
    click.echo("\nstopping: demo scanner, counter, sync agent, registry …")
    _stop(stack)
    click.echo(f"stopped. `make demo` again reuses {data_dir}; delete it to start afresh.")


def _stop(stack: Stack | None) -> None:
    """Stop the processes; a second Ctrl-C while they stop must not leave the job half done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if stack is not None:
        stack.stop()


def _welcome(root: Path, registry_port: int, counter_port: int, state: DemoState, travellers,
             scan_interval: float) -> None:
    from appliance.demo_world import USERS

    logins = state.data["logins"]
    width = max(map(len, logins))
    click.echo(f"""
Gatecheck demo is running (Ctrl-C stops it)

  registry        http://127.0.0.1:{registry_port}/   (people's pages and the device API)
  counter screen  http://127.0.0.1:{counter_port}/   operator 'demo', PIN {state.data['pin']}

registry logins:""")
    for username, roles, _ in USERS:
        click.echo(f"  {username:<{width}}  {logins[username]}   ({', '.join(roles)})")
    click.echo(f"""
The demo scanner shows these documents every {scan_interval:g} s:""")
    for traveller in travellers:
        click.echo(f"  {traveller.expected:<10}  {traveller.label}")
    click.echo(f"""
Logs are in {root / 'logs'}. Verdicts, as the counter reaches them:""")

