"""Authority list imports over the API: upload a file, preview it with a mapping, a second admin applies (issue 5).

The same Imports as the list admins' pages (registry/web/import_pages.py)
and the same steps (docs/imports.md): the file is recorded with its
columns; a preview with a column mapping stages every row and counts the
diff, publishing nothing; a different list admin applies it as one
version. The file is the raw request body (CSV, a JSON array or JSON
lines), streamed to a private file in the pages' import directory and
never held in memory, up to the pages' limit (MAX_UPLOAD_BYTES); bigger
lists go through `gatecheck registry import`. The preview runs inside the
request, as on the pages.
"""

from __future__ import annotations

import os
import secrets

from flask import current_app, url_for
from sqlalchemy import select

from appliance.private_files import private_dir
from registry.accounts import Role
from registry.api.errors import ApiError
from registry.api.operations import Reply, operation, paged, upload_stream
from registry.api.import_schemas import (
    ImportMappingIn,
    ImportOut,
    ImportPage,
    ImportPreviewOut,
    ImportQuery,
    ImportStartQuery,
)
from registry.api.services import ui
from registry.import_run import ImportRecord, Imports, UnknownImport, imports
from registry.importer import ImportMapping
from registry.publish import UnknownList
from registry.web.access import api_user
from registry.web.import_pages import MAX_UPLOAD_BYTES, SHOWN_REFUSALS, upload_dir

LIST_ADMINS = (Role.LIST_ADMIN,)
IMPORT_ID = "<string(maxlength=32):import_id>"
#: What a file may be sent as; the content decides between CSV, a JSON array and JSON lines.
MEDIA_TYPES = ("text/csv", "application/json", "application/x-ndjson", "text/plain")
_CHUNK = 1024 * 1024


def _imports() -> Imports:
    return ui().imports


def import_out(record: ImportRecord) -> dict:
    return {**record.to_dict(), "columns": list(record.columns)}


def _preview_out(record: ImportRecord) -> dict:
    return {**import_out(record),
            "refused_rows": [r.__dict__ for r in _imports().refusals(record.import_id, limit=SHOWN_REFUSALS)],
            "removal_sample": _imports().removal_sample(record.import_id)}


def _record(import_id: str) -> ImportRecord:
    try:
        return _imports().get(import_id)
    except UnknownImport:
        raise ApiError(404, "unknown_import", f"there is no import {import_id}") from None


def _receive() -> str:
    """Stream the body into a new private file in the import directory; its path. Removed on any failure."""
    path = private_dir(upload_dir(current_app)) / f"upload-{secrets.token_hex(12)}.data"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            stream = upload_stream(MAX_UPLOAD_BYTES)
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return str(path)


@operation("POST", "/imports", summary="Upload a file to import into a list", tag="imports", roles=LIST_ADMINS,
           query=ImportStartQuery, upload=MEDIA_TYPES, max_body=MAX_UPLOAD_BYTES, status=201, response=ImportOut)
def start_import(query: dict):
    """The body is the file: CSV with a header line, a JSON array of objects, or JSON lines, in UTF-8. The
    answer names its `columns`; map them in the preview. Nothing is published."""
    path = _receive()
    try:
        record = _imports().start(query["list_id"], path, file_name=query["file_name"], by=api_user().username,
                                  keep_file=True)
    except UnknownList as exc:  # a query field, not the path
        os.unlink(path)
        raise ApiError(422, "unknown_list", exc.message) from None
    except BaseException:
        os.unlink(path)
        raise
    return Reply(import_out(record), headers={"Location": url_for("api.get_import", import_id=record.import_id)})


@operation("POST", f"/imports/{IMPORT_ID}/preview", summary="Preview an import with a column mapping",
           tag="imports", roles=LIST_ADMINS, body=ImportMappingIn, response=ImportPreviewOut, errors=(409,))
def preview_import(import_id: str, body: dict):
    """A dry run: additions, removals, unchanged and refused rows (the first refused ones with reasons) and
    the first entries the apply would withdraw. May be sent again with another mapping."""
    record = _record(import_id)
    if record.upload_path is None:
        raise ApiError(409, "file_not_kept", f"import {import_id} is {record.status}; its file is no longer kept")
    mapping = ImportMapping.from_dict({k: v for k, v in body.items() if v is not None})
    return _preview_out(_imports().preview(import_id, mapping, by=api_user().username))


@operation("GET", "/imports", summary="Imports, newest first", tag="imports", roles=LIST_ADMINS, query=ImportQuery,
           response=ImportPage)
def list_imports(query: dict):
    page, per_page = query["page"], query["per_page"]
    c = imports.c
    stmt = select(imports).order_by(c.created_at.desc(), c.import_id).limit(per_page + 1).offset((page - 1) * per_page)
    for name in ("list_id", "status"):
        if name in query:
            stmt = stmt.where(c[name] == query[name])
    with ui().engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return paged([import_out(ImportRecord.from_row(row)) for row in rows], page, per_page)


@operation("GET", f"/imports/{IMPORT_ID}", summary="One import with its preview", tag="imports", roles=LIST_ADMINS,
           response=ImportPreviewOut)
def get_import(import_id: str):
    return _preview_out(_record(import_id))


@operation("POST", f"/imports/{IMPORT_ID}/apply", summary="Confirm a previewed import: publish it", tag="imports",
           roles=LIST_ADMINS, response=ImportOut, errors=(503,))
def apply_import(import_id: str):
    """By a list admin other than the one who previewed it; published as one version (`applied_version`).
    Refused (422 `import_refused`) when the list moved since the preview: preview again."""
    _record(import_id)
    return import_out(_imports().apply(import_id, confirmed_by=api_user().username))


@operation("POST", f"/imports/{IMPORT_ID}/discard", summary="Discard an import", tag="imports", roles=LIST_ADMINS,
           response=ImportOut)
def discard_import(import_id: str):
    """Its staged rows and kept file go; nothing is published."""
    _record(import_id)
    return import_out(_imports().discard(import_id, by=api_user().username))
