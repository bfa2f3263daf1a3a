"""Sign-in and sign-out for the registry's people (flask-login sessions, flask-wtf forms).

The user is reloaded from the database on every request, so disabling an
account or changing its roles takes effect on the next click, not at the
next sign-in.
"""

from __future__ import annotations

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
    """flask-login's view of a registry user; ``user`` is the accounts record."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = str(user.user_id)

    @property
    def is_active(self) -> bool:
        return self.user.active


def ui():
    return current_app.extensions["gatecheck_ui"]


@login_manager.user_loader
def _load(user_id: str) -> WebUser | None:
    user = ui().accounts.get(int(user_id)) if user_id.isdigit() else None
    return WebUser(user) if user is not None and user.active else None


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
                login_user(WebUser(user))
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
