"""Green LED, red LED and buzzer at the scanner: the verdict for an operator looking at the passenger.

The counter screen is the authority (docs/counter.md); these are the cue an
operator gets without looking up. Each verdict has its own light *and* its
own sound rhythm, so neither colour nor sound alone carries it (the same rule
as the screen, WCAG 2.1 SC 1.4.1). The table is in docs/scanners.md.

Optional hardware: with no pins configured, without gpiozero, or on a
machine with no GPIO (gpiozero finds no pin factory), :class:`Indicators`
logs one info line and every call does nothing. Patterns play on one
background thread so the daemon's main loop (and its watchdog ping) never
waits for a buzzer; a new pattern cuts the current one short.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass

log = logging.getLogger(__name__)

CLEAR, REFER, DENY, UNREADABLE = "CLEAR", "REFER", "DENY", "UNREADABLE"
#: The appliance did not answer: the scan waits in the daemon's memory.
QUEUED = "QUEUED"


@dataclass(frozen=True)
class Step:
    """One stretch of a pattern: which outputs are on, for how long (seconds)."""

    green: bool
    red: bool
    buzzer: bool
    seconds: float


def _steps(*rows: tuple[int, int, int, float]) -> tuple[Step, ...]:
    return tuple(Step(bool(g), bool(r), bool(b), s) for g, r, b, s in rows)


#: Verdict -> steps (green, red, buzzer, seconds); every output is off after the last step.
#: Light tells the colour, the buzzer's rhythm tells the verdict to someone not looking.
PATTERNS: dict[str, tuple[Step, ...]] = {
    # green on; one short beep
    CLEAR: _steps((1, 0, 1, 0.1), (1, 0, 0, 1.4)),
    # red blinks three times; two short beeps
    REFER: _steps((0, 1, 1, 0.15), (0, 1, 0, 0.15), (0, 0, 1, 0.15), (0, 0, 0, 0.15),
                  (0, 1, 0, 0.3), (0, 0, 0, 0.3), (0, 1, 0, 0.3)),
    # red steady; one long tone
    DENY: _steps((0, 1, 1, 1.0), (0, 1, 0, 2.0)),
    # both lights flash together twice; three quick chirps
    UNREADABLE: _steps((1, 1, 1, 0.05), (1, 1, 0, 0.1), (1, 1, 1, 0.05), (0, 0, 0, 0.1),
                       (1, 1, 1, 0.05), (1, 1, 0, 0.15)),
    # green and red alternate; two long beeps: "wait, the scan is held"
    QUEUED: _steps((1, 0, 1, 0.4), (0, 1, 0, 0.2), (1, 0, 1, 0.4), (0, 1, 0, 0.2), (1, 0, 0, 0.3), (0, 1, 0, 0.3)),
}


class Indicators:
    """The three outputs, or nothing when they are absent; :meth:`show` never blocks.

    ``pins`` are gpiozero pin names (``17``, ``"GPIO17"``, ``"BOARD11"``);
    None leaves that output out. ``tempo`` scales every duration (tests
    play patterns quickly; a device keeps 1.0).
    """

    def __init__(self, green: int | str | None = None, red: int | str | None = None,
                 buzzer: int | str | None = None, *, active_high: bool = True, tempo: float = 1.0) -> None:
        self.tempo = tempo
        self.played: dict[str, int] = {}
        self._outputs: dict[str, object] = {}
        self._wake = threading.Condition()
        self._pending: str | None = None
        self._playing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.available, self.detail = self._attach(green, red, buzzer, active_high)
        if self.available:
            log.info("indicators: %s", self.detail)
            self._thread = threading.Thread(target=self._player, name="indicators", daemon=True)
            self._thread.start()
        else:
            log.info("indicators off: %s", self.detail)

    def _attach(self, green, red, buzzer, active_high: bool) -> tuple[bool, str]:
        wanted = {name: pin for name, pin in (("green", green), ("red", red), ("buzzer", buzzer))
                  if pin is not None}
        if not wanted:
            return False, "no indicator pins configured"
        try:
            import gpiozero
        except ImportError:
            return False, "gpiozero is not installed (pip install 'gatecheck-appliance[hardware]')"
        try:
            with warnings.catch_warnings():  # gpiozero warns for every pin library it falls back from
                warnings.simplefilter("ignore")
                for name, pin in wanted.items():
                    kind = gpiozero.Buzzer if name == "buzzer" else gpiozero.LED
                    self._outputs[name] = kind(pin, active_high=active_high, initial_value=False)
        except gpiozero.BadPinFactory:
            self._close_outputs()
            return False, "no GPIO on this machine (gpiozero found no pin factory)"
        except (gpiozero.GPIOZeroError, ValueError) as exc:
            self._close_outputs()
            log.warning("indicators: cannot use the configured pins: %s", exc)
            return False, f"pins unusable: {exc}"
        return True, ", ".join(f"{name} on {pin}" for name, pin in wanted.items())

    # -- the daemon's side ------------------------------------------------------

    def show(self, pattern: str) -> None:
        """Start ``pattern`` (a verdict or QUEUED), cutting short whatever plays; unknown names are ignored."""
        if pattern not in PATTERNS:
            return
        self.played[pattern] = self.played.get(pattern, 0) + 1
        if not self.available:
            return
        with self._wake:
            self._pending = pattern
            self._wake.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing plays or is pending (tests, and a clean stop)."""
        with self._wake:
            return self._wake.wait_for(lambda: self._pending is None and not self._playing, timeout)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._pending = None
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_outputs()

    def status(self) -> dict:
        return {"available": self.available, "detail": self.detail, "played": dict(self.played)}

    # -- the player thread ------------------------------------------------------

    def _player(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                pattern, self._pending = self._pending, None
                self._playing = True
            try:
                self._play(PATTERNS[pattern])
            finally:
                with self._wake:
                    follows = self._pending is not None and not self._closed
                if not follows:  # a pattern cut short goes straight into the next one
                    self._set(False, False, False)
                with self._wake:
                    self._playing = False
                    self._wake.notify_all()

    def _play(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            self._set(step.green, step.red, step.buzzer)
            with self._wake:
                if self._wake.wait_for(lambda: self._pending is not None or self._closed,
                                       step.seconds * self.tempo):
                    return  # cut short by the next pattern

    def _set(self, green: bool, red: bool, buzzer: bool) -> None:
        for name, on in (("green", green), ("red", red), ("buzzer", buzzer)):
            device = self._outputs.get(name)
            if device is not None and device.is_active != on:  # type: ignore[attr-defined]
                device.on() if on else device.off()  # type: ignore[attr-defined]

    def _close_outputs(self) -> None:
        for device in self._outputs.values():
            try:
                device.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - closing a pin that failed half-way must not mask why
                pass
        self._outputs.clear()
