"""Pitch naming and equal-temperament arithmetic."""

from __future__ import annotations

import math

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PIANO_LOWEST_MIDI = 21  # A0
PIANO_HIGHEST_MIDI = 108  # C8


def midi_to_name(midi: int) -> str:
    """69 -> 'A4', 61 -> 'C#4' (scientific pitch notation, C4 = 60)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def midi_to_freq(midi: float, a4_hz: float = 440.0) -> float:
    return a4_hz * 2.0 ** ((midi - 69.0) / 12.0)


def freq_to_midi(freq_hz: float, a4_hz: float = 440.0) -> float:
    """Fractional MIDI number of a frequency; 440 Hz -> 69.0."""
    return 69.0 + 12.0 * math.log2(freq_hz / a4_hz)


def nearest_midi_and_cents(freq_hz: float, a4_hz: float = 440.0) -> tuple[int, float]:
    """The nearest equal-tempered key and how many cents `freq_hz` lies above it."""
    fractional = freq_to_midi(freq_hz, a4_hz)
    midi = round(fractional)
    return midi, 100.0 * (fractional - midi)
