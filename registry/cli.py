"""`gatecheck registry`: the minimal admin CLI for tests and the demo (issue 4).

Sets up a registry data directory (database, keys), serves the device API,
creates lists, adds and removes entries, and enrols devices. The human
workflows (reporters, reviewers) are a later issue. Every refusal is one
line on stderr and exit status 1; outputs meant for scripts are JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from appliance.cli_common import fail, iso_date
from appliance.records import Action
from registry.accounts_cli import user_group
from registry.audit import AuditLog
from registry.audit_cli import audit_group
from registry.import_cli import import_group
from registry.cli_common import by_option, data_dir_option, registry_engine, who
from registry.db import RegistryError, make_engine
from registry.devices import CODE_STATES, DeviceRegistry
from registry.housekeeping_cli import housekeeping
from registry.publish import DocumentRef, EntryFields, Name, Registry
from registry.server import RegistryPaths
from registry.signing import (
    Signer,
    generate_key_file,
    issue_cert,
    load_key_file,
    write_public_file,
)
from sync.enrolment import AIRLINE_COUNTER, KIND_SCOPES, MAX_AGE_HOURS, EnrolmentError, EnrolmentProfile


def _emit(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _open(data_dir: Path) -> tuple[Registry, DeviceRegistry]:
    engine = registry_engine(data_dir)
    paths = RegistryPaths(data_dir)
    signer = Signer.from_files(paths.signing_key, paths.signing_cert)
    return Registry(engine, signer), DeviceRegistry(engine)



class _RegistryGroup(click.Group):
    """Turns every RegistryError into one line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RegistryError as exc:
            fail(exc.message)


@click.group(cls=_RegistryGroup, context_settings={"help_option_names": ["-h", "--help"]})
def registry() -> None:
    """The central registry: lists, entries, devices and the device API."""


@registry.command()
@data_dir_option
@click.option("--root-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to create the offline root key (default: DATA_DIR/root.pem; move it offline).")
@click.option("--root-passphrase", envvar="GATECHECK_ROOT_PASSPHRASE", default=None,
              help="Encrypt the root key with this passphrase (or $GATECHECK_ROOT_PASSPHRASE).")
@click.option("--cert-days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="How long the online signing key's certificate is valid.")
def init(data_dir: Path, root_key: Path | None, root_passphrase: str | None, cert_days: int) -> None:
    """Create the database, the root key, the signing key and its certificate."""
    paths = RegistryPaths(data_dir)
    root_path = root_key or paths.root_key
    if paths.signing_key.exists() or root_path.exists():
        fail(f"{data_dir} already holds registry keys; refusing to replace them")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the database holds plaintext names
    paths.keys_dir.mkdir(exist_ok=True)
    passphrase = root_passphrase.encode("utf-8") if root_passphrase else None
    root_public = generate_key_file(root_path, passphrase=passphrase)
    signing_public = generate_key_file(paths.signing_key)
    now = int(time.time())
    cert = issue_cert(load_key_file(root_path, passphrase=passphrase), signing_public,
                      not_before=now - 300, not_after=now + cert_days * 86_400, sequence=1)
    write_public_file(paths.signing_cert, cert)
    write_public_file(paths.root_public, root_public)
    engine = make_engine(paths.database_url)
    Registry(engine, Signer(load_key_file(paths.signing_key), cert))
    DeviceRegistry(engine)
    _emit({"data_dir": str(data_dir), "root_public_key": root_public.hex(),
           "root_key": str(root_path), "signing_cert": str(paths.signing_cert)})
    click.echo(f"Pin root.pub on every device; move {root_path} offline.", err=True)


@registry.command()
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8480, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Server processes (default: one per core, at least 2).")
@click.option("--threads", type=click.IntRange(1, 512), default=16, show_default=True,
              help="Threads per process; each long-poll holds one while it waits.")
def serve(data_dir: Path, host: str, port: int, workers: int | None, threads: int) -> None:
    """Serve the device API with gunicorn (several processes; SIGTERM stops it cleanly)."""
    from registry.serving import default_workers
    from registry.serving import serve as gunicorn_serve

    if not RegistryPaths(data_dir).database.exists():
        fail(f"{data_dir} is not a registry data directory; run `gatecheck registry init` first")
    gunicorn_serve(data_dir, host=host, port=port, workers=workers or default_workers(), threads=threads)


# -- lists ---------------------------------------------------------------------

@registry.group("list")
def list_group() -> None:
    """Deny-lists."""


@list_group.command("create")
@data_dir_option
@click.argument("list_id")
@click.option("--name", required=True)
@click.option("--authority", required=True)
@click.option("--legal-basis", required=True)
@click.option("--scope", "scopes", multiple=True, help="Sanction scope (repeat for several).")
@click.option("--default-action", type=click.Choice(["REFER", "DENY"]), default="REFER", show_default=True)
@click.option("--redress", default="", help="Text shown to the traveller.")
@by_option
def list_create(data_dir, list_id, name, authority, legal_basis, scopes, default_action, redress, by) -> None:
    """Create an empty list at version 0."""
    reg, _ = _open(data_dir)
    info = reg.create_list(list_id, name=name, authority=authority, legal_basis=legal_basis, scopes=scopes,
                           default_action=Action(default_action), redress=redress, by=who(by))
    _emit({"list_id": info.list_id, "version": info.version})


#: The starting taxonomies a list admin can give a list (registry/review_policy.py).
_TAXONOMIES = {"aviation": "AVIATION_CATEGORIES", "hotel": "HOTEL_CATEGORIES"}


@list_group.command("categories")
@data_dir_option
@click.argument("list_id")
@click.option("--preset", type=click.Choice(sorted(_TAXONOMIES)), required=True,
              help="aviation: an airline's disruptive-passenger categories; hotel: a hotel group's.")
@click.option("--reviewers", type=click.IntRange(1, 2), default=1, show_default=True,
              help="How many different reviewers must accept a report.")
@click.option("--reason", default="", help="Why (the audit log keeps it).")
@by_option
def list_categories(data_dir, list_id, preset, reviewers, reason, by) -> None:
    """Let LIST_ID take reports: give it a taxonomy of categories with their terms.

    A list without one (an authority's imported list) takes no reports.
    """
    from registry import review_policy
    from registry.reports import ReportQueue

    reg, _ = _open(data_dir)
    policy = review_policy.ListPolicy(list_id, getattr(review_policy, _TAXONOMIES[preset]),
                                      reviewers_required=reviewers)
    ReportQueue(reg.engine, reg).set_policy(policy, by=who(by), reason=reason)
    _emit({"list_id": list_id, "reviewers_required": reviewers,
           "categories": [c.category for c in policy.categories]})


@list_group.command("rekey")
@data_dir_option
@click.argument("list_id")
@click.option("--reason", required=True, help="Why, e.g. which device was lost (the audit log keeps it).")
@by_option
def list_rekey(data_dir, list_id, reason, by) -> None:
    """Rotate the list's token key: every device takes a full snapshot under the new key (docs/fleet.md)."""
    from registry.rekey import rotate_token_key

    reg, _ = _open(data_dir)
    done = rotate_token_key(reg, list_id, by=who(by), reason=reason)
    _emit(done.to_dict())
    if done.wal_truncated is False:
        click.echo(f"warning: a reader kept {RegistryPaths(data_dir).database.name}-wal from being emptied; pages"
                   " with the old key stay in it until SQLite's next full checkpoint", err=True)


# -- entries -------------------------------------------------------------------

def _documents(ctx, param, values) -> tuple[DocumentRef, ...]:
    out = []
    for value in values:
        parts = value.split(":")
        if len(parts) != 3 or not all(parts):
            raise click.BadParameter(f"{value!r} is not CLASS:ISSUER:NUMBER (e.g. P:DEU:C01X00T47)")
        out.append(DocumentRef(parts[0].upper(), parts[1].upper(), parts[2]))
    return tuple(out)


def _variants(ctx, param, values) -> tuple[Name, ...]:
    out = []
    for value in values:
        surnames, _, given = value.partition(",")
        if not surnames.strip():
            raise click.BadParameter(f"{value!r} is not SURNAMES[,GIVEN NAMES]")
        out.append(Name(surnames.strip(), given.strip()))
    return tuple(out)


@registry.group("entry")
def entry_group() -> None:
    """Entries on a list; each change publishes a new version."""


@entry_group.command("add")
@data_dir_option
@click.option("--list", "list_id", required=True)
@click.option("--surnames", required=True)
@click.option("--given-names", default="")
@click.option("--original-script", default=None, help="The name as written in its own script.")
@click.option("--variant", "variants", multiple=True, callback=_variants, metavar="SURNAMES,GIVEN",
              help="A further Latin spelling (repeatable).")
@click.option("--dob", callback=iso_date, metavar="YYYY-MM-DD", help="Date of birth (needed for person tokens).")
@click.option("--document", "documents", multiple=True, callback=_documents, metavar="CLASS:ISSUER:NUMBER",
              help="A document, e.g. P:DEU:C01X00T47 or D:USA-CA:D1234567 (repeatable).")
@click.option("--category", required=True)
@click.option("--action", type=click.Choice(["REFER", "DENY"]), default=None, help="Default: the list's.")
@click.option("--reference", required=True, help="The authority's case number.")
@click.option("--valid-from", callback=iso_date, metavar="YYYY-MM-DD")
@click.option("--valid-until", callback=iso_date, metavar="YYYY-MM-DD")
@click.option("--redress", default=None)
@click.option("--reason", default="", help="Why (the audit log keeps it).")
@by_option
def entry_add(data_dir, list_id, surnames, given_names, original_script, variants, dob, documents, category,
              action, reference, valid_from, valid_until, redress, reason, by) -> None:
    """Add one entry and publish the version that carries it."""
    reg, _ = _open(data_dir)
    fields = EntryFields(
        surnames=surnames, given_names=given_names, original_script=original_script, latin_variants=variants,
        date_of_birth=dob, documents=documents, category=category, reference=reference,
        action=Action(action) if action else None, valid_from=valid_from, redress=redress,
        **({"valid_until": valid_until} if valid_until else {}))
    actor = who(by)
    with reg.change(list_id, by=actor) as change:  # the entry, its version and its audit record: one commit
        [entry_id] = change.add([fields])
        AuditLog.append(change.conn, actor=actor, action="entry.add", subject=f"entry:{entry_id}", reason=reason,
                        after={"list_id": list_id, "reference": reference, "category": category,
                               "version": change.version})
    _emit({"entry_id": entry_id, "list_id": list_id, "version": reg.current_version(list_id),
           "tokens": len(reg.tokens_of(entry_id))})


@entry_group.command("remove")
@data_dir_option
@click.option("--list", "list_id", required=True)
@click.option("--entry-id", type=int, required=True)
@click.option("--reason", default="", help="Why (the audit log keeps it).")
@by_option
def entry_remove(data_dir, list_id, entry_id, reason, by) -> None:
    """Withdraw an entry and publish the version that removes it."""
    reg, _ = _open(data_dir)
    actor = who(by)
    version = reg.remove_entry(list_id, entry_id, by=actor, within=lambda conn, version: AuditLog.append(
        conn, actor=actor, action="entry.remove", subject=f"entry:{entry_id}", reason=reason,
        before={"status": "active"}, after={"status": "removed", "version": version}))
    _emit({"entry_id": entry_id, "list_id": list_id, "version": version})


# -- devices -------------------------------------------------------------------

@registry.group("device")
def device_group() -> None:
    """Enrolled counters and their enrolment codes (docs/fleet.md)."""


def _scopes(ctx, param, values) -> tuple[str, ...]:
    return tuple(s.strip() for value in values for s in value.split(",") if s.strip())


@device_group.command("enroll-code")
@data_dir_option
@click.option("--lists", required=True, help="Comma-separated list ids the device will receive.")
@click.option("--org", default="", help="Organisation the device belongs to (e.g. DA); IT admins scoped to it see it.")
@click.option("--kind", type=click.Choice(list(KIND_SCOPES)), default=AIRLINE_COUNTER, show_default=True,
              help="airline_counter checks air_travel lists, hotel_desk star_hotel; custom needs --scope.")
@click.option("--scope", "scopes", multiple=True, callback=_scopes,
              help="Sanction scopes the device checks, instead of the kind's (repeatable or comma-separated).")
@click.option("--max-age-hours", type=click.FloatRange(0, MAX_AGE_HOURS, min_open=True), default=24.0,
              show_default=True, help="Lists older than this are out of date on the device.")
@click.option("--fail-open", is_flag=True,
              help="With out-of-date lists keep CLEAR and warn (default: fail closed, CLEAR becomes REFER).")
@click.option("--ttl-hours", type=click.IntRange(1, 24 * 30), default=24, show_default=True)
@click.option("--reason", default="", help="Why the code is issued (the audit log keeps it).")
@by_option
def device_enroll_code(data_dir, lists, org, kind, scopes, max_age_hours, fail_open, ttl_hours, reason, by) -> None:
    """Print a one-time enrolment code bound to a device profile (only its hash is stored)."""
    _, devices = _open(data_dir)
    try:
        profile = EnrolmentProfile.build([item.strip() for item in lists.split(",") if item.strip()],
                                         organisation=org, kind=kind, scopes=scopes, max_age_hours=max_age_hours,
                                         fail_closed=not fail_open)
    except EnrolmentError as exc:
        fail(exc.message)
    click.echo(devices.issue_code(profile, ttl_seconds=ttl_hours * 3600, by=who(by), reason=reason))


@device_group.command("codes")
@data_dir_option
@click.option("--state", type=click.Choice(CODE_STATES), default=None, help="Only codes in this state.")
def device_codes(data_dir, state) -> None:
    """Enrolment codes as JSON: profile, who issued them, expiry, and the device that used each (never the code)."""
    _, devices = _open(data_dir)
    now = time.time()
    _emit([code.to_dict(now) for code in devices.codes(state=state, now=now)])


@device_group.command("withdraw-code")
@data_dir_option
@click.argument("code_id")
@click.option("--reason", required=True, help="Why (the audit log keeps it).")
@by_option
def device_withdraw_code(data_dir, code_id, reason, by) -> None:
    """Make an unused enrolment code worthless (CODE_ID from `device codes`)."""
    _, devices = _open(data_dir)
    _emit(devices.withdraw_code(code_id, by=who(by), reason=reason).to_dict(time.time()))


@device_group.command("list")
@data_dir_option
def device_list(data_dir) -> None:
    """Enrolled devices as JSON."""
    _, devices = _open(data_dir)
    _emit([d.to_dict() for d in devices.all_devices()])


def _revoke(data_dir, device_id, reason, by) -> None:
    _, devices = _open(data_dir)
    devices.revoke(device_id, by=who(by), reason=reason)
    _emit({"device_id": device_id, "status": "disabled"})


@device_group.command("revoke")
@data_dir_option
@click.argument("device_id")
@click.option("--reason", required=True, help="Why (lost, stolen, retired); the audit log keeps it.")
@by_option
def device_revoke(data_dir, device_id, reason, by) -> None:
    """Refuse every further request from a device (a lost or stolen counter), within a second."""
    _revoke(data_dir, device_id, reason, by)


@device_group.command("disable")
@data_dir_option
@click.argument("device_id")
@click.option("--reason", default="", help="Why; the audit log keeps it.")
@by_option
def device_disable(data_dir, device_id, reason, by) -> None:
    """The same as `device revoke` (its issue-4 name)."""
    _revoke(data_dir, device_id, reason, by)


registry.add_command(audit_group)
registry.add_command(import_group)
registry.add_command(user_group)
registry.add_command(housekeeping)
