"""Chord names from sounding keys, and a debounced tracker that turns note events into chords.

Why hand-written rather than a library: music21 and mingus name chords, but they are large,
slow to import on a Raspberry Pi and spell roots by key context (Bb vs A#); what the display
needs is a fixed table of ~20 templates matched against a pitch-class set, which fits on a page
and spells roots with the same sharps as `midi_to_name`.

Naming (`chord_name`):
  * octave doublings are ignored: the name comes from the pitch classes and the bass (lowest key);
  * every sounding pitch class is tried as the root against the templates below, with the 5th
    optionally left out of 7th and 9th chords (pianists often drop it);
  * of the interpretations that fit, the one whose root is the bass wins (root position reads
    best); otherwise the first in template order (`TEMPLATES`: triads and power chord, then
    sevenths, sixths, then added-tone and ninth chords; common before rare), then a chord with
    its 5th before one without it, then the root nearest above the bass;
  * when the root is not the bass the bass is written after a slash: "G7/B", "C/E";
  * one pitch class gives the lowest key's name ("A4"); nothing that fits gives the sounding keys
    lowest first ("C4 E4 F#4 A#4 B4"); no keys give "".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from notesight.dsp.events import Chord, NoteEvent, NoteOff, NoteOn
from notesight.dsp.music import NOTE_NAMES, midi_to_name

FIFTH = 7  # semitones above the root


@dataclass(frozen=True, slots=True)
class ChordTemplate:
    """A chord quality: its name suffix, its intervals above the root in semitones, and whether
    the perfect 5th may be missing (7th and 9th chords, where it adds nothing to the colour)."""

    suffix: str
    intervals: frozenset[int]
    fifth_optional: bool = False


def _template(suffix: str, *intervals: int, fifth_optional: bool = False) -> ChordTemplate:
    return ChordTemplate(suffix, frozenset(intervals), fifth_optional)


# Priority order: when no interpretation has the bass as its root, the earliest template wins.
# Sixths come after sevenths, so C-E-G-A over E reads "Am7/E" rather than "C6/E"; sus4 before
# sus2, so C-D-G over D reads "Gsus4/D".
TEMPLATES: tuple[ChordTemplate, ...] = (
    _template("", 0, 4, 7),
    _template("m", 0, 3, 7),
    _template("5", 0, 7),
    _template("dim", 0, 3, 6),
    _template("aug", 0, 4, 8),
    _template("sus4", 0, 5, 7),
    _template("sus2", 0, 2, 7),
    _template("7", 0, 4, 7, 10, fifth_optional=True),
    _template("m7", 0, 3, 7, 10, fifth_optional=True),
    _template("maj7", 0, 4, 7, 11, fifth_optional=True),
    _template("m7b5", 0, 3, 6, 10),
    _template("dim7", 0, 3, 6, 9),
    _template("6", 0, 4, 7, 9),
    _template("m6", 0, 3, 7, 9),
    _template("mMaj7", 0, 3, 7, 11, fifth_optional=True),
    _template("7sus4", 0, 5, 7, 10),
    _template("add9", 0, 2, 4, 7),
    _template("9", 0, 2, 4, 7, 10, fifth_optional=True),
    _template("m9", 0, 2, 3, 7, 10, fifth_optional=True),
    _template("maj9", 0, 2, 4, 7, 11, fifth_optional=True),
)


def _fits(template: ChordTemplate, intervals: frozenset[int]) -> bool | None:
    """None when `intervals` is not this chord; else whether it is complete (has its 5th)."""
    if intervals == template.intervals:
        return True
    if template.fifth_optional and intervals == template.intervals - {FIFTH}:
        return False
    return None


def chord_name(midis: Iterable[int]) -> str:
    """The chord the keys `midis` make, e.g. "C", "Am7", "F#dim", "G7/B" (rules: module doc)."""
    keys = sorted(set(midis))
    if not keys:
        return ""
    bass = keys[0] % 12
    pitch_classes = {key % 12 for key in keys}
    if len(pitch_classes) == 1:
        return midi_to_name(keys[0])
    best: tuple[tuple[bool, int, bool, int], str] | None = None
    for root in pitch_classes:
        intervals = frozenset((pc - root) % 12 for pc in pitch_classes)
        for priority, template in enumerate(TEMPLATES):
            complete = _fits(template, intervals)
            if complete is None:
                continue
            # Smaller sorts first: bass as root, earlier template, with its 5th, nearer the bass.
            rank = (root != bass, priority, not complete, (root - bass) % 12)
            name = NOTE_NAMES[root] + template.suffix
            if root != bass:
                name += "/" + NOTE_NAMES[bass]
            if best is None or rank < best[0]:
                best = (rank, name)
    if best is None:
        return " ".join(midi_to_name(key) for key in keys)
    return best[1]


class ChordTracker:
    """Follows the sounding keys from NoteOn/NoteOff events and emits a `Chord` once a changed
    set has stayed the same for `debounce_s` of stream time, so a rolled chord is one event.

    `feed(events)` takes note events in stream order; `tick(stream_s)` lets a settled change out
    when no event has come since (the daemon calls it every block); `flush()` lets a pending
    change out at once. A chord's `stream_s` is when its set of keys last changed, i.e. when it
    sounded complete; it leaves the tracker at least `debounce_s` later.

    What is shown: a set with at least `min_notes` distinct pitch classes is shown as
    `Chord(chord_name(keys), keys)`; a smaller set (a single melody note, or silence) is shown
    as "no chord", `Chord("", ())`. A chord is emitted only when what is shown changes, so the
    display clears once when a chord ends and melody notes alone never emit anything.
    """

    # Stream times are sums of float seconds; a tick at exactly change + debounce must count.
    _EPSILON_S = 1e-9

    def __init__(self, debounce_s: float = 0.06, min_notes: int = 2) -> None:
        if debounce_s < 0:
            raise ValueError(f"debounce_s must be >= 0, got {debounce_s}")
        if min_notes < 1:
            raise ValueError(f"min_notes must be >= 1, got {min_notes}")
        self.debounce_s = debounce_s
        self.min_notes = min_notes
        self._sounding: set[int] = set()
        self._changed_s: float | None = None  # when the keys changed, until that is settled
        self._shown: tuple[str, tuple[int, ...]] = ("", ())

    @property
    def sounding(self) -> tuple[int, ...]:
        """The keys held now, lowest first."""
        return tuple(sorted(self._sounding))

    def feed(self, events: Iterable[NoteEvent]) -> list[Chord]:
        chords: list[Chord] = []
        for event in events:
            now = event.emitted_s
            # The keys stayed as they were until this event: that may have settled them. Events
            # at the very moment of the change (one hop's worth of keys) never settle it.
            if self._changed_s is not None and now > self._changed_s:
                chords += self.tick(now)
            # A repeated strike of a held key, or the release of one not held, changes nothing.
            held = event.midi in self._sounding
            if isinstance(event, NoteOn) and not held:
                self._sounding.add(event.midi)
                self._changed_s = now
            elif isinstance(event, NoteOff) and held:
                self._sounding.discard(event.midi)
                self._changed_s = now
        return chords

    def tick(self, stream_s: float) -> list[Chord]:
        """Emit the pending change if it has held for `debounce_s` by `stream_s`."""
        if self._changed_s is None:
            return []
        if stream_s + self._EPSILON_S < self._changed_s + self.debounce_s:
            return []
        return self._settle()

    def flush(self) -> list[Chord]:
        """Emit a pending change now (end of stream). Held keys stay held: the listener's own
        flush releases them with NoteOffs, which should be fed first."""
        return self._settle() if self._changed_s is not None else []

    def _settle(self) -> list[Chord]:
        assert self._changed_s is not None
        changed_s, self._changed_s = self._changed_s, None
        keys = self.sounding
        pitch_classes = {key % 12 for key in keys}
        shown = (chord_name(keys), keys) if len(pitch_classes) >= self.min_notes else ("", ())
        if shown == self._shown:
            return []  # e.g. a key lifted and struck again within the debounce time
        self._shown = shown
        return [Chord(shown[0], shown[1], changed_s)]
