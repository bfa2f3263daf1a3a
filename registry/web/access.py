"""Who may call each registry route: every view declares it, and the app refuses to start otherwise.

Issue 5: "Every route declares the roles it needs", and access is denied
unless granted. Levels:

- ``public``: the sign-in page and static files;
- a set of roles (``roles_required(Role.REVIEWER, ...)``): a signed-in,
  active user holding at least one of them;
- ``device``: the device API blueprint, which authenticates each request
  with the device's enrolled key itself (registry/server.py).

The people's JSON API (registry/api/) declares roles the same way, but its
requests are authenticated by the user's API token (``Authorization:
Bearer gck_...``) alone. A session cookie never opens it, which is why the
API can skip CSRF tokens: a forged cross-site request carries no bearer
token, so it authenticates as no one.

A view without a declaration is a startup error (``install``) and, should
one be added later, a 403 at request time: never open by omission.
"""

from __future__ import annotations

import hmac
from typing import Callable

from flask import Flask, abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from registry.accounts import Role, User
from registry.db import RegistryError

PUBLIC = "public"
DEVICE = "device"
#: Blueprints whose views authenticate devices, not people.
DEVICE_BLUEPRINTS = frozenset({"device_api"})
#: Blueprints for integrations: a user's API token authenticates each request, never a session
#: (``metrics``: Prometheus, registry/web/metrics_route.py).
API_BLUEPRINTS = frozenset({"api", "metrics"})
_BUILTIN = {"static": PUBLIC, "ui_pages.static": PUBLIC}


class AccessRefused(RegistryError):
    """An API request without a valid token (401) or without the role (403); answered as JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def public(view: Callable) -> Callable:
    view.access = PUBLIC  # type: ignore[attr-defined]
    return view


def roles_required(*roles: Role) -> Callable:
    """Open a view to signed-in users holding any of ``roles``."""
    if not roles or not all(isinstance(r, Role) for r in roles):
        raise TypeError("roles_required needs at least one Role")

    def mark(view: Callable) -> Callable:
        view.access = frozenset(roles)  # type: ignore[attr-defined]
        return view
    return mark


#: Any signed-in user, whatever their roles (the dashboard, signing out).
signed_in = roles_required(*Role)


def access_of(app: Flask, endpoint: str) -> str | frozenset | None:
    if endpoint in _BUILTIN:
        return _BUILTIN[endpoint]
    if endpoint.partition(".")[0] in DEVICE_BLUEPRINTS:
        return DEVICE
    return getattr(app.view_functions.get(endpoint), "access", None)


def undeclared(app: Flask) -> list[str]:
    return sorted(e for e in app.view_functions if access_of(app, e) is None)


def install(app: Flask) -> None:
    """Refuse to start with an undeclared view; check each request against its declaration."""
    missing = undeclared(app)
    if missing:
        raise RuntimeError(f"registry views without an access declaration: {', '.join(missing)}")

    @app.before_request
    def _check() -> None:
        endpoint = request.endpoint
        if endpoint is None:  # no such route: the 404 handler answers
            return None
        level = access_of(app, endpoint)
        if endpoint.partition(".")[0] in API_BLUEPRINTS:
            return _check_token(level, app.view_functions.get(endpoint))
        if level in (PUBLIC, DEVICE):
            return None
        if not isinstance(level, frozenset):
            abort(403)
        if not current_user.is_authenticated:
            return redirect(url_for("ui_auth.login", next=request.full_path.rstrip("?")))
        if not current_user.user.has_role(*level):
            abort(403, description=f"This page needs the role: {' or '.join(sorted(level))}.")
        return None


def scrape_token_accepted(view: Callable) -> Callable:
    """Also open ``view`` to the registry's scrape-only token (``metrics-token``): Prometheus needs
    no user, and an IT admin's token in its configuration could revoke devices."""
    view.scrape_token = True  # type: ignore[attr-defined]
    return view


def _check_token(level: str | frozenset | None, view: Callable | None = None) -> None:
    """API requests: the bearer token alone says who calls; a session cookie is not even looked at."""
    if level == PUBLIC:
        return None
    if not isinstance(level, frozenset):
        raise AccessRefused(403, "forbidden", "this operation declares no access, so it is closed")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AccessRefused(401, "missing_token", "send a user's API token as 'Authorization: Bearer gck_...' "
                                                  "(gatecheck registry user token)")
    scrape_token = current_app.config.get("METRICS_TOKEN")
    if getattr(view, "scrape_token", False) and scrape_token and \
            hmac.compare_digest(token.strip().encode(), scrape_token.encode()):
        g.api_user = None  # a scraper: no user, no organisation scope
        return None
    user = current_app.extensions["gatecheck_ui"].accounts.user_for_token(token.strip())
    if user is None:
        raise AccessRefused(401, "invalid_token", "the API token is unknown or revoked, or its user is disabled")
    g.api_user = user
    if not user.has_role(*level):
        raise AccessRefused(403, "forbidden", f"this operation needs the role: {' or '.join(sorted(level))}")
    return None


def api_user() -> User | None:
    """The user whose token authenticated this API request (None for the scrape-only token)."""
    return g.api_user
