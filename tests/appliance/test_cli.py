"""The `gatecheck` CLI contract, run as the real installed console script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "appliance" / "samples"
GATECHECK = Path(sys.executable).with_name("gatecheck")

CONTRACT_FIELDS = {
    "format", "layout", "document_code", "document_number", "surname", "given_names",
    "date_of_birth", "expiry_date", "issue_date", "sex", "nationality", "issuing_country",
    "issuing_authority", "checks", "valid", "warnings", "legs",
}


def run(*args, stdin: bytes = b""):
    proc = subprocess.run([str(GATECHECK), *args], input=stdin, capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return proc


def test_parse_reads_stdin_exactly_as_bytes_and_prints_the_contract():
    payload = (SAMPLES / "licence-ca.txt").read_bytes()
    assert b"\x1e" in payload and b"\r" in payload
    proc = run("parse", stdin=payload)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert CONTRACT_FIELDS <= doc.keys()
    assert doc["format"] == "aamva" and doc["issuing_authority"] == "CA"
    assert doc["issuing_country"] == "USA" and doc["layout"] is None


def test_parse_file_option_gives_the_same_result_as_stdin():
    path = SAMPLES / "passport-td3.txt"
    from_file = run("parse", "--file", str(path))
    from_stdin = run("parse", stdin=path.read_bytes())
    assert from_file.returncode == from_stdin.returncode == 0
    assert json.loads(from_file.stdout) == json.loads(from_stdin.stdout)
    doc = json.loads(from_file.stdout)
    assert doc["layout"] == "TD3" and doc["surname"] == "ERIKSSON" and doc["valid"] is True


def test_failed_check_digit_still_exits_zero_with_valid_false():
    td3 = (SAMPLES / "passport-td3.txt").read_text().splitlines()
    broken = td3[0] + "\n" + td3[1][:9] + "0" + td3[1][10:] + "\n"  # wrong document check digit
    proc = run("parse", stdin=broken.encode())
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and doc["checks"]["document_number"] is False


def test_boarding_pass_lists_its_legs():
    proc = run("parse", "--today", "2026-11-27", "--file", str(SAMPLES / "boarding-pass.txt"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format"] == "bcbp" and doc["document_number"] is None
    assert len(doc["legs"]) >= 1
    assert {"pnr", "from", "to", "carrier", "flight_number", "flight_day_of_year", "compartment",
            "seat", "sequence", "passenger_status"} <= doc["legs"][0].keys()


@pytest.mark.parametrize(
    ("stdin", "code"),
    [(b"not a document", "unknown_format"), (b"", "empty"), (b"M1" + b"x" * 20000, "too_large")],
)
def test_unreadable_input_prints_one_error_object_and_exits_one(stdin, code):
    proc = run("parse", stdin=stdin)
    assert proc.returncode == 1
    body = json.loads(proc.stdout)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert b"Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("name", ["nope.txt", "."])
def test_missing_file_or_directory_is_an_error_object_not_a_traceback(tmp_path, name):
    proc = run("parse", "--file", str(tmp_path / name))
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "unreadable_file" and str(tmp_path) in error["message"]
    assert b"Traceback" not in proc.stderr


def test_bad_today_is_a_one_line_usage_error():
    proc = run("parse", "--today", "yesterday", stdin=b"x")
    assert proc.returncode == 2
    assert b"YYYY-MM-DD" in proc.stderr and b"Traceback" not in proc.stderr


def test_decode_finds_and_parses_the_bundled_sample_images():
    images = sorted(SAMPLES.glob("*.png"))
    assert images, "sample images are bundled"
    proc = run("decode", "--today", "2026-11-27", *map(str, images))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert len(found) >= len(images)
    for item in found:
        assert {"symbology", "payload", "document"} <= item.keys()
        assert "error" not in item["document"], item
    licence = next(i for i in found if i["document"]["format"] == "aamva")
    assert licence["symbology"] == "PDF417"
    assert licence["payload"].encode("latin-1") == (SAMPLES / "licence-ca.txt").read_bytes()


def test_decode_of_an_image_without_barcodes_prints_an_empty_list(tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (320, 240), 255).save(blank)
    proc = run("decode", str(blank))
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_decode_of_a_non_image_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a picture")
    proc = run("decode", str(junk))
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "unreadable_image" and "junk.png" in error["message"]
    assert b"Traceback" not in proc.stderr


def test_every_command_has_help():
    for args in [(), ("parse",), ("decode",)]:
        proc = run(*args, "--help")
        assert proc.returncode == 0 and proc.stdout.strip()
