"""The counter web app: the screen staff look at and the local JSON API (docs/counter.md).

``create_app`` builds it from a DeviceConfig; ``gatecheck serve``
(appliance/web_cli.py) runs it under waitress on 127.0.0.1.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from flask import Flask, current_app, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from appliance.config import DeviceConfig, load_config
from appliance.documents.model import MAX_PAYLOAD_BYTES
from appliance.web import access
from appliance.web.inputs import MAX_FORM_BODY, MAX_IMAGE_BYTES, upload_limits
from appliance.web.state import SHIFT, CounterState

csrf = CSRFProtect()

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
_WILDCARD = {"0.0.0.0", "::", "[::]", ""}

_ERROR_CODES = {
    400: "bad_request", 401: "unauthorised", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
    422: "unprocessable", 429: "too_many_requests", 503: "busy",
}


def trusted_hosts(host: str) -> list[str] | None:
    """Host headers the app answers: loopback names, plus the configured address.

    Refusing other Host headers defeats DNS rebinding, where a web page's own
    host name is pointed at 127.0.0.1 to read the API. A wildcard listen
    address cannot say which names are right, so the check is then off.
    """
    if host in _WILDCARD:
        return None
    return LOOPBACK_HOSTS + ([host] if host not in LOOPBACK_HOSTS else [])


def create_app(config: DeviceConfig | None = None, *, test_config: Mapping[str, Any] | None = None) -> Flask:
    """The counter app for one device. ``test_config`` overrides Flask settings."""
    config = config or load_config()
    state = CounterState(config)
    app = Flask(__name__)
    app.config.update(
        GATECHECK=config,
        SECRET_KEY=state.secret_key(),
        # Forms and everything else: 64 KiB. The routes that take a camera
        # frame raise both limits for themselves (inputs.upload_limits); raw
        # payloads are held to 16 KiB in the scan view.
        MAX_CONTENT_LENGTH=MAX_FORM_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BODY,
        SESSION_COOKIE_NAME="gatecheck_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SHIFT,
        # A form may sit on the counter screen for a whole shift.
        WTF_CSRF_TIME_LIMIT=int(SHIFT.total_seconds()),
        TRUSTED_HOSTS=trusted_hosts(config.host),
        SEND_FILE_MAX_AGE_DEFAULT=timedelta(hours=1),
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["gatecheck"] = state
    app.json.sort_keys = False  # the verdict JSON reads in contract order: verdict first

    from appliance.web import api, auth, counter, metrics

    app.before_request(upload_limits)  # first: CSRF protection parses the body
    csrf.init_app(app)
    auth.login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(counter.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # the JSON API is protected by the device token instead (access.py)
    app.register_blueprint(metrics.bp)  # Prometheus, GET only, with its own token (access.py)
    access.install(app)
    _error_handlers(app)

    @app.context_processor
    def signout_form():
        from appliance.web.forms import SignOutForm

        # formdata=None: the page's sign-out button never reads this request's
        # body, so an error page for a body refused as too large still renders.
        return {"signout_form": SignOutForm(formdata=None)}

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        if request.path.startswith("/api/") or request.endpoint in {"counter.live"}:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _too_large_page_message() -> str:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_image", False):
        return (f"That photo is too large: a photo may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB. "
                "Nothing was checked or stored.")
    return (f"That form sent too much data: a form may be at most {MAX_FORM_BODY // 1024} KiB. "
            "Nothing was stored.")


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        if _wants_json():
            return access.api_error(400, "csrf", exc.description)
        return render_template("error.html", code=400,
                               message="This form had expired. Go back, reload the page and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if _wants_json():
            message = exc.description or exc.name
            if status == 413:
                message = (f"the request body is too large (a payload is at most "
                           f"{MAX_PAYLOAD_BYTES // 1024} KiB, an image "
                           f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB)")
            return access.api_error(status, _ERROR_CODES.get(status, "http_error"), message)
        message = exc.description
        if status == 413:
            message = _too_large_page_message()
        return render_template("error.html", code=status, message=message), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        if _wants_json():
            return access.api_error(500, "internal", "the device could not handle this request; "
                                                     "it has been logged")
        return render_template("error.html", code=500,
                               message="Something went wrong on this device. It has been logged."), 500
