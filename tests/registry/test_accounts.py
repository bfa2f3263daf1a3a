"""Registry accounts: roles, organisation scopes, password and token handling, all audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.accounts import AccountError, Accounts, LoginRefused, Role, api_tokens, users
from registry.audit import AuditLog
from registry.db import make_engine

STRONG = "correct horse battery staple"


@pytest.fixture
def accounts(tmp_path) -> Accounts:
    return Accounts(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))


def test_a_user_signs_in_with_the_password_and_holds_several_roles(accounts):
    accounts.create_user("Mia.Reviewer", STRONG, roles=["reviewer", "auditor"], orgs=["lh"], by="admin")
    user = accounts.authenticate("mia.reviewer", STRONG)
    assert user.roles == {Role.REVIEWER, Role.AUDITOR}
    assert user.has_role(Role.REPORTER, Role.REVIEWER) and not user.has_role(Role.IT_ADMIN)
    assert user.covers_org("LH") and not user.covers_org("BA")


def test_a_user_without_organisations_covers_every_organisation(accounts):
    user = accounts.create_user("it-lead", STRONG, roles=["it_admin"], by="admin")
    assert user.covers_org("LH") and user.covers_org("ACCOR")


def test_the_password_is_stored_hashed_never_in_clear(accounts):
    accounts.create_user("rep", STRONG, roles=["reporter"], by="admin")
    with accounts.engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert STRONG not in stored and stored.startswith(("scrypt:", "pbkdf2:"))


@pytest.mark.parametrize("username, password", [("rep", "wrong password!!"), ("nobody", STRONG)])
def test_a_wrong_password_and_an_unknown_user_get_the_same_refusal(accounts, username, password):
    accounts.create_user("rep", STRONG, roles=["reporter"], by="admin")
    with pytest.raises(LoginRefused, match="^user name or password is wrong$"):
        accounts.authenticate(username, password)


def test_a_disabled_user_cannot_sign_in_or_use_a_token(accounts):
    accounts.create_user("rep", STRONG, roles=["reporter"], by="admin")
    token = accounts.issue_token("rep", label="incident system", by="admin")
    assert accounts.user_for_token(token).username == "rep"
    accounts.disable("rep", by="admin", reason="left the airline")
    with pytest.raises(LoginRefused):
        accounts.authenticate("rep", STRONG)
    assert accounts.user_for_token(token) is None
    assert not accounts.by_name("rep").has_role(Role.REPORTER)


@pytest.mark.parametrize("password, reason", [
    ("short", "12 to 1024 characters"),
    ("rep-is-my-password", "must not contain the user name"),
])
def test_weak_passwords_are_refused_with_the_reason(accounts, password, reason):
    with pytest.raises(AccountError, match=reason):
        accounts.create_user("rep", password, roles=["reporter"], by="admin")


@pytest.mark.parametrize("roles, reason", [([], "at least one role"), (["superuser"], "roles are reporter")])
def test_unknown_or_missing_roles_are_refused(accounts, roles, reason):
    with pytest.raises(AccountError, match=reason):
        accounts.create_user("rep", STRONG, roles=roles, by="admin")


def test_a_second_user_with_the_same_name_is_refused(accounts):
    accounts.create_user("rep", STRONG, roles=["reporter"], by="admin")
    with pytest.raises(AccountError, match="exists"):
        accounts.create_user("REP", STRONG, roles=["reviewer"], by="admin")


def test_api_tokens_are_stored_hashed_and_revocable(accounts):
    accounts.create_user("integration", STRONG, roles=["reporter"], by="admin")
    token = accounts.issue_token("integration", label="incident system", by="admin")
    with accounts.engine.connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_sha256)).scalar_one()
    assert token not in stored and len(stored) == 64
    assert accounts.user_for_token(token + "x") is None and accounts.user_for_token("Bearer " + token) is None
    assert accounts.revoke_tokens("integration", by="admin") == 1
    assert accounts.user_for_token(token) is None


def test_every_account_change_is_in_the_audit_chain_without_the_password(accounts):
    accounts.create_user("rep", STRONG, roles=["reporter"], by="admin")
    accounts.set_roles("rep", ["reporter", "reviewer"], by="admin", reason="promoted")
    accounts.set_password("rep", "another long passphrase", by="rep")
    accounts.issue_token("rep", label="cli", by="rep")
    accounts.disable("rep", by="admin", reason="left")
    log = AuditLog(accounts.engine)
    records = list(log.records(subject="user:rep"))
    assert [r.action for r in records] == ["user.create", "user.roles", "user.password", "user.token.issue",
                                           "user.disable"]
    assert records[1].before == '{"roles":["reporter"]}' and records[1].reason == "promoted"
    assert all(STRONG not in (r.after or "") and "another long" not in (r.after or "") for r in records)
    assert log.verify() == (5, [])


def test_the_cli_adds_a_user_from_stdin_and_refuses_a_weak_password_in_one_line(tmp_path):
    from click.testing import CliRunner

    from registry.cli import registry as registry_cli

    data_dir = str(tmp_path / "registry")
    runner = CliRunner()
    assert runner.invoke(registry_cli, ["init", "--data-dir", data_dir]).exit_code == 0
    added = runner.invoke(registry_cli, ["user", "add", "--data-dir", data_dir, "mia", "--role", "reviewer",
                                         "--org", "LH", "--password-stdin"], input=STRONG + "\n")
    assert added.exit_code == 0, added.output
    weak = runner.invoke(registry_cli, ["user", "add", "--data-dir", data_dir, "sam", "--role", "reporter",
                                        "--password-stdin"], input="short\n")
    assert weak.exit_code == 1 and weak.output.strip().splitlines() == [
        "gatecheck: a password needs 12 to 1024 characters"]
    token = runner.invoke(registry_cli, ["user", "token", "--data-dir", data_dir, "mia", "--label", "cli"])
    assert token.output.startswith("gck_")
    listed = runner.invoke(registry_cli, ["user", "list", "--data-dir", data_dir])
    assert '"username": "mia"' in listed.output and STRONG not in listed.output
