"""`gatecheck demo`: a counter device with real lists, checked end to end.

Until the registry and sync agent exist, the demo plays the registry's part:
it loads two lists into the snapshot through the same apply_batch a sync
delta uses, listing some of the bundled sample travellers by their keyed
tokens only, then checks every sample and prints the verdicts. Everything is
local: SQLite files in the data directory, the screen on 127.0.0.1.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from appliance.cli_common import data_dir_option, fail
from appliance.private_files import private_dir, private_file

SAMPLES = Path(__file__).resolve().parent / "samples"

AIRLINE_LIST = dict(
    list_id="demo-airline-ban", name="Demo Air disruptive-passenger ban",
    authority="Demo Air Safety Office", legal_basis="Conditions of carriage art. 12",
    scopes=("air_travel",), redress="Write to Demo Air Safety Office, quoting the reference.",
)
HOTEL_LIST = dict(
    list_id="demo-hotel-dnr", name="Demo Hotels do-not-rent list",
    authority="Demo Hotels Security", legal_basis="House rules s. 4",
    scopes=("star_hotel",), redress="Write to Demo Hotels guest relations, quoting the reference.",
)


def seed_demo(data_dir: Path, *, now: datetime | None = None) -> None:
    """Two lists, three listings: a document DENY, a name+DOB REFER, a hotel-only DENY."""
    from appliance.documents import parse_payload
    from appliance.records import Action, Batch, Entry, ListInfo, TokenKind
    from appliance.snapshot import SnapshotStore, snapshot_path
    from sync.identity import identity_from_document

    now = now or datetime.now(timezone.utc)
    private_dir(data_dir)
    store_path = snapshot_path(data_dir)
    if store_path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store_path}{suffix}").unlink(missing_ok=True)

    def identity(sample: str):
        return identity_from_document(parse_payload((SAMPLES / sample).read_bytes(), today=now.date()))

    def entry(token, list_id, kind, action, ref, category):
        return Entry(token=token, list_id=list_id, kind=kind, category=category, action=action,
                     reference=ref, valid_from=now.date() - timedelta(days=30),
                     valid_until=now.date() + timedelta(days=335))

    with SnapshotStore(store_path) as store:
        keys = {}
        for spec in (AIRLINE_LIST, HOTEL_LIST):
            keys[spec["list_id"]] = secrets.token_bytes(32)
            store.put_list(ListInfo(default_action=Action.DENY, token_key=keys[spec["list_id"]], **spec))
        air, hotel = AIRLINE_LIST["list_id"], HOTEL_LIST["list_id"]
        licence = identity("licence-ca.txt")
        passport = identity("passport-td3.txt")
        ontario = identity("licence-on.txt")
        batches = {
            air: (entry(licence.tokens(keys[air]).document, air, TokenKind.DOCUMENT, Action.DENY,
                        "DA-2026-000417", "assault_of_crew"),
                  entry(passport.tokens(keys[air]).persons[0], air, TokenKind.PERSON, Action.DENY,
                        "DA-2026-000388", "threatening_behaviour")),
            hotel: (entry(ontario.tokens(keys[hotel]).document, hotel, TokenKind.DOCUMENT, Action.DENY,
                          "DH-2026-0091", "property_damage"),),
        }
        for list_id, entries in batches.items():
            store.apply_batch(Batch(list_id=list_id, from_version=0, to_version=1, add=entries,
                                    state_digest=secrets.token_bytes(32), signed_at=now,
                                    valid_until=now + timedelta(hours=24)))


def _demo_operator(data_dir: Path) -> str | None:
    """A fresh random PIN for operator 'demo' when the demo device has no config yet."""
    from werkzeug.security import generate_password_hash

    from appliance.config import CONFIG_FILE

    path = data_dir / CONFIG_FILE
    if path.exists():
        return None
    pin = f"{secrets.randbelow(10**6):06d}"
    private_file(path)  # 0600 before the PIN hash is written into it
    path.write_text(
        'scopes = ["air_travel"]\nreporters = ["demo"]\n\n[operators]\n'
        f'demo = "{generate_password_hash(pin)}"\n'
    )
    return pin


@click.command()
@data_dir_option
@click.option("--serve/--no-serve", default=False,
              help="Keep the counter screen running on 127.0.0.1 afterwards.")
def demo(data_dir: Path | None, serve: bool) -> None:
    """Load demo lists, check every bundled sample, print the verdicts."""
    from appliance.checker import Checker
    from appliance.config import ConfigError, load_config
    from appliance.journal import Journal
    from appliance.snapshot import SnapshotStore, snapshot_path

    data_dir = data_dir or Path(".demo")
    try:
        seed_demo(data_dir)
        pin = _demo_operator(data_dir)
        config = load_config(data_dir)
    except (ConfigError, OSError) as exc:
        fail(str(exc))
    click.echo(f"demo device in {data_dir}: lists loaded, profile {sorted(config.scopes)}\n")
    click.echo(f"{'sample':22} {'verdict':11} why")
    with SnapshotStore(snapshot_path(data_dir)) as store, Journal(data_dir) as journal:
        checker = Checker(store, journal, config)
        for sample in sorted(SAMPLES.glob("*.txt")):
            decision = checker.check(sample.read_bytes(), operator="demo").to_dict()
            why = "; ".join(decision["reasons"] + decision["notes"]) or "no match on any list in scope"
            click.echo(f"{sample.name:22} {decision['verdict']:11} {why}")
        head = journal.verify()
    click.echo(f"\n{head.line()}")
    if serve:
        from appliance.web_cli import serve as serve_command

        serve_command.main(["--data-dir", str(data_dir)], standalone_mode=True)
    else:
        click.echo(f"see it on the counter screen: gatecheck serve --data-dir {data_dir}")
    if pin:
        click.echo(f"sign in at the counter as operator 'demo' with PIN {pin} (only its hash is stored)")
