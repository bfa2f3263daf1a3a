"""The registry's JSON API for people's integrations, such as an airline's incident system (issue 5, "API").

Under ``/api/v1/``: the same operations as the pages (reports, review,
entries, appeals, clearances, audit, devices and enrolment codes) for a user's API token with the same
roles. Each operation is declared once, next to its view
(registry/api/operations.py); the OpenAPI document at
``/api/v1/openapi.json`` is generated from those declarations
(registry/api/openapi.py). docs/registry-api.md describes the contract.

Requests are authenticated by the bearer token alone (registry/web/access.py);
a session cookie never opens the API, so the API is exempt from CSRF tokens.
"""

from __future__ import annotations

import importlib

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from registry.api import errors
from registry.api.operations import bp
from registry.api.services import ApiServices
from registry.db import RegistryError
from registry.entry_lookup import EntryLookup

#: The modules whose operations make up the API; a new area is a module here.
OPERATION_MODULES = ("lists", "reports", "entries", "appeals", "clearances", "imports", "audit", "fleet", "openapi")

for _name in OPERATION_MODULES:
    importlib.import_module(f"registry.api.{_name}")

bp.register_error_handler(RegistryError, errors.registry_error)
bp.register_error_handler(HTTPException, errors.http_error)
bp.register_error_handler(Exception, errors.internal_error)


@bp.after_request
def _no_store(response: Response) -> Response:
    """Answers hold names and decisions: no cache, proxy or browser keeps them."""
    response.headers["Cache-Control"] = "no-store"
    return response


def init_api(app: Flask) -> None:
    """Register the API on the registry app; call after the pages' services exist (registry/web)."""
    from registry.web import csrf

    app.extensions["gatecheck_api"] = ApiServices(entries=EntryLookup(app.extensions["gatecheck_ui"].engine))
    csrf.exempt(bp)  # a session cannot authenticate here, so there is nothing for a forged request to ride on
    app.register_blueprint(bp)
