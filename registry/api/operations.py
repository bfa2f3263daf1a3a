"""One declaration per API operation: route, roles, query and body schemas, answer schema, body limit.

Adding an endpoint is one decorated function. ``operation`` registers the
Flask route on the API blueprint, declares its roles the way the pages do
(registry/web/access.py, so the token check and the access matrix see it),
reads and validates the query string and the JSON body, dumps the answer
through its response schema, and records all of it for the OpenAPI
document (registry/api/openapi.py). The document therefore cannot drift
from what the code accepts.
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from registry.accounts import Role
from registry.api.errors import ApiError
from registry.web.access import public, roles_required

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one route; built by ``operation``."""

    endpoint: str
    method: str
    rule: str
    summary: str
    tag: str
    roles: frozenset[Role] | None  # None: public
    query: type[Schema] | None
    body: type[Schema] | None
    status: int
    response: type[Schema] | dict | tuple[str, ...] | None  # a schema, a raw JSON Schema, a file's media types
    errors: tuple[int, ...]
    max_body: int | None
    description: str = ""
    upload: tuple[str, ...] | None = None  # a raw file body of these media types, read by the view


#: Every declared operation, in declaration order.
OPERATIONS: list[Operation] = []


@dataclass
class Reply:
    """A view's answer when it needs headers beside the body (``Location`` on a 201)."""

    data: object
    headers: dict = field(default_factory=dict)


def operation(method: str, rule: str, *, summary: str, tag: str, roles: Iterable[Role] | None,
              query: type[Schema] | None = None, body: type[Schema] | None = None, status: int = 200,
              response: type[Schema] | dict | tuple[str, ...] | None = None, errors: Iterable[int] = (),
              max_body: int | None = None, upload: Iterable[str] | None = None) -> Callable:
    """Declare and register an API operation; ``roles=None`` makes it public.

    The view receives the path parameters, plus ``query`` and ``body`` as the
    loaded dicts when schemas are given. With ``upload`` (media types) the
    body is a file the view streams itself with ``upload_stream``, after the
    token and roles are checked, so nobody else's large body is ever read. It returns the object to dump with
    ``response`` (or a Reply, or a finished flask Response for files).
    """
    allowed = None if roles is None else frozenset(roles)
    media = None if upload is None else tuple(upload)

    def register(view: Callable) -> Callable:
        @functools.wraps(view)
        def handler(**path):
            kwargs = dict(path)
            if query is not None:
                kwargs["query"] = load(query, query_args(), status=400, code="bad_request")
            elif request.args:
                raise ApiError(400, "bad_request", f"this operation takes no query parameter "
                                                   f"({', '.join(sorted(request.args))[:200]})")
            if body is not None:
                kwargs["body"] = load(body, read_json(max_body), status=422, code="invalid_request")
            elif media is not None and request.mimetype not in media:
                raise ApiError(415, "unsupported_media_type", f"content type must be one of {', '.join(media)}, "
                                                              f"not {request.mimetype or 'none'!r}")
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            headers = {}
            if isinstance(result, Reply):
                result, headers = result.data, result.headers
            if response is None:
                return Response(status=204, headers=headers)
            if isinstance(response, dict):
                return jsonify(result), status, headers
            return jsonify(response().dump(result)), status, headers

        declared = public(handler) if allowed is None else roles_required(*allowed)(handler)
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=declared, methods=[method])
        OPERATIONS.append(Operation(
            endpoint=f"{bp.name}.{view.__name__}", method=method.upper(), rule=rule, summary=summary, tag=tag,
            roles=allowed, query=query, body=body, status=status, response=response,
            errors=tuple(sorted(set(errors))), max_body=max_body,
            description=inspect.cleandoc(view.__doc__ or ""), upload=media))
        return declared
    return register


# -- reading requests --------------------------------------------------------------

def query_args() -> dict[str, str]:
    """The query string as a plain dict; a parameter given twice is ambiguous, so refused."""
    for key in request.args:
        if len(request.args.getlist(key)) > 1:
            raise ApiError(400, "bad_request", f"query parameter {key!r} is given more than once")
    return request.args.to_dict()


def read_json(max_body: int | None) -> dict:
    """The body as a JSON object, read through werkzeug's limited stream with this operation's limit.

    Only the report filing takes more than the app's MAX_CONTENT_LENGTH (its
    evidence); the limit is the operation's, so no other route grows with it.
    """
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"content type must be application/json, not {request.mimetype or 'none'!r}")
    limit = max_body or current_app.config["MAX_CONTENT_LENGTH"]
    try:
        data = get_input_stream(request.environ, max_content_length=limit).read()
    except RequestEntityTooLarge:
        raise ApiError(413, "request_entity_too_large",
                       f"the request body is over this operation's limit of {limit:,} bytes") from None
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        # A lone surrogate ("\ud800") is valid JSON but no text: it could never be stored.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"body is not valid UTF-8 JSON: {_first_line(exc)}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "malformed_json", "body must be a JSON object")
    return value


def upload_stream(limit: int):
    """The raw body as a stream that refuses to read past ``limit`` bytes (413, in one line)."""
    try:
        return _Limited(get_input_stream(request.environ, max_content_length=limit), limit)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_entity_too_large", f"the request body is over this operation's limit of "
                                                     f"{limit:,} bytes")


class _Limited:
    """werkzeug's limited stream, with its refusal as the API's one line."""

    def __init__(self, stream, limit: int) -> None:
        self._stream, self._limit = stream, limit

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except RequestEntityTooLarge:
            raise _too_large(self._limit) from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def load(schema: type[Schema], data: dict, *, status: int, code: str) -> dict:
    try:
        return schema().load(data)
    except ValidationError as exc:
        raise ApiError(status, code, one_line(exc.messages)) from None


def one_line(messages, where: str = "") -> str:
    """marshmallow's nested error messages as one line: ``identity.surnames: Missing data …; …``."""
    if isinstance(messages, dict):
        parts = [one_line(value, where if key == "_schema" else f"{where}.{key}" if where else str(key))
                 for key, value in messages.items()]
        return "; ".join(p for p in parts if p)[:1000]
    if isinstance(messages, list):
        texts = [str(m).rstrip(".") for m in messages if not isinstance(m, (dict, list))]
        nested = [one_line(m, where) for m in messages if isinstance(m, (dict, list))]
        said = " ".join(texts)
        parts = ([f"{where}: {said}" if where else said] if said else []) + nested
        return "; ".join(p for p in parts if p)
    return f"{where}: {messages}" if where else str(messages)


def paged(rows: list, page: int, per_page: int) -> dict:
    """A page of ``rows`` fetched with one extra row, which only says whether more follow."""
    return {"items": rows[:per_page], "page": page, "per_page": per_page, "more": len(rows) > per_page}
