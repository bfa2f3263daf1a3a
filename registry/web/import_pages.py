"""List admins import authority lists: upload, map the columns, preview, a second admin confirms (issue 5).

The upload is streamed by werkzeug's form parser straight into a private
(0600) file under ``<data dir>/imports/`` (``upload_request``), never held
in memory; it is kept until the import is applied or discarded, so the
mapping can be corrected and previewed again. The web takes files up to
``MAX_UPLOAD_BYTES``; bigger lists go through `gatecheck registry import`,
which shows a progress bar (the preview and the apply run inside the
request here). The rules are registry/import_run.py's; docs/imports.md.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from appliance.private_files import private_dir
from appliance.web.forms import options
from registry.accounts import Role
from registry.import_run import APPLIED, DISCARDED, PREVIEWED, Imports, UnknownImport, imports
from registry.importer import FIELDS, MAX_TERM_DAYS, ImportMapping, ImportProblem, suggest_mapping
from registry.web import listing
from registry.web.access import roles_required
from registry.web.auth import ui

bp = Blueprint("ui_imports", __name__)
UPLOAD_PATH = "/imports/upload"
#: Largest file the page takes (about 300,000 rows of a typical court list); the CLI takes any size.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: The form's other fields and the multipart framing.
_FORM_OVERHEAD = 64 * 1024
UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson")
#: Refused rows shown on the preview page; `gatecheck registry import show --refused N` lists more.
SHOWN_REFUSALS = 50
_i = imports.c
HISTORY = listing.ListSpec(
    sorts={"started": _i.created_at, "list": _i.list_id, "file": _i.file_name, "status": _i.status,
           "previewed_by": _i.previewed_by, "confirmed_by": _i.confirmed_by},
    default_sort="started", default_dir=listing.DESC, tiebreak=(_i.import_id,),
    search=(_i.import_id, _i.list_id, _i.file_name, _i.status, _i.created_by, _i.previewed_by, _i.confirmed_by,
            _i.file_sha256))
DOCUMENT_CLASSES = (("", "—"), ("P", "P: passport"), ("I", "I: ID card"), ("D", "D: driver licence"),
                    ("V", "V: visa"))
ACTIONS = (("", "the list's default"), ("DENY", "DENY"), ("REFER", "REFER"))


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


def upload_dir(app: Flask) -> Path:
    return Path(app.config["GATECHECK_IMPORT_DIR"])


def _may_upload() -> bool:
    """Only a signed-in list admin may send a large body: the CSRF check reads the body before the role check."""
    return bool(current_user.is_authenticated and current_user.user.has_role(Role.LIST_ADMIN))


def upload_request(base: type) -> type:
    """``base`` (the app's request class) taking large import uploads, streamed to a private file.

    Only on the upload route, and only for a signed-in list admin: the body
    limit becomes MAX_UPLOAD_BYTES and file parts go to a 0600 temporary
    file in the import directory (deleted when the request ends unless the
    view keeps it with a hard link). A body over the limit is one line, not
    werkzeug's generic text.
    """

    class ImportUploadRequest(base):
        @property
        def max_content_length(self) -> int | None:
            if self.path == UPLOAD_PATH and _may_upload():
                return MAX_UPLOAD_BYTES + _FORM_OVERHEAD
            return super().max_content_length

        def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
            if self.path == UPLOAD_PATH:
                directory = private_dir(upload_dir(current_app))
                return tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", suffix=".part")
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)

        def _load_form_data(self) -> None:
            try:
                super()._load_form_data()
            except RequestEntityTooLarge:
                if self.path != UPLOAD_PATH:
                    raise
                raise RequestEntityTooLarge(
                    f"The file is larger than {_size(MAX_UPLOAD_BYTES)}. Import it with "
                    "`gatecheck registry import preview`, which takes any size.") from None

    return ImportUploadRequest


def init_app(app: Flask, *, data_dir: Path | None) -> None:
    """Register the pages, the import service and the upload-aware request class (after every other one)."""
    services = app.extensions["gatecheck_ui"]
    registry = app.extensions["gatecheck_registry"].registry
    services.imports = Imports(services.engine, registry, services.audit)
    # Beside the snapshot files: the registry's data directory (where the database is, for SQLite).
    default = data_dir / "imports" if data_dir is not None else registry.snapshot_files.directory.parent / "imports"
    app.config.setdefault("GATECHECK_IMPORT_DIR", str(default))
    app.register_blueprint(bp)
    app.request_class = upload_request(app.request_class)


def _imports() -> Imports:
    return ui().imports


class UploadForm(FlaskForm):
    list_id = SelectField("List to import into", validators=[DataRequired()])
    file = FileField("File: CSV with a header line, a JSON array of objects, or JSON lines",
                     validators=[FileRequired("Choose a file to upload.")])


class ActionForm(FlaskForm):
    """Confirm or discard: a POST with a CSRF token and nothing else."""


def _mapping_form(columns: tuple[str, ...], initial: dict | None):
    """A form with one column choice per entry field, the file-wide defaults and the default term."""
    choices = options([("", "— not in the file —")] + [(c, c) for c in columns])
    attrs = {f"col_{name}": SelectField(name.replace("_", " ").capitalize(), choices=choices, description=text,
                                        validators=[Optional()])
             for name, text in FIELDS.items()}
    attrs.update(
        default_category=StringField("Category for rows without one", validators=[Optional(), Length(max=200)]),
        default_action=SelectField("Action for rows without one", choices=options(ACTIONS),
                                   validators=[Optional()]),
        default_document_class=SelectField("Document type for rows without one", choices=options(DOCUMENT_CLASSES),
                                           validators=[Optional()]),
        default_document_issuer=StringField("Issuing country for rows without one (e.g. CHN, DEU)",
                                            validators=[Optional(), Length(max=10)]),
        default_redress=TextAreaField("Redress text for rows without one (empty: the list's)",
                                      validators=[Optional(), Length(max=2000)], render_kw={"rows": 2}),
        term_days=IntegerField("Default term in days, for rows without an expiry (empty: such rows are refused)",
                               validators=[Optional(), NumberRange(min=1, max=MAX_TERM_DAYS)]),
        date_format=StringField("Date format of the date columns", default="%Y-%m-%d",
                                validators=[DataRequired(), Length(max=40)],
                                description="strptime codes: %Y-%m-%d is 2024-12-31, %d/%m/%Y is 31/12/2024"),
    )
    form_class = type("MappingForm", (FlaskForm,), attrs)
    data = {}
    if initial:
        data.update({f"col_{k}": v for k, v in initial.get("columns", {}).items() if v in columns})
        data.update({f"default_{k}": v for k, v in initial.get("defaults", {}).items()})
        data.update(term_days=initial.get("term_days"), date_format=initial.get("date_format", "%Y-%m-%d"))
    return form_class(data=data)


def _mapping_of(form) -> ImportMapping:
    columns = {name: getattr(form, f"col_{name}").data for name in FIELDS}
    defaults = {name: (getattr(form, f"default_{name}").data or "").strip()
                for name in ("category", "action", "document_class", "document_issuer", "redress")}
    data = {"columns": columns, "defaults": defaults, "date_format": form.date_format.data.strip()}
    if form.term_days.data:
        data["term_days"] = form.term_days.data
    return ImportMapping.from_dict(data)


def _record_or_404(import_id: str):
    try:
        return _imports().get(import_id)
    except UnknownImport:
        abort(404, description=f"There is no import {import_id}.")


def _list_choices() -> list[tuple[str, str]]:
    return [(s["list_id"], f"{s['name']} ({s['list_id']})") for s in ui().list_summaries()]


def _home(form: UploadForm):
    query = listing.parse(request.args, HISTORY)
    with ui().engine.connect() as conn:
        page = listing.fetch(conn, select(imports), query, HISTORY)
    pending = _imports().history(status=PREVIEWED, limit=50)
    return render_template("ui/imports.html", form=form, page=page, pending=pending,
                           max_size=_size(MAX_UPLOAD_BYTES))


@bp.get("/imports")
@roles_required(Role.LIST_ADMIN)
def imports_home():
    form = UploadForm()
    form.list_id.choices = options(_list_choices())
    return _home(form)


@bp.post(UPLOAD_PATH)
@roles_required(Role.LIST_ADMIN)
def upload():
    form = UploadForm()
    form.list_id.choices = options(_list_choices())
    if not form.validate_on_submit():
        flash("Not uploaded: " + "; ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("ui_imports.imports_home"))
    storage = form.file.data
    name = Path(storage.filename or "upload").name
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        flash(f"Not uploaded: {name} is not a CSV (.csv, .tsv, .txt) or JSON (.json, .jsonl, .ndjson) file.", "error")
        return redirect(url_for("ui_imports.imports_home"))
    kept = private_dir(upload_dir(current_app)) / f"upload-{secrets.token_hex(12)}.data"
    stream = storage.stream
    if getattr(stream, "name", None) and os.path.exists(stream.name):
        os.link(stream.name, kept)  # the temporary name goes when the request ends; this one stays
    else:  # a part werkzeug kept in memory (never for this route, but cheap to handle)
        fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            storage.save(out)
    try:
        record = _imports().start(form.list_id.data, kept, file_name=name, by=current_user.user.username,
                                  keep_file=True)
    except ImportProblem as exc:
        kept.unlink(missing_ok=True)
        flash(f"Not uploaded: {exc.message}", "error")
        return redirect(url_for("ui_imports.imports_home"))
    flash(f"{name} uploaded; now say which column holds what.", "status")
    return redirect(url_for("ui_imports.mapping", import_id=record.import_id))


@bp.route("/imports/<import_id>/mapping", methods=["GET", "POST"])
@roles_required(Role.LIST_ADMIN)
def mapping(import_id: str):
    record = _record_or_404(import_id)
    if record.upload_path is None or record.status in (APPLIED, DISCARDED):
        flash(f"Import {import_id} is {record.status}; its file is no longer kept.", "error")
        return redirect(url_for("ui_imports.detail", import_id=import_id))
    if record.mapping is not None:
        initial = record.mapping.to_dict()
    else:
        last = _imports().last_mapping(record.list_id)
        initial = last.to_dict() if last else {"columns": suggest_mapping(list(record.columns))}
    form = _mapping_form(record.columns, initial)
    status = 200
    if form.validate_on_submit():
        try:
            _imports().preview(import_id, _mapping_of(form), by=current_user.user.username)
        except ImportProblem as exc:
            flash(f"Not previewed: {exc.message}", "error")
            status = 422
        else:
            return redirect(url_for("ui_imports.detail", import_id=import_id))
    elif request.method == "POST":
        status = 422
    return render_template("ui/import_mapping.html", record=record, form=form, fields=FIELDS), status


@bp.get("/imports/<import_id>")
@roles_required(Role.LIST_ADMIN)
def detail(import_id: str):
    record = _record_or_404(import_id)
    return render_template("ui/import_detail.html", record=record, form=ActionForm(),
                           refused=_imports().refusals(import_id, limit=SHOWN_REFUSALS),
                           removals=_imports().removal_sample(import_id),
                           mine=record.previewed_by == current_user.user.username)


@bp.post("/imports/<import_id>/apply")
@roles_required(Role.LIST_ADMIN)
def apply(import_id: str):
    _record_or_404(import_id)
    if ActionForm().validate_on_submit():
        try:
            record = _imports().apply(import_id, confirmed_by=current_user.user.username)
        except ImportProblem as exc:
            flash(f"Not applied: {exc.message}", "error")
        else:
            flash(f"Import {import_id} is published as version {record.applied_version} of {record.list_id}.",
                  "status")
    return redirect(url_for("ui_imports.detail", import_id=import_id))


@bp.post("/imports/<import_id>/discard")
@roles_required(Role.LIST_ADMIN)
def discard(import_id: str):
    _record_or_404(import_id)
    if ActionForm().validate_on_submit():
        try:
            _imports().discard(import_id, by=current_user.user.username)
        except ImportProblem as exc:
            flash(f"Not discarded: {exc.message}", "error")
        else:
            flash(f"Import {import_id} is discarded; nothing was published.", "status")
    return redirect(url_for("ui_imports.imports_home"))
