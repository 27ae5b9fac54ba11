"""FluidSynth rendering and the room model used by tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from notesight.device.synth import Note, SynthError, find_soundfont
from notesight.dsp.augment import add_noise_at_snr, pink_noise, room_version


def test_render_puts_the_note_where_asked_at_the_right_pitch(piano):
    audio = piano((Note(1.0, 1.0, 69, 100),))
    start = int(np.argmax(np.abs(audio) > 0.01 * np.abs(audio).max())) / 44100
    assert start == pytest.approx(1.0, abs=0.006)
    segment = audio[int(1.2 * 44100) : int(1.2 * 44100) + 16384]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    assert np.argmax(spectrum) * 44100 / 16384 == pytest.approx(440.0, abs=3.0)


def test_unknown_soundfont_is_a_clear_error():
    with pytest.raises(SynthError, match="known: FluidR3_GM"):
        find_soundfont("Steinway")


def test_room_keeps_length_and_onsets():
    audio = np.zeros(44100, np.float32)
    audio[10000:12000] = np.sin(np.arange(2000) * 0.1)
    room = room_version(audio, 44100, seed=1)
    assert len(room) == len(audio)
    envelope = np.abs(room) > 0.3
    assert int(np.argmax(envelope)) == pytest.approx(10000, abs=30)


def test_noise_is_added_at_the_asked_snr():
    rng = np.random.default_rng(0)
    signal = np.sin(np.arange(44100) * 0.05).astype(np.float32)
    noise = pink_noise(44100, rng)
    noisy = add_noise_at_snr(signal, noise, 30.0)
    residual = noisy - signal
    snr = 10 * np.log10(np.mean(signal**2) / np.mean(residual**2))
    assert snr == pytest.approx(30.0, abs=0.5)
