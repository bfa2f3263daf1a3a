"""The API's OpenAPI 3 document, generated from the declared operations (registry/api/operations.py).

apispec writes the document and its marshmallow plugin turns the same
schemas that validate requests and shape answers into JSON Schema, so the
document is the code's own description, not a second copy. Errors each
operation can answer are derived from what it declares: a token (401,
403), path parameters (404), a body (413, 415, 422), plus its own (409,
503). The document is public: it holds shapes, no data, and an integrator
needs it before holding a token.
"""

from __future__ import annotations

import functools
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from registry.api.operations import OPERATIONS, PREFIX, Operation, operation
from registry.api.schemas import Error

OPENAPI_VERSION = "3.0.3"
DOCUMENT_PATH = "/openapi.json"
TITLE = "Gatecheck registry API"
API_VERSION = "1"

ERRORS = {
    400: ("BadRequest", "A query parameter is wrong, or the body is not a JSON object."),
    401: ("Unauthorized", "No API token, or one that is unknown or revoked, or whose user is disabled."),
    403: ("Forbidden", "The token's user lacks the role, or does not act for that organisation."),
    404: ("NotFound", "No such report, entry, appeal, clearance, device, code or file (or not one this user may see)."),
    409: ("Conflict", "Decided, withdrawn or revoked already, or being decided by someone else."),
    413: ("TooLarge", "The body is over this operation's limit."),
    415: ("UnsupportedMediaType", "The body is not application/json."),
    422: ("Unprocessable", "The body fails validation, or the registry's rules refuse it; `code` says which."),
    503: ("SigningUnavailable", "The registry cannot sign a publish now (its signing certificate ran out)."),
}
TAGS = [
    ("lists", "Who is calling, and the lists with their report categories."),
    ("reports", "Filing reports and following them."),
    ("review", "The review queue and decisions (maker-checker)."),
    ("entries", "Listed people: search, detail and history."),
    ("appeals", "Appeals against entries: upholding lifts the entry."),
    ("clearances", "Namesake clearances: redress numbers published as allow-tokens for one document."),
    ("imports", "Authority list imports: upload, preview with a column mapping, a second list admin applies."),
    ("audit", "The append-only, hash-chained audit log."),
    ("fleet", "Counter devices and their one-time enrolment codes."),
]
#: ``<conv(args):name>`` in a Flask rule; only the converters the API uses are described.
_PARAM = re.compile(r"<(?:(?P<conv>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")


def openapi_path(rule: str) -> str:
    return PREFIX + _PARAM.sub(lambda m: "{" + m["name"] + "}", rule)


def path_parameters(rule: str) -> list[dict]:
    params = []
    for match in _PARAM.finditer(rule):
        args = dict(item.strip().split("=", 1) for item in (match["args"] or "").split(",") if item.strip())
        if match["conv"] == "int":
            schema = {"type": "integer", "minimum": int(args.get("min", 0)), "maximum": int(args["max"])}
        elif match["conv"] == "string":
            schema = {"type": "string", "minLength": 1, "maxLength": int(args["maxlength"])}
        else:
            raise ValueError(f"API rule {rule!r}: describe converter {match['conv']!r} in registry/api/openapi.py")
        params.append({"name": match["name"], "in": "path", "required": True, "schema": schema})
    return params


def error_statuses(op: Operation) -> set[int]:
    statuses = {400, *op.errors}
    if op.roles is not None:
        statuses |= {401, 403}
    if "<" in op.rule:
        statuses.add(404)
    if op.body is not None or op.upload is not None:
        statuses |= {413, 415, 422}
    return statuses


def _success(op: Operation) -> dict:
    if op.response is None:
        return {"description": op.summary}
    if isinstance(op.response, tuple):
        content = {media: {"schema": {"type": "string", "format": "binary"}} for media in op.response}
    elif isinstance(op.response, dict):
        content = {"application/json": {"schema": op.response}}
    else:
        content = {"application/json": {"schema": op.response}}
    answer = {"description": op.summary, "content": content}
    if op.status == 201:
        answer["headers"] = {"Location": {"description": "where the new resource is read",
                                          "schema": {"type": "string"}}}
    return answer


def _operation(op: Operation) -> dict:
    doc = {"operationId": op.endpoint.partition(".")[2], "summary": op.summary, "tags": [op.tag],
           "parameters": path_parameters(op.rule), "responses": {str(op.status): _success(op)}}
    if op.roles is None:
        doc["security"] = []
        doc["description"] = op.description or "Public."
    else:
        roles = sorted(op.roles)
        doc["x-roles"] = roles
        doc["description"] = (f"{op.description}\n\n" if op.description else "") + f"Roles: {' or '.join(roles)}."
    if op.query is not None:
        doc["parameters"].append({"in": "query", "schema": op.query})
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    elif op.upload is not None:
        limit = f"at most {op.max_body:,} bytes" if op.max_body else "within the app's body limit"
        doc["requestBody"] = {"required": True, "description": f"the file itself, {limit}", "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in op.upload}}
    for status in sorted(error_statuses(op)):
        doc["responses"][str(status)] = ERRORS[status][0]
    # The HTTP server (gunicorn) refuses an over-long request line before the app sees it, in its own words.
    doc["responses"]["414"] = {"description": "The request line (path and query) is longer than the server takes "
                                              "(gunicorn's limit_request_line, 4,094 bytes); not JSON."}
    return doc


@functools.cache
def document() -> dict:
    """The OpenAPI document of every declared operation; the same for every app of this process."""
    spec = APISpec(
        title=TITLE, version=API_VERSION, openapi_version=OPENAPI_VERSION, plugins=[MarshmallowPlugin()],
        info={"description": "The registry's JSON API for integrations such as an airline's incident system. "
                             "Authenticate each request with a user's API token (`gatecheck registry user "
                             "token`); the token's user needs the same roles as on the registry's pages. "
                             "Every refusal is `{\"error\": {\"code\", \"message\"}}` with one line."},
        tags=[{"name": name, "description": text} for name, text in TAGS],
        security=[{"bearerAuth": []}])
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer", "description": "A user's API token: gck_ followed by 43 characters."})
    spec.components.schema("Error", schema=Error)
    for name, text in ERRORS.values():
        spec.components.response(name, {"description": text, "content": {"application/json": {"schema": "Error"}}})
    for op in OPERATIONS:
        spec.path(path=openapi_path(op.rule), operations={op.method.lower(): _operation(op)})
    return spec.to_dict()


@operation("GET", DOCUMENT_PATH, summary="This API's OpenAPI document", tag="lists", roles=None,
           response={"type": "object", "description": "OpenAPI 3.0"})
def openapi_document():
    """Public: it describes shapes, never data."""
    return document()
