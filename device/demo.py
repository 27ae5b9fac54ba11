"""The demo clip: a short melody rendered with FluidSynth's piano when it is installed, or a
simple additive piano-like tone otherwise, so `notesight demo` runs on any machine."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
# Ode to Joy, first phrase, then a low A and a high C: (MIDI, beats) at 150 BPM.
MELODY = (
    (64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1),
    (60, 1), (60, 1), (62, 1), (64, 1), (64, 1.5), (62, 0.5), (62, 2),
    (33, 2), (96, 2),
)  # fmt: skip
BEAT_S = 0.4


def melody_notes() -> list[tuple[float, float, int, int]]:
    """(onset_s, duration_s, midi, velocity) of the demo melody, starting at 0.5 s."""
    notes = []
    t = 0.5
    for midi, beats in MELODY:
        duration = beats * BEAT_S
        notes.append((t, duration, midi, 90))
        t += duration
    return notes


def additive_piano(notes: list[tuple[float, float, int, int]], sample_rate: int) -> np.ndarray:
    """A plain stand-in for a piano: decaying, slightly stretched partials."""
    end = max(on + dur for on, dur, _, _ in notes) + 1.0
    out = np.zeros(int(end * sample_rate), np.float32)
    for onset, duration, midi, velocity in notes:
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        n = int((duration + 0.3) * sample_rate)
        t = np.arange(n) / sample_rate
        tone = np.zeros(n)
        for k in range(1, 9):
            fk = k * f0 * np.sqrt(1 + 0.0004 * k * k)
            if fk < 0.45 * sample_rate:
                tone += np.sin(2 * np.pi * fk * t) * np.exp(-t * (1.5 + k)) / k
        release = np.clip((duration + 0.3 - t) / 0.3, 0.0, 1.0)
        start = int(onset * sample_rate)
        out[start : start + n] += (0.25 * velocity / 127 * tone * release).astype(np.float32)
    return out


def demo_audio() -> tuple[np.ndarray, int, str]:
    """(audio, sample_rate, description)."""
    notes = melody_notes()
    try:
        from .synth import Note, find_soundfont, render_notes

        soundfont = find_soundfont("FluidR3_GM")
        synth_notes = [Note(on, dur, midi, vel) for on, dur, midi, vel in notes]
        audio = render_notes(synth_notes, soundfont, SAMPLE_RATE)
        return audio, SAMPLE_RATE, f"Ode to Joy on {soundfont.stem}'s piano (FluidSynth)"
    except Exception as exc:  # any failure to render falls back to the built-in tone
        log.warning("FluidSynth piano unavailable (%s); using a synthetic tone", exc)
        audio = additive_piano(notes, SAMPLE_RATE)
        return audio, SAMPLE_RATE, "Ode to Joy on a synthetic piano-like tone"
