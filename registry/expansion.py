"""Registry-side expansion of a list entry's names into every plausible name set.

A counter device computes only ``Identity.name_keys()`` from the document in
front of it and looks the resulting person tokens up exactly. Documents spell
one person differently (a passport MRZ writes MÜLLER as MUELLER, an airline or
a licence as MULLER; a Russian passport writes Юрий as IURII, a visa YURIY), so
the registry must publish a token for every spelling a genuine document may
carry. The rules, and the cap on their number, are in docs/name-variants.md.

Pure: no I/O. Output order is deterministic (most plausible first), so the
cap always keeps the same variants.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Iterator, Sequence

from sync.identity import DocumentClass, Identity, normalise_name, person_token

#: At most this many name sets (and so person tokens) per entry. Each costs 12
#: bytes on every device; 32 covers the consistent spellings in every
#: structure with room for mixed spellings (docs/name-variants.md).
MAX_NAME_VARIANTS = 32
#: At most this many spellings are drawn from the mixed (cartesian) product
#: of one name's alternatives; bounds the work for long names.
MAX_MIXED_SPELLINGS = 24
#: All-in-one joined forms (ZHANGWEI) are made only for names this short.
MAX_TOKENS_TO_JOIN_ALL = 3

# A slot lists the spellings of one letter, indexed by scheme:
#   0 = ICAO Doc 9303 Part 3 (what a passport MRZ prints),
#   1 = the common alternative (diacritics dropped; English-style Cyrillic),
#   2 = a second standard (the older ICAO "XX" forms for Latin; GOST R
#       52535.1-2006, used in Russian passports 2006-2010, for Cyrillic).
# A scheme without its own entry uses option 0. Options past index 2 take part
# only in the mixed product.
_SCHEMES = 3

# ICAO 9303 Part 3 Table A letters with more than one spelling in practice.
# Letters with a single spelling (É, Ç, Ł, ...) are left to sync.identity.
_LATIN: dict[str, tuple[str, ...]] = {
    "Ä": ("AE", "A"),
    "Ö": ("OE", "O"),
    "Ü": ("UE", "U", "UXX"),
    "Å": ("AA", "A"),
    "Ø": ("OE", "O"),
    "Ñ": ("N", "N", "NXX"),
    "Đ": ("D", "D", "D", "DJ"),
}

# ICAO 9303 Part 3 Table B (Cyrillic), Russian letters; option 0 checked
# against published ICAO 9303 transliteration tables.
_CYRILLIC: dict[str, tuple[str, ...]] = {
    "А": ("A",), "Б": ("B",), "В": ("V",), "Г": ("G",), "Д": ("D",),
    "Е": ("E",), "Ё": ("E", "YO", "E"), "Ж": ("ZH",), "З": ("Z",),
    "И": ("I",), "Й": ("I", "Y", "I"), "К": ("K",), "Л": ("L",), "М": ("M",),
    "Н": ("N",), "О": ("O",), "П": ("P",), "Р": ("R",), "С": ("S",),
    "Т": ("T",), "У": ("U",), "Ф": ("F",), "Х": ("KH", "KH", "KH", "H"),
    "Ц": ("TS", "TS", "TC"), "Ч": ("CH",), "Ш": ("SH",),
    "Щ": ("SHCH", "SHCH", "SHCH", "SCH"), "Ъ": ("IE", "", ""), "Ы": ("Y",),
    "Ь": ("",), "Э": ("E",), "Ю": ("IU", "YU", "IU"), "Я": ("IA", "YA", "IA"),
    # Other Cyrillic alphabets (Ukrainian, Belarusian, Serbian, Macedonian):
    # from Table B as remembered, not checked here (docs/name-variants.md).
    "Ґ": ("G",), "Є": ("IE", "YE", "IE"), "І": ("I",), "Ї": ("I", "YI", "I"),
    "Ў": ("U",), "Ђ": ("D", "DJ", "D"), "Ј": ("J",), "Љ": ("LJ",),
    "Њ": ("NJ",), "Ћ": ("C",), "Џ": ("DZ",), "Ѕ": ("DZ",), "Ќ": ("K",),
    "Ѓ": ("G",),
}
_CYRILLIC_VOWELS = set("АЕЁИОУЫЭЮЯЄЇІЬЪ")
# Context rules. Word-final -ИЙ/-ЫЙ are often shortened (Юрий: YURI, YURY;
# Чёрный: CHERNY); Е at the start of a word or after a vowel is often YE
# (Евгений: YEVGENIY).
_FINAL_II = ("II", "IY", "II", "I", "Y")
_FINAL_YI = ("YI", "YY", "YI", "Y")
_INITIAL_E = ("E", "YE", "E")

_HYPHENS = "-\u2010\u2011\u2012\u2013\u2014\u2212"

Slot = tuple[str, ...]
Part = str | Slot
# A name as written: words (space-separated) of components (hyphen-separated)
# of parts (literal text or a slot).
Template = list[list[list[Part]]]
# A spelt name: words of A-Z tokens.
Words = list[list[str]]
# One structure of a spelt name: (surname tokens, given-name tokens).
Form = tuple[tuple[str, ...], tuple[str, ...]]


def name_variants(
    surnames: Sequence[str],
    given_names: Sequence[str],
    *,
    original_script: str | None = None,
) -> list[tuple[str, ...]]:
    """Every name set a genuine document of this person may yield, capped.

    Each set is sorted A-Z tokens, the form ``Identity.name_keys()`` makes on
    the device. The list is in a fixed order of plausibility and holds at most
    ``MAX_NAME_VARIANTS`` sets.
    """
    templates = [(_template(_as_list(surnames)), _template(_as_list(given_names)))]
    if original_script and original_script.strip():
        templates.append(_split_original(original_script))
    consistent, mixed = _spellings(templates)
    forms = itertools.chain(
        _diagonal([_structures(s, g) for s, g in consistent]),
        _diagonal([_structures(s, g) for s, g in mixed]),
    )
    out: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for surname_tokens, given_tokens in forms:
        ident = Identity(DocumentClass.PASSPORT, None, None, surname_tokens, given_tokens, None)
        for key in ident.name_keys():
            if key not in seen:
                seen.add(key)
                out.append(key)
                if len(out) == MAX_NAME_VARIANTS:
                    return out
    return out


def person_tokens_for_entry(
    key: bytes,
    surnames: Sequence[str],
    given_names: Sequence[str],
    date_of_birth: date,
    *,
    original_script: str | None = None,
) -> list[bytes]:
    """The person tokens of one entry under one list key, one per name variant."""
    tokens: list[bytes] = []
    for names in name_variants(surnames, given_names, original_script=original_script):
        token = person_token(key, names, date_of_birth)
        if token not in tokens:
            tokens.append(token)
    return tokens


def _as_list(names: Sequence[str] | str) -> list[str]:
    # A bare string is a Sequence[str] too; it means one name, not letters.
    return [names] if isinstance(names, str) else [n for n in names if n]


def _split_original(text: str) -> tuple[Template, Template]:
    """Surnames and given names from an original-script name.

    "Surnames, Given names" when there is a comma; otherwise the first word is
    the surname, as in the East Slavic official order (Фамилия Имя Отчество).
    """
    if "," in text:
        surname, given = text.split(",", 1)
        return _template([surname]), _template([given])
    words = text.split()
    return _template(words[:1]), _template(words[1:])


def _template(names: Sequence[str]) -> Template:
    words: Template = []
    for name in names:
        for word in name.replace("<", " ").replace(",", " ").split():
            components = [_parts(c) for c in _split_hyphens(word) if c]
            if components:
                words.append(components)
    return words


def _split_hyphens(word: str) -> list[str]:
    for hyphen in _HYPHENS[1:]:
        word = word.replace(hyphen, "-")
    return word.split("-")


def _parts(component: str) -> list[Part]:
    text = component.upper()
    parts: list[Part] = []
    i = 0
    while i < len(text):
        ch = text[i]
        rest = text[i:]
        if rest == "ИЙ":
            parts.append(_FINAL_II)
            break
        if rest == "ЫЙ":
            parts.append(_FINAL_YI)
            break
        if ch == "Е" and (i == 0 or text[i - 1] in _CYRILLIC_VOWELS):
            parts.append(_INITIAL_E)
        elif ch in _LATIN:
            parts.append(_LATIN[ch])
        elif ch in _CYRILLIC:
            parts.append(_CYRILLIC[ch])
        else:
            parts.append(ch)
        i += 1
    return parts


def _slots(template: Template) -> list[Slot]:
    return [p for word in template for comp in word for p in comp if isinstance(p, tuple)]


def _render(template: Template, choices: Iterator[str]) -> Words:
    """Spell a template, taking one option per slot from ``choices`` in order."""
    words: Words = []
    for word in template:
        tokens: list[str] = []
        for comp in word:
            text = "".join(p if isinstance(p, str) else next(choices) for p in comp)
            tokens.extend(normalise_name(text))
        if tokens:
            words.append(tokens)
    return words


def _spellings(
    templates: list[tuple[Template, Template]],
) -> tuple[list[tuple[Words, Words]], list[tuple[Words, Words]]]:
    """Spellings of every template: scheme-consistent ones, then mixtures.

    A real document uses one scheme throughout, so the consistent spellings
    come first and are all expanded before any mixture. The mixed product
    (first ``MAX_MIXED_SPELLINGS`` per template, in itertools.product order)
    follows for documents that mix schemes.
    """
    seen: list[tuple[Words, Words]] = []

    def spell(surnames: Template, given: Template, picks: Sequence[str]) -> list[tuple[Words, Words]]:
        n = len(_slots(surnames))
        spelt = (_render(surnames, iter(picks[:n])), _render(given, iter(picks[n:])))
        if not (spelt[0] or spelt[1]) or spelt in seen:
            return []
        seen.append(spelt)
        return [spelt]

    consistent: list[tuple[Words, Words]] = []
    for scheme in range(_SCHEMES):
        for surnames, given in templates:
            slots = _slots(surnames) + _slots(given)
            consistent += spell(surnames, given, [s[scheme] if scheme < len(s) else s[0] for s in slots])
    mixed: list[tuple[Words, Words]] = []
    for surnames, given in templates:
        slots = _slots(surnames) + _slots(given)
        options = [list(dict.fromkeys(s)) for s in slots]
        for picks in itertools.islice(itertools.product(*options), MAX_MIXED_SPELLINGS):
            mixed += spell(surnames, given, picks)
    return consistent, mixed


def _structures(surnames: Words, given: Words) -> list[Form]:
    """Joined and split forms of one spelling, as (surnames, given names) tokens.

    Split is the ICAO form (hyphens and spaces separate names); documents also
    join hyphenated parts (JEANPAUL), multi-word given names or surnames
    (XIAOMING, DELACRUZ), a short name altogether (ZHANGWEI, either order),
    or swap the surname and given name fields.
    """
    s_split = tuple(t for w in surnames for t in w)
    g_split = tuple(t for w in given for t in w)
    s_hyph = tuple("".join(w) for w in surnames)
    g_hyph = tuple("".join(w) for w in given)
    s_one = ("".join(s_split),) if s_split else ()
    g_one = ("".join(g_split),) if g_split else ()
    forms: list[Form] = [
        (s_split, g_split),
        (s_hyph, g_hyph),
        (s_split, g_one),
        (s_one, g_split),
        (s_one, g_one),
    ]
    if s_split and g_split and len(s_split) + len(g_split) <= MAX_TOKENS_TO_JOIN_ALL:
        forms.append((("".join(s_split + g_split),), ()))
        forms.append((("".join(g_split + s_split),), ()))
    forms.append((g_split, s_split))
    return list(dict.fromkeys(forms))


def _diagonal(rows: list[list[Form]]) -> Iterator[Form]:
    """Row i, column j in order of i + j: spellings and structures advance together."""
    width = max((len(r) for r in rows), default=0)
    for total in range(len(rows) + width):
        for i in range(max(0, total - width + 1), min(total, len(rows) - 1) + 1):
            j = total - i
            if j < len(rows[i]):
                yield rows[i][j]
