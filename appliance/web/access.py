"""Who may call each route: every view declares it, and the app refuses to start otherwise.

The levels (docs/counter.md, "Who may call what"):

- ``public``: the sign-in page and static files;
- ``operator``: an operator signed in with a PIN (the browser session);
- ``reporter``: a signed-in operator who is also in the config's
  ``reporters`` (the flag form: reports name a traveller, so flagging is
  granted, never assumed); any other operator gets a 403 page;
- ``scanner``: the local scanner daemon, with the bearer token from the data
  dir's ``api-token`` file;
- ``reader``: either of the two above (status, events, polling);
- ``metrics``: a Prometheus scraper, with the bearer token from the data
  dir's ``metrics-token`` file. Not the scanner's token: a scraper must
  not be able to post scans, and the scanner daemon has no need to read
  metrics (docs/metrics.md).

Why a token on the JSON API and not just a content-type rule: a cross-site
HTML form in the counter browser can POST ``text/plain`` and
``multipart/form-data`` bodies to 127.0.0.1 without any preflight, and those
are exactly the types a scanner sends. It can never add an
``Authorization`` header without a CORS preflight, which this app never
answers. The token file is readable only by the device user.
"""

from __future__ import annotations

import hmac
from typing import Callable

from flask import Flask, abort, current_app, jsonify, request
from flask_login import current_user

PUBLIC = "public"
OPERATOR = "operator"
SCANNER = "scanner"
READER = "reader"
REPORTER = "reporter"
METRICS = "metrics"
LEVELS = (PUBLIC, OPERATOR, SCANNER, READER, REPORTER, METRICS)

#: The whole 403 page a signed-in operator who is not a reporter gets.
NOT_A_REPORTER = "Only reporters can flag a passenger; ask a supervisor."

#: Flask's own endpoints, which cannot carry an attribute.
_BUILTIN = {"static": PUBLIC}


def _declare(level: str) -> Callable:
    def mark(view: Callable) -> Callable:
        view.access = level  # type: ignore[attr-defined]
        return view
    return mark


public = _declare(PUBLIC)
operator_required = _declare(OPERATOR)
scanner_only = _declare(SCANNER)
reader = _declare(READER)
reporter_required = _declare(REPORTER)
metrics_only = _declare(METRICS)


def is_reporter() -> bool:
    """Whether the operator signed in on this request may flag passengers."""
    return bool(current_user.is_authenticated
                and current_user.id in current_app.config["GATECHECK"].reporters)


def access_of(app: Flask, endpoint: str) -> str | None:
    if endpoint in _BUILTIN:
        return _BUILTIN[endpoint]
    return getattr(app.view_functions.get(endpoint), "access", None)


def has_scanner_token() -> bool:
    return _bearer_is(current_app.extensions["gatecheck"].api_token)


def has_metrics_token() -> bool:
    return _bearer_is(current_app.extensions["gatecheck"].metrics_token)


def _bearer_is(expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def api_error(status: int, code: str, message: str, **headers: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers)
    return response


def install(app: Flask) -> None:
    """Check every route declared its level, and enforce the levels on each request."""
    undeclared = sorted(e for e in app.view_functions if access_of(app, e) not in LEVELS)
    if undeclared:
        raise RuntimeError(f"routes without an access level: {', '.join(undeclared)}")

    @app.before_request
    def enforce():
        if request.endpoint is None:  # 404 / 405: nothing to protect
            return None
        level = access_of(app, request.endpoint)
        if level == PUBLIC:
            return None
        if level in (OPERATOR, REPORTER):
            if not current_user.is_authenticated:
                return app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if level == REPORTER and not is_reporter():
                abort(403, description=NOT_A_REPORTER)
            return None
        if level == SCANNER:
            if has_scanner_token():
                return None
            return api_error(401, "unauthorised",
                             "send the device's API token: Authorization: Bearer <data dir/api-token>",
                             **{"WWW-Authenticate": 'Bearer realm="gatecheck"'})
        if level == METRICS:
            if has_metrics_token():
                return None
            return api_error(401, "unauthorised",
                             "send the device's metrics token: Authorization: Bearer <data dir/metrics-token>",
                             **{"WWW-Authenticate": 'Bearer realm="gatecheck-metrics"'})
        if has_scanner_token() or current_user.is_authenticated:
            return None
        return api_error(401, "unauthorised",
                         "sign in at the counter, or send the device's API token",
                         **{"WWW-Authenticate": 'Bearer realm="gatecheck"'})
