"""The `gatecheck` CLI contract, run as the real installed console script."""

import json
import os
import pty
import re
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
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gatecheck parse: ") and "YYYY-MM-DD" in lines[0]
    assert "'gatecheck parse --help'" in lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [(("no-such-command",), "No such command"),
     (("parse", "--no-such-option"), "No such option"),
     (("decode",), "Missing argument"),
     (("check", "--channel", "pigeon"), "'pigeon' is not one of"),
     (("snapshot", "synth", "--tokens", "0"), "not a positive count"),
     (("journal", "purge", "--clear-days", "-1"), "--clear-days")],
)
def test_every_usage_error_is_one_line_on_stderr_with_exit_two(args, says):
    proc = run(*args)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("gatecheck") and says in lines[0] and "--help" in lines[0]


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
    for item in found:  # each picture carries exactly its text sample, parsed the same way
        text = Path(item["image"]).with_suffix(".txt")
        assert item["payload"].encode("latin-1") == text.read_bytes()
        parsed = run("parse", "--today", "2026-11-27", "--file", str(text))
        assert item["document"] == json.loads(parsed.stdout)


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


def _command_tree():
    """(path, command) for every command under `gatecheck`, groups included, depth first."""
    import click

    from appliance.cli import main

    def walk(command, path, ctx):
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                yield from walk(sub, (*path, name), click.Context(sub, info_name=name, parent=ctx))

    return list(walk(main, (), click.Context(main, info_name="gatecheck")))


def test_every_command_has_help():
    from click.testing import CliRunner

    from appliance.cli import main

    tree = _command_tree()
    assert len(tree) > 30 and ("snapshot", "synth") in dict(tree)
    runner = CliRunner()
    for path, command in tree:
        result = runner.invoke(main, [*path, "--help"], prog_name="gatecheck")
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith(f"Usage: {' '.join(('gatecheck', *path))} "), path
        assert (command.help or command.short_help or "").strip(), f"{path} has no help text"


def test_every_command_down_to_the_second_level_is_in_the_cli_contract():
    documented = (REPO / "docs" / "cli.md").read_text()
    missing = [" ".join(path) for path, _ in _command_tree()
               if 1 <= len(path) <= 2 and f"`gatecheck {' '.join(path)}" not in documented]
    assert not missing, f"docs/cli.md does not mention: {missing}"


# -- the contract on every bundled sample: values, nulls and JSON types ----------------

GOLDEN = {
    "passport-td3.txt": {
        "format": "mrz", "layout": "TD3", "document_code": "P", "document_number": "L898902C3",
        "surname": "ERIKSSON", "given_names": "ANNA MARIA", "date_of_birth": "1974-08-12",
        "expiry_date": "2012-04-15", "issue_date": None, "sex": "F", "nationality": "UTO",
        "issuing_country": "UTO", "issuing_authority": None,
        "checks": {"document_number": True, "date_of_birth": True, "expiry_date": True,
                   "personal_number": True, "composite": True},
        "valid": True, "warnings": [], "legs": None,
    },
    "idcard-td1.txt": {
        "format": "mrz", "layout": "TD1", "document_code": "I", "document_number": "D23145890",
        "surname": "ERIKSSON", "given_names": "ANNA MARIA", "date_of_birth": "1974-08-12",
        "expiry_date": "2012-04-15", "issue_date": None, "sex": "F", "nationality": "UTO",
        "issuing_country": "UTO", "issuing_authority": None,
        "checks": {"document_number": True, "date_of_birth": True, "expiry_date": True, "composite": True},
        "valid": True, "warnings": [], "legs": None,
    },
    "licence-ca.txt": {
        "format": "aamva", "layout": None, "document_code": "DL", "document_number": "Y4821937",
        "surname": "RIVERA", "given_names": "ELENA MARISOL", "date_of_birth": "1988-05-14",
        "expiry_date": "2029-05-14", "issue_date": "2024-05-14", "sex": "F",
        "nationality": None,  # an AAMVA card does not say (docs/formats/aamva.md)
        "issuing_country": "USA", "issuing_authority": "CA",
        "checks": {"mandatory_elements": True, "dates": True}, "valid": True, "warnings": [], "legs": None,
    },
    "licence-on.txt": {
        "format": "aamva", "layout": None, "document_code": "DL", "document_number": "T7140-38201-10922",
        "surname": "TREMBLAY", "given_names": "LUC ANDRE", "date_of_birth": "1991-09-22",
        "expiry_date": "2030-09-22", "issue_date": "2025-09-22", "sex": "M", "nationality": None,
        "issuing_country": "CAN", "issuing_authority": "ON",
        "checks": {"mandatory_elements": True, "dates": True}, "valid": True, "warnings": [], "legs": None,
    },
    "boarding-pass.txt": {
        "format": "bcbp", "layout": None, "document_code": "BP", "document_number": None,
        "surname": "ERIKSSON", "given_names": "ANNA", "date_of_birth": None, "expiry_date": None,
        "issue_date": "2026-11-27", "sex": None, "nationality": None, "issuing_country": None,
        "issuing_authority": None, "checks": {"field_sizes": True}, "valid": True, "warnings": [],
        "legs": [
            {"pnr": "XK7P2Q", "from": "OSL", "to": "FRA", "carrier": "LH", "flight_number": "0863",
             "flight_day_of_year": 332, "flight_date": "2026-11-28", "compartment": "Y", "seat": "023C",
             "sequence": "0117", "passenger_status": "1"},
            {"pnr": "D4RT9M", "from": "FRA", "to": "YUL", "carrier": "AC", "flight_number": "0875",
             "flight_day_of_year": 332, "flight_date": "2026-11-28", "compartment": "Y", "seat": "041K",
             "sequence": "0342", "passenger_status": "1"},
        ],
    },
}

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NULL_BY_FORMAT = {
    "mrz": {"issue_date", "issuing_authority", "legs"},
    "aamva": {"layout", "nationality", "legs"},
    "bcbp": {"layout", "document_number", "date_of_birth", "expiry_date", "sex", "nationality",
             "issuing_country", "issuing_authority"},
}


def _assert_contract_types(doc: dict) -> None:
    assert doc["format"] in {"aamva", "mrz", "bcbp"}
    assert doc["layout"] in {"TD1", "TD2", "TD3", "MRVA", "MRVB", None}
    for key in ("date_of_birth", "expiry_date", "issue_date"):
        assert doc[key] is None or ISO_DATE.fullmatch(doc[key]), key
    assert doc["sex"] in {"M", "F", "X", None}
    for key in ("nationality", "issuing_country"):
        assert doc[key] is None or re.fullmatch(r"[A-Z]{3}", doc[key]), key
    assert all(isinstance(k, str) and type(v) is bool for k, v in doc["checks"].items())
    assert type(doc["valid"]) is bool and doc["valid"] == all(doc["checks"].values())
    assert isinstance(doc["warnings"], list) and all(isinstance(w, str) for w in doc["warnings"])
    for key in _NULL_BY_FORMAT[doc["format"]]:
        assert doc[key] is None, f"{doc['format']}: {key} must be null"
    if doc["format"] != "bcbp":
        return
    for leg in doc["legs"]:
        assert type(leg["flight_day_of_year"]) is int and ISO_DATE.fullmatch(leg["flight_date"])
        for key in ("pnr", "from", "to", "carrier", "flight_number", "compartment", "seat", "sequence",
                    "passenger_status"):
            assert isinstance(leg[key], str) and leg[key] == leg[key].strip(), key
        assert isinstance(leg["conditional"], dict)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_bundled_sample_gives_the_documented_values_nulls_and_types(name):
    proc = run("parse", "--today", "2026-11-27", "--file", str(SAMPLES / name))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert CONTRACT_FIELDS <= doc.keys() and doc["format"] in doc  # plus its format-specific detail
    _assert_contract_types(doc)
    contract = {key: doc[key] for key in GOLDEN[name]}
    if contract["legs"] is not None:
        contract["legs"] = [{k: v for k, v in leg.items() if k != "conditional"} for leg in contract["legs"]]
    assert contract == GOLDEN[name]


def test_every_bundled_text_sample_has_a_golden_record():
    assert {p.name for p in SAMPLES.glob("*.txt")} == set(GOLDEN)


def test_old_french_id_card_reports_a_contract_layout_and_its_variant():
    card = b"IDFRAPETE<<<<<<<<<<<<<<<<<<<<<952042\n0509952018746NICOLAS<<PAUL<8206152M3\n"
    proc = run("parse", "--today", "2026-11-27", stdin=card)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    _assert_contract_types(doc)
    assert (doc["layout"], doc["mrz"]["variant"], doc["document_number"]) == ("TD2", "FRA-ID", "050995201874")
    assert doc["expiry_date"] is None and doc["valid"] is True


# -- check, snapshot synth -------------------------------------------------------------


def test_check_on_a_fresh_device_does_not_create_the_snapshot_and_refers_for_lack_of_lists(tmp_path):
    data_dir = tmp_path / "device"
    proc = run("check", "--data-dir", str(data_dir), stdin=(SAMPLES / "licence-ca.txt").read_bytes())
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    # Fail closed (the default): a valid, unexpired licence with no lists to vouch for it.
    assert verdict["verdict"] == "REFER"
    assert verdict["reasons"] == ["no deny-list on this device covers air_travel"]
    assert verdict["snapshot"] == {"lists": {}, "as_of": None, "age_seconds": None, "stale": True}
    assert not (data_dir / "snapshot.db").exists() and (data_dir / "journal.db").exists()
    synth = run("snapshot", "synth", "--data-dir", str(data_dir), "--tokens", "1000")
    assert synth.returncode == 0, synth.stderr  # no --force needed: check left no store behind
    assert json.loads(synth.stdout)["tokens"] == 1000


def test_snapshot_synth_shows_its_progress_on_a_terminal(tmp_path):
    """Progress goes to stderr, and only to a terminal: run it under a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(GATECHECK), "snapshot", "synth", "--data-dir", str(tmp_path), "--tokens", "20000"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "100"},
    )
    os.close(slave)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    stdout = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    frames = re.split(r"[\r\n]+", shown.decode())
    percents = [int(m[1]) for frame in frames if (m := re.search(r"(\d+)%", frame))]
    assert len(percents) >= 2 and percents == sorted(percents) and percents[-1] == 100, frames
    assert "synthetic snapshot" in shown.decode() and "writing snapshot" in shown.decode()
    assert json.loads(stdout)["tokens"] == 20000  # stdout stays pure JSON
