"""ICAO Doc 9303 check digits, and the OCR repairs a check digit can confirm.

The check digit (Doc 9303 Part 3, section 4.9) weights the characters 7, 3, 1,
7, 3, 1, ... and takes the sum modulo 10, reading digits as themselves, A..Z as
10..35 and the filler ``<`` as 0.

OCR engines confuse a few MRZ characters (O/0, I/1, B/8, S/5, and ``<`` read as
K). A swap is only trusted when a check digit that failed passes afterwards, so
the helpers here enumerate swaps and report whether exactly one minimal reading
fits. Enumeration is capped so no input can make it slow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum
from itertools import combinations

_VALUES = {ch: i for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_VALUES["<"] = 0
_MRZ_CHARS = re.compile(r"[0-9A-Z<]*")
# Byte -> value table, so a check digit is three slice sums (the hot path).
_VALUE_BYTES = bytes(_VALUES.get(chr(b), 0) for b in range(256))

# The confusions Doc 9303's OCR-B font invites, by the type a field must have.
DIGIT_FOR_LETTER = {"O": "0", "I": "1", "B": "8", "S": "5"}
LETTER_FOR_DIGIT = {digit: letter for letter, digit in DIGIT_FOR_LETTER.items()}
_TO_DIGITS = str.maketrans(DIGIT_FOR_LETTER)
_TO_LETTERS = str.maketrans(LETTER_FOR_DIGIT)
# In an alphanumeric field either reading may be the true one; a `<` misread as
# K only goes one way (a printed K is never read as `<`).
SWAPS = {**DIGIT_FOR_LETTER, **LETTER_FOR_DIGIT, "K": "<"}

# At most this many confusable characters are considered, and at most this many
# swapped at once: 16 + 120 + 560 candidates, each a few check-digit sums.
MAX_SWAP_POSITIONS = 16
MAX_SWAPS = 3


def check_digit(field: str) -> str:
    """The Doc 9303 Part 3 section 4.9 check digit of ``field``, as a character.

    Raises ValueError for a character outside ``A-Z 0-9 <``.
    """
    if not _MRZ_CHARS.fullmatch(field):
        bad = next(ch for ch in field if ch not in _VALUES)
        raise ValueError(f"{bad!r} is not an MRZ character")
    return _digit_of(field)


def digit_passes(field: str, digit: str, *, filler_allowed: bool = False) -> bool:
    """True when ``digit`` is the check digit of ``field``.

    With ``filler_allowed``, ``<`` is also accepted for a field that is all
    fillers (Doc 9303 Part 4 section 4.2.2: an empty personal number may carry
    ``<`` instead of 0).
    """
    if digit == "<":
        return filler_allowed and field.strip("<") == ""
    if len(digit) != 1 or digit not in "0123456789" or not _MRZ_CHARS.fullmatch(field):
        return False
    return _digit_of(field) == digit


def _digit_of(field: str) -> str:
    """The check digit of ``field``, already known to hold only MRZ characters."""
    values = field.encode("ascii").translate(_VALUE_BYTES)
    # Weights 7, 3, 1 repeating: one slice sum per weight.
    total = 7 * sum(values[0::3]) + 3 * sum(values[1::3]) + sum(values[2::3])
    return str(total % 10)


def as_digits(text: str) -> str:
    """``text`` with every letter that OCR-B confuses with a digit replaced by that digit."""
    return text.translate(_TO_DIGITS)


def as_letters(text: str) -> str:
    """``text`` with every digit that OCR-B confuses with a letter replaced by that letter."""
    return text.translate(_TO_LETTERS)


class Outcome(Enum):
    REPAIRED = "repaired"
    AMBIGUOUS = "ambiguous"
    TOO_MANY = "too_many"
    NOT_FOUND = "not_found"


def unique_minimal_repair(
    text: str, positions: Iterable[int], accept: Callable[[str], bool]
) -> tuple[str | None, Outcome]:
    """The one reading of ``text`` with fewest confusable swaps that ``accept`` takes.

    Only characters at ``positions`` that appear in :data:`SWAPS` are swapped.
    Returns ``(repaired, REPAIRED)`` when exactly one candidate with the fewest
    swaps is accepted, otherwise ``(None, reason)``: two readings fitting the
    check digits equally well means the digits cannot tell which is true.
    """
    swappable = [p for p in dict.fromkeys(positions) if 0 <= p < len(text) and text[p] in SWAPS]
    if len(swappable) > MAX_SWAP_POSITIONS:
        return None, Outcome.TOO_MANY
    for count in range(1, min(MAX_SWAPS, len(swappable)) + 1):
        found: list[str] = []
        for chosen in combinations(swappable, count):
            chars = list(text)
            for p in chosen:
                chars[p] = SWAPS[chars[p]]
            candidate = "".join(chars)
            if accept(candidate):
                found.append(candidate)
                if len(found) > 1:
                    return None, Outcome.AMBIGUOUS
        if found:
            return found[0], Outcome.REPAIRED
    return None, Outcome.NOT_FOUND
