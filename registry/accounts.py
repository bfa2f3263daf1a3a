"""Registry users: roles, organisation scopes, passwords and API tokens (issue 5, "Accounts and access").

A user may hold several roles and be scoped to organisations (an airline, a
hotel group); a user with no organisation is not limited to one. Passwords
are hashed with werkzeug's current default (scrypt); API tokens are random
and stored only as their SHA-256, like enrolment codes, so the database
alone signs in as no one. Every change to an account is written to the
audit log in the same transaction.

Rate-limiting sign-ins is the web layer's job (per client and account);
this module answers only "is this the password".
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable

from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from registry.audit import AuditLog
from registry.db import RegistryError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
TOKEN_PREFIX = "gck_"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
_ORG = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")
#: Compared against when the user does not exist, so both answers take as long.
_DUMMY_HASH = generate_password_hash("not a password of anyone's")


class Role(StrEnum):
    REPORTER = "reporter"
    REVIEWER = "reviewer"
    LIST_ADMIN = "list_admin"
    IT_ADMIN = "it_admin"
    AUDITOR = "auditor"


class AccountError(RegistryError):
    code = "account_error"


class LoginRefused(AccountError):
    """Wrong user name or password, or a disabled account: one answer for all, on purpose."""

    code = "login_refused"

    def __init__(self) -> None:
        super().__init__("user name or password is wrong")


metadata = MetaData()

users = Table(
    "users", metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("roles", Text, nullable=False),  # JSON array of Role values
    Column("orgs", Text, nullable=False),  # JSON array of organisation codes; [] = every organisation
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", Text, nullable=False),
)

#: Only the SHA-256 of a token is kept; the token is shown once.
api_tokens = Table(
    "api_tokens", metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("label", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    orgs: frozenset[str]
    active: bool

    def has_role(self, *roles: Role) -> bool:
        """True when the user holds any of ``roles``."""
        return self.active and any(role in self.roles for role in roles)

    def covers_org(self, org: str) -> bool:
        """True when the user may act for ``org``: scoped to it, or to no organisation at all."""
        return not self.orgs or org in self.orgs

    def to_dict(self) -> dict:
        return {"user_id": self.user_id, "username": self.username, "display_name": self.display_name,
                "roles": sorted(self.roles), "orgs": sorted(self.orgs), "active": self.active}


def _user(row) -> User:
    return User(row.user_id, row.username, row.display_name, frozenset(Role(r) for r in json.loads(row.roles)),
                frozenset(json.loads(row.orgs)), row.status == "active")


def _roles(roles: Iterable[str]) -> list[str]:
    try:
        chosen = sorted({Role(r).value for r in roles})
    except ValueError as exc:
        raise AccountError(f"{exc}; roles are {', '.join(r.value for r in Role)}") from None
    if not chosen:
        raise AccountError("a user needs at least one role")
    return chosen


def _orgs(orgs: Iterable[str]) -> list[str]:
    chosen = sorted({o.strip().upper() for o in orgs if o.strip()})
    for org in chosen:
        if not _ORG.fullmatch(org):
            raise AccountError(f"organisation code {org!r} must be 2-32 letters, digits or hyphens")
    return chosen


def check_password_policy(password: str, username: str) -> None:
    """Length over composition rules (NIST SP 800-63B, 5.1.1.2), and not the user name."""
    if not isinstance(password, str) or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccountError(f"a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    if username.lower() in password.lower():
        raise AccountError("a password must not contain the user name")


class Accounts:
    """Users and API tokens in the registry database."""

    def __init__(self, engine: Engine, audit: AuditLog | None = None) -> None:
        self.engine = engine
        metadata.create_all(engine)
        self.audit = audit or AuditLog(engine)

    def create_user(self, username: str, password: str, *, roles: Iterable[str], by: str,
                    display_name: str = "", orgs: Iterable[str] = (), now: float | None = None) -> User:
        username = username.strip().lower()
        if not _USERNAME.fullmatch(username):
            raise AccountError(f"user name {username!r} must be 2-63 lower-case letters, digits, '.', '_' or '-'")
        check_password_policy(password, username)
        values = {"username": username, "display_name": display_name.strip() or username,
                  "roles": json.dumps(_roles(roles)), "orgs": json.dumps(_orgs(orgs)), "status": "active"}
        at = int(time.time() if now is None else now)
        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(insert(users).values(
                    **values, password_hash=generate_password_hash(password), created_at=at,
                    created_by=by)).inserted_primary_key[0]
                self.audit.append(conn, actor=by, action="user.create", subject=f"user:{username}",
                                  after={k: _shown(k, v) for k, v in values.items()}, at=at)
        except IntegrityError:
            raise AccountError(f"user {username!r} exists") from None
        return self.get(user_id)

    def get(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.user_id == user_id)).first()
        return None if row is None else _user(row)

    def session_stamp(self, user_id: int) -> tuple[User, str] | None:
        """The user and a stamp that changes with their password: sessions signed in before a change end."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.user_id == user_id)).first()
        if row is None:
            return None
        return _user(row), hashlib.sha256(b"session\0" + row.password_hash.encode()).hexdigest()[:32]

    def by_name(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username.strip().lower())).first()
        return None if row is None else _user(row)

    def all_users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(row) for row in conn.execute(select(users).order_by(users.c.username))]

    def authenticate(self, username: str, password: str) -> User:
        """The active user with this password; LoginRefused otherwise, in the same time either way."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == str(username).strip().lower())).first()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        matches = check_password_hash(stored, str(password)[:MAX_PASSWORD_CHARS])
        if row is None or not matches or row.status != "active":
            raise LoginRefused()
        return _user(row)

    def _change(self, username: str, values: dict, *, action: str, by: str, reason: str,
                now: float | None) -> User:
        at = int(time.time() if now is None else now)
        username = username.strip().lower()
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
            if row is None:
                raise AccountError(f"no user {username!r}")
            before = {k: _shown(k, getattr(row, k)) for k in values if k != "password_hash"}
            conn.execute(update(users).where(users.c.user_id == row.user_id).values(**values))
            after = {k: _shown(k, v) for k, v in values.items() if k != "password_hash"}
            self.audit.append(conn, actor=by, action=action, subject=f"user:{username}", reason=reason,
                              before=before, after=after, at=at)
        return self.by_name(username)

    def set_roles(self, username: str, roles: Iterable[str], *, by: str, reason: str = "",
                  now: float | None = None) -> User:
        return self._change(username, {"roles": json.dumps(_roles(roles))}, action="user.roles", by=by,
                            reason=reason, now=now)

    def set_password(self, username: str, password: str, *, by: str, now: float | None = None) -> User:
        check_password_policy(password, username)
        return self._change(username, {"password_hash": generate_password_hash(password)},
                            action="user.password", by=by, reason="", now=now)

    def disable(self, username: str, *, by: str, reason: str, now: float | None = None) -> User:
        """Sign-ins and API tokens stop at once; the account and its history stay."""
        return self._change(username, {"status": "disabled"}, action="user.disable", by=by, reason=reason, now=now)

    # -- API tokens ------------------------------------------------------------

    def issue_token(self, username: str, *, label: str, by: str, now: float | None = None) -> str:
        """A new API token for ``username``, returned once (only its hash is stored)."""
        user = self.by_name(username)
        if user is None or not user.active:
            raise AccountError(f"no active user {username!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        at = int(time.time() if now is None else now)
        with self.engine.begin() as conn:
            conn.execute(insert(api_tokens).values(token_sha256=_sha256(token), user_id=user.user_id,
                                                   label=label, created_at=at))
            self.audit.append(conn, actor=by, action="user.token.issue", subject=f"user:{user.username}",
                              after={"label": label}, at=at)
        return token

    def user_for_token(self, token: str) -> User | None:
        """The active user an unrevoked token belongs to, else None."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(users).join(api_tokens, api_tokens.c.user_id == users.c.user_id)
                               .where(api_tokens.c.token_sha256 == _sha256(token),
                                      api_tokens.c.revoked_at.is_(None))).first()
        if row is None or row.status != "active":
            return None
        return _user(row)

    def revoke_tokens(self, username: str, *, by: str, now: float | None = None) -> int:
        """Revoke every token of ``username``; returns how many were live."""
        user = self.by_name(username)
        if user is None:
            raise AccountError(f"no user {username!r}")
        at = int(time.time() if now is None else now)
        with self.engine.begin() as conn:
            count = conn.execute(update(api_tokens).where(api_tokens.c.user_id == user.user_id,
                                                          api_tokens.c.revoked_at.is_(None))
                                 .values(revoked_at=at)).rowcount
            self.audit.append(conn, actor=by, action="user.token.revoke", subject=f"user:{user.username}",
                              after={"revoked": count}, at=at)
        return count


def _shown(column: str, value):
    """A column's value as the audit log shows it: JSON columns decoded, so records hold lists."""
    return json.loads(value) if column in ("roles", "orgs") else value


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
