"""Events that leave the streaming processors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NoteOn:
    """A key was struck. Times are seconds of the input stream.

    `emitted_s` is how much audio had been consumed when the event left the pipeline, so
    `emitted_s - onset_s` is the detection latency.
    """

    midi: int
    name: str
    freq_hz: float
    cents: float
    velocity: int
    onset_s: float
    emitted_s: float


@dataclass(frozen=True, slots=True)
class NoteOff:
    """A note stopped sounding (released, decayed, or replaced by the next note)."""

    midi: int
    name: str
    offset_s: float
    emitted_s: float


NoteEvent = NoteOn | NoteOff


@dataclass(frozen=True, slots=True)
class Level:
    """The sound level now (rate-limited by the daemon), with the slow noise-floor estimate."""

    dbfs: float
    floor_dbfs: float
    stream_s: float


@dataclass(frozen=True, slots=True)
class Chord:
    """The set of sounding keys changed into a (debounced) chord; `name` is "" when none sound."""

    name: str
    midis: tuple[int, ...]
    stream_s: float


@dataclass(frozen=True, slots=True)
class Alert:
    """A household sound was confirmed (`active`) or has stopped (`active=False`)."""

    label: str
    confidence: float
    stream_s: float
    active: bool = True


Event = NoteOn | NoteOff | Level | Chord | Alert
