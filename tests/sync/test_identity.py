"""The identity contract: normalisation, order-insensitivity and the exact token bytes."""

import hashlib
import hmac
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.documents.model import Document
from sync.identity import (
    _ICAO_SPECIAL,
    TOKEN_BYTES,
    DocumentClass,
    IdentityError,
    document_token,
    identity_from_document,
    normalise_document_number,
    normalise_issuer,
    normalise_name,
    person_token,
    transliterate,
)

KEY = bytes(range(32))


TOKEN_LAYOUT = Path(__file__).resolve().parents[2] / "docs" / "token-layout.md"


def _documented_transliterations() -> list[tuple[str, str]]:
    """Every `X→Y` in the names row of docs/token-layout.md; `Ö/Ø/Œ→OE` gives three."""
    row = next(line for line in TOKEN_LAYOUT.read_text("utf-8").splitlines() if line.startswith("| names |"))
    return [(source, target) for sources, target in re.findall(r"([^\s,;(]+)→([A-Z]+)", row)
            for source in sources.split("/")]


DOCUMENTED = _documented_transliterations()


def test_the_token_layout_page_lists_the_transliteration_table():
    assert len(DOCUMENTED) >= 20 and ("Ŋ", "N") in DOCUMENTED and ("Ö", "OE") in DOCUMENTED


@pytest.mark.parametrize(("written", "canonical"), DOCUMENTED, ids=[w for w, _ in DOCUMENTED])
def test_every_documented_transliteration_holds_in_both_cases_and_inside_a_word(written, canonical):
    """docs/token-layout.md is the spec another implementation follows: each row must be what we do."""
    assert transliterate(written) == canonical
    assert transliterate(written.lower()) == canonical
    assert transliterate(f"Ma{written.lower()}r") == f"MA{canonical}R"


def test_every_special_letter_in_the_code_is_in_the_documented_table():
    """A letter the code maps but the page omits would give the registry another token."""
    documented = {source for source, _ in DOCUMENTED}
    documented |= {source.lower() for source in documented}
    assert set(_ICAO_SPECIAL) <= documented, sorted(set(_ICAO_SPECIAL) - documented)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("Müller", "MUELLER"),
        ("Ångström", "AANGSTROEM"),
        ("Øre", "OERE"),
        ("Straße", "STRASSE"),
        ("Þórunn", "THORUNN"),
        ("Æsir", "AESIR"),
        ("Łukasz", "LUKASZ"),
        ("José", "JOSE"),
        ("Zoë", "ZOE"),
        ("Ñúñez", "NUNEZ"),
        ("Čapek", "CAPEK"),
    ],
)
def test_icao_transliteration_of_latin_diacritics(written, canonical):
    assert transliterate(written) == canonical


def test_apostrophes_are_dropped_and_hyphens_separate_names():
    assert normalise_name("O'Brien-Smith") == ("OBRIEN", "SMITH")


def test_mrz_fillers_and_punctuation_are_removed():
    assert normalise_name("ERIKSSON<<ANNA<MARIA") == ("ERIKSSON", "ANNA", "MARIA")
    assert normalise_name("  st.john,  mary ") == ("STJOHN", "MARY")


def test_fullwidth_letters_fold_to_ascii():
    assert normalise_name("ＺＨＡＮＧ　ＷＥＩ") == ("ZHANG", "WEI")


def test_document_number_loses_spaces_dashes_and_fillers_but_keeps_leading_zeros():
    assert normalise_document_number(" 012-345 67<<") == "01234567"
    assert normalise_document_number("d1234567") == "D1234567"
    assert normalise_document_number("--") is None


def test_issuer_is_alpha3_plus_aamva_jurisdiction():
    assert normalise_issuer("usa", "ca") == "USA-CA"
    assert normalise_issuer("D<<") == "DEU"
    assert normalise_issuer("CDN", "ON") == "CAN-ON"
    with pytest.raises(IdentityError, match="alpha-3"):
        normalise_issuer("U5A")


def test_person_token_ignores_name_order():
    dob = date(1990, 1, 2)
    assert person_token(KEY, ["ZHANG WEI"], dob) == person_token(KEY, ["WEI", "ZHANG"], dob)


def test_person_token_depends_on_date_of_birth_and_key():
    a = person_token(KEY, ["ZHANG WEI"], date(1990, 1, 2))
    assert a != person_token(KEY, ["ZHANG WEI"], date(1990, 1, 3))
    assert a != person_token(b"another list key", ["ZHANG WEI"], date(1990, 1, 2))


def test_document_token_separates_class_and_issuer():
    a = document_token(KEY, DocumentClass.PASSPORT, "UTO", "L898902C3")
    assert a != document_token(KEY, DocumentClass.ID_CARD, "UTO", "L898902C3")
    assert a != document_token(KEY, DocumentClass.PASSPORT, "DEU", "L898902C3")
    assert len(a) == TOKEN_BYTES >= 12


def test_tokens_follow_the_documented_byte_layout():
    """docs/token-layout.md, rebuilt by hand: the registry must match bit for bit."""

    def field(s: str) -> bytes:
        return len(s).to_bytes(2, "big") + s.encode("ascii")

    doc_msg = b"GCTOK1\x01" + field("P") + field("UTO") + field("L898902C3")
    want = hmac.new(KEY, doc_msg, hashlib.sha256).digest()[:12]
    assert document_token(KEY, "P", "UTO", "L898 902-C3") == want

    person_msg = b"GCTOK1\x02" + field("ANNA ERIKSSON MARIA") + field("19740812")
    want = hmac.new(KEY, person_msg, hashlib.sha256).digest()[:12]
    assert person_token(KEY, ["Eriksson", "Anna Maria"], date(1974, 8, 12)) == want


def test_published_known_answer_vectors():
    """The vectors printed in docs/token-layout.md; changing them breaks every device."""
    assert document_token(KEY, "P", "UTO", "L898902C3").hex() == "cb03ab701bec2bb0b4a9d103"
    assert document_token(KEY, "D", "USA-CA", "D1234567").hex() == "9612e2053c84bad852f99a82"
    assert person_token(KEY, ["ERIKSSON", "ANNA MARIA"], date(1974, 8, 12)).hex() == "7a7ae5c5d7ae8d32cf62bb1c"
    assert person_token(KEY, ["ZHANG", "WEI"], date(1990, 1, 2)).hex() == "b650743753297b684efc786f"


def test_short_list_keys_are_refused():
    with pytest.raises(IdentityError, match="at least 16 bytes"):
        document_token(b"short", "P", "UTO", "X1")


def test_boarding_pass_identity_is_weak_and_has_no_document_token():
    bp = Document(format="bcbp", document_code="BP", surname="DESMARAIS", given_names="LUC")
    identity = identity_from_document(bp)
    assert identity.document_class is DocumentClass.BOARDING_PASS
    assert identity.weak and "weak" in identity.weak_reason
    tokens = identity.tokens(KEY)
    assert tokens.document is None and tokens.persons == ()


def test_licence_identity_uses_country_and_jurisdiction():
    dl = Document(format="aamva", document_code="DL", document_number="D1234567",
                  surname="PUBLIC", given_names="JOHN QUINCY", date_of_birth=date(1970, 1, 31),
                  issuing_country="USA", issuing_authority="CA")
    identity = identity_from_document(dl)
    assert identity.issuer == "USA-CA" and identity.document_class is DocumentClass.DRIVER_LICENCE
    assert not identity.weak
    tokens = identity.tokens(KEY)
    assert tokens.document == document_token(KEY, "D", "USA-CA", "D1234567")
    # Full name and the name without middle names, both order-insensitive.
    assert tokens.persons == (
        person_token(KEY, ["JOHN PUBLIC QUINCY"], date(1970, 1, 31)),
        person_token(KEY, ["PUBLIC JOHN"], date(1970, 1, 31)),
    )


def test_passport_identity_is_passport_class_and_visa_is_visa_class():
    p = Document(format="mrz", document_code="P", document_number="L898902C3",
                 issuing_country="UTO", surname="ERIKSSON", given_names="ANNA MARIA")
    v = Document(format="mrz", document_code="V", document_number="L8988901C",
                 issuing_country="UTO", surname="ERIKSSON", given_names="ANNA MARIA")
    assert identity_from_document(p).document_class is DocumentClass.PASSPORT
    assert identity_from_document(v).document_class is DocumentClass.VISA


def test_document_without_number_is_a_weak_identity():
    doc = Document(format="mrz", document_code="I", issuing_country="UTO", surname="X")
    assert identity_from_document(doc).weak


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12),
                min_size=1, max_size=5), st.randoms())
def test_any_permutation_of_name_tokens_gives_the_same_person_token(names, rnd):
    shuffled = list(names)
    rnd.shuffle(shuffled)
    dob = date(1980, 5, 17)
    assert person_token(KEY, names, dob) == person_token(KEY, shuffled, dob)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_normalised_names_are_plain_a_to_z(text):
    for token in normalise_name(text):
        assert token and all("A" <= ch <= "Z" for ch in token)


def test_manually_typed_licence_gives_the_same_document_token_as_its_barcode():
    typed = Document(format="manual", document_code="D", document_number="d 123-4567",
                     surname="Public", issuing_country="usa", issuing_authority="ca")
    scanned = Document(format="aamva", document_code="DL", document_number="D1234567",
                       surname="PUBLIC", issuing_country="USA", issuing_authority="CA")
    assert identity_from_document(typed).tokens(KEY).document == \
        identity_from_document(scanned).tokens(KEY).document


def test_unusable_issuer_makes_a_weak_identity_that_says_why():
    doc = Document(format="mrz", document_code="P", document_number="X1", issuing_country="U7O",
                   surname="X", given_names="Y")
    identity = identity_from_document(doc)
    assert identity.weak and identity.issuer is None
    assert "'U7O' is not an ISO 3166-1 alpha-3 code" in identity.weak_reason
