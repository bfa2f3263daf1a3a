"""Turning a keyboard-wedge scanner's key events back into the characters it meant.

A wedge scanner pretends to be a keyboard: for every character of the
barcode it presses the key that produces that character *on the layout it
was configured for*, with Shift or AltGr as needed. Control characters have
no key of their own, so scanners send them the way terminals always have:
Ctrl plus the character 0x40 above it (ASCII, ANSI X3.4-1986 / ISO 646 and
ECMA-48 "caret notation"): Ctrl+^ = RS (0x1E), Ctrl+] = GS (0x1D), Ctrl+M =
CR, Ctrl+J = LF. This is how AAMVA separators arrive in keyboard mode.

The layouts are data (:data:`LAYOUTS`): each maps an evdev key code to the
character it types plain, with Shift, and with AltGr. Decoding is therefore
the same code for every layout; adding one is adding a table.

This module is pure: :class:`KeyDecoder` takes key events one at a time and
keeps only the modifier, CapsLock and dead-key state.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Mapping

from evdev import ecodes as e

#: A key's characters: (plain, Shift, AltGr); None where the level types nothing.
Levels = tuple[str | None, str | None, str | None]

KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2  # evdev EV_KEY values (linux/input.h)

SHIFT_KEYS = frozenset({e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT})
CTRL_KEYS = frozenset({e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL})
ALT_KEYS = frozenset({e.KEY_LEFTALT})  # KEY_RIGHTALT is AltGr where the layout has one
META_KEYS = frozenset({e.KEY_LEFTMETA, e.KEY_RIGHTMETA})
ENTER_KEYS = frozenset({e.KEY_ENTER, e.KEY_KPENTER})
#: Keys whose state is ignored (scanners and hosts toggle them; they type nothing).
IGNORED_KEYS = frozenset({e.KEY_NUMLOCK, e.KEY_SCROLLLOCK})


def _row(codes: list[int], plain: str, shifted: str) -> dict[int, Levels]:
    """A keyboard row: the i-th key types plain[i], and shifted[i] with Shift."""
    assert len(codes) == len(plain) == len(shifted)
    return {code: (p, s, None) for code, p, s in zip(codes, plain, shifted)}


_DIGITS = [e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0]
_LETTERS = {c: getattr(e, f"KEY_{c.upper()}") for c in "abcdefghijklmnopqrstuvwxyz"}

#: Keys every layout shares: the keypad (NumLock on, as scanners assume),
#: space, and the keys scanners use for HT, ESC and BS in "function key" mode.
_COMMON: dict[int, Levels] = {
    e.KEY_SPACE: (" ", " ", None),
    e.KEY_TAB: ("\t", None, None),
    e.KEY_ESC: ("\x1b", None, None),
    e.KEY_BACKSPACE: ("\x08", None, None),
    e.KEY_KP0: ("0", None, None), e.KEY_KP1: ("1", None, None), e.KEY_KP2: ("2", None, None),
    e.KEY_KP3: ("3", None, None), e.KEY_KP4: ("4", None, None), e.KEY_KP5: ("5", None, None),
    e.KEY_KP6: ("6", None, None), e.KEY_KP7: ("7", None, None), e.KEY_KP8: ("8", None, None),
    e.KEY_KP9: ("9", None, None), e.KEY_KPDOT: (".", None, None),
    e.KEY_KPSLASH: ("/", None, None), e.KEY_KPASTERISK: ("*", None, None),
    e.KEY_KPMINUS: ("-", None, None), e.KEY_KPPLUS: ("+", None, None),
}

#: US English (ANSI, plus the ISO 102nd key), the usual factory default of scanners.
_US: dict[int, Levels] = {
    **_COMMON,
    **{code: (c, c.upper(), None) for c, code in _LETTERS.items()},
    **_row(_DIGITS, "1234567890", "!@#$%^&*()"),
    **_row([e.KEY_GRAVE, e.KEY_MINUS, e.KEY_EQUAL, e.KEY_LEFTBRACE, e.KEY_RIGHTBRACE,
            e.KEY_BACKSLASH, e.KEY_SEMICOLON, e.KEY_APOSTROPHE, e.KEY_COMMA, e.KEY_DOT,
            e.KEY_SLASH, e.KEY_102ND],
           "`-=[]\\;',./\\", '~_+{}|:"<>?|'),
}

#: German QWERTZ (DIN 2137-1 / the Linux "de" layout): Y and Z swapped,
#: umlauts and ß on the US punctuation keys, different shifted digits, and
#: @ { [ ] } \ ~ | € µ behind AltGr. ^ and the accents are dead keys.
_DE: dict[int, Levels] = {
    **_COMMON,
    **{code: (c, c.upper(), None) for c, code in _LETTERS.items()},
    e.KEY_Y: ("z", "Z", None), e.KEY_Z: ("y", "Y", None),
    e.KEY_Q: ("q", "Q", "@"), e.KEY_E: ("e", "E", "€"), e.KEY_M: ("m", "M", "µ"),
    e.KEY_1: ("1", "!", "¹"), e.KEY_2: ("2", '"', "²"), e.KEY_3: ("3", "§", "³"),
    e.KEY_4: ("4", "$", "¼"), e.KEY_5: ("5", "%", "½"), e.KEY_6: ("6", "&", "¬"),
    e.KEY_7: ("7", "/", "{"), e.KEY_8: ("8", "(", "["), e.KEY_9: ("9", ")", "]"),
    e.KEY_0: ("0", "=", "}"), e.KEY_MINUS: ("ß", "?", "\\"), e.KEY_EQUAL: ("´", "`", None),
    e.KEY_GRAVE: ("^", "°", None), e.KEY_LEFTBRACE: ("ü", "Ü", None),
    e.KEY_RIGHTBRACE: ("+", "*", "~"), e.KEY_SEMICOLON: ("ö", "Ö", None),
    e.KEY_APOSTROPHE: ("ä", "Ä", None), e.KEY_BACKSLASH: ("#", "'", None),
    e.KEY_102ND: ("<", ">", "|"), e.KEY_COMMA: (",", ";", None), e.KEY_DOT: (".", ":", None),
    e.KEY_SLASH: ("-", "_", None), e.KEY_KPDOT: (",", None, None),
}


@dataclass(frozen=True)
class Layout:
    """One keyboard layout as data.

    ``dead`` maps a dead key's character to the combining mark it puts on the
    next letter (Unicode combining diacritics, U+0300 block); ``has_altgr``
    says whether the right Alt key is AltGr (ISO/IEC 9995-1 level 3).
    """

    name: str
    keys: Mapping[int, Levels]
    dead: Mapping[str, str] = field(default_factory=dict)
    has_altgr: bool = False


LAYOUTS: dict[str, Layout] = {
    "us": Layout("us", _US),
    "de": Layout("de", _DE, dead={"^": "\u0302", "´": "\u0301", "`": "\u0300"}, has_altgr=True),
}


class UnknownLayout(ValueError):
    """A layout name no table exists for."""


def layout_named(name: str) -> Layout:
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise UnknownLayout(f"unknown keyboard layout {name!r}; known: "
                            f"{', '.join(sorted(LAYOUTS))}") from None


def control_character(char: str) -> str | None:
    """The C0 control character Ctrl+``char`` types, per ASCII caret notation.

    Ctrl clears bit 6 of the characters 0x40..0x5F (@ A..Z [ \\ ] ^ _), giving
    0x00..0x1F; lowercase letters map like their capitals; Ctrl+? is DEL.
    """
    if len(char) != 1:
        return None
    code = ord(char)
    if 0x40 <= code <= 0x5F:
        return chr(code - 0x40)
    if 0x61 <= code <= 0x7A:
        return chr(code - 0x60)
    if char == "?":
        return "\x7f"
    if char == " ":
        return "\x00"  # Ctrl+Space, as terminals send NUL
    return None


def key_name(code: int) -> str:
    name = e.KEY.get(code) or e.BTN.get(code) or f"key {code}"
    return name[0] if isinstance(name, list) else name


@dataclass(frozen=True)
class KeyResult:
    """What one key event meant: text typed, the Enter key, or a key we cannot decode."""

    text: str = ""
    enter: bool = False
    unknown: str | None = None


NOTHING = KeyResult()


class KeyDecoder:
    """Decodes one device's EV_KEY events, keeping its modifier state.

    Presses (value 1) type; auto-repeats (value 2) of a character key type it
    again, as a text field would; releases (value 0) only release modifiers.
    CapsLock toggles on press and inverts Shift for letters only.
    """

    def __init__(self, layout: Layout | str = "us") -> None:
        self.layout = layout_named(layout) if isinstance(layout, str) else layout
        self.shift: set[int] = set()
        self.ctrl: set[int] = set()
        self.alt: set[int] = set()
        self.altgr = False
        self.capslock = False
        self._dead: str | None = None  # a dead key waiting for the next character

    def reset(self) -> None:
        """Forget all held keys (the device was reopened)."""
        self.shift.clear()
        self.ctrl.clear()
        self.alt.clear()
        self.altgr = self.capslock = False
        self._dead = None

    def key(self, code: int, value: int) -> KeyResult:
        if self._modifier(code, value) or value == KEY_UP or code in IGNORED_KEYS:
            return NOTHING
        if code == e.KEY_CAPSLOCK:
            if value == KEY_DOWN:
                self.capslock = not self.capslock
            return NOTHING
        if code in ENTER_KEYS:
            return KeyResult(text=self._flush_dead(), enter=True)
        levels = self.layout.keys.get(code)
        if levels is None:
            return KeyResult(text=self._flush_dead(), unknown=self._describe(code))
        char = self._character(levels)
        if self.ctrl:
            control = None if char is None else control_character(char)
            if control is None and char is not None:
                # Terminal convention for keys whose plain character has no
                # control form: Ctrl+2 is Ctrl+@ (NUL), Ctrl+6 is Ctrl+^ (RS),
                # Ctrl+- is Ctrl+_ (US) on US keyboards.
                other = levels[0] if self.shift else levels[1]
                if other is not None and 0x40 <= ord(other[0]) <= 0x5F:
                    control = control_character(other)
            if control is None:
                return KeyResult(text=self._flush_dead(), unknown=self._describe(code))
            return KeyResult(text=self._flush_dead() + control)
        if char is None or self.alt:
            return KeyResult(text=self._flush_dead(), unknown=self._describe(code))
        return KeyResult(text=self._compose(char, levels))

    def _modifier(self, code: int, value: int) -> bool:
        if value == KEY_HOLD and (code in SHIFT_KEYS or code in CTRL_KEYS or code in ALT_KEYS
                                  or code in META_KEYS or code == e.KEY_RIGHTALT):
            return True
        held = value == KEY_DOWN
        if code in SHIFT_KEYS:
            (self.shift.add if held else self.shift.discard)(code)
        elif code in CTRL_KEYS:
            (self.ctrl.add if held else self.ctrl.discard)(code)
        elif code in ALT_KEYS or (code == e.KEY_RIGHTALT and not self.layout.has_altgr):
            (self.alt.add if held else self.alt.discard)(code)
        elif code == e.KEY_RIGHTALT:
            self.altgr = held
        elif code in META_KEYS:
            pass
        else:
            return False
        return True

    def _character(self, levels: Levels) -> str | None:
        if self.altgr:
            return levels[2]
        shifted = bool(self.shift)
        plain = levels[0]
        if self.capslock and plain is not None and plain.islower() and levels[1] == plain.upper():
            shifted = not shifted
        return levels[1] if shifted else plain

    def _compose(self, char: str, levels: Levels) -> str:
        """Apply a pending dead key (ISO/IEC 9995-3 dead diacritics) to ``char``."""
        dead, self._dead = self._dead, None
        if dead is None:
            if char in self.layout.dead:
                self._dead = char
                return ""
            return char
        if char == " " or char == dead:
            return dead  # dead key then space (or itself) types the accent alone
        composed = unicodedata.normalize("NFC", char + self.layout.dead[dead])
        if len(composed) == 1:
            return composed
        if char in self.layout.dead:
            self._dead = char
            return dead
        return dead + char

    def _flush_dead(self) -> str:
        dead, self._dead = self._dead, None
        return dead or ""

    def _describe(self, code: int) -> str:
        held = [name for name, on in (("Ctrl", self.ctrl), ("Alt", self.alt),
                                      ("AltGr", self.altgr), ("Shift", self.shift)) if on]
        return "+".join(held + [key_name(code)])
