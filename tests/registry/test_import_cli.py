"""`gatecheck registry import`: preview, a second person applies, re-import is a no-op, refusals are one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from registry.cli import registry as registry_cli
from tests.registry.test_import_run import court_row, write_csv

MAPPING = {"columns": {"reference": "case_no", "surnames": "surname", "given_names": "given", "date_of_birth": "dob",
                       "document_number": "id_no", "valid_until": "until"},
           "defaults": {"category": "judgment-default", "document_class": "I", "document_issuer": "CHN"}}


@pytest.fixture
def data_dir(tmp_path):
    data_dir = tmp_path / "registry"
    runner = CliRunner()
    assert runner.invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    created = runner.invoke(registry_cli, [
        "list", "create", "--data-dir", str(data_dir), "court", "--name", "Judgment defaulters",
        "--authority", "Supreme People's Court", "--legal-basis", "Provisions on the list of defaulters",
        "--default-action", "DENY", "--by", "admin"])
    assert created.exit_code == 0, created.output
    return data_dir


def run(*args):
    return CliRunner().invoke(registry_cli, list(args))


def preview(data_dir, csv_path, mapping_path, by="ann"):
    result = run("import", "preview", "--data-dir", str(data_dir), "--list", "court", "--mapping", str(mapping_path),
                 "--by", by, str(csv_path))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_preview_then_a_second_person_applies_then_the_same_file_again_changes_nothing(data_dir, tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    court = write_csv(tmp_path / "court.csv", [court_row(i) for i in range(25)] + [court_row(99, until="")])
    shown = preview(data_dir, court, mapping)
    assert (shown["status"], shown["additions"], shown["refused"]) == ("previewed", 25, 1)
    assert shown["refused_rows"][0]["reason"].startswith("no expiry")

    same_person = run("import", "apply", "--data-dir", str(data_dir), shown["import_id"], "--confirmed-by", "ann")
    assert same_person.exit_code == 1
    assert same_person.output.strip().splitlines()[-1] == (
        "gatecheck: two people: ann made the preview, so a different list admin must confirm it")

    applied = run("import", "apply", "--data-dir", str(data_dir), shown["import_id"], "--confirmed-by", "ben")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["applied_version"] == 1

    again = preview(data_dir, court, mapping, by="cat")
    assert (again["status"], again["unchanged"], again["additions"], again["removals"]) == ("unchanged", 25, 0, 0)
    listed = json.loads(run("import", "list", "--data-dir", str(data_dir), "--list", "court").stdout)
    assert sorted(r["status"] for r in listed) == ["applied", "unchanged"]


def test_an_inline_mapping_works_and_a_bad_one_is_one_line(data_dir, tmp_path):
    court = write_csv(tmp_path / "court.csv", [court_row(1)])
    shown = preview(data_dir, court, json.dumps(MAPPING))
    assert shown["additions"] == 1
    bad = run("import", "preview", "--data-dir", str(data_dir), "--list", "court", "--mapping",
              '{"columns": {"reference": "case_no"}}', str(court))
    assert bad.exit_code == 1 and bad.output.strip().splitlines()[-1] == (
        "gatecheck: mapping columns.surnames is required: which column holds the surnames?")
    unknown = run("import", "preview", "--data-dir", str(data_dir), "--list", "nope", "--mapping",
                  json.dumps(MAPPING), str(court))
    assert unknown.exit_code == 1
    assert unknown.output.strip().splitlines()[-1] == "gatecheck: no list 'nope' in the registry"


def test_a_binary_file_is_refused_in_one_line(data_dir, tmp_path):
    binary = tmp_path / "court.csv"
    binary.write_bytes(b"PK\x03\x04" + bytes(100))
    result = run("import", "preview", "--data-dir", str(data_dir), "--list", "court", "--mapping",
                 json.dumps(MAPPING), str(binary))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "gatecheck: the file is binary, not CSV or JSON text"


def test_every_import_command_has_help():
    for command in ("preview", "apply", "show", "list", "discard"):
        result = run("import", command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
