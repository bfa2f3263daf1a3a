"""The registry's web UI for people: sign-in, dashboard, and (issue 5) the workflows.

``init_ui(app)`` adds it to the registry app that registry/server.py builds,
after the device API, so one gunicorn service serves both. The pages are
server-rendered templates; forms carry CSRF tokens (flask-wtf) except on the
device API, which signs every request instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine, select

from registry import db
from registry.accounts import Accounts
from registry.appeals import Appeals
from registry.audit import AuditLog
from registry.clearances import ClearanceRegister
from registry.devices import DeviceRegistry
from registry.import_run import Imports
from registry.incident_intake import IncidentIntake
from registry.reports import ReportQueue
from registry.web import access
from registry.web.throttle import LoginThrottle

csrf = CSRFProtect()
SECRET_FILE = "web-secret"
#: The scrape-only token for GET /metrics (0600), made at first start like web-secret.
METRICS_TOKEN_FILE = "metrics-token"
SESSION_HOURS = 8


@dataclass
class UiServices:
    """What the pages work with; one per app, in ``app.extensions["gatecheck_ui"]``."""

    engine: Engine
    accounts: Accounts
    audit: AuditLog
    throttle: LoginThrottle
    devices: DeviceRegistry
    reports: ReportQueue
    intake: IncidentIntake
    appeals: Appeals
    clearances: ClearanceRegister
    #: Authority list imports; set by registry/web/import_pages.init_app.
    imports: Imports | None = None

    def list_summaries(self) -> list[dict]:
        """Every list with its version and published token count, for the dashboard."""
        l, v = db.lists.c, db.versions.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(l.list_id, l.name, l.authority, l.current_version, v.token_count, v.published_at)
                .select_from(db.lists.outerjoin(db.versions, (v.list_id == l.list_id)
                                                & (v.version == l.current_version)))
                .order_by(l.list_id)).all()
        return [row._asdict() for row in rows]


def secret_key(data_dir: Path) -> str:
    """The session-signing key, made once per data directory (0600) and shared by every process."""
    key = shared_secret(data_dir, SECRET_FILE, lambda: secrets.token_hex(32))
    if len(key) < 32:
        raise RuntimeError(f"{data_dir / SECRET_FILE} holds no usable session key; delete it and restart")
    return key


def shared_secret(data_dir: Path, name: str, make) -> str:
    """``data_dir/name``, made once (0600) by whichever server process gets there first."""
    import os

    from appliance.private_files import FILE_MODE

    path = data_dir / name
    if not path.exists():
        tmp = path.with_name(f".{name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        try:
            os.link(tmp, path)  # exclusive: of two processes starting at once, one value wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def init_ui(app: Flask, engine: Engine, *, data_dir: Path | None = None) -> None:
    """Register the people's pages on the registry app and lock every route to its declared access."""
    from registry.web import auth, pages, report_pages

    if not app.config.get("SECRET_KEY"):
        # Without a data directory (an app configured piece by piece, as in
        # tests) the key lives as long as the process: sessions end at restart.
        app.config["SECRET_KEY"] = secret_key(data_dir) if data_dir is not None else secrets.token_hex(32)
    if data_dir is not None and not app.config.get("METRICS_TOKEN"):
        # What a Prometheus server sends for GET /metrics and nothing else (docs/metrics.md).
        app.config["METRICS_TOKEN"] = shared_secret(data_dir, METRICS_TOKEN_FILE,
                                                    lambda: "gcm_" + secrets.token_urlsafe(32))
    app.config.setdefault("SESSION_COOKIE_NAME", "gatecheck_registry")
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    # Behind the TLS terminator that a deployment puts in front, set this True.
    app.config.setdefault("SESSION_COOKIE_SECURE", False)
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=SESSION_HOURS))
    audit = AuditLog(engine)
    # Decisions publish through the device API's registry, so waiting long-polls wake at once.
    registry = app.extensions["gatecheck_registry"].registry
    devices, queue = app.extensions["gatecheck_registry"].devices, ReportQueue(engine, registry, audit)
    app.extensions["gatecheck_ui"] = UiServices(engine, Accounts(engine, audit), audit, LoginThrottle(engine),
                                                devices, queue, IncidentIntake(queue, devices),
                                                appeals=Appeals(engine, registry, queue, audit),
                                                clearances=ClearanceRegister(engine, registry, audit))
    csrf.init_app(app)
    for name in access.DEVICE_BLUEPRINTS & app.blueprints.keys():
        csrf.exempt(app.blueprints[name])  # devices sign each request; they have no session to forge
    auth.login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(report_pages.bp)
    from registry.web import clearance_pages

    app.register_blueprint(clearance_pages.bp)
    from registry.web import device_pages  # IT's fleet pages

    app.register_blueprint(device_pages.bp)
    from registry.web import appeal_pages, audit_pages, entry_pages, list_pages

    for people_pages in (entry_pages, appeal_pages, list_pages, audit_pages):
        app.register_blueprint(people_pages.bp)
    app.request_class = report_pages.UploadAwareRequest
    from registry.api import init_api  # the JSON API for integrations: tokens, not sessions

    init_api(app)
    from registry.web import import_pages  # list admins' authority list imports (after request_class is set)

    import_pages.init_app(app, data_dir=data_dir)
    from registry.web import metrics_route  # Prometheus: a token, never a session, like the API

    app.register_blueprint(metrics_route.bp)
    access.install(app)

    @app.template_filter("utc")
    def _utc(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M")

    @app.context_processor
    def _forms():
        from registry.web.forms import LogoutForm

        return {"logout_form": LogoutForm(formdata=None)}  # never reads the body: error pages render it too


def is_page_request() -> bool:
    """True for the people's pages (HTML errors), False for the device API and the people's API (JSON errors)."""
    return not request.path.startswith(("/v1/", "/api/"))


def render_error(status: int, title: str, message: str):
    return render_template("ui/error.html", status=status, title=title, message=message), status


__all__ = ["init_ui", "is_page_request", "render_error", "CSRFError"]
