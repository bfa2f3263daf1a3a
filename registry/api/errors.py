"""The people's API answers every refusal as ``{"error": {"code", "message"}}`` with one line and the right status.

A traceback never reaches a client: the registry's refusals (RegistryError)
carry a human-readable reason, and anything else is logged and answered 500.
"""

from __future__ import annotations

import logging

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from registry.db import RegistryError
from registry.publish import ConcurrentPublish, UnknownEntry, UnknownList
from registry.reports import UnknownReport
from registry.signing import SigningError

log = logging.getLogger("registry.api")

#: RFC 6750 §3: a 401 names the scheme the client must use.
BEARER_REALM = 'Bearer realm="gatecheck-registry"'


class ApiError(RegistryError):
    """A refusal the API decides itself (bad input, not found, conflict), with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


#: Refusals of the registry's own modules whose status is not 422 ("the rules refuse it").
_STATUS: dict[type[RegistryError], int] = {
    UnknownReport: 404, UnknownEntry: 404, UnknownList: 404, ConcurrentPublish: 409, SigningError: 503,
}


def status_of(exc: RegistryError) -> int:
    """The HTTP status of a refusal: its own, a known class's, else 422 (well-formed, but the rules say no)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    return next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 422)


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = BEARER_REALM + (', error="invalid_token"'
                                                              if code == "invalid_token" else "")
    return response


def registry_error(exc: RegistryError) -> Response:
    status = status_of(exc)
    if status >= 500:
        log.error("registry API cannot answer: %s", exc.message)
    return error_response(status, exc.code, exc.message)


def http_error(exc: HTTPException) -> Response:
    """werkzeug's own refusals (413, 405, 404 …) in the same JSON shape."""
    code = (exc.name or "error").lower().replace(" ", "_")
    response = error_response(exc.code or 500, code, exc.description or exc.name)
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def internal_error(exc: Exception) -> Response:
    log.exception("unhandled error in the registry API")
    return error_response(500, "internal_error", "the registry failed to answer; see its log")
