"""The demo's world: two authority lists, the people on them, and the documents the demo scanner shows.

Pure: dates in, rows and payloads out. ``gatecheck demo`` (appliance/demo.py)
imports the rows into a real registry, enrols a real counter, and has the
scanner daemon replay the documents, so every verdict the demo prints is
reached the way a counter reaches it in service.

The lists are synthetic: random names and numbers from a fixed seed, so a
second run imports the same rows (a no-op) and nobody real is "listed". The
known demo travellers are the handful the demo scanner presents:

- a disruptive passenger on the airline's list, by his licence: **DENY**;
- a judgment defaulter on the court's list, by her passport: **DENY**;
- her namesake, same name and date of birth, another person's ID card:
  **REFER** (a weak match never denies);
- a traveller on no list, by passport: **CLEAR**, and by boarding pass:
  **REFER** (a name alone is a weak identity);
- a worn licence barcode that the scanner misreads: **UNREADABLE**.
"""

from __future__ import annotations

import csv
import io
import random
import string
from dataclasses import dataclass
from datetime import date, timedelta

from appliance.specimens.aamva import Card, encode_card_bytes
from appliance.specimens.bcbp import EncLeg, EncPass, day_of_year, encode_bcbp
from appliance.specimens.mrz import MRZFields, encode

AIRLINE = "DA"  # the demo airline's organisation code

AVIATION_LIST = dict(
    list_id="demo-air-unruly", name="Demo Air unruly-passenger list",
    authority="Demo Air Safety Office", legal_basis="Conditions of carriage art. 12; ICAO Doc 10117",
    scopes=("air_travel",), default_action="DENY",
    redress="Write to Demo Air Safety Office, Customer Relations, quoting the reference.",
)
COURT_LIST = dict(
    list_id="demo-court-defaulters", name="Demo District Court judgment defaulters",
    authority="Demo District Court", legal_basis="Enforcement order on consumption restrictions",
    scopes=("air_travel", "star_hotel"), default_action="DENY",
    redress="Apply to Demo District Court enforcement office with the case number; paying the judgment lifts "
            "the restriction.",
)
LISTS = (AVIATION_LIST, COURT_LIST)

#: How the synthetic import files map onto entry fields (docs/imports.md, "The mapping").
IMPORT_MAPPING = {
    "columns": {"reference": "case", "surnames": "surname", "given_names": "given",
                "date_of_birth": "dob", "document_number": "doc_no", "document_class": "doc_class",
                "document_issuer": "doc_issuer", "category": "category", "valid_until": "until"},
    "date_format": "%Y-%m-%d",
}
ROWS_PER_LIST = 2500

#: Who signs in to the demo registry (docs/accounts.md); two of each role that
#: must not decide alone (maker-checker: reviews, imports).
USERS = (
    ("reporter", ("reporter",), (AIRLINE,)),
    ("reviewer-1", ("reviewer",), (AIRLINE,)),
    ("reviewer-2", ("reviewer",), (AIRLINE,)),
    ("list-admin-1", ("list_admin",), ()),
    ("list-admin-2", ("list_admin",), ()),
    ("it-admin", ("it_admin",), (AIRLINE,)),
    ("auditor", ("auditor",), ()),
)

_SURNAMES = ("SMITH", "GARCIA", "MULLER", "ROSSI", "KOWALSKI", "NGUYEN", "SILVA", "JOHANSSON", "PETROV",
             "YILMAZ", "OKONKWO", "MARTIN", "HANSEN", "NOVAK", "FISCHER", "DUBOIS", "MORENO", "TANAKA",
             "KIM", "SANTOS", "IVANOVA", "WALSH", "HORVATH", "LARSEN", "COSTA", "BAKER", "WEBER", "LOPEZ")
_GIVEN = ("JAMES", "MARIA", "LUCA", "ANNA", "PIOTR", "LINH", "JOAO", "ERIK", "OLGA", "EMRE", "NGOZI",
          "CLAIRE", "MADS", "PETRA", "JONAS", "CAMILLE", "DIEGO", "HARUTO", "MINJI", "ANA", "SEAN", "ZSOFIA")
_ISSUERS = {"P": ("GBR", "DEU", "FRA", "ITA", "ESP", "POL", "SWE", "USA", "CAN", "NLD"),
            "I": ("DEU", "FRA", "ITA", "ESP", "POL", "SWE", "NLD", "BEL"),
            "D": ("USA-CA", "USA-NY", "USA-TX", "USA-WA", "CAN-ON")}


@dataclass(frozen=True)
class Traveller:
    """A known demo identity and the file the demo scanner presents for it."""

    label: str
    file: str
    payload: bytes
    expected: str  # the verdict the counter should reach


@dataclass(frozen=True)
class KnownListing:
    list_id: str
    case: str
    surname: str
    given: str
    dob: date
    doc_class: str
    doc_issuer: str
    doc_no: str
    category: str


# The two listed people the scanner shows, and the namesake's document.
UNRULY = KnownListing(AVIATION_LIST["list_id"], "DA-2026-000417", "MORGAN", "ALEX JAMES", date(1986, 3, 14),
                      "D", "USA-CA", "D7041122", "assault_of_crew")
DEFAULTER = KnownListing(COURT_LIST["list_id"], "(2026) Demo Enf. 1183", "CHEN", "WEI LING", date(1979, 11, 2),
                         "P", "SGP", "K1234567Z", "judgment_default")
NAMESAKE_CARD = ("FRA", "X4RTBPFW4")  # a French ID card: same name and birth date, another person


def import_rows(list_id: str, today: date, *, rows: int = ROWS_PER_LIST) -> list[dict[str, str]]:
    """The authority's file for ``list_id``: synthetic people (seeded by the list id) plus the known ones."""
    rng = random.Random(f"gatecheck-demo/{list_id}")
    out = []
    for n in range(rows):
        doc_class = rng.choice("PPID")
        out.append({
            "case": f"{list_id.split('-')[1].upper()}-{2020 + n % 7}-{n:06d}",
            "surname": rng.choice(_SURNAMES),
            "given": " ".join(rng.sample(_GIVEN, rng.choice((1, 1, 2)))),
            "dob": (date(1950, 1, 1) + timedelta(days=rng.randrange(55 * 365))).isoformat(),
            "doc_class": doc_class,
            "doc_issuer": rng.choice(_ISSUERS[doc_class]),
            "doc_no": "".join(rng.choices(string.ascii_uppercase + string.digits, k=9)),
            "category": _category(list_id, rng),
            "until": (today + timedelta(days=rng.randrange(30, 3 * 365))).isoformat(),
        })
    for known in (UNRULY, DEFAULTER):
        if known.list_id == list_id:
            out.append({"case": known.case, "surname": known.surname, "given": known.given,
                        "dob": known.dob.isoformat(), "doc_class": known.doc_class,
                        "doc_issuer": known.doc_issuer, "doc_no": known.doc_no, "category": known.category,
                        "until": (today + timedelta(days=730)).isoformat()})
    return out


def _category(list_id: str, rng: random.Random) -> str:
    if list_id == AVIATION_LIST["list_id"]:
        return rng.choice(("assault_of_crew", "threatening_behaviour", "interference_with_crew",
                           "intoxication_disruption", "smoking_on_board"))
    return "judgment_default"


def rows_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def travellers(today: date) -> list[Traveller]:
    """The documents the demo scanner replays, in order, valid on ``today``."""
    expiry = today + timedelta(days=3 * 365)
    licence = encode_card_bytes(Card(
        iin="636014", document_number=UNRULY.doc_no, surname=UNRULY.surname,
        given_names=tuple(UNRULY.given.split()), date_of_birth=UNRULY.dob, expiry_date=expiry,
        issue_date=today - timedelta(days=400), sex_code="1", jurisdiction="CA"))
    passport = _mrz("TD3", "P", DEFAULTER.doc_issuer, DEFAULTER.doc_no, DEFAULTER.surname, DEFAULTER.given,
                    DEFAULTER.dob, "F", expiry)
    namesake = _mrz("TD1", "I", NAMESAKE_CARD[0], NAMESAKE_CARD[1], DEFAULTER.surname, DEFAULTER.given,
                    DEFAULTER.dob, "F", expiry)
    clear = _mrz("TD3", "P", "NGA", "A09912345", "OKAFOR", "CHIDI", date(1991, 6, 30), "M", expiry)
    boarding = encode_bcbp(EncPass(name="OKAFOR/CHIDI MR", legs=[EncLeg(
        pnr="DMO42X", from_airport="LHR", to_airport="JFK", carrier="DA", flight_number="0117",
        day_of_year=day_of_year(today), compartment="Y", seat="023C", sequence="0117",
        passenger_status="1")])).encode("ascii")
    return [
        Traveller("listed disruptive passenger (licence)", "01-listed-licence.txt", licence, "DENY"),
        Traveller("traveller on no list (passport)", "02-clear-passport.txt", clear, "CLEAR"),
        Traveller("judgment defaulter (passport)", "03-listed-passport.txt", passport, "DENY"),
        Traveller("defaulter's namesake (ID card)", "04-namesake-idcard.txt", namesake, "REFER"),
        Traveller("boarding pass: a name only, so see an ID", "05-boarding-pass.txt", boarding, "REFER"),
        Traveller("damaged barcode (a misread licence)", "06-damaged-barcode.txt", damaged(licence), "UNREADABLE"),
    ]


def damaged(payload: bytes) -> bytes:
    """What a scanner delivers from a worn barcode: a cut-short read with an ASCII SUB in its header."""
    return payload[:4] + b"AN\x1aI" + payload[9:len(payload) // 2]


def _mrz(layout, code, issuer, number, surname, given, dob, sex, expiry) -> bytes:
    lines = encode(MRZFields(layout, code, issuer, number, surname, given, dob, sex, expiry, issuer))
    return ("\n".join(lines) + "\n").encode("ascii")
