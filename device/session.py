"""Practice sessions: when playing starts, and a summary when it stops.

Pure logic on stream time: feed it the daemon's events and ticks, it returns a `SessionStart`
at the first note and a `SessionEnd` once no note has been struck for `gap_s` seconds (or at
`flush()`, when the audio ends). No I/O, no clock: the caller stamps wall-clock times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from notesight.dsp.events import Event, Level, NoteOff, NoteOn
from notesight.dsp.music import midi_to_name


@dataclass(frozen=True, slots=True)
class SessionStart:
    start_s: float  # stream time of the first note's onset


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """What was played between `start_s` and `end_s` (stream seconds)."""

    start_s: float
    end_s: float
    notes: int
    lowest_midi: int
    highest_midi: int
    distinct_keys: int
    mean_velocity: float
    max_velocity: int
    peak_dbfs: float  # the loudest level heard during the session (-inf when no level came)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def lowest_name(self) -> str:
        return midi_to_name(self.lowest_midi)

    @property
    def highest_name(self) -> str:
        return midi_to_name(self.highest_midi)


SessionEvent = SessionStart | SessionEnd


class SessionTracker:
    """Turns note events into practice sessions separated by `gap_s` seconds without a note."""

    def __init__(self, gap_s: float) -> None:
        if gap_s <= 0:
            raise ValueError(f"gap_s must be positive (got {gap_s})")
        self.gap_s = gap_s
        self._open = False
        self._reset()

    def _reset(self) -> None:
        self._start_s = 0.0
        self._last_sound_s = 0.0
        self._velocities: list[int] = []
        self._keys: set[int] = set()
        self._peak_dbfs = -math.inf

    @property
    def playing(self) -> bool:
        return self._open

    def feed(self, event: Event) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        if isinstance(event, NoteOn):
            if self._open and event.onset_s - self._last_sound_s >= self.gap_s:
                out.append(self._end())  # the gap passed between two ticks
            if not self._open:
                self._open = True
                self._reset()
                self._start_s = event.onset_s
                out.append(SessionStart(event.onset_s))
            self._velocities.append(event.velocity)
            self._keys.add(event.midi)
            self._last_sound_s = max(self._last_sound_s, event.onset_s)
        elif self._open and isinstance(event, NoteOff):
            # A held note is still playing: the session ends `gap_s` after it stops sounding.
            self._last_sound_s = max(self._last_sound_s, event.offset_s)
        elif self._open and isinstance(event, Level):
            self._peak_dbfs = max(self._peak_dbfs, event.dbfs)
        return out

    def tick(self, stream_s: float) -> list[SessionEvent]:
        if self._open and stream_s - self._last_sound_s >= self.gap_s:
            return [self._end()]
        return []

    def flush(self) -> list[SessionEvent]:
        """End an open session (the audio ended)."""
        return [self._end()] if self._open else []

    def _end(self) -> SessionEnd:
        velocities = self._velocities
        summary = SessionEnd(
            start_s=self._start_s,
            end_s=self._last_sound_s,
            notes=len(velocities),
            lowest_midi=min(self._keys),
            highest_midi=max(self._keys),
            distinct_keys=len(self._keys),
            mean_velocity=sum(velocities) / len(velocities),
            max_velocity=max(velocities),
            peak_dbfs=self._peak_dbfs,
        )
        self._open = False
        self._reset()
        return summary
