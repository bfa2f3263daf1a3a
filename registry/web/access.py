"""Who may call each registry route: every view declares it, and the app refuses to start otherwise.

Issue 5: "Every route declares the roles it needs", and access is denied
unless granted. Levels:

- ``public``: the sign-in page and static files;
- a set of roles (``roles_required(Role.REVIEWER, ...)``): a signed-in,
  active user holding at least one of them;
- ``device``: the device API blueprint, which authenticates each request
  with the device's enrolled key itself (registry/server.py).

A view without a declaration is a startup error (``install``) and, should
one be added later, a 403 at request time: never open by omission.
"""

from __future__ import annotations

from typing import Callable

from flask import Flask, abort, redirect, request, url_for
from flask_login import current_user

from registry.accounts import Role

PUBLIC = "public"
DEVICE = "device"
#: Blueprints whose views authenticate devices, not people.
DEVICE_BLUEPRINTS = frozenset({"device_api"})
_BUILTIN = {"static": PUBLIC, "ui_pages.static": PUBLIC}


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
        if level in (PUBLIC, DEVICE):
            return None
        if not isinstance(level, frozenset):
            abort(403)
        if not current_user.is_authenticated:
            return redirect(url_for("ui_auth.login", next=request.full_path.rstrip("?")))
        if not current_user.user.has_role(*level):
            abort(403, description=f"This page needs the role: {' or '.join(sorted(level))}.")
        return None
