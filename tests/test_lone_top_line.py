"""A soft top key whose hammer's knock is as loud as its string: YIN finds the period the
knock's modes share, a whole fraction of the string's, and the string is a lone line on one of
that reading's harmonics, far over the harmonics beside it (`pitch.lone_partial`,
`NoteListener._lone_top_string`)."""

from __future__ import annotations

import numpy as np
import pytest
from test_piano import first_notes, keys_render

from notesight.dsp.listener import ListenerParams
from notesight.dsp.pitch import lone_partial, power_spectrum

SR = 44100
ANALYSIS_RATE = SR // 2  # what the listener analyses at 44.1 kHz
WINDOW = 384  # the 17 ms window MuseScore_General's soft G7 was named D4 on
G7_HZ = 3184.0  # MuseScore_General's G7, 26 cents sharp
READING_HZ = G7_HZ / 11  # the knock's shared period YIN read: D4, 20 cents flat
NEIGHBOUR, DIVISOR = 10 ** (-15 / 10), 10 ** (-10 / 10)  # the listener's defaults


def spectrum(lines: list[tuple[float, float]], seed: int = 0) -> tuple[np.ndarray, float]:
    """Power spectrum (and bin width) of a window of sines (frequency, amplitude) over a
    little noise, as the listener computes it for a window."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW) / ANALYSIS_RATE
    window = 1e-4 * rng.standard_normal(WINDOW)
    for freq, amplitude in lines:
        window += amplitude * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
    power = power_spectrum(window.astype(np.float32))
    return power, ANALYSIS_RATE / (2 * (len(power) - 1))


def lone(lines: list[tuple[float, float]], reading_hz: float) -> tuple[float, float] | None:
    power, bin_hz = spectrum(lines)
    return lone_partial(power, bin_hz, reading_hz, 2000.0, 4500.0, NEIGHBOUR, DIVISOR)


def test_a_top_string_over_knock_modes_on_its_readings_harmonics_is_lone():
    """The G7 window: knock modes at 3 and 4 times the reading about as strong as the string,
    a weak line at the reading itself; nothing at the reading's 10th and 12th harmonics."""
    lines = [(G7_HZ, 1.0), (3 * READING_HZ, 0.9), (4 * READING_HZ, 1.0), (READING_HZ, 0.4)]
    found = lone(lines, READING_HZ)
    assert found is not None
    assert found[0] == pytest.approx(G7_HZ, rel=0.005)


def test_a_strings_bright_partial_is_not_lone():
    """A string at the reading whose 9th partial is its strongest (as FluidR3_GM's D#4-F#4),
    with its 8th and 10th 7 and 12 dB under it: a partial of the reading, not a string."""
    f = 311.1
    levels_db = (-6, -10, -10, 0, 0, -2, -17, -7, 0, -12, -14, -9)
    lines = [(n * f, 10 ** (db / 20)) for n, db in enumerate(levels_db, 1)]
    assert lone(lines, f) is None


def test_the_second_partial_of_a_lower_string_is_not_lone():
    """D#6 (1245 Hz) whose second partial is the strongest line in the top range, read as D#4
    (its fourth subharmonic): the line is the reading's 8th harmonic, alone among its
    neighbours, but the reading's 4th (D#6 itself) is loud, so a string at D#6 explains it."""
    d_sharp_6 = 1244.5
    lines = [(d_sharp_6, 0.8), (2 * d_sharp_6, 1.0), (3 * d_sharp_6, 0.2)]
    assert lone(lines, d_sharp_6 / 4) is None


def test_the_third_partial_of_a_string_an_octave_over_the_reading_is_not_lone():
    """A knocked F#5 read as F#4 (tests/test_top_keys.py): its third partial, the reading's
    6th harmonic, is alone between the 5th and 7th, but F#5's own fundamental (11 dB under
    it) and second partial (2 dB under it) are the reading's 2nd and 4th: a string at a
    third of the line explains it."""
    f_sharp_5 = 740.0
    lines = [(f_sharp_5, 10 ** (-11 / 20)), (2 * f_sharp_5, 10 ** (-2 / 20)), (3 * f_sharp_5, 1.0)]
    assert lone(lines, f_sharp_5 / 2) is None


def test_musescore_soft_top_keys_are_named_by_their_string(piano):
    """The benchmark's case: MuseScore_General's soft G7 among its neighbours, named D4 (the
    knock's shared period, its string's 11th subharmonic) before the rule, and so here with
    the check off; the keys beside it stay right either way."""
    keys = list(range(96, 106))
    audio = keys_render(piano, keys, 40, "MuseScore_General")
    assert first_notes(audio, keys) == keys
    without = first_notes(audio, keys, ListenerParams(lone_top_check=False))
    assert without == [62 if key == 103 else key for key in keys]
