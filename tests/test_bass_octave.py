"""A bass string heard as its octave: its second partial leads and its fundamental is all but
silent, so YIN's first dip is the half period. The peaks on odd multiples of half the reading
(1.5, 2.5, 3.5 ... times it) are the lower string's odd partials, which no string at the
reading has (`pitch.odd_half_partials`, `NoteListener._string_an_octave_down`)."""

from __future__ import annotations

import numpy as np
import pytest
from test_piano import first_notes, keys_render

from notesight.device.synth import Note
from notesight.device.transcribe import transcribe_array
from notesight.dsp.listener import ListenerParams
from notesight.dsp.music import midi_to_freq
from notesight.dsp.pitch import odd_half_partials, power_spectrum

SR = 44100
ANALYSIS_RATE = SR // 2  # what the listener analyses at 44.1 kHz
WINDOW = 1664  # the 75 ms window FluidR3_GM's D#1 is decided on
D_SHARP_1 = midi_to_freq(27)

# FluidR3_GM's D#1, measured over its first second: dB of partials 1-8 under the second.
D_SHARP_1_PARTIALS_DB = (-39.0, 0.0, -11.0, -11.5, -17.0, -11.0, -18.0, -28.0)


def window_of(partials: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Power spectrum of a window of sines (frequency, amplitude) over a little noise, as the
    listener computes it for a decided window."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW) / ANALYSIS_RATE
    window = 1e-4 * rng.standard_normal(WINDOW)
    for freq, amplitude in partials:
        window += amplitude * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
    return power_spectrum(window.astype(np.float32))


def bin_hz(power: np.ndarray) -> float:
    return ANALYSIS_RATE / (2 * (len(power) - 1))


def test_a_lower_strings_odd_partials_stand_on_odd_multiples_of_half_the_reading():
    lower = [(n * D_SHARP_1, 10 ** (db / 20)) for n, db in enumerate(D_SHARP_1_PARTIALS_DB, 1)]
    power = window_of(lower)
    assert odd_half_partials(power, bin_hz(power), 2 * D_SHARP_1) >= 3


def test_a_string_at_the_reading_has_nothing_there():
    d_sharp_2 = 2 * D_SHARP_1
    own = [(n * d_sharp_2, 1.0 / n) for n in range(1, 9)]
    power = window_of(own)
    assert odd_half_partials(power, bin_hz(power), d_sharp_2) == 0


@pytest.mark.parametrize("velocity", [40, 110])
def test_fluidr3_d_sharp_1_is_not_named_an_octave_up(piano, velocity):
    """The benchmark's case: named D#2 at both velocities before the rule (so also here, with
    the check off)."""
    audio = piano((Note(0.5, 1.2, 27, velocity),), "FluidR3_GM")
    found = transcribe_array(audio, SR)
    assert [n["midi"] for n in found][:1] == [27]
    without = transcribe_array(audio, SR, params=ListenerParams(bass_odd_check=False))
    assert [n["midi"] for n in without][:1] == [39]


def test_bass_keys_with_their_fundamental_stay_where_they_are(piano):
    """Keys whose string is at the reading keep it: C2-B2 on the development piano."""
    keys = list(range(36, 48))
    assert first_notes(keys_render(piano, keys, 90, "TimGM6mb"), keys) == keys
