"""Sign-in and sign-out for the registry's people (flask-login sessions, flask-wtf forms).

The user is reloaded from the database on every request, so disabling an
account or changing its roles takes effect on the next click, not at the
next sign-in.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from registry.accounts import LoginRefused, User
from registry.web.access import public, signed_in
from registry.web.forms import LoginForm, LogoutForm

bp = Blueprint("ui_auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "ui_auth.login"
login_manager.session_protection = "strong"


class WebUser(UserMixin):
    """flask-login's view of a registry user; ``user`` is the accounts record.

    The session holds the user id and a stamp of the password hash, so a
    password change (a suspected stolen session, say) ends every session
    signed in with the old password.
    """

    def __init__(self, user: User, stamp: str) -> None:
        self.user = user
        self.id = f"{user.user_id}:{stamp}"

    @property
    def is_active(self) -> bool:
        return self.user.active


def ui():
    return current_app.extensions["gatecheck_ui"]


def web_user(user_id: int) -> WebUser | None:
    found = ui().accounts.session_stamp(user_id)
    return WebUser(*found) if found is not None and found[0].active else None


@login_manager.user_loader
def _load(session_id: str) -> WebUser | None:
    user_id, _, stamp = session_id.partition(":")
    current = web_user(int(user_id)) if user_id.isdigit() else None
    if current is None or not hmac.compare_digest(current.id, f"{user_id}:{stamp}"):
        return None
    return current


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would make the sign-in page a phishing tool."""
    if target and target.isprintable() and "\\" not in target:  # browsers read a backslash as "/"
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("ui_pages.dashboard")


def client_address() -> str:
    """The client's address as the server saw it (a proxy in front must be configured with ProxyFix)."""
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        username = form.username.data.strip().lower()
        throttle = ui().throttle
        wait = throttle.wait_seconds(username, client_address())
        if wait:
            minutes = max(1, -(-wait // 60))
            flash(f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.", "error")
            status = 429
        else:
            # Counted before the slow password check, so parallel guesses all count.
            throttle.failed(username, client_address())
            try:
                user = ui().accounts.authenticate(username, form.password.data)
            except LoginRefused as exc:
                flash(exc.message[:1].upper() + exc.message[1:] + ".", "error")
                status = 401
            else:
                throttle.succeeded(username)
                session.clear()  # nothing from before the sign-in carries over
                login_user(web_user(user.user_id))
                return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 400
    return render_template("ui/login.html", form=form), status


@bp.post("/logout")
@signed_in
def logout():
    if LogoutForm().validate_on_submit():
        logout_user()
        session.clear()
        flash("Signed out.", "status")
    return redirect(url_for("ui_auth.login"))
