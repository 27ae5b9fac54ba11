"""The vibration motor: a tap on each note, a metronome, and a distinct pattern per alert.

Everything is timed on stream time, like the LEDs: `handle` starts a tap at once, `tick` (once
per ~5.8 ms audio block) ends it and plays metronome beats and alert patterns, so a pulse is
accurate to one block and a `--fast` file run gives the same timeline as real time. The motor
itself is a sink: a gpiozero PWMOutputDevice on the Pi, or a JSON-lines file in the simulator.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from notesight.dsp.events import Alert, Event, NoteOn

from .config import MotorSettings
from .errors import OutputError, explain_os_error
from .outputs import open_simulator_log

log = logging.getLogger(__name__)


class MotorSink(Protocol):
    """Where the motor strength (0..1) goes; only changes are passed on."""

    def set(self, value: float, t: float) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Pulse:
    start_s: float
    end_s: float
    value: float

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


def alert_pulses(pattern: list[int], start_s: float, repeats: int, gap_ms: int) -> list[Pulse]:
    """An alert pattern (ms on, off, on, ...) played `repeats` times, `gap_ms` apart."""
    pulses = []
    t = start_s
    for _ in range(repeats):
        for i, ms in enumerate(pattern):
            if i % 2 == 0:
                pulses.append(Pulse(t, t + ms / 1000.0, 1.0))
            t += ms / 1000.0
        t += gap_ms / 1000.0
    return pulses


class TempoFollower:
    """The tempo played, from the times between note onsets: the median of the recent ones,
    folded by octaves into 40-200 BPM, so quavers and minims give the same beat."""

    def __init__(self, bpm: float, history: int = 8) -> None:
        self.bpm = bpm
        self._onsets: deque[float] = deque(maxlen=history)

    def onset(self, t: float) -> None:
        self._onsets.append(t)
        gaps = [b - a for a, b in itertools.pairwise(self._onsets)]
        gaps = [g for g in gaps if 0.1 <= g <= 2.0]  # chords' spread and long rests say nothing
        if len(gaps) >= 3:
            bpm = 60.0 / statistics.median(gaps)
            while bpm < 40.0:
                bpm *= 2.0
            while bpm > 200.0:
                bpm /= 2.0
            self.bpm = bpm


class Motor:
    """The motor output (name "motor"): taps, metronome and alert patterns into a sink."""

    name = "motor"

    def __init__(self, settings: MotorSettings, sink: MotorSink) -> None:
        self.settings = settings
        self.sink = sink
        self._tap: Pulse | None = None
        self._beat: Pulse | None = None
        self._alert: list[Pulse] = []
        self._alert_label = ""
        self._tempo = TempoFollower(settings.bpm)
        self._next_beat_s: float | None = None
        self._beat_number = 0
        self._value = 0.0
        self._now = 0.0

    # -- events ----------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        s = self.settings
        if isinstance(event, NoteOn):
            t = event.emitted_s
            self._now = max(self._now, t)
            if s.metronome == "follow":
                self._follow(event.onset_s)
            if s.tap:
                strength = s.tap_min + (1.0 - s.tap_min) * min(event.velocity, 127) / 127.0
                self._tap = Pulse(t, t + s.tap_ms / 1000.0, strength)
                self._apply(t)  # at once, like the LEDs
        elif isinstance(event, Alert):
            t = event.stream_s
            self._now = max(self._now, t)
            if event.active:
                patterns = s.alert_patterns
                pattern = patterns.get(event.label) or patterns.get("default") or [500]
                self._alert = alert_pulses(pattern, t, s.alert_repeats, s.alert_gap_ms)
                self._alert_label = event.label
            elif event.label == self._alert_label:
                self._alert = []
            self._apply(t)

    def tick(self, stream_s: float) -> None:
        # Time only goes forward: a note-on's emitted_s is rounded and can be a hair after the
        # block's end, and its tap must not be ended by the tick that follows it.
        self._now = max(self._now, stream_s)
        if self.settings.metronome != "off":
            self._metronome(self._now)
        self._apply(self._now)

    def close(self) -> None:
        try:
            if self._value != 0.0:
                self.sink.set(0.0, self._now)
        finally:
            self.sink.close()

    # -- metronome -------------------------------------------------------------------------
    def _follow(self, onset_s: float) -> None:
        self._tempo.onset(onset_s)
        period = 60.0 / self._tempo.bpm
        # Lock the beat to a note played near it, so the metronome follows the pianist.
        if self._next_beat_s is not None:
            previous = self._next_beat_s - period
            nearest = min((previous, self._next_beat_s), key=lambda b: abs(b - onset_s))
            if abs(nearest - onset_s) < 0.25 * period:
                self._next_beat_s = onset_s + period if nearest <= onset_s else onset_s

    def _metronome(self, t: float) -> None:
        s = self.settings
        if self._next_beat_s is None:
            self._next_beat_s = t
        if t < self._next_beat_s:
            return
        accent = self._beat_number % s.beats_per_bar == 0
        value = 1.0 if accent else s.beat_strength
        self._beat = Pulse(t, t + s.beat_ms / 1000.0, value)
        self._beat_number += 1
        period = 60.0 / (self._tempo.bpm if s.metronome == "follow" else s.bpm)
        self._next_beat_s += period
        if self._next_beat_s <= t:  # after a gap in the audio: go on from now
            self._next_beat_s = t + period

    # -- output ----------------------------------------------------------------------------
    def value_at(self, t: float) -> float:
        if self._alert:
            if t >= self._alert[-1].end_s:
                self._alert = []
            else:
                # An alert owns the motor while it plays: its gaps are part of its pattern.
                return next((p.value for p in self._alert if p.covers(t)), 0.0)
        value = 0.0
        for pulse in (self._tap, self._beat):
            if pulse is not None and pulse.covers(t):
                value = max(value, pulse.value)
        return value

    def _apply(self, t: float) -> None:
        value = round(self.value_at(t), 4)
        if value != self._value:
            self._value = value
            self.sink.set(value, t)


# ---------------------------------------------------------------------------------------------
# Sinks
# ---------------------------------------------------------------------------------------------


class GpioMotorSink:
    """A gpiozero PWMOutputDevice: the PWM duty cycle is the strength."""

    def __init__(self, settings: MotorSettings) -> None:
        self.device = open_pwm(settings.pin, settings.pwm_hz)

    def set(self, value: float, t: float) -> None:
        self.device.value = value

    def close(self) -> None:
        self.device.value = 0.0
        self.device.close()


def open_pwm(pin: int, frequency: int):
    """gpiozero's PWMOutputDevice on a BCM pin, or OutputError with what to do."""
    try:
        from gpiozero import PWMOutputDevice
        from gpiozero.exc import BadPinFactory, GPIOPinInUse, PinError, PinFactoryFallback
    except ImportError:
        raise OutputError(
            "motor: gpiozero is missing: run ./install.sh again (or .venv/bin/pip install gpiozero)"
        ) from None
    try:
        with warnings.catch_warnings():
            # gpiozero warns once per pin library it cannot load; the error below says it all
            warnings.simplefilter("ignore", PinFactoryFallback)
            return PWMOutputDevice(pin, frequency=frequency, initial_value=0.0)
    except BadPinFactory:
        raise OutputError(
            f"motor: no GPIO pins here for GPIO{pin}: on a Raspberry Pi install a pin library "
            "(.venv/bin/pip install 'notesight[pi]'), or set [motor].enabled = false"
        ) from None
    except GPIOPinInUse:
        raise OutputError(
            f"motor: GPIO{pin} is already in use: pick another [motor].pin (check the wiring "
            "of the OLED and LED strip)"
        ) from None
    except PinError as exc:
        raise OutputError(
            f"motor: GPIO{pin} cannot drive the motor ({exc}): check [motor].pin"
        ) from None
    except OSError as exc:
        raise OutputError(
            "motor: " + explain_os_error(exc, "/dev/gpiomem", "GPIO device")
        ) from None


class JsonlMotorSink:
    """The simulator's motor: `{"t": 1.234, "value": 0.8}` per change, t in stream seconds."""

    def __init__(self, path: Path) -> None:
        self._file = open_simulator_log(path, "motor simulator")
        self.changes = 0

    def set(self, value: float, t: float) -> None:
        self._file.write(json.dumps({"t": round(t, 4), "value": value}) + "\n")
        self.changes += 1

    def close(self) -> None:
        self._file.close()
