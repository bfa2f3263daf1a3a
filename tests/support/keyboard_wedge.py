"""A keyboard-wedge scanner, simulated: turns payload bytes into the evdev events it would send.

The machine running the tests has no scanner and no /dev/uinput, so this is
the hardware stand-in. Its layouts are written independently of
hardware/keymap.py (as physical keyboard rows, the way the layouts are
printed on keycaps), so a round trip tests the decoder against a second
description rather than against itself.

Control bytes are typed as Ctrl plus the character 0x40 above them, the way
scanners in "Ctrl+character" mode send them: RS = Ctrl+^ (Ctrl+Shift+6 on a
US layout, Ctrl+^ key on German), GS = Ctrl+], CR = Ctrl+M, LF = Ctrl+J.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from dataclasses import dataclass

from evdev import InputEvent, ecodes as e

SHIFT, ALTGR = "shift", "altgr"

_ROW1 = [e.KEY_GRAVE, e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8,
         e.KEY_9, e.KEY_0, e.KEY_MINUS, e.KEY_EQUAL]
_ROW2 = [e.KEY_Q, e.KEY_W, e.KEY_E, e.KEY_R, e.KEY_T, e.KEY_Y, e.KEY_U, e.KEY_I, e.KEY_O,
         e.KEY_P, e.KEY_LEFTBRACE, e.KEY_RIGHTBRACE, e.KEY_BACKSLASH]
_ROW3 = [e.KEY_A, e.KEY_S, e.KEY_D, e.KEY_F, e.KEY_G, e.KEY_H, e.KEY_J, e.KEY_K, e.KEY_L,
         e.KEY_SEMICOLON, e.KEY_APOSTROPHE, e.KEY_BACKSLASH]
_ROW4 = [e.KEY_102ND, e.KEY_Z, e.KEY_X, e.KEY_C, e.KEY_V, e.KEY_B, e.KEY_N, e.KEY_M,
         e.KEY_COMMA, e.KEY_DOT, e.KEY_SLASH]

#: (row keys, plain, shifted, altgr); a space in altgr means nothing there.
_PRINTED = {
    "us": [
        (_ROW1, "`1234567890-=", "~!@#$%^&*()_+", ""),
        (_ROW2, "qwertyuiop[]\\", "QWERTYUIOP{}|", ""),
        (_ROW3[:11], "asdfghjkl;'", 'ASDFGHJKL:"', ""),
        (_ROW4[1:], "zxcvbnm,./", "ZXCVBNM<>?", ""),
    ],
    "de": [
        (_ROW1, "^1234567890ß´", '°!"§$%&/()=?`', "  ²³   {[]}\\ "),
        (_ROW2[:12], "qwertzuiopü+", "QWERTZUIOPÜ*", "@ €        ~"),
        (_ROW3, "asdfghjklöä#", "ASDFGHJKLÖÄ'", ""),
        (_ROW4, "<yxcvbnm,.-", ">YXCVBNM;:_", "|      µ"),
    ],
}
_DEAD = {"us": "", "de": "^´`"}
#: Combining mark -> the dead key that puts it on the next letter.
_DEAD_MARKS = {"us": {}, "de": {"\u0302": "^", "\u0301": "´", "\u0300": "`"}}


def keys_for(layout: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Character -> (key code, modifiers) for one printed layout."""
    table: dict[str, tuple[int, tuple[str, ...]]] = {" ": (e.KEY_SPACE, ())}
    for codes, plain, shifted, altgr in _PRINTED[layout]:
        for i, code in enumerate(codes):
            for chars, mods in ((plain, ()), (shifted, (SHIFT,)), (altgr, (ALTGR,))):
                if i < len(chars) and chars[i] != " ":
                    table.setdefault(chars[i], (code, mods))
    return table


@dataclass
class Typist:
    """Types like a wedge scanner programmed for ``layout``.

    ``key_seconds`` is the time between events; ``cr_as_enter`` types CR in
    the data as the Enter key instead of Ctrl+M.
    """

    layout: str = "us"
    key_seconds: float = 0.002
    cr_as_enter: bool = False
    start: float = 1_700_000_000.0

    def __post_init__(self) -> None:
        self.keys = keys_for(self.layout)
        self.now = self.start

    def _event(self, type_: int, code: int, value: int) -> InputEvent:
        sec, usec = int(self.now), int(round((self.now % 1) * 1_000_000))
        self.now += self.key_seconds
        return InputEvent(sec, usec, type_, code, value)

    def stroke(self, code: int, mods: tuple[str, ...] = (), ctrl: bool = False) -> list[InputEvent]:
        held = ([e.KEY_LEFTCTRL] if ctrl else []) + [
            {SHIFT: e.KEY_LEFTSHIFT, ALTGR: e.KEY_RIGHTALT}[m] for m in mods]
        events = []
        for mod in held:
            events += [self._event(e.EV_MSC, e.MSC_SCAN, 0x700e0), self._event(e.EV_KEY, mod, 1),
                       self._event(e.EV_SYN, e.SYN_REPORT, 0)]
        events += [self._event(e.EV_KEY, code, 1), self._event(e.EV_SYN, e.SYN_REPORT, 0),
                   self._event(e.EV_KEY, code, 0), self._event(e.EV_SYN, e.SYN_REPORT, 0)]
        for mod in reversed(held):
            events += [self._event(e.EV_KEY, mod, 0), self._event(e.EV_SYN, e.SYN_REPORT, 0)]
        return events

    def type_text(self, text: str) -> list[InputEvent]:
        events: list[InputEvent] = []
        for char in text:
            if char == "\r" and self.cr_as_enter:
                events += self.stroke(e.KEY_ENTER)
            elif char == "\t":
                events += self.stroke(e.KEY_TAB)
            elif ord(char) < 0x20:
                target = chr(ord(char) + 0x40)
                target = target.lower() if target.isalpha() else target
                code, mods = self.keys[target]
                events += self.stroke(code, mods, ctrl=True)
            elif char not in self.keys and len(unicodedata.normalize("NFD", char)) == 2:
                base, mark = unicodedata.normalize("NFD", char)
                dead = _DEAD_MARKS[self.layout][mark]  # KeyError: this layout cannot type it
                events += self.stroke(*self.keys[dead]) + self.stroke(*self.keys[base])
            else:
                code, mods = self.keys[char]
                events += self.stroke(code, mods)
                if char in _DEAD[self.layout]:
                    events += self.stroke(e.KEY_SPACE)  # a dead key alone: then space
        return events

    def type_payload(self, payload: bytes, *, enter: bool = True,
                     encoding: str = "utf-8") -> list[InputEvent]:
        events = self.type_text(payload.decode(encoding))
        return events + (self.stroke(e.KEY_ENTER) if enter else [])

    def pause(self, seconds: float) -> None:
        self.now += seconds


def typeable(layout: str) -> str:
    """Every printable character the layout can type (for property tests)."""
    return "".join(sorted(keys_for(layout)))


class FakeInputDevice:
    """Stands in for evdev.InputDevice (the machine has no input hardware).

    Readiness is a real pipe, so the source's select() loop runs unchanged;
    it records grab/ungrab/close, and ``unplug()`` makes reads fail with
    ENODEV as the kernel does for a removed device.
    """

    def __init__(self, path: str, *, name: str = "Wedge Scanner Keyboard",
                 vendor: int = 0x0C2E, product: int = 0x0B61, uniq: str = "21157B0123") -> None:
        from evdev.device import DeviceInfo

        self.path = path
        self.name = name
        self.phys = "usb-0000:01:00.0-1.3/input0"
        self.uniq = uniq
        self.info = DeviceInfo(bustype=e.BUS_USB, vendor=vendor, product=product, version=0x111)
        self._read_fd, self._write_fd = os.pipe()
        self._queue: list[InputEvent] = []
        self._lock = threading.Lock()
        self.grabbed = False
        self.grabs = 0
        self.ungrabs = 0
        self.closed = False
        self.unplugged = False

    def fileno(self) -> int:
        return self._read_fd

    def grab(self) -> None:
        if self.grabbed:
            raise OSError(16, "Device or resource busy")
        self.grabbed = True
        self.grabs += 1

    def ungrab(self) -> None:
        if self.unplugged:
            raise OSError(19, "No such device")
        self.grabbed = False
        self.ungrabs += 1

    def push(self, events: list[InputEvent]) -> None:
        with self._lock:
            self._queue.extend(events)
        os.write(self._write_fd, b"!")

    def unplug(self) -> None:
        self.unplugged = True
        os.write(self._write_fd, b"!")

    def read(self):
        if self.unplugged:
            raise OSError(19, "No such device")
        os.read(self._read_fd, 4096)
        with self._lock:
            events, self._queue = self._queue, []
        if not events:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        yield from events

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._read_fd)
            os.close(self._write_fd)
