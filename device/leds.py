"""The LED strip along the keys: which LEDs sit above which key, what colour a key lights in,
and `LedStrip`, the output that turns note, chord and level events into frames for a backend.

Frames are numpy arrays of shape (led_count, 3), RGB, uint8, already scaled by brightness and
gamma; a backend (device/led_backends.py) only reorders and sends them. A note-on is rendered
and handed to the backend at once, inside `handle`, so the struck key lights without waiting
for the next frame; `tick` renders the fades at `fps` on stream time, and only when the picture
changed, so a quiet piano costs no frames.

Two patterns outrank the keys, both unlike any note: an alert flashes the whole strip in its
class's colour until it stops or times out, and a lost microphone (`DeviceStatus.mic_ok`
false) breathes a dim amber dot every 12th LED. The notes go on updating underneath, so the
keys are right again the moment the pattern ends.
"""

from __future__ import annotations

import colorsys
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from notesight.dsp.events import Alert, Chord, Event, Level, NoteOff, NoteOn
from notesight.dsp.music import NOTE_NAMES, PIANO_HIGHEST_MIDI, PIANO_LOWEST_MIDI

from .config import LedSettings

if TYPE_CHECKING:
    from .outputs import DeviceStatus

log = logging.getLogger(__name__)

WHITE_KEY_MM = 23.5  # the width of a white key on a standard piano keyboard
_WHITE_PITCH_CLASSES = (0, 2, 4, 5, 7, 9, 11)
_CHORD_ROOT_RE = re.compile(r"^([A-G])([#b]?)")


# ---------------------------------------------------------------------------------------------
# Key positions and the key -> LED map
# ---------------------------------------------------------------------------------------------


def key_position(midi: int) -> float:
    """Where a key's centre lies, in white-key widths from A0 (A0 = 0, C8 = 51).

    White keys are evenly spaced; a black key sits halfway between its two white neighbours
    (real black keys are a few millimetres off centre, less than an LED at 144 per metre)."""
    whites_below = sum(1 for m in range(PIANO_LOWEST_MIDI, midi) if m % 12 in _WHITE_PITCH_CLASSES)
    if midi % 12 in _WHITE_PITCH_CLASSES:
        return float(whites_below)
    return whites_below - 0.5


C8_POSITION = key_position(PIANO_HIGHEST_MIDI)  # 51.0


@dataclass(frozen=True)
class KeyMap:
    """For each of the 88 keys, the LEDs above it (`first`..`last`, inclusive; none when the
    key lies off the strip) and its centre as a fractional LED index."""

    led_count: int
    centres: dict[int, float]
    spans: dict[int, tuple[int, int]]

    @classmethod
    def from_settings(cls, settings: LedSettings) -> KeyMap:
        return cls.build(
            settings.led_count,
            settings.a0_led,
            settings.c8_led,
            leds_per_metre=settings.leds_per_metre,
            direction=settings.direction,
            offsets=settings.offsets,
        )

    @classmethod
    def build(
        cls,
        led_count: int,
        a0_led: int,
        c8_led: int,
        *,
        leds_per_metre: float = 0.0,
        direction: str = "up",
        offsets: dict[str, int] | None = None,
    ) -> KeyMap:
        midis = range(PIANO_LOWEST_MIDI, PIANO_HIGHEST_MIDI + 1)
        centres = {m: straight_centre(m, a0_led, c8_led, leds_per_metre, direction) for m in midis}
        shift = offset_curve(offsets or {})
        centres = {m: c + shift(key_position(m)) for m, c in centres.items()}
        spans = {m: _span(m, centres, led_count) for m in midis}
        return cls(led_count, centres, spans)

    def leds(self, midi: int) -> range:
        first, last = self.spans.get(midi, (0, -1))
        return range(first, last + 1)

    def unplaced(self) -> list[int]:
        """Keys with no LED (off the end of the strip)."""
        return [m for m, (first, last) in self.spans.items() if last < first]


def straight_centre(
    midi: int, a0_led: int, c8_led: int, leds_per_metre: float, direction: str
) -> float:
    """A key's LED before offsets: evenly between a0_led and c8_led, or by LED density."""
    x = key_position(midi)
    if leds_per_metre > 0:
        sign = 1.0 if direction == "up" else -1.0
        return a0_led + sign * x * WHITE_KEY_MM / 1000.0 * leds_per_metre
    return a0_led + (c8_led - a0_led) * x / C8_POSITION


def offset_curve(offsets: dict[str, int]):
    """The shift at any key position: the listed shifts, straight lines between them, and 0 at
    A0 and C8 unless they are listed."""
    from .config import _note_name_to_midi  # the config's own note-name parser

    anchors = {0.0: 0.0, C8_POSITION: 0.0}
    for name, shift in offsets.items():
        anchors[key_position(_note_name_to_midi(name))] = float(shift)
    xs = sorted(anchors)
    ys = [anchors[x] for x in xs]

    def shift_at(x: float) -> float:
        return float(np.interp(x, xs, ys))

    return shift_at


def _span(midi: int, centres: dict[int, float], led_count: int) -> tuple[int, int]:
    """The LEDs nearer to this key's centre than to its neighbours' (at least the nearest)."""
    c = centres[midi]
    below = centres.get(midi - 1, c - (centres[midi + 1] - c) if midi + 1 in centres else c)
    above = centres.get(midi + 1, c + (c - below))
    lo, hi = sorted(((below + c) / 2.0, (c + above) / 2.0))
    first, last = math.ceil(lo), math.ceil(hi) - 1
    if first > last:  # more keys than LEDs here: the nearest LED, shared with a neighbour
        first = last = round(c)
    first, last = max(first, 0), min(last, led_count - 1)
    return (first, last) if first <= last else (0, -1)


# ---------------------------------------------------------------------------------------------
# Colours
# ---------------------------------------------------------------------------------------------

Rgb = tuple[float, float, float]  # 0..1 per channel, before brightness and gamma


def hex_to_rgb(text: str) -> Rgb:
    value = int(text.lstrip("#"), 16)
    return ((value >> 16) / 255.0, ((value >> 8) & 0xFF) / 255.0, (value & 0xFF) / 255.0)


def key_colour(scheme: str, midi: int, velocity: int, single: Rgb) -> Rgb:
    """The colour of a struck key under a colour scheme."""
    if scheme == "pitch_class":
        return colorsys.hsv_to_rgb((midi % 12) / 12.0, 1.0, 1.0)
    if scheme == "octave":
        octave = (midi - PIANO_LOWEST_MIDI + 9) // 12  # A0-B0 is octave 0, C8 octave 8
        return colorsys.hsv_to_rgb(octave / 9.0, 1.0, 1.0)
    if scheme == "velocity":
        # Soft is blue (hue 2/3), loud is red (hue 0), through cyan, green and yellow.
        loudness = min(max(velocity, 0), 127) / 127.0
        return colorsys.hsv_to_rgb((1.0 - loudness) * 2.0 / 3.0, 1.0, 1.0)
    return single


def tuning_tint(colour: Rgb, cents: float, in_tune_cents: float) -> Rgb:
    """Mix towards red for a sharp note, towards blue for a flat one; up to 70 % at 50 cents."""
    off = abs(cents) - in_tune_cents
    if off <= 0:
        return colour
    amount = 0.7 * min(off / max(50.0 - in_tune_cents, 1e-6), 1.0)
    target = (1.0, 0.0, 0.0) if cents > 0 else (0.0, 0.0, 1.0)
    return tuple(c + (t - c) * amount for c, t in zip(colour, target, strict=True))  # type: ignore[return-value]


def chord_root(name: str, midis: tuple[int, ...]) -> int | None:
    """The key whose colour a chord shares: its named root (lowest such key), else its lowest."""
    if not midis:
        return None
    match = _CHORD_ROOT_RE.match(name)
    if match:
        pitch_class = NOTE_NAMES.index(match[1]) + {"": 0, "#": 1, "b": -1}[match[2]]
        roots = [m for m in midis if m % 12 == pitch_class % 12]
        if roots:
            return min(roots)
    return min(midis)


# ---------------------------------------------------------------------------------------------
# The renderer
# ---------------------------------------------------------------------------------------------


@dataclass
class _Light:
    colour: Rgb
    started_s: float
    peak_db: float | None = None  # the loudest level heard since it started
    ended_s: float | None = None  # when its note ended: the release fade starts there


class FrameRenderer:
    """The lit keys and how bright each is now; `render(t)` gives the frame at stream time t.

    The light follows the sound: a key's brightness falls with the level below its loudest
    (dark at `fade_db` under it), so a held or pedalled note stays lit while it rings, and fades
    out over `release_s` once its note has ended. The level is the whole microphone signal: the
    listening core is monophonic, so the sounding note is the one that makes it. With chords
    (polyphonic events) every chord tone follows the same level relative to its own start.
    """

    def __init__(self, settings: LedSettings, keymap: KeyMap | None = None) -> None:
        self.settings = settings
        self.keymap = keymap or KeyMap.from_settings(settings)
        self._single = hex_to_rgb(settings.colour)
        self._notes: dict[int, _Light] = {}
        self._chord: dict[int, _Light] = {}
        self._chord_colour: Rgb | None = None
        self._level_db: float | None = None
        self._last_velocity = 100
        self._dark = np.zeros((self.keymap.led_count, 3), np.uint8)

    # -- state ------------------------------------------------------------------------------
    def note_on(self, event: NoteOn) -> None:
        s = self.settings
        colour = key_colour(s.colour_scheme, event.midi, event.velocity, self._single)
        if s.tuning_tint:
            colour = tuning_tint(colour, event.cents, s.in_tune_cents)
        self._notes[event.midi] = _Light(colour, event.emitted_s)
        self._last_velocity = event.velocity

    def note_off(self, event: NoteOff) -> None:
        light = self._notes.get(event.midi)
        if light is not None and light.ended_s is None:
            light.ended_s = event.emitted_s

    def chord(self, event: Chord) -> None:
        new = set(event.midis)
        for midi, light in self._chord.items():
            if midi not in new and light.ended_s is None:
                light.ended_s = event.stream_s
        s = self.settings
        root = chord_root(event.name, event.midis)
        self._chord_colour = (
            key_colour(s.colour_scheme, root, self._last_velocity, self._single)
            if root is not None and s.chord_shared_colour
            else None
        )
        for midi in new:
            held = self._chord.get(midi)
            if held is None or held.ended_s is not None:
                colour = key_colour(s.colour_scheme, midi, self._last_velocity, self._single)
                self._chord[midi] = _Light(colour, event.stream_s)

    def level(self, event: Level) -> None:
        self._level_db = event.dbfs
        for light in (*self._notes.values(), *self._chord.values()):
            if light.ended_s is None and event.stream_s >= light.started_s:
                light.peak_db = (
                    event.dbfs if light.peak_db is None else max(light.peak_db, event.dbfs)
                )

    @property
    def idle(self) -> bool:
        return not self._notes and not self._chord

    # -- drawing ----------------------------------------------------------------------------
    def gain(self, light: _Light, t: float) -> float:
        s = self.settings
        gain = 1.0
        if light.peak_db is not None and self._level_db is not None:
            gain = min(max(1.0 - (light.peak_db - self._level_db) / s.fade_db, 0.0), 1.0)
        if light.ended_s is not None:
            if s.release_s <= 0 or t >= light.ended_s + s.release_s:
                return 0.0
            gain *= min(max(1.0 - (t - light.ended_s) / s.release_s, 0.0), 1.0)
        return gain

    def render(self, t: float) -> np.ndarray:
        """The frame at stream time t: uint8 RGB per LED, after brightness and gamma."""
        self._forget_faded(t)
        if self.idle:
            return self._dark
        linear = np.zeros((self.keymap.led_count, 3), np.float32)
        shared = self._chord_colour
        for lights, in_chord in ((self._chord, True), (self._notes, False)):
            for midi, light in lights.items():
                colour = light.colour
                if shared is not None and (in_chord or midi in self._chord):
                    colour = shared
                leds = self.keymap.leds(midi)
                if not leds:
                    continue
                value = np.asarray(colour, np.float32) * self.gain(light, t)
                block = linear[leds.start : leds.stop]
                np.maximum(block, value, out=block)  # a key lit twice shows its brighter light
        s = self.settings
        scaled = np.power(linear * s.brightness, s.gamma) * 255.0 + 0.5
        return scaled.astype(np.uint8)

    def _forget_faded(self, t: float) -> None:
        release = self.settings.release_s
        for lights in (self._notes, self._chord):
            done = [
                m
                for m, li in lights.items()
                if li.ended_s is not None and t >= li.ended_s + release
            ]
            for midi in done:
                del lights[midi]


# ---------------------------------------------------------------------------------------------
# Patterns that outrank the keys: alerts and the lost microphone
# ---------------------------------------------------------------------------------------------

# An alert flashes the whole strip (no note lights more than a few LEDs) on and off at 2 Hz:
# noticeable from across the room, and under the 3 flashes a second that photosensitivity
# guidelines (WCAG 2.3.1) set as the limit.
ALERT_FLASH_HZ = 2.0
# How long the strip shows an alert when no Alert(active=False) comes for it (the classifier
# sends one after [alerts].timeout_s, whose default this is; feedback.py passes the setting).
ALERT_TIMEOUT_S = 30.0
# One colour per alert class, as far apart as nine colours can be; the most urgent (smoke
# alarm, siren) are the two reds-and-blues of emergency lights.
ALERT_COLOURS: dict[str, Rgb] = {
    "smoke_alarm": (1.0, 0.0, 0.0),  # red
    "siren": (0.0, 0.0, 1.0),  # blue
    "doorbell": (0.0, 1.0, 0.0),  # green
    "knock": (1.0, 1.0, 0.0),  # yellow
    "baby_cry": (1.0, 0.0, 1.0),  # magenta
    "dog_bark": (1.0, 0.4, 0.0),  # orange
    "phone_ring": (0.0, 1.0, 1.0),  # cyan
    "glass_break": (1.0, 1.0, 1.0),  # white
    "water_running": (0.4, 0.0, 1.0),  # violet
}
ALERT_DEFAULT_COLOUR: Rgb = (1.0, 1.0, 1.0)  # a class added later without a colour here

# No microphone: a slow, dim breath of amber dots, calm rather than alarming (the pianist can
# do nothing at the piano about it), too sparse and too dim to look like a lit key.
NO_MIC_COLOUR: Rgb = (1.0, 0.75, 0.0)  # amber
NO_MIC_SPACING = 12  # every 12th LED, from the first
NO_MIC_PEAK = 0.10  # of full drive, after gamma (and never above the brightest key)
NO_MIC_FLOOR = 0.2  # of the peak, at the bottom of a breath: the dots never vanish
NO_MIC_BREATH_S = 4.0  # one breath in and out


def alert_colour(label: str) -> Rgb:
    return ALERT_COLOURS.get(label, ALERT_DEFAULT_COLOUR)


def alert_frame(settings: LedSettings, label: str, since_s: float, t: float) -> np.ndarray:
    """The whole strip in the alert's colour for the first half of each flash, dark for the
    second; at the strip's brightness and gamma (a whole strip at full white would draw
    more current than the supply chosen for the keys may give)."""
    led_count = settings.led_count
    phase = math.floor(max(t - since_s, 0.0) * ALERT_FLASH_HZ * 2.0)
    if phase % 2:
        return np.zeros((led_count, 3), np.uint8)
    linear = np.asarray(alert_colour(label), np.float32) * settings.brightness
    value = (np.power(linear, settings.gamma) * 255.0 + 0.5).astype(np.uint8)
    return np.tile(value, (led_count, 1))


def no_mic_frame(settings: LedSettings, lost_s: float, t: float) -> np.ndarray:
    """Amber dots every NO_MIC_SPACING LEDs breathing between NO_MIC_FLOOR and 1 of the peak,
    starting dim at the moment the microphone was lost."""
    peak = min(NO_MIC_PEAK, settings.brightness**settings.gamma)
    breath = (1.0 - math.cos(2.0 * math.pi * max(t - lost_s, 0.0) / NO_MIC_BREATH_S)) / 2.0
    level = peak * (NO_MIC_FLOOR + (1.0 - NO_MIC_FLOOR) * breath)
    frame = np.zeros((settings.led_count, 3), np.uint8)
    # floor, not round: the brightest dot stays at or under NO_MIC_PEAK of full drive
    frame[::NO_MIC_SPACING] = (np.asarray(NO_MIC_COLOUR) * level * 255.0).astype(np.uint8)
    return frame


class ActiveAlerts:
    """The alerts the strip shows: each from its Alert(active=True) until its
    Alert(active=False) or `timeout_s` later; the newest one is drawn."""

    def __init__(self, timeout_s: float = ALERT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._started: dict[str, float] = {}  # label -> stream second, oldest first

    def handle(self, event: Alert) -> None:
        self._started.pop(event.label, None)  # a repeated alert moves to the front, timer anew
        if event.active:
            self._started[event.label] = event.stream_s

    def current(self, t: float) -> tuple[str, float] | None:
        """The newest alert still up at stream time t, as (label, started_s), or None."""
        expired = [k for k, start in self._started.items() if t >= start + self.timeout_s]
        for label in expired:
            del self._started[label]
        if not self._started:
            return None
        label = next(reversed(self._started))
        return label, self._started[label]


# ---------------------------------------------------------------------------------------------
# The output
# ---------------------------------------------------------------------------------------------


class LedBackend(Protocol):
    """Where frames go (device/led_backends.py). `show` must not block the audio loop for
    long: slow devices hand the frame to their own thread. `keepalive_s`: resend an unchanged
    frame this often (None: never), for receivers that time out without frames (WLED)."""

    name: str
    keepalive_s: float | None

    def show(self, frame: np.ndarray, t: float) -> None: ...

    def close(self) -> None: ...


class LedStrip:
    """The LED output: events in, frames to the backend (at once for a note-on, else at fps).

    What it shows, first that applies: an active alert (`ActiveAlerts`; which classes reach
    the strip is [alerts].leds, applied by the daemon), the no-microphone pattern while
    `status.mic_ok` is false, else the keys."""

    name = "leds"

    def __init__(
        self,
        settings: LedSettings,
        backend: LedBackend,
        status: DeviceStatus | None = None,
        *,
        alert_timeout_s: float = ALERT_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.renderer = FrameRenderer(settings)
        self.backend = backend
        self.status = status
        self.alerts = ActiveAlerts(alert_timeout_s)
        self._mic_lost_s: float | None = None  # when the no-mic pattern started
        self._period_s = 1.0 / settings.fps
        self._next_frame_s = 0.0
        self._now = 0.0
        self._shown: np.ndarray | None = None
        self._shown_at = -math.inf
        self.frames = 0
        unplaced = self.renderer.keymap.unplaced()
        if unplaced:
            log.warning(
                "LED strip: %d keys lie off the strip (led_count %d): check a0_led, c8_led and "
                "offsets in [leds], or run `notesight calibrate-leds`",
                len(unplaced),
                settings.led_count,
            )

    def handle(self, event: Event) -> None:
        renderer = self.renderer
        if isinstance(event, NoteOn):
            renderer.note_on(event)
            self._now = max(self._now, event.emitted_s)
            self._show(self._now)  # at once: the struck key must not wait for the next frame
        elif isinstance(event, NoteOff):
            renderer.note_off(event)
        elif isinstance(event, Level):
            renderer.level(event)
        elif isinstance(event, Chord):
            renderer.chord(event)
            self._now = max(self._now, event.stream_s)
            self._show(self._now)
        elif isinstance(event, Alert):
            self.alerts.handle(event)
            self._now = max(self._now, event.stream_s)
            self._show(self._now)  # an alert starts (or ends) at once, like a note

    def tick(self, stream_s: float) -> None:
        self._now = max(self._now, stream_s)
        if stream_s < self._next_frame_s:
            return
        # Frames on a fixed schedule (not "period after the last tick"), so ticks every 5.8 ms
        # still give `fps` frames a second on average; after a long gap it restarts from now.
        self._next_frame_s += self._period_s
        if self._next_frame_s <= stream_s:
            self._next_frame_s = stream_s + self._period_s
        self._show(self._now)  # never before a note-on already shown (its time is rounded)

    def render(self, t: float) -> np.ndarray:
        """The frame at stream time t: the alert, else the no-mic pattern, else the keys.

        A note-on under a pattern changes only the renderer's state, so the pattern goes on
        undisturbed (the frame comes out unchanged and is not sent)."""
        alert = self.alerts.current(t)
        # One bool read needs no snapshot(): that is for fields read together.
        mic_lost = self.status is not None and not self.status.mic_ok
        if not mic_lost:
            self._mic_lost_s = None
        elif self._mic_lost_s is None:
            self._mic_lost_s = t
        if alert is not None:
            label, since_s = alert
            return alert_frame(self.settings, label, since_s, t)
        if self._mic_lost_s is not None:
            return no_mic_frame(self.settings, self._mic_lost_s, t)
        return self.renderer.render(t)

    def _show(self, t: float) -> None:
        frame = self.render(t)
        keepalive = self.backend.keepalive_s
        unchanged = self._shown is not None and np.array_equal(frame, self._shown)
        if unchanged and (keepalive is None or t - self._shown_at < keepalive):
            return  # nothing changed: no frame
        self.backend.show(frame, t)
        self.frames += 1
        self._shown = frame  # render() returns a new array each time (or the shared dark one)
        self._shown_at = t

    def close(self) -> None:
        self.backend.close()
