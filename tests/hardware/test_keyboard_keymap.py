"""keymap.py and WedgeStream: key events as a wedge scanner types them, back to exact bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("evdev")

from evdev import InputEvent, ecodes as e  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hardware.framing import Dropped, Framing  # noqa: E402
from hardware.keyboard_source import WedgeStream  # noqa: E402
from hardware.keymap import (  # noqa: E402
    LAYOUTS, KeyDecoder, UnknownLayout, control_character, layout_named,
)
from tests.support.keyboard_wedge import Typist, typeable  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"
AAMVA = (SAMPLES / "licence-ca.txt").read_bytes()


def _decode(events, layout="us") -> str:
    decoder = KeyDecoder(layout)
    out = []
    for event in events:
        if event.type == e.EV_KEY:
            result = decoder.key(event.code, event.value)
            assert result.unknown is None, result.unknown
            out.append(result.text + ("\n<ENTER>" if result.enter else ""))
    return "".join(out)


def _frames(stream: WedgeStream, events, tail: float = 10.0) -> list:
    out = []
    for event in events:
        out += stream.event(event, event.timestamp())
    return out + stream.poll(events[-1].timestamp() + tail)


# --- the brief's control characters -------------------------------------------------

@pytest.mark.parametrize("combo, byte", [
    ([e.KEY_LEFTCTRL, e.KEY_LEFTSHIFT, e.KEY_6], 0x1E),  # Ctrl+^ = RS
    ([e.KEY_LEFTCTRL, e.KEY_6], 0x1E),  # Ctrl+6: the terminal shorthand for Ctrl+^
    ([e.KEY_RIGHTCTRL, e.KEY_RIGHTBRACE], 0x1D),  # Ctrl+] = GS
    ([e.KEY_LEFTCTRL, e.KEY_M], 0x0D),  # Ctrl+M = CR
    ([e.KEY_LEFTCTRL, e.KEY_J], 0x0A),  # Ctrl+J = LF
    ([e.KEY_LEFTCTRL, e.KEY_LEFTSHIFT, e.KEY_2], 0x00),  # Ctrl+@ = NUL
    ([e.KEY_LEFTCTRL, e.KEY_LEFTBRACE], 0x1B),  # Ctrl+[ = ESC
    ([e.KEY_LEFTCTRL, e.KEY_BACKSLASH], 0x1C),  # Ctrl+\ = FS
    ([e.KEY_LEFTCTRL, e.KEY_LEFTSHIFT, e.KEY_MINUS], 0x1F),  # Ctrl+_ = US
    ([e.KEY_LEFTCTRL, e.KEY_D], 0x04),  # Ctrl+D = EOT
])
def test_ctrl_combination_types_its_c0_control_character(combo, byte):
    decoder = KeyDecoder("us")
    for code in combo[:-1]:
        assert decoder.key(code, 1).text == ""
    assert decoder.key(combo[-1], 1).text == chr(byte)


@pytest.mark.parametrize("char, control", [("@", "\x00"), ("A", "\x01"), ("a", "\x01"),
                                           ("Z", "\x1a"), ("[", "\x1b"), ("^", "\x1e"),
                                           ("]", "\x1d"), ("_", "\x1f"), ("?", "\x7f"),
                                           ("1", None), ("ä", None)])
def test_control_characters_follow_ascii_caret_notation(char, control):
    assert control_character(char) == control


def test_every_c0_control_character_survives_typing_as_ctrl_key():
    controls = "".join(chr(c) for c in range(0x20) if chr(c) != "\t")
    for layout in LAYOUTS:
        assert _decode(Typist(layout).type_text(controls), layout) == controls


def test_german_ctrl_caret_and_ctrl_altgr_bracket_give_rs_and_gs():
    decoder = KeyDecoder("de")
    decoder.key(e.KEY_LEFTCTRL, 1)
    assert decoder.key(e.KEY_GRAVE, 1).text == "\x1e"  # the ^ key, no dead-key wait with Ctrl
    decoder.key(e.KEY_RIGHTALT, 1)
    assert decoder.key(e.KEY_9, 1).text == "\x1d"  # AltGr+9 is ]


# --- shift, capslock, repeat, release, unknown keys ---------------------------------------

def test_left_and_right_shift_both_shift_and_release_unshifts():
    decoder = KeyDecoder("us")
    for shift in (e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT):
        decoder.key(shift, 1)
        assert decoder.key(e.KEY_A, 1).text == "A"
        assert decoder.key(e.KEY_1, 1).text == "!"
        decoder.key(shift, 0)
        assert decoder.key(e.KEY_A, 1).text == "a"


def test_shift_held_with_both_keys_stays_until_both_released():
    decoder = KeyDecoder("us")
    decoder.key(e.KEY_LEFTSHIFT, 1)
    decoder.key(e.KEY_RIGHTSHIFT, 1)
    decoder.key(e.KEY_LEFTSHIFT, 0)
    assert decoder.key(e.KEY_B, 1).text == "B"
    decoder.key(e.KEY_RIGHTSHIFT, 0)
    assert decoder.key(e.KEY_B, 1).text == "b"


def test_capslock_inverts_shift_for_letters_only():
    decoder = KeyDecoder("de")
    decoder.key(e.KEY_CAPSLOCK, 1)
    decoder.key(e.KEY_CAPSLOCK, 2)  # a held CapsLock does not toggle again
    decoder.key(e.KEY_CAPSLOCK, 0)
    assert decoder.key(e.KEY_A, 1).text == "A"
    assert decoder.key(e.KEY_APOSTROPHE, 1).text == "Ä"
    assert decoder.key(e.KEY_1, 1).text == "1"
    assert decoder.key(e.KEY_MINUS, 1).text == "ß"  # ß has no capital on this layout
    decoder.key(e.KEY_LEFTSHIFT, 1)
    assert decoder.key(e.KEY_A, 1).text == "a"
    decoder.key(e.KEY_CAPSLOCK, 1)
    assert decoder.key(e.KEY_A, 1).text == "A"


def test_key_repeat_types_again_but_release_types_nothing():
    decoder = KeyDecoder("us")
    assert decoder.key(e.KEY_X, 1).text == "x"
    assert decoder.key(e.KEY_X, 2).text == "x"
    assert decoder.key(e.KEY_X, 0).text == ""
    decoder.key(e.KEY_LEFTSHIFT, 1)
    decoder.key(e.KEY_LEFTSHIFT, 2)  # a repeating modifier stays a modifier
    assert decoder.key(e.KEY_X, 1).text == "X"


def test_unknown_key_is_reported_and_decoding_goes_on():
    decoder = KeyDecoder("us")
    assert decoder.key(e.KEY_F7, 1).unknown == "KEY_F7"
    assert decoder.key(e.KEY_F7, 0).unknown is None
    decoder.key(e.KEY_LEFTCTRL, 1)
    assert decoder.key(e.KEY_1, 1).unknown == "Ctrl+KEY_1"
    decoder.key(e.KEY_LEFTCTRL, 0)
    assert decoder.key(9999, 1).unknown == "key 9999"
    assert decoder.key(e.KEY_Q, 1).text == "q"


def test_unknown_layout_is_one_clear_error():
    with pytest.raises(UnknownLayout, match="unknown keyboard layout 'fr'; known: de, us"):
        layout_named("fr")


# --- layouts ------------------------------------------------------------------------------

def test_german_layout_swaps_y_and_z_and_moves_symbols():
    text = 'Zürich-Yverdon "Straße" 12/3 (§ 5) @ {a[b]c} \\ ~ | € µ ²'
    assert _decode(Typist("de").type_text(text), "de") == text
    # The same keys read with the US table are a different text: the layout matters.
    assert KeyDecoder("us").key(e.KEY_Y, 1).text == "y"
    assert KeyDecoder("de").key(e.KEY_Y, 1).text == "z"


def test_german_dead_keys_compose_or_stand_alone():
    decoder = KeyDecoder("de")
    assert decoder.key(e.KEY_GRAVE, 1).text == ""  # ^ waits for the next key
    assert decoder.key(e.KEY_A, 1).text == "â"
    decoder.key(e.KEY_GRAVE, 1)
    assert decoder.key(e.KEY_SPACE, 1).text == "^"
    decoder.key(e.KEY_EQUAL, 1)
    assert decoder.key(e.KEY_E, 1).text == "é"
    decoder.key(e.KEY_GRAVE, 1)
    assert decoder.key(e.KEY_1, 1).text == "^1"
    decoder.key(e.KEY_GRAVE, 1)
    assert decoder.key(e.KEY_ENTER, 1).text == "^"


@settings(max_examples=60, deadline=None)
@given(data=st.data(), layout=st.sampled_from(sorted(LAYOUTS)))
def test_any_typeable_text_round_trips(data, layout):
    alphabet = typeable(layout) + "".join(chr(c) for c in range(0x20))
    text = data.draw(st.text(alphabet=alphabet, max_size=60))
    assert _decode(Typist(layout).type_text(text), layout) == text


# --- whole payloads through WedgeStream ------------------------------------------------------

@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_full_aamva_payload_typed_by_a_wedge_arrives_byte_exact(layout):
    events = Typist(layout).type_payload(AAMVA)
    assert _frames(WedgeStream(layout), events) == [AAMVA]


def test_aamva_with_cr_sent_as_enter_needs_timeout_framing():
    events = Typist("us", cr_as_enter=True).type_payload(AAMVA, enter=False)
    by_enter = _frames(WedgeStream("us", enter="end"), events)
    assert len(by_enter) > 1  # Enter ends a read, so the payload is torn
    by_timeout = _frames(WedgeStream("us", enter="cr", framing=Framing(idle_seconds=0.15)), events)
    assert by_timeout == [AAMVA]


def test_enter_framing_separates_back_to_back_scans():
    typist = Typist("us")
    events = (typist.type_payload(b"FIRST") + typist.type_payload(b"second-1")
              + typist.type_payload(AAMVA))
    assert _frames(WedgeStream("us"), events, tail=0.0) == [b"FIRST", b"second-1", AAMVA]


def test_timeout_framing_splits_at_pauses_between_scans():
    typist = Typist("us", key_seconds=0.004)
    events = typist.type_payload(b"M1ABCDEF", enter=False)
    typist.pause(1.0)
    events += typist.type_payload(b"M1GHIJKL", enter=False)
    stream = WedgeStream("us", enter="cr", framing=Framing(idle_seconds=0.15))
    assert _frames(stream, events) == [b"M1ABCDEF", b"M1GHIJKL"]


def test_german_payload_is_utf8_encoded():
    text = "Müller Straße 5, José Côté"  # é and ô typed with the dead keys ´ and ^
    events = Typist("de").type_payload(text.encode())
    assert _frames(WedgeStream("de"), events) == [text.encode("utf-8")]


def test_lost_enter_does_not_glue_a_scan_to_the_next():
    typist = Typist("us")
    events = typist.type_payload(b"partial", enter=False)
    typist.pause(2.0)
    events += typist.type_payload(b"whole")
    assert _frames(WedgeStream("us"), events) == [b"partial", b"whole"]


def test_over_long_typed_read_is_dropped():
    stream = WedgeStream("us", framing=Framing(idle_seconds=None, max_bytes=16))
    out = _frames(stream, Typist("us").type_payload(b"x" * 40))
    assert len(out) == 1 and isinstance(out[0], Dropped)


def test_non_key_events_are_ignored():
    stream = WedgeStream("us")
    events = [InputEvent(0, 0, e.EV_MSC, e.MSC_SCAN, 0x70004), InputEvent(0, 0, e.EV_LED, 1, 1),
              InputEvent(0, 0, e.EV_SYN, e.SYN_REPORT, 0)]
    assert stream.events(events, 0.0) == []
    assert stream.unknown == []


@pytest.mark.parametrize("kwargs, words", [
    ({"enter": "newline"}, "enter must be"),
    ({"enter": "cr", "framing": Framing(idle_seconds=None)}, "never end"),
    ({"encoding": "klingon"}, "unknown encoding"),
])
def test_wedge_options_that_cannot_work_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        WedgeStream("us", **kwargs)
