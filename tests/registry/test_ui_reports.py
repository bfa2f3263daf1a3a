"""Filing and deciding reports through the registry's pages (the real app, Flask's test client).

The end-to-end run in a real browser, through sync to a counter, is issue 5's
browser test; here each page's behaviour and refusals are pinned down.
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.records import Action
from registry.cli import registry as registry_cli
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from registry.server import create_app
from appliance.specimens.mrz import MRZFields, encode

PASSWORD = "a long enough passphrase"
MRZ = "\n".join(encode(MRZFields("TD3", "P", "DEU", "C01X00T47", "ERIKSSON", "ANNA", date(1970, 5, 17), "F",
                                 date(2035, 1, 31), "DEU")))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


@pytest.fixture
def app(tmp_path):
    data_dir = tmp_path / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    app.config["TESTING"] = True
    ui = app.extensions["gatecheck_ui"]
    for name, roles, orgs in (("mia", ["reporter"], ["DA"]), ("sam", ["reviewer"], ["DA"]),
                              ("lee", ["reviewer"], ["HX"])):
        ui.accounts.create_user(name, PASSWORD, roles=roles, orgs=orgs, by="admin")
    app.extensions["gatecheck_registry"].registry.create_list(
        "da-ban", name="Demo Air ban", authority="Demo Air", legal_basis="Conditions of carriage",
        scopes=["air_travel"], default_action=Action.DENY, by="admin")
    ui.reports.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES), by="list-admin")
    return app


def signed_in(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    return client


def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def file_report(client, **fields):
    data = {"csrf_token": csrf(client, "/reports/new"), "list_category": "da-ban|assault_of_crew", "scan": MRZ,
            "trip": "DA 123 FRA-LIS", "trip_date": "2026-11-26", "narrative": "Struck a cabin crew member.",
            "evidence": [(io.BytesIO(PNG), "cabin-log.png")]}
    data.update(fields)
    return client.post("/reports/new", data=data, content_type="multipart/form-data")


def test_a_reporter_files_from_a_pasted_scan_and_a_reviewer_accepts_it(app):
    mia = signed_in(app, "mia")
    filed = file_report(mia)
    assert filed.status_code == 302
    report_id = re.search(r"RPT-\d{8}-[0-9A-F]{8}", mia.get("/reports/mine").get_data(as_text=True)).group(0)

    sam = signed_in(app, "sam")
    queue = sam.get("/review").get_data(as_text=True)
    assert report_id in queue and "ERIKSSON" in queue
    page = sam.get(f"/review/{report_id}").get_data(as_text=True)
    assert "Document P DEU C01X00T47" in page and "cabin-log.png" in page
    evidence = sam.get(f"/review/{report_id}/evidence/1")
    assert evidence.data == PNG and evidence.headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment" in evidence.headers["Content-Disposition"]

    version = app.extensions["gatecheck_registry"].registry.current_version("da-ban")
    accepted = sam.post(f"/review/{report_id}/accept", data={"csrf_token": csrf(sam, f"/review/{report_id}"),
                                                            "days": "365", "reason": "crew statements agree"})
    assert accepted.status_code == 302
    assert app.extensions["gatecheck_registry"].registry.current_version("da-ban") == version + 1
    mine = mia.get("/reports/mine").get_data(as_text=True)
    assert "accepted" in mine and "crew statements agree" in mine


def test_a_rejection_reason_reaches_the_reporter(app):
    mia, sam = signed_in(app, "mia"), signed_in(app, "sam")
    file_report(mia)
    report_id = app.extensions["gatecheck_ui"].reports.queue()[0].report_id
    sam.post(f"/review/{report_id}/reject", data={"csrf_token": csrf(sam, f"/review/{report_id}"),
                                                  "reason": "CCTV shows someone else"})
    assert "CCTV shows someone else" in mia.get("/reports/mine").get_data(as_text=True)


@pytest.mark.parametrize("fields, message", [
    ({"scan": "not a travel document at all"}, "Not filed: "),
    ({"scan": "", "surnames": "Eriksson"}, "date of birth or a document number"),
    ({"evidence": [(io.BytesIO(b"MZ\x90\x00 an executable"), "photo.png")]}, "is not a PDF, PNG or JPEG"),
    ({"list_category": "da-ban|rudeness"}, "Not a valid choice"),
])
def test_a_bad_report_is_refused_with_a_readable_line_and_nothing_filed(app, fields, message):
    mia = signed_in(app, "mia")
    response = file_report(mia, **fields)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert app.extensions["gatecheck_ui"].reports.queue() == []


def test_an_oversized_upload_is_refused_before_it_is_read(app):
    mia = signed_in(app, "mia")
    response = file_report(mia, evidence=[(io.BytesIO(PNG + bytes(34 * 1024 * 1024)), "huge.png")])
    assert response.status_code == 413 and "Request Entity Too Large" in response.get_data(as_text=True)


SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"


@pytest.mark.parametrize("filename, expected", [
    ("passport.txt", ("ERIKSSON", "C01X00T47")),  # the scanner's output saved as a file
    ("licence-ca.png", None),  # a photo of a licence's PDF417, read with the counter's decoder
])
def test_a_reporter_uploads_the_scan_as_a_file_or_a_photo(app, filename, expected):
    data = MRZ.encode() if filename.endswith(".txt") else (SAMPLES / filename).read_bytes()
    mia = signed_in(app, "mia")
    response = file_report(mia, scan="", scan_file=(io.BytesIO(data), filename))
    assert response.status_code == 302, response.get_data(as_text=True)
    [report] = app.extensions["gatecheck_ui"].reports.queue()
    if expected is None:  # the photo's payload is the bundled sample's text, parsed the same way
        from registry.reports import identity_from_scan

        expected_identity = identity_from_scan((SAMPLES / "licence-ca.txt").read_bytes())
        assert report.identity == expected_identity and report.identity.documents
    else:
        assert (report.identity.surnames, report.identity.documents[0].number) == expected


def test_an_uploaded_photo_without_a_barcode_is_refused_in_one_line(app):
    from PIL import Image

    blank = io.BytesIO()
    Image.new("L", (640, 480), 200).save(blank, "PNG")
    mia = signed_in(app, "mia")
    response = file_report(mia, scan="", scan_file=(io.BytesIO(blank.getvalue()), "blank.png"))
    assert response.status_code == 422 and "Not filed: the uploaded photo: no barcode" in response.get_data(
        as_text=True)
    assert app.extensions["gatecheck_ui"].reports.queue() == []


def test_a_reviewer_scoped_to_another_organisation_does_not_see_the_report(app):
    file_report(signed_in(app, "mia"))
    report_id = app.extensions["gatecheck_ui"].reports.queue()[0].report_id
    lee = signed_in(app, "lee")
    assert report_id not in lee.get("/review").get_data(as_text=True)
    assert lee.get(f"/review/{report_id}").status_code == 404
