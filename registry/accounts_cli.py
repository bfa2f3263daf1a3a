"""`gatecheck registry user`: accounts for the registry's people (docs/accounts.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from registry.cli_common import by_option, data_dir_option, registry_engine, who


def _accounts(data_dir: Path):
    from registry.accounts import Accounts

    return Accounts(registry_engine(data_dir))


@click.group("user")
def user_group() -> None:
    """People who use the registry: reporters, reviewers, list admins, IT, auditors."""


@user_group.command("add")
@data_dir_option
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True,
              help="reporter, reviewer, list_admin, it_admin or auditor; repeat for several.")
@click.option("--org", "orgs", multiple=True, help="Organisation code the user acts for; repeat; none = all.")
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@by_option
def user_add(data_dir, username, roles, orgs, display_name, password_stdin, by) -> None:
    """Create a user; the password is prompted for (or read from stdin), never an argument."""
    accounts = _accounts(data_dir)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    user = accounts.create_user(username, password, roles=roles, orgs=orgs, display_name=display_name, by=who(by))
    click.echo(json.dumps(user.to_dict(), indent=2))


@user_group.command("list")
@data_dir_option
def user_list(data_dir) -> None:
    """Users as JSON."""
    click.echo(json.dumps([u.to_dict() for u in _accounts(data_dir).all_users()], indent=2))


@user_group.command("token")
@data_dir_option
@click.argument("username")
@click.option("--label", required=True, help="What the token is for, e.g. 'incident system'.")
@by_option
def user_token(data_dir, username, label, by) -> None:
    """Print a new API token for the user, once (only its hash is stored)."""
    accounts = _accounts(data_dir)
    click.echo(accounts.issue_token(username, label=label, by=who(by)))


@user_group.command("disable")
@data_dir_option
@click.argument("username")
@click.option("--reason", required=True)
@by_option
def user_disable(data_dir, username, reason, by) -> None:
    """Stop a user's sign-ins and API tokens at once; the account's history stays."""
    accounts = _accounts(data_dir)
    user = accounts.disable(username, by=who(by), reason=reason)
    click.echo(json.dumps(user.to_dict(), indent=2))
