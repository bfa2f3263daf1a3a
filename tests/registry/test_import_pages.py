"""The import pages: upload, map, preview, a second list admin confirms; bad files are one line.

The real app (registry/server.py's factory) over a data directory made by
`gatecheck registry init`, driven with Flask's test client.
"""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.records import Action
from registry.cli import registry as registry_cli
from registry.server import create_app
from registry.web import import_pages
from tests.registry.test_import_run import court_row

PASSWORD = "a long enough passphrase"
HEADER = "case_no,surname,given,dob,id_no,until\n"


def court_csv(rows: int, **changes) -> bytes:
    return (HEADER + "".join(",".join(court_row(i, **changes).values()) + "\n" for i in range(rows))).encode()


@pytest.fixture
def app(tmp_path):
    data_dir = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    app.config["TESTING"] = True
    ui = app.extensions["gatecheck_ui"]
    for name, roles in (("ann", ["list_admin"]), ("ben", ["list_admin"]), ("rev", ["reviewer"])):
        ui.accounts.create_user(name, PASSWORD, roles=roles, by="admin")
    app.extensions["gatecheck_registry"].registry.create_list(
        "court", name="Judgment defaulters", authority="Supreme People's Court", legal_basis="Provisions",
        scopes=["air_travel"], default_action=Action.DENY, by="admin")
    return app


def signed_in(app, username: str):
    client = app.test_client()
    token = csrf(client, "/login")
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    return client


def csrf(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def upload(client, data: bytes, name: str = "court.csv"):
    return client.post("/imports/upload", content_type="multipart/form-data", data={
        "csrf_token": csrf(client, "/imports"), "list_id": "court", "file": (io.BytesIO(data), name)})


def map_and_preview(client, location: str, **overrides):
    form = {"csrf_token": csrf(client, location), "col_reference": "case_no", "col_surnames": "surname",
            "col_given_names": "given", "col_date_of_birth": "dob", "col_document_number": "id_no",
            "col_valid_until": "until", "default_category": "judgment-default", "default_document_class": "I",
            "default_document_issuer": "CHN", "date_format": "%Y-%m-%d"}
    form.update(overrides)
    return client.post(location, data=form)


def flashes(page: str) -> list[str]:
    return re.findall(r'<p class="flash flash--\w+" role="\w+">([^<]+)</p>', page)


def test_one_list_admin_previews_and_another_confirms_and_the_list_moves_by_one_version(app):
    ann = signed_in(app, "ann")
    uploaded = upload(ann, court_csv(30))
    assert uploaded.status_code == 302 and uploaded.headers["Location"].endswith("/mapping")
    mapping_page = ann.get(uploaded.headers["Location"]).get_data(as_text=True)
    assert re.search(r'<option selected value="case_no">', mapping_page)  # suggested from the header "case_no"
    previewed = map_and_preview(ann, uploaded.headers["Location"])
    assert previewed.status_code == 302
    detail = previewed.headers["Location"]
    page = ann.get(detail).get_data(as_text=True)
    assert re.search(r"Additions \(new or changed rows\)</th><td>30</td>", page)
    assert "You made this preview. A second list admin must confirm it" in page
    assert "Confirm and publish" not in page
    refused = ann.post(detail + "/apply", data={"csrf_token": csrf(ann, detail)}, follow_redirects=True)
    assert "Not applied: two people: ann made the preview" in " ".join(flashes(refused.get_data(as_text=True)))
    registry = app.extensions["gatecheck_registry"].registry
    assert registry.current_version("court") == 0

    ben = signed_in(app, "ben")
    assert "Confirm and publish" in ben.get(detail).get_data(as_text=True)
    applied = ben.post(detail + "/apply", data={"csrf_token": csrf(ben, detail)}, follow_redirects=True)
    assert "is published as version 1 of court." in " ".join(flashes(applied.get_data(as_text=True)))
    assert registry.current_version("court") == 1
    history = ben.get("/imports").get_data(as_text=True)
    assert "court.csv" in history and "applied (version 1)" in history


def test_the_upload_is_kept_private_under_the_data_dir_until_the_import_is_applied(app):
    ann = signed_in(app, "ann")
    location = upload(ann, court_csv(3)).headers["Location"]
    import_id = location.split("/")[-2]
    record = app.extensions["gatecheck_ui"].imports.get(import_id)
    kept = Path(record.upload_path)
    assert kept.parent == Path(app.config["DATA_DIR"]) / "imports"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert [p.name for p in kept.parent.iterdir() if p.suffix == ".part"] == []  # the streamed temporary file went
    map_and_preview(ann, location)
    ben = signed_in(app, "ben")
    ben.post(f"/imports/{import_id}/apply", data={"csrf_token": csrf(ben, f"/imports/{import_id}")})
    assert not kept.exists()


def test_a_mapping_that_refuses_every_row_says_so_in_the_preview(app):
    ann = signed_in(app, "ann")
    location = upload(ann, court_csv(3, until="")).headers["Location"]
    detail = map_and_preview(ann, location).headers["Location"]
    page = ann.get(detail).get_data(as_text=True)
    assert "no expiry: column &#39;until&#39; is empty and the mapping sets no default term" in page
    again = map_and_preview(ann, location, term_days="365")  # a default term: now they are listed
    page = ann.get(again.headers["Location"]).get_data(as_text=True)
    assert re.search(r"Additions \(new or changed rows\)</th><td>3</td>", page)


@pytest.mark.parametrize("data, name, message", [
    (b"PK\x03\x04" + bytes(64), "court.csv", "Not uploaded: the file is binary, not CSV or JSON text"),
    (b"case,surname\n", "court.exe", "Not uploaded: court.exe is not a CSV (.csv, .tsv, .txt) or JSON"),
    (b"", "court.csv", "Not uploaded: the file is empty"),
    (b'[{"case_no": "C-1"}, {"case', "court.json", "Not uploaded: the JSON breaks off or is malformed after item 1"),
])
def test_a_wrong_file_is_refused_in_one_line(app, data, name, message):
    ann = signed_in(app, "ann")
    response = upload(ann, data, name)
    assert response.status_code == 302
    [said] = flashes(ann.get(response.headers["Location"]).get_data(as_text=True))
    assert said.startswith(message)


def test_a_malformed_json_file_fails_its_preview_in_one_line(app):
    ann = signed_in(app, "ann")
    body = ("[" + ",".join('{"case_no": "C-%d", "surname": "Li", "dob": "1970-01-01", "until": "2030-01-01"}' % i
                           for i in range(60)) + ", {").encode()  # breaks off after the rows the upload samples
    location = upload(ann, body, "court.json").headers["Location"]
    response = map_and_preview(ann, location, col_given_names="", col_document_number="")
    assert response.status_code == 422
    [said] = flashes(response.get_data(as_text=True))
    assert said.startswith("Not previewed: the JSON breaks off or is malformed after item 60")


def test_an_oversized_upload_is_refused_in_one_line_before_it_is_stored(app, monkeypatch):
    monkeypatch.setattr(import_pages, "MAX_UPLOAD_BYTES", 1024)
    ann = signed_in(app, "ann")
    response = upload(ann, court_csv(2000))
    assert response.status_code == 413
    assert ("The file is larger than 1 KiB. Import it with `gatecheck registry import preview`, which takes any "
            "size.") in response.get_data(as_text=True)


def test_a_reviewer_cannot_reach_the_import_pages(app):
    rev = signed_in(app, "rev")
    assert rev.get("/imports").status_code == 403
