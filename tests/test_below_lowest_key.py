"""A period longer than the lowest key's. YIN takes the deepest dip of its difference function
when none falls under its tolerance, and in a noisy or reverberant bass note twice the period
can dip deeper: G1 read as G0, below the keyboard,
in the last windows a bass key gets. The listener then searches again under the lowest key's
period and keeps that answer only when most of its first partials ring (see
NoteListener._within_key_range and pitch.ringing_partials): a knock's rumble or a treble note's
subharmonic must not become a bass key."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from test_stiff_strings import LEAD_S, RATE, legato_thumped
from test_top_keys import knocked_key  # tests/ is on sys.path

from notesight.device.synth import Note
from notesight.device.transcribe import transcribe_array
from notesight.dsp.augment import add_noise_at_snr, add_reverb, pink_noise
from notesight.dsp.music import midi_to_freq
from notesight.dsp.pitch import peaked_partials, power_spectrum, ringing_partials

SR = 44100
ONSET_S = 0.5
HARNESS_SEED = 424242  # the development harness's seed offset (its ids below come from it)


def harsh_key(piano, soundfont: str, midi: int, velocity: int) -> np.ndarray:
    """The key alone as the development harness plays it in its harshest room: reverberation
    (RT60 0.8 s) and pink noise 20 dB under the note."""
    audio = piano([Note(ONSET_S, 1.0, midi, velocity)], soundfont)
    audio = np.pad(audio, (0, max(0, 3 * SR - len(audio))))[: 3 * SR]
    seed = zlib.crc32(f"{soundfont}/{midi}_v{velocity}".encode()) + HARNESS_SEED
    rng = np.random.default_rng(seed + 7)
    wet = add_reverb(audio, SR, 0.8, 1.0, rng)
    return add_noise_at_snr(wet, pink_noise(len(wet), rng), 20.0, SR)


def test_bass_key_read_below_the_keyboard_lights_its_own_key(piano):
    """csound's G1 in the harsh room: G1 at 0.49-0.54 confidence, then G0 (24.6 Hz) at
    0.57-0.61 in the last three windows, so nothing was shown. Searched under A0's period it
    is G1, all eight of its first partials within 20 dB of the strongest line."""
    found = transcribe_array(harsh_key(piano, "csound", 31, 110), SR)
    assert found, "no note"
    first = min(found, key=lambda n: n["emitted_s"])
    assert first["midi"] == 31, first
    assert first["emitted_s"] - ONSET_S <= 0.1  # the A0-B2 latency goal


def harmonic_tone(freq_hz: float, levels_db: list[float], seconds: float = 0.093) -> np.ndarray:
    t = np.arange(int(seconds * RATE // 2)) / (RATE // 2)
    return sum(
        10 ** (db / 20) * np.sin(2 * np.pi * (h + 1) * freq_hz * t + h)
        for h, db in enumerate(levels_db)
    )


def test_ringing_partials_counts_a_bass_strings_partials_but_not_two_rumbling_modes():
    rate = RATE // 2
    g1 = midi_to_freq(31)
    # A bass string with a weak fundamental, as sampled G1s have it: all 8 within 20 dB.
    string = harmonic_tone(g1, [-7, 0, -3, -18, -16, -9, -14, -19])
    power = power_spectrum(string)
    bin_hz = rate / (2 * (len(power) - 1))
    assert ringing_partials(power, bin_hz, g1) == 8
    # Two body modes an octave apart over a treble string: YIN's "period" is the lower one.
    t = np.arange(len(string)) / rate
    rumble = np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 100 * t + 1)
    rumble += 2 * np.sin(2 * np.pi * midi_to_freq(84) * t)
    power = power_spectrum(rumble)
    assert ringing_partials(power, bin_hz, 50.0) <= 2


def test_peaked_partials_counts_peaks_not_the_skirt_of_a_loud_line_beside_a_partial():
    """`peaked_partials` (NoteListener._thump_far_below) counts a partial only where a peak of
    its own lies: a thump's two modes and a treble string 2.7 % off its 6th partial give 2,
    where `ringing_partials` also counts the string's skirt in that band."""
    rate = RATE // 2
    low = 98.0
    string = harmonic_tone(low, [-7, 0, -3, -18, -16, -9, -14, -19])
    power = power_spectrum(string)
    bin_hz = rate / (2 * (len(power) - 1))
    assert peaked_partials(power, bin_hz, low) == 8
    t = np.arange(len(string)) / rate
    thump = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * 2 * low * t + 1)
    thump += 3 * np.sin(2 * np.pi * 6.16 * low * t)
    power = power_spectrum(thump)
    assert peaked_partials(power, bin_hz, low) == 2
    assert ringing_partials(power, bin_hz, low) >= 3


# (key, seed, knock level in dB, room): synthetic knocked top keys that give no note, where YIN
# found a period below A0 in the knock's two rumbling modes; searched under A0's period, they were
# named A0-C3 (2-4 of the first 8 partials ringing) until the partial count was asked for.
RUMBLE_BELOW_THE_KEYBOARD = [
    (72, 2, 0, False),
    (73, 1, 0, False),
    (74, 1, 0, False),
    (76, 1, 0, False),
    (86, 1, 0, False),
    (90, 1, 12, True),
    (98, 1, 12, True),
    (106, 2, 6, False),
]


@pytest.mark.parametrize(("midi", "seed", "knock_db", "room"), RUMBLE_BELOW_THE_KEYBOARD)
def test_a_knocks_rumble_below_the_keyboard_does_not_become_a_bass_key(midi, seed, knock_db, room):
    audio = knocked_key(midi, seed, knock_db, room)
    found = [n for n in transcribe_array(audio, RATE) if abs(n["onset_s"] - LEAD_S) < 0.05]
    assert all(n["midi"] >= 48 for n in found), found


def test_a_treble_keys_subharmonic_under_a_ringing_key_is_not_a0():
    """A4 struck with its thump under a ringing D#7: YIN's period below the keyboard is A4's
    sixteenth subharmonic; searched under A0's period it was A0 (4 of 8 partials, all from
    the thump)."""
    audio = legato_thumped(87, 69, 1.0, 768, -6.68)
    found = [n for n in transcribe_array(audio, RATE) if abs(n["onset_s"] - LEAD_S - 0.4) < 0.05]
    assert all(n["midi"] != 21 for n in found), found
