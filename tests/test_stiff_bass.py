"""Stiff bass strings: a bass string's upper partials run sharp (the 13th 50 cents at
B = 3e-4), and where they are its loudest, YIN's period comes out short and the note was named
a key up. A decided note under 70 Hz is measured again on its partials 2-10
(`NoteListener._bass_refined`)."""

from __future__ import annotations

import numpy as np
import pytest
from test_stiff_strings import RATE, stiff_tone

from notesight.device.synth import Note
from notesight.device.transcribe import transcribe_array
from notesight.dsp.listener import ListenerParams, NoteListener
from notesight.dsp.music import freq_to_midi, midi_to_freq
from notesight.dsp.pitch import PitchEstimate, yin

# Neither reading again (nor, since, the bass series that names most of these keys as well:
# NoteListener._named_by_bass_series)
UNREFINED = ListenerParams(bass_refine_below_hz=0.0, bass_series_check=False)


def first_key(audio: np.ndarray, params: ListenerParams | None = None) -> int:
    return transcribe_array(audio, RATE, params)[0]["midi"]


# Seeds where the unrefined reading is still a key up: since two agreeing estimates under C3
# need 0.65 in the short windows (NoteListener._agreeing_confidence), most seeds of B0 and C#1
# decide in a longer window that YIN reads right on its own.
@pytest.mark.parametrize(("midi", "seed"), [(21, 0), (21, 1), (22, 1), (23, 5), (24, 1), (25, 5)])
def test_a_stiff_bass_string_is_named_its_key(midi, seed):
    audio = stiff_tone(midi, seed=seed, seconds=1.5)
    assert first_key(audio) == midi
    assert first_key(audio, UNREFINED) == midi + 1  # what it was named before


@pytest.mark.parametrize("midi", [21, 22, 23, 24, 26, 28])
def test_freepats_lowest_keys_are_named_their_key(freepats, midi):
    """freepats' A0-E1 zone: partials 12 and 13 are its loudest, 45-50 cents sharp. From C1 up
    its even partials lead the band, and YIN on it alone finds the octave: it is asked for
    periods within the flattening it may make only."""
    audio = freepats([Note(0.5, 1.0, midi, 110)])
    assert first_key(audio) == midi
    assert first_key(audio, UNREFINED) == midi + 1


def test_a_sharper_reading_from_the_lowest_partials_is_not_taken():
    """Stretch only pulls YIN sharp, so the lowest partials may move a reading flatter, never
    sharper: here the window is a plain harmonic tone 40 cents above the estimate."""
    listener = NoteListener(RATE // 2)  # the analysis rate at 44.1 kHz
    rate = listener.rate
    freq = midi_to_freq(34, 440.0) * 2 ** (0.4 / 12)
    t = np.arange(2048) / rate
    window = sum(np.sin(2 * np.pi * n * freq * t) / n for n in range(1, 9)).astype(np.float32)
    low_hz = midi_to_freq(34, 440.0)
    estimate = PitchEstimate(low_hz, 0.5, len(window), 34.0, len(window) * low_hz / rate)
    assert listener._bass_refined(window, estimate) is estimate
    # ...while a flatter reading is: the same tone, the estimate 40 cents above it
    high_hz = freq * 2 ** (0.4 / 12)
    sharp = PitchEstimate(high_hz, 0.5, len(window), freq_to_midi(high_hz, 440.0), 10.0)
    refined = listener._bass_refined(window, sharp)
    assert abs(refined.midi_float - freq_to_midi(freq, 440.0)) < 0.05


def test_yin_searches_from_its_shortest_lag():
    """A pure tone at 2f repeats every period of f too: YIN takes the first dip (2f) unless
    its lags start past it."""
    rate, f = 22050, 50.0
    tone = np.sin(2 * np.pi * 2 * f * np.arange(2048) / rate)
    assert yin(tone, rate)[0] == pytest.approx(2 * f, rel=0.01)
    assert yin(tone, rate, max_lag=int(rate / f / 0.9), min_lag=int(rate / f / 1.1))[
        0
    ] == pytest.approx(f, rel=0.01)
