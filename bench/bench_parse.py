"""Parser benchmark: speed and accuracy of our document parsers next to PyPI parsers.

Run alone from the repository root::

    .venv/bin/python bench/bench_parse.py

What it does
------------
* Builds a fixed, seeded vector set per format with the test-side encoders in
  ``tests/support`` (AAMVA versions 01-11, US and Canadian issuers; MRZ TD1,
  TD2, TD3, MRV-A, MRV-B plus TD1/TD2 long document numbers; BCBP with 1-4
  legs, with and without conditional data) and adds the bundled samples in
  ``appliance/samples``. Expected fields are the encoder inputs (for the
  samples, values read off the files by hand and written below).
* Times every parser per call with ``time.perf_counter_ns`` over several
  passes after a warm-up pass, with the garbage collector off during the timed
  passes (as ``timeit`` does), the same for every parser. Passes are
  interleaved across parsers so that load from other processes on a shared
  machine spreads over all of them; the load average is printed with the
  machine details because it moves the absolute numbers. Our parsers are fed
  the payload as bytes (what a scanner delivers); ``parse_payload`` adds the
  format detection.
* Runs the same vectors through ``aamva-parser`` (given the payload as ``str``,
  its documented input) and ``mrz`` (given the lines joined with ``\\n``, no
  trailing newline, which its length pre-check demands, and the checker class
  for the layout picked by the benchmark from the line shape and the 'V' of
  visas: the package has no detection of its own).
* Adds damaged sets: AAMVA keyboard-wedge CR -> CR LF, dropped RS, both, and
  wrong subfile offsets; MRZ with one '0' of the birth date read as 'O' (the
  date's check digit confirms the only repair).

Accuracy and normalisation
--------------------------
A vector counts as correct when surname, given names, document number and
date of birth all agree with the expected values (BCBP: surname, given
names, and per leg PNR, airports, carrier, flight number, day of year and
calendar flight date, compartment, seat, sequence, status, plus the
conditional items that were encoded and the issue date). An exception is a miss.
Before comparing, on both sides and for every parser alike:

* strings are upper-cased, ',' and '<' become spaces, whitespace is collapsed
  and trimmed; ``None`` and "" are the same (AAMVA separates several given or
  middle names by commas, D.12.5; MRZ fillers are '<');
* given names are the first name and the middle names joined with a space
  (aamva-parser returns them apart);
* dates compare as YYYY-MM-DD. ``mrz`` returns YYMMDD text; the benchmark
  puts it in the latest century in which the birth date is not after the
  reference date, the same rule our parser applies. Text that is not a
  valid date is a mismatch.

MRZ validity agreement is the share of undamaged vectors (all generated with
correct check digits and real ICAO codes) that the parser judges valid:
``Document.valid`` for ours, ``bool(checker)`` with default options for
``mrz`` (expiry not judged).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import random
import string
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aamva_parser  # noqa: E402
from mrz.checker.mrva import MRVACodeChecker  # noqa: E402
from mrz.checker.mrvb import MRVBCodeChecker  # noqa: E402
from mrz.checker.td1 import TD1CodeChecker  # noqa: E402
from mrz.checker.td2 import TD2CodeChecker  # noqa: E402
from mrz.checker.td3 import TD3CodeChecker  # noqa: E402

from appliance.documents import parse_payload  # noqa: E402
from appliance.documents.aamva import parse_aamva  # noqa: E402
from appliance.documents.aamva_tables import IIN_TABLE  # noqa: E402
from appliance.documents.bcbp import parse_bcbp  # noqa: E402
from appliance.documents.mrz import parse_mrz  # noqa: E402
from appliance.specimens import aamva as aenc  # noqa: E402
from appliance.specimens import bcbp as benc  # noqa: E402
from appliance.specimens import mrz as menc  # noqa: E402

SEED = 20250601
REF = date(2025, 6, 1)  # the "today" every parser is given, so runs do not depend on the clock
PER_FORMAT = 300
PASSES = 7
TARGET_MEDIAN_US = 50.0
SAMPLES = ROOT / "appliance" / "samples"


@dataclass
class Vector:
    ident: str
    group: str
    ours: bytes
    theirs: Any = None  # the other package's input, or None when there is none
    expected: dict[str, Any] = field(default_factory=dict)
    expected_legs: list[dict[str, Any]] | None = None


# --------------------------------------------------------------------------- normalisation


def norm(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).upper().replace(",", " ").replace("<", " ")
    return " ".join(text.split())


def yymmdd_birth(text: str | None) -> str:
    """YYMMDD in the latest century not after REF (our parser's rule), or the text itself."""
    if not text or len(text) != 6 or not text.isdigit():
        return norm(text)
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    for year in (2000 + yy, 1900 + yy):
        try:
            day = date(year, mm, dd)
        except ValueError:
            return norm(text)
        if day <= REF:
            return day.isoformat()
    return norm(text)


def compare(expected: dict[str, Any], got: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, expected, got) for every field that disagrees after normalisation."""
    return [(k, norm(v), norm(got.get(k))) for k, v in expected.items() if norm(v) != norm(got.get(k))]


# --------------------------------------------------------------------------- AAMVA vectors

AAMVA_SURNAMES = ["SMITH", "JOHNSON", "O'NEIL", "SMITH-JONES", "DE LA CRUZ", "NGUYEN", "GARCIA",
                  "TREMBLAY", "MACDONALD", "VAN DYKE", "KOWALSKI", "LEE", "ST. PIERRE", "WASHINGTON",
                  "BROWN", "GAGNON", "OKAFOR", "HERNANDEZ-LOPEZ", "LI", "FITZGERALD"]
AAMVA_GIVEN = ["JANE", "JOHN", "MARY ANN", "LUC", "ELENA", "ROBERT", "AISHA", "JEAN-PAUL", "KIM",
               "CHRISTOPHER", "ZOE", "MOHAMMED", "LI NA", "D'ARCY", "WILLIAM"]
AAMVA_MIDDLE = ["Q", "MARIE", "ANDRE", "LEE", "JAMES", "ROSE", "K", "ELIZABETH", "ALI"]
STREETS = ["1420 CAMINO DEL SOL", "45 MAPLE GROVE AVE", "12 MAIN ST", "900 RUE SAINT-DENIS",
           "77 OCEAN BLVD APT 4", "3 ELM CT"]
CITIES = ["SACRAMENTO", "TORONTO", "AUSTIN", "MONTREAL", "TALLAHASSEE", "VANCOUVER"]


def _issuers(country: str) -> list[tuple[str, str]]:
    return sorted((iin, code) for iin, (code, ctry, _) in IIN_TABLE.items() if ctry == country and code)


def _rand_date(rng: random.Random, low: date, high: date) -> date:
    return low + timedelta(days=rng.randint(0, (high - low).days))


def _aamva_number(rng: random.Random) -> str:
    digits, upper = string.digits, string.ascii_uppercase
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(upper) + "".join(rng.choices(digits, k=7))
    if kind == 1:
        return "".join(rng.choices(digits, k=9))
    if kind == 2:  # Ontario style
        return (rng.choice(upper) + "".join(rng.choices(digits, k=4)) + "-"
                + "".join(rng.choices(digits, k=5)) + "-" + "".join(rng.choices(digits, k=5)))
    if kind == 3:
        return "".join(rng.choices(upper + digits, k=rng.randint(10, 13)))
    return rng.choice(upper) + "".join(rng.choices(digits, k=3)) + "-" + "".join(rng.choices(digits, k=4))


def random_card(rng: random.Random, version: int, canadian: bool) -> aenc.Card:
    iin, juris = rng.choice(_issuers("CAN" if canadian else "USA"))
    country = "CAN" if canadian else "USA"
    given = (rng.choice(AAMVA_GIVEN),) + tuple(rng.sample(AAMVA_MIDDLE, rng.choice([0, 0, 1, 1, 2])))
    dob = _rand_date(rng, date(1935, 1, 1), date(2008, 12, 31))
    issue = _rand_date(rng, REF - timedelta(days=8 * 365), REF)
    expiry = None if rng.random() < 0.05 else issue + timedelta(days=365 * rng.randint(3, 8))
    extras = [("DAG", rng.choice(STREETS)), ("DAI", rng.choice(CITIES)),
              ("DAK", rng.choice(["958140000  ", "M4E 2V5    ", "73301      "])),
              ("DAU", rng.choice(["064 IN", "178 cm", "070 IN"])),
              ("DAY", rng.choice(["BRO", "BLU", "GRN", "HAZ"]))]
    extras = rng.sample(extras, rng.randint(1, len(extras)))
    if version >= 4:
        extras += [("DCF", "".join(rng.choices(string.ascii_uppercase + string.digits, k=12))),
                   ("DDE", "N"), ("DDF", "N"), ("DDG", "N")]
    if version >= 11:  # CDS 2025: commercial, non-domiciled, enhanced and permit indicators
        extras += [(element, rng.choice("01")) for element in ("DDM", "DDN", "DDO", "DDP")]
    z_type = z_elements = None
    if rng.random() < 0.5:
        z_type = "Z" + juris[0]
        z_elements = tuple((z_type + letter, rng.choice(["BLK", "1", "N", "ABC123"]))
                           for letter in rng.sample("ABCDE", rng.randint(1, 3)))
    return aenc.Card(
        iin=iin, version=version, jurisdiction_version=rng.randint(0, 9) if version >= 2 else 0,
        document_code="ID" if rng.random() < 0.1 else "DL", document_number=_aamva_number(rng),
        surname=rng.choice(AAMVA_SURNAMES), given_names=given, date_of_birth=dob,
        expiry_date=expiry, issue_date=issue, sex_code=rng.choice("1129"), country=country,
        jurisdiction=juris, extra_elements=tuple(extras), z_type=z_type, z_elements=z_elements or (),
    )


def card_expected(card: aenc.Card) -> dict[str, Any]:
    return {"surname": card.surname, "given_names": " ".join(card.given_names),
            "document_number": card.document_number, "date_of_birth": card.date_of_birth}


def aamva_group(card: aenc.Card) -> str:
    era = ("v01" if card.version == 1 else "v02-03" if card.version <= 3
           else "v04-10" if card.version <= 10 else "v11")
    return f"{era} {'CA' if card.country == 'CAN' else 'US'}"


def aamva_vectors(rng: random.Random) -> tuple[list[Vector], list[aenc.Card]]:
    vectors, cards = [], []
    for i in range(PER_FORMAT):
        card = random_card(rng, version=i % 11 + 1, canadian=(i // 11) % 3 == 0)
        payload = aenc.encode_card(card)
        cards.append(card)
        vectors.append(Vector(f"aamva-{i}", aamva_group(card), payload.encode("latin-1"), payload,
                              card_expected(card)))
    samples = {
        "licence-ca.txt": ("RIVERA", "ELENA MARISOL", "Y4821937", date(1988, 5, 14)),
        "licence-on.txt": ("TREMBLAY", "LUC ANDRE", "T7140-38201-10922", date(1991, 9, 22)),
    }
    for name, (surname, given, number, dob) in samples.items():
        data = (SAMPLES / name).read_bytes()
        vectors.append(Vector(name, "samples", data, data.decode("latin-1"),
                              {"surname": surname, "given_names": given, "document_number": number,
                               "date_of_birth": dob}))
    return vectors, cards


def aamva_damaged(rng: random.Random, cards: list[aenc.Card]) -> list[Vector]:
    kinds: list[tuple[str, Callable[[str], str]]] = [
        ("none (same cards, baseline)", lambda p: p),
        ("wedge CR->CRLF", aenc.wedge_crlf),
        ("dropped RS", aenc.drop_record_separator),
        ("wedge CRLF + dropped RS", lambda p: aenc.drop_record_separator(aenc.wedge_crlf(p))),
        ("DL offset 0000", lambda p: aenc.set_offset(p, 0, "0000")),
        ("DL offset letters 00A1", lambda p: aenc.set_offset(p, 0, "00A1")),
        ("DL offset off by +-1..2", lambda p: aenc.shift_offset(p, 0, rng.choice([-2, -1, 1, 2]))),
        ("DL offset off by +9", lambda p: aenc.shift_offset(p, 0, 9)),
    ]
    chosen = rng.sample(cards, 50)
    out = []
    for label, damage in kinds:
        for i, card in enumerate(chosen):
            payload = damage(aenc.encode_card(card))
            out.append(Vector(f"{label}-{i}", label, payload.encode("latin-1"), payload, card_expected(card)))
    return out


# --------------------------------------------------------------------------- MRZ vectors

MRZ_SURNAMES = ["ERIKSSON", "MUSTERMANN", "VAN DER BERG", "NGUYEN", "OKAFOR", "DUPONT", "GARCIA LOPEZ",
                "SMITH", "KOWALSKA", "YAMAMOTO", "AL RASHID", "OBRIEN", "DE SOUSA", "LI"]
MRZ_GIVEN = ["ANNA", "MARIA", "ERIKA", "JOHN", "PETER", "MOHAMMED", "YUKI", "CHIDI", "JEAN", "LUCAS",
             "SOFIA", "WEI", "ALEXANDER", "NOOR"]
MRZ_COUNTRIES = ["UTO", "D", "GBR", "FRA", "NLD", "SWE", "USA", "CAN", "JPN", "NGA", "BRA", "POL", "ESP",
                 "IND", "AUS"]
CODES = {"TD1": ["I", "ID", "IR", "A", "C"], "TD2": ["I", "ID", "A", "C"], "TD3": ["P", "P", "PD", "PO"],
         "MRVA": ["V", "VI"], "MRVB": ["V", "VI"]}
OPTIONAL_WIDTH = {"TD1": 14, "TD2": 7, "TD3": 14, "MRVA": 16, "MRVB": 8}
CHECKERS = {"TD1": TD1CodeChecker, "TD2": TD2CodeChecker, "TD3": TD3CodeChecker,
            "MRVA": MRVACodeChecker, "MRVB": MRVBCodeChecker}
ALNUM = string.ascii_uppercase + string.digits


def _mrz_number(rng: random.Random, long: bool) -> str:
    if long:
        return "".join(rng.choices(ALNUM, k=rng.randint(10, 12)))
    kind = rng.randrange(4)
    if kind == 0:
        return "".join(rng.choices(ALNUM, k=9))
    if kind == 1:
        return rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.digits, k=8))
    if kind == 2:
        return "".join(rng.choices(string.ascii_uppercase, k=2)) + "".join(rng.choices(string.digits, k=7))
    return "".join(rng.choices(ALNUM, k=rng.randint(6, 8)))


def random_mrz(rng: random.Random, layout: str, long: bool = False,
               sex: str | None = None) -> tuple[menc.MRZFields, list[str]]:
    while True:
        surname = rng.choice(MRZ_SURNAMES)
        given = " ".join(rng.sample(MRZ_GIVEN, rng.choice([0, 1, 1, 2, 2, 3]) if rng.random() > 0.03 else 0))
        optional = ""
        if rng.random() < 0.5:
            width = OPTIONAL_WIDTH[layout] - (5 if long else 0)
            optional = "".join(rng.choices(ALNUM, k=rng.randint(1, max(1, width))))
        fields = menc.MRZFields(
            layout=layout, document_code=rng.choice(CODES[layout]),
            issuing_country=rng.choice(MRZ_COUNTRIES), document_number=_mrz_number(rng, long),
            surname=surname, given_names=given,
            date_of_birth=_rand_date(rng, date(1930, 1, 1), REF - timedelta(days=4 * 365)),
            sex=sex or rng.choice("MMFF<"),
            expiry_date=_rand_date(rng, REF - timedelta(days=3 * 365), REF + timedelta(days=10 * 365)),
            nationality=rng.choice(MRZ_COUNTRIES),
            optional_data="" if layout == "TD3" else optional,
            optional_data_2="".join(rng.choices(ALNUM, k=rng.randint(1, 11))) if layout == "TD1"
            and rng.random() < 0.3 else "",
            personal_number=optional if layout == "TD3" else "",
            empty_personal_check=rng.choice("<0"),
        )
        try:
            return fields, menc.encode(fields)
        except ValueError:
            continue


def mrz_expected(fields: menc.MRZFields) -> dict[str, Any]:
    return {"surname": fields.surname, "given_names": fields.given_names,
            "document_number": fields.document_number, "date_of_birth": fields.date_of_birth}


def _mrz_vector(ident: str, group: str, lines: list[str], layout: str, expected: dict[str, Any]) -> Vector:
    text = "\n".join(lines)
    return Vector(ident, group, text.encode("ascii"), (CHECKERS[layout], text), expected)


def mrz_vectors(rng: random.Random) -> tuple[list[Vector], list[tuple[str, list[str], dict[str, Any]]]]:
    vectors, kept = [], []
    for i in range(PER_FORMAT):
        layout = menc.LAYOUTS[i % len(menc.LAYOUTS)]
        fields, lines = random_mrz(rng, layout)
        vectors.append(_mrz_vector(f"mrz-{i}", layout, lines, layout, mrz_expected(fields)))
        kept.append((layout, lines, mrz_expected(fields)))
    for i in range(20):
        layout = ("TD1", "TD2")[i % 2]
        fields, lines = random_mrz(rng, layout, long=True)
        vectors.append(_mrz_vector(f"mrz-long-{i}", "TD1/TD2 long number", lines, layout, mrz_expected(fields)))
    for i in range(20):
        layout = menc.LAYOUTS[i % len(menc.LAYOUTS)]
        fields, lines = random_mrz(rng, layout, sex="X")
        vectors.append(_mrz_vector(f"mrz-sex-x-{i}", "sex X (any layout)", lines, layout, mrz_expected(fields)))
    samples = {"passport-td3.txt": ("TD3", "L898902C3"), "idcard-td1.txt": ("TD1", "D23145890")}
    for name, (layout, number) in samples.items():
        data = (SAMPLES / name).read_bytes()
        expected = {"surname": "ERIKSSON", "given_names": "ANNA MARIA", "document_number": number,
                    "date_of_birth": date(1974, 8, 12)}
        vectors.append(Vector(name, "samples", data,
                              (CHECKERS[layout], "\n".join(data.decode("ascii").split())), expected))
    return vectors, kept


def mrz_damaged(rng: random.Random, kept: list[tuple[str, list[str], dict[str, Any]]]) -> list[Vector]:
    """One '0' of the birth date read as 'O'; the date's check digit can only pass with the 0."""
    out = []
    candidates = [k for k in kept if "0" in k[2]["date_of_birth"].strftime("%y%m%d")]
    for i, (layout, lines, expected) in enumerate(rng.sample(candidates, 100)):
        row, start = (1, 0) if layout == "TD1" else (1, 13)
        dob = lines[row][start:start + 6]
        at = start + rng.choice([j for j, ch in enumerate(dob) if ch == "0"])
        damaged = list(lines)
        damaged[row] = lines[row][:at] + "O" + lines[row][at + 1:]
        out.append(_mrz_vector(f"mrz-dob-O-{i}", layout, damaged, layout, expected))
    return sorted(out, key=lambda v: menc.LAYOUTS.index(v.group))


# --------------------------------------------------------------------------- BCBP vectors

AIRPORTS = ["OSL", "FRA", "YUL", "JFK", "LHR", "CDG", "NRT", "SFO", "AMS", "DXB", "SYD", "GRU"]
CARRIERS = ["LH", "AC", "BA", "AF", "UA", "SK", "KL", "EK", "QF", "U2"]
PAX_SURNAMES = ["ERIKSSON", "SMITH", "NGUYEN", "DE LA CRUZ", "OBRIEN", "LI", "MUELLER", "GARCIA"]
PAX_GIVEN = ["ANNA", "JOHN", "MARIE CLAIRE", "WEI", "PAUL", "SOFIA", "JEAN PAUL"]


def random_pass(rng: random.Random, legs: int, conditional: bool) -> tuple[benc.EncPass, list[dict], dict]:
    while True:
        surname, given = rng.choice(PAX_SURNAMES), rng.choice(PAX_GIVEN)
        title = rng.choice(["", "", " MR", " MS", " MRS", " DR"])
        name = f"{surname}/{given}{title}"
        if len(name) <= 20:
            break
    issue = REF - timedelta(days=rng.randint(0, 300))
    anchor = issue if conditional else REF
    flight = anchor + timedelta(days=rng.randint(0 if conditional else -30, 150))
    enc_legs, expected_legs = [], []
    for _ in range(legs):
        leg = benc.EncLeg(
            pnr="".join(rng.choices(ALNUM, k=rng.randint(5, 7))),
            from_airport=rng.choice(AIRPORTS), to_airport=rng.choice(AIRPORTS),
            carrier=rng.choice(CARRIERS), flight_number=f"{rng.randint(1, 9999):04d}" + rng.choice(["", "", "A"]),
            day_of_year=benc.day_of_year(flight), compartment=rng.choice("FJCYYYM"),
            seat=f"{rng.randint(1, 60):03d}" + rng.choice("ABCDEFK"),
            sequence=f"{rng.randint(1, 999):04d}" + rng.choice(["", " ", "A"]),
            passenger_status=rng.choice("0123"),
        )
        repeated: dict[str, str] = {}
        if conditional:
            repeated = {"airline_numeric_code": f"{rng.randint(1, 999):03d}",
                        "document_serial_number": "".join(rng.choices(string.digits, k=10)),
                        "selectee": rng.choice("01 "), "document_verification": " ",
                        "marketing_carrier": leg.carrier, "frequent_flyer_airline": rng.choice(CARRIERS),
                        "frequent_flyer_number": "".join(rng.choices(ALNUM, k=rng.randint(6, 16))),
                        "id_ad_indicator": " ", "free_baggage_allowance": rng.choice(["20K", "1PC", "2PC"]),
                        "fast_track": rng.choice("YN")}
            keep = rng.choice([2, 7, 8, 10, 10])  # older versions carry fewer repeated items
            repeated = dict(list(repeated.items())[:keep])
            leg.repeated = repeated
        leg.airline_data = "".join(rng.choices(ALNUM, k=rng.choice([0, 0, 4, 10])))
        enc_legs.append(leg)
        expected_legs.append({"pnr": leg.pnr, "from_airport": leg.from_airport, "to_airport": leg.to_airport,
                              "carrier": leg.carrier, "flight_number": leg.flight_number,
                              "flight_day_of_year": leg.day_of_year, "flight_date": flight,
                              "compartment": leg.compartment, "seat": leg.seat, "sequence": leg.sequence,
                              "passenger_status": leg.passenger_status,
                              **{f"conditional.{k}": v for k, v in repeated.items()}})
        flight += timedelta(days=rng.randint(0, 3))
    bp = benc.EncPass(name=name, legs=enc_legs, electronic_ticket=rng.random() < 0.9)
    expected = {"surname": surname, "given_names": given}
    if conditional:
        bp.version = rng.randint(2, 8)
        bp.unique = {"passenger_description": rng.choice("0123"), "checkin_source": rng.choice("WKO"),
                     "issuance_source": rng.choice("WKO"), "issue_date": benc.issue_date_item(issue),
                     "document_type": "B", "issuer": rng.choice(CARRIERS)}
        if rng.random() < 0.3:
            bp.unique["bag_tag_1"] = "0" + "".join(rng.choices(string.digits, k=12))
        expected["issue_date"] = issue
    if rng.random() < 0.4:
        bp.security = ("1", "".join(rng.choices(ALNUM + "+/=", k=rng.randint(20, 100))))
    return bp, expected_legs, expected


def bcbp_vectors(rng: random.Random) -> list[Vector]:
    vectors = []
    for i in range(PER_FORMAT):
        legs, conditional = i % 4 + 1, (i // 4) % 2 == 0
        bp, expected_legs, expected = random_pass(rng, legs, conditional)
        group = f"{legs} leg(s), {'conditional' if conditional else 'mandatory only'}"
        vectors.append(Vector(f"bcbp-{i}", group, benc.encode_bcbp(bp).encode("latin-1"), None,
                              expected, expected_legs))
    sample_legs = [
        {"pnr": "XK7P2Q", "from_airport": "OSL", "to_airport": "FRA", "carrier": "LH", "flight_number": "0863",
         "flight_day_of_year": 332, "compartment": "Y", "seat": "023C", "sequence": "0117",
         "passenger_status": "1"},
        {"pnr": "D4RT9M", "from_airport": "FRA", "to_airport": "YUL", "carrier": "AC", "flight_number": "0875",
         "flight_day_of_year": 332, "compartment": "Y", "seat": "041K", "sequence": "0342",
         "passenger_status": "1"},
    ]
    vectors.append(Vector("boarding-pass.txt", "samples", (SAMPLES / "boarding-pass.txt").read_bytes(), None,
                          {"surname": "ERIKSSON", "given_names": "ANNA"}, sample_legs))
    return vectors


# --------------------------------------------------------------------------- running parsers


@dataclass
class Outcome:
    correct: bool
    valid: bool | None
    misses: list[tuple[str, str, str]]
    why_invalid: str = ""
    warned: bool = False


def ours_fields(doc: Any) -> dict[str, Any]:
    return {"surname": doc.surname, "given_names": doc.given_names, "document_number": doc.document_number,
            "date_of_birth": doc.date_of_birth, "issue_date": doc.issue_date}


def run_ours(parser: Callable, vector: Vector) -> Outcome:
    try:
        doc = parser(vector.ours, today=REF)
    except Exception as exc:  # noqa: BLE001 - an exception is a miss, whatever it is
        return Outcome(False, None, [("exception", "", f"{type(exc).__name__}: {exc}")])
    misses = compare(vector.expected, ours_fields(doc))
    if vector.expected_legs is not None:
        got_legs = doc.legs or []
        if len(got_legs) != len(vector.expected_legs):
            misses.append(("legs", str(len(vector.expected_legs)), str(len(got_legs))))
        for n, (want, leg) in enumerate(zip(vector.expected_legs, got_legs), 1):
            got = {k: (leg.conditional.get(k.split(".", 1)[1]) if k.startswith("conditional.")
                       else getattr(leg, k)) for k in want}
            misses += [(f"leg{n}.{k}", e, g) for k, e, g in compare(want, got)]
    return Outcome(not misses, doc.valid, misses, warned=bool(doc.warnings))


def run_aamva_parser(vector: Vector) -> Outcome:
    try:
        lic = aamva_parser.parse(vector.theirs)
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, None, [("exception", "", f"{type(exc).__name__}: {exc}")])
    given = " ".join(p for p in (lic.first_name, lic.middle_name) if p)
    got = {"surname": lic.last_name, "given_names": given, "document_number": lic.drivers_license_id,
           "date_of_birth": lic.date_of_birth}
    misses = compare(vector.expected, got)
    return Outcome(not misses, None, misses)


def run_mrz_package(vector: Vector) -> Outcome:
    checker_cls, text = vector.theirs
    try:
        checker = checker_cls(text)
        f = checker.fields()
        valid = bool(checker)
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, None, [("exception", "", f"{type(exc).__name__}: {exc}")])
    got = {"surname": f.surname, "given_names": f.name, "document_number": f.document_number,
           "date_of_birth": yymmdd_birth(f.birth_date)}
    misses = compare(vector.expected, got)
    why = "" if valid else "; ".join(desc for desc, ok in checker.report.falses if not ok)
    return Outcome(not misses, valid, misses, why)


def time_plan(jobs: list[tuple[Callable[[Any], Any], list[Any]]]) -> list[list[int]]:
    """Per-call nanoseconds for each (call, inputs) job.

    Passes are interleaved (every job once per pass), so a burst of load from
    elsewhere on the machine falls on all parsers alike rather than on one.
    """
    def safe(call: Callable[[Any], Any], x: Any) -> None:
        try:
            call(x)
        except Exception:  # noqa: BLE001 - failures are counted by the accuracy pass
            pass

    for call, inputs in jobs:  # warm-up: imports, regex caches, branch predictors
        for x in inputs:
            safe(call, x)
    samples: list[list[int]] = [[] for _ in jobs]
    clock = time.perf_counter_ns
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(PASSES):
            for (call, inputs), out in zip(jobs, samples):
                for x in inputs:
                    t0 = clock()
                    safe(call, x)
                    out.append(clock() - t0)
    finally:
        if gc_was_on:
            gc.enable()
    return samples


def pct(samples: list[int], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] / 1000.0


# --------------------------------------------------------------------------- output


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def share(outcomes: list[Outcome], attr: str = "correct") -> str:
    if not outcomes:
        return "-"
    hits = sum(1 for o in outcomes if getattr(o, attr))
    return f"{hits}/{len(outcomes)} ({100 * hits / len(outcomes):.1f}%)"


def groups_of(vectors: list[Vector]) -> list[str]:
    return list(dict.fromkeys(v.group for v in vectors))


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    rows = [["date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")],
            ["platform", platform.platform()], ["CPU", f"{cpu} ({os.cpu_count()} logical)"],
            ["python", f"{platform.python_implementation()} {platform.python_version()}"],
            ["aamva-parser", ver("aamva-parser")], ["mrz", ver("mrz")],
            ["seed / reference date", f"{SEED} / {REF.isoformat()}"],
            ["load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())],
            ["timing", f"{PASSES} interleaved timed passes after 1 warm-up pass, per-call perf_counter_ns, "
                       "gc off"]]
    return table(["", ""], rows)


def accuracy_rows(vectors: list[Vector], columns: list[list[Outcome]], validity: bool = False,
                  warned: list[Outcome] | None = None) -> list[list]:
    """Per group: share right for each column, then (optionally) share judged valid and warned."""
    rows = []
    for group in groups_of(vectors) + ["all"]:
        idx = [i for i, v in enumerate(vectors) if group in ("all", v.group)]
        row: list[Any] = [f"**{group}**" if group == "all" else group, len(idx)]
        row += [share([outcomes[i] for i in idx]) for outcomes in columns]
        if validity:
            row += [share([outcomes[i] for i in idx], "valid") for outcomes in columns]
        if warned is not None:
            row.append(share([warned[i] for i in idx], "warned"))
        rows.append(row)
    return rows


def miss_rows(name: str, set_name: str, vectors: list[Vector], outcomes: list[Outcome]) -> list[list]:
    """Misses per (group, field), with one example each."""
    seen: dict[tuple[str, str], list] = {}
    for v, o in zip(vectors, outcomes):
        for fld, want, got in o.misses:
            key = (v.group, fld.split(".")[-1] if fld.startswith("leg") else fld)
            if key not in seen:
                seen[key] = [0, f"{v.ident}: expected `{want}` got `{got[:70]}`"]
            seen[key][0] += 1
    return [[name, set_name, g, f, n, ex] for (g, f), (n, ex) in seen.items()]


def invalid_rows(vectors: list[Vector], ours: list[Outcome], theirs: list[Outcome]) -> list[list]:
    counts: dict[tuple[str, str, str], int] = {}
    for v, o, t in zip(vectors, ours, theirs):
        for key, bad in ((("ours", v.group, "see Document.checks"), o.valid is False),
                         (("mrz", v.group, t.why_invalid or "exception"), not t.valid)):
            counts[key] = counts.get(key, 0) + bad
    return [[*k, n] for k, n in counts.items() if n] or [["-", "-", "none", 0]]


def speed_section(sets: dict[str, list[Vector]]) -> None:
    def ours(parser: Callable) -> Callable:
        return lambda data: parser(data, today=REF)

    def mrz_package(theirs: tuple) -> Any:
        return theirs[0](theirs[1]).fields()

    plan = [("AAMVA", "ours: parse_aamva", ours(parse_aamva), "ours"),
            ("AAMVA", "ours: parse_payload", ours(parse_payload), "ours"),
            ("AAMVA", "aamva-parser: parse", aamva_parser.parse, "theirs"),
            ("MRZ", "ours: parse_mrz", ours(parse_mrz), "ours"),
            ("MRZ", "ours: parse_payload", ours(parse_payload), "ours"),
            ("MRZ", "mrz: XxxCodeChecker + fields()", mrz_package, "theirs"),
            ("BCBP", "ours: parse_bcbp", ours(parse_bcbp), "ours"),
            ("BCBP", "ours: parse_payload", ours(parse_payload), "ours"),
            ("AAMVA damaged", "ours: parse_payload", ours(parse_payload), "ours"),
            ("AAMVA damaged", "aamva-parser: parse", aamva_parser.parse, "theirs"),
            ("MRZ damaged", "ours: parse_payload", ours(parse_payload), "ours"),
            ("MRZ damaged", "mrz: XxxCodeChecker + fields()", mrz_package, "theirs")]
    rows = []
    inputs = [[getattr(v, side) for v in sets[fmt]] for fmt, _, _, side in plan]
    timings = time_plan([(call, xs) for (_, _, call, _), xs in zip(plan, inputs)])
    for (fmt, who, _, side), xs, s in zip(plan, inputs, timings):
        med = pct(s, 50)
        target = "-" if side == "theirs" or "damaged" in fmt else "yes" if med <= TARGET_MEDIAN_US else "NO"
        rows.append([fmt, who, len(xs), f"{med:.1f}", f"{pct(s, 95):.1f}", f"{pct(s, 99):.1f}", target])
    print("## Parse time per call (µs)\n")
    print(f"Target: our median parse <= {TARGET_MEDIAN_US:.0f} µs. n = vectors per pass "
          f"(each timed {PASSES} times).\n")
    print(table(["format", "parser", "n", "median", "p95", "p99", "median <= target"], rows) + "\n")
    by_legs: dict[str, list[int]] = {}
    bcbp = sets["BCBP"]
    for (fmt, who, _, _), s in zip(plan, timings):
        if fmt == "BCBP" and who == "ours: parse_bcbp":
            for i, ns in enumerate(s):
                group = bcbp[i % len(bcbp)].group
                by_legs.setdefault(group.split(",")[0] + ", all", []).append(ns)
                by_legs.setdefault(group, []).append(ns)
    by_legs = dict(sorted(by_legs.items()))  # each leg count, then its two halves
    print("BCBP time by number of legs, with and without conditional data (ours: parse_bcbp, µs):\n")
    print(table(["legs", "calls", "median", "p95", "p99"],
                [[k, len(v), f"{pct(v, 50):.1f}", f"{pct(v, 95):.1f}", f"{pct(v, 99):.1f}"]
                 for k, v in by_legs.items()]) + "\n")


def accuracy_section(sets: dict[str, list[Vector]]) -> None:
    misses: list[list] = []
    aamva, aamva_dmg, mrz, mrz_dmg, bcbp = (sets[k] for k in ("AAMVA", "AAMVA damaged", "MRZ", "MRZ damaged",
                                                              "BCBP"))
    a_ours = [run_ours(parse_payload, v) for v in aamva]
    a_direct = [run_ours(parse_aamva, v) for v in aamva]
    a_theirs = [run_aamva_parser(v) for v in aamva]
    print("## AAMVA accuracy (surname, given names, document number, date of birth all right)\n")
    print("US cards print dates MMDDCCYY, Canadian cards CCYYMMDD (D.12.5). "
          "aamva-parser reads every date as MMDDCCYY.\n")
    print(table(["set", "n", "ours (parse_payload)", "ours (parse_aamva)", "aamva-parser"],
                accuracy_rows(aamva, [a_ours, a_direct, a_theirs])) + "\n")
    misses += miss_rows("ours", "AAMVA", aamva, a_ours) + miss_rows("aamva-parser", "AAMVA", aamva, a_theirs)

    d_ours = [run_ours(parse_payload, v) for v in aamva_dmg]
    d_theirs = [run_aamva_parser(v) for v in aamva_dmg]
    print("## AAMVA damaged payloads (same 50 cards per kind of damage)\n")
    print(table(["damage", "n", "ours (parse_payload)", "aamva-parser", "ours: warned of a repair"],
                accuracy_rows(aamva_dmg, [d_ours, d_theirs], warned=d_ours)) + "\n")
    misses += (miss_rows("ours", "AAMVA damaged", aamva_dmg, d_ours)
               + miss_rows("aamva-parser", "AAMVA damaged", aamva_dmg, d_theirs))

    m_ours = [run_ours(parse_payload, v) for v in mrz]
    m_theirs = [run_mrz_package(v) for v in mrz]
    mrz_headers = ["layout", "n", "ours: fields right", "mrz: fields right", "ours: judged valid",
                   "mrz: judged valid"]
    print("## MRZ accuracy and validity (all vectors have correct check digits)\n")
    print("Long numbers: Doc 9303 Part 5/6 document numbers over 9 characters, continued in the "
          "optional data; the `mrz` package reads only the first 9 characters. Sex X: kept out of the "
          "layout rows and shown apart, because `mrz` 0.6.2 accepts only M, F and '<' there.\n")
    print(table(mrz_headers, accuracy_rows(mrz, [m_ours, m_theirs], validity=True)) + "\n")
    misses += miss_rows("ours", "MRZ", mrz, m_ours) + miss_rows("mrz", "MRZ", mrz, m_theirs)
    print("Why a parser judged an undamaged vector invalid:\n")
    print(table(["parser", "group", "failed checks", "vectors"], invalid_rows(mrz, m_ours, m_theirs)) + "\n")

    md_ours = [run_ours(parse_payload, v) for v in mrz_dmg]
    md_theirs = [run_mrz_package(v) for v in mrz_dmg]
    print("## MRZ damaged: one birth-date '0' read as 'O' (check digit confirms the 0)\n")
    print("'judged valid' here means the parser accepted the document after its own repairs; "
          "ours reports each repair as a warning.\n")
    print(table(mrz_headers + ["ours: warned of a repair"],
                accuracy_rows(mrz_dmg, [md_ours, md_theirs], validity=True, warned=md_ours)) + "\n")
    misses += miss_rows("ours", "MRZ damaged", mrz_dmg, md_ours) + miss_rows("mrz", "MRZ damaged", mrz_dmg, md_theirs)

    b_ours = [run_ours(parse_payload, v) for v in bcbp]
    print("## BCBP accuracy (no BCBP parser in the compared PyPI set)\n")
    print("Right = name, every leg's mandatory items and flight date, the encoded conditional items "
          "and the issue date.\n")
    print(table(["set", "n", "ours (parse_payload)", "ours: field sizes valid"],
                accuracy_rows(bcbp, [b_ours], validity=True)) + "\n")
    misses += miss_rows("ours", "BCBP", bcbp, b_ours)

    print("## Misses by field (one example each)\n")
    print(table(["parser", "set", "group", "field", "misses", "example"], misses) if misses else "None.")


def main() -> None:
    started = time.perf_counter()
    print("# Gatecheck document parser benchmark\n")
    print(machine() + "\n")
    aamva, cards = aamva_vectors(random.Random(f"aamva-{SEED}"))
    mrz, kept = mrz_vectors(random.Random(f"mrz-{SEED}"))
    sets = {
        "AAMVA": aamva, "MRZ": mrz, "BCBP": bcbp_vectors(random.Random(f"bcbp-{SEED}")),
        "AAMVA damaged": aamva_damaged(random.Random(f"aamva-damage-{SEED}"), cards),
        "MRZ damaged": mrz_damaged(random.Random(f"mrz-damage-{SEED}"), kept),
    }
    speed_section(sets)
    accuracy_section(sets)
    print(f"\n_Total run time {time.perf_counter() - started:.1f} s._")


if __name__ == "__main__":
    main()
