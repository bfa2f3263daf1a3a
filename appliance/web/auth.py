"""Operator sign-in with a PIN (flask-login).

PINs are checked against the werkzeug hashes in DeviceConfig.operators. A
PIN is short, so five wrong PINs for one operator lock that operator out
for five minutes; an unknown operator id costs the same hash check as a
known one, so timing does not tell which ids exist.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from appliance.web.access import operator_required, public
from appliance.web.forms import SignInForm, SignOutForm

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.signin"
login_manager.login_message = "Sign in with your operator id and PIN."
login_manager.session_protection = "strong"

MAX_FAILURES = 5
LOCKOUT_SECONDS = 300


@lru_cache(maxsize=8)
def _dummy_hash(method: str) -> str:
    """Checked when the operator id is unknown, with the method the real hashes use,
    so a wrong id takes as long as a wrong PIN."""
    return generate_password_hash("not-a-pin", method=method)


def _hash_method(operators) -> str:
    for pin_hash in operators.values():
        return pin_hash.split("$", 1)[0]
    return "scrypt"


class Operator(UserMixin):
    def __init__(self, operator_id: str) -> None:
        self.id = operator_id


@login_manager.user_loader
def load_operator(operator_id: str) -> Operator | None:
    # An operator removed from gatecheck.toml is signed out on the next request.
    if operator_id in current_app.config["GATECHECK"].operators:
        return Operator(operator_id)
    return None


class _Lockout:
    """Failed PIN attempts per operator id, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}

    def locked(self, operator: str, now: float) -> bool:
        with self._lock:
            recent = [t for t in self._failures.get(operator, []) if now - t < LOCKOUT_SECONDS]
            if recent:
                self._failures[operator] = recent
            else:
                self._failures.pop(operator, None)
            return len(recent) >= MAX_FAILURES

    def fail(self, operator: str, now: float) -> None:
        with self._lock:
            self._failures.setdefault(operator, []).append(now)

    def clear(self, operator: str) -> None:
        with self._lock:
            self._failures.pop(operator, None)


_lockout = _Lockout()


def _safe_next(target: str | None) -> str:
    # Only a path on this server: never an absolute URL (open redirect).
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("counter.screen")


@bp.route("/signin", methods=["GET", "POST"])
@public
def signin():
    form = SignInForm()
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("counter.screen"))
    status = 200
    if form.validate_on_submit():
        operator = form.operator.data.strip()
        now = time.monotonic()
        operators = current_app.config["GATECHECK"].operators
        pin_hash = operators.get(operator)
        if _lockout.locked(operator, now):
            flash("Too many wrong PINs: this operator is locked for a few minutes.", "error")
            status = 429
        elif check_password_hash(pin_hash or _dummy_hash(_hash_method(operators)), form.pin.data) \
                and pin_hash:
            _lockout.clear(operator)
            session.clear()
            login_user(Operator(operator))
            session.permanent = True
            state = current_app.extensions["gatecheck"]
            session["since_seq"] = state.head_seq()  # "this session's recent scans" start here
            state.set_operator(operator)
            return redirect(_safe_next(request.args.get("next")))
        else:
            _lockout.fail(operator, now)
            flash("Operator id or PIN not recognised.", "error")
            status = 401
    elif request.method == "POST":
        status = 400
    return render_template("signin.html", form=form), status


@bp.route("/signout", methods=["POST"])
@operator_required
def signout():
    form = SignOutForm()
    if form.validate_on_submit():
        current_app.extensions["gatecheck"].clear_operator(current_user.id)
        logout_user()
        session.clear()
        flash("Signed out.", "info")
    return redirect(url_for("auth.signin"))
