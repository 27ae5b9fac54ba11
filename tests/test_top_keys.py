"""Top keys over their own hammer's knock. A soft top key is a short, quiet string beside the
knock of its hammer and the action's and body's modes (a few hundred Hz to 2 kHz) and a low
rumble: together they hold more of the window than the string, and YIN finds a period in the
rumble, four to seven octaves down. The string is still the strongest line in the spectrum. The
tones are `stiff_tone`s (physics only, no sampled piano) with such a knock added."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from test_stiff_strings import LEAD_S, RATE, stiff_tone  # tests/ is on sys.path

from notesight.device.transcribe import transcribe_array
from notesight.dsp.augment import room_version
from notesight.dsp.listener import ListenerParams
from notesight.dsp.pitch import SpectralCheck

ANALYSIS_RATE = RATE // 2  # what the listener analyses at 44.1 kHz (see analysis_factor)


def knocked(midi: int, seed: int, knock_db: float) -> np.ndarray:
    """`stiff_tone` with 4-8 damped modes at 150-1600 Hz (20-80 ms) and two rumbling ones at
    40-120 Hz (0.1-0.4 s), together `knock_db` against the string over its first 30 ms."""
    rng = np.random.default_rng(seed * 7 + 3)
    tone = stiff_tone(midi, seed=seed, seconds=1.0).astype(np.float64)
    string = tone[int(LEAD_S * RATE) :]
    t = np.arange(len(string)) / RATE

    def mode(low_hz: float, high_hz: float, shortest_s: float, longest_s: float) -> np.ndarray:
        decay = np.exp(-t / rng.uniform(shortest_s, longest_s))
        return decay * np.sin(2 * np.pi * rng.uniform(low_hz, high_hz) * t + rng.uniform(0, 6.3))

    knock = sum(mode(150, 1600, 0.02, 0.08) for _ in range(rng.integers(4, 9)))
    knock = knock + sum(rng.uniform(0.5, 2) * mode(40, 120, 0.1, 0.4) for _ in range(2))
    first = int(0.03 * RATE)
    gain = np.sqrt(np.mean(string[:first] ** 2) / np.mean(knock[:first] ** 2))
    string += gain * 10 ** (knock_db / 20) * knock
    audio = 0.3 * tone / np.abs(tone).max()
    return audio.astype(np.float32)


def knocked_key(midi: int, seed: int, knock_db: float, room: bool) -> np.ndarray:
    """`knocked` as the synthetic set draws it (seed `seed * 1000 + midi`), dry or in a room
    seeded by the case: the cases below and in test_below_lowest_key are its rows."""
    audio = knocked(midi, seed * 1000 + midi, knock_db)
    if room:
        audio = room_version(audio, RATE, zlib.crc32(f"{midi}/{seed}/{knock_db}".encode()))
    return audio


# (key, seed, knock level in dB, room): before a top string that stands out was trusted
# (SpectralCheck._string_share, NoteListener._top_string_stands_out), these were named 4-7
# octaves low (the rumble's period).
KNOCKED = [
    (99, 1, -6, True),
    (100, 1, 0, False),
    (102, 1, 0, False),
    (104, 1, 0, False),
    (105, 2, 0, True),
    (106, 1, 0, False),
]


# (key, seed, knock level in dB, room): YIN found the top string in every window from 12 ms
# on, at 0.5-0.67, under the 0.6 two windows need; a steady run did not count in the short
# windows (only in legato) nor past them (the knock's energy below), so these gave no note
# (NoteListener._top_string_alone).
STEADY_TOP_STRINGS = [(102, 1, -6, False), (104, 2, -6, False), (105, 1, 0, False)]


# (key, seed, knock level in dB, room): the knock's noise in what the strike added held a
# lower note's other harmonics at 0.1-0.15 of the shared ones, so the energy below the top
# string was not "only the thump" until ListenerParams.legato_below_ratio went 0.1 -> 0.15
# (no note, or 86 and 92, before).
KNOCK_NOISE_UNDER_0_15 = [
    (72, 3, -6, False),
    (81, 2, -6, False),
    (85, 2, -6, True),
    (91, 3, -6, True),
]


@pytest.mark.parametrize(
    ("midi", "seed", "knock_db", "room"), KNOCKED + STEADY_TOP_STRINGS + KNOCK_NOISE_UNDER_0_15
)
def test_soft_top_key_over_its_knock_lights_its_own_key_within_50_ms(midi, seed, knock_db, room):
    notes = transcribe_array(knocked_key(midi, seed, knock_db, room), RATE)
    assert notes, "no note"
    first = notes[0]
    assert first["midi"] == midi, first
    assert first["emitted_s"] - LEAD_S <= 0.05, first


@pytest.mark.parametrize(
    ("midi", "seed", "knock_db", "room"), [(84, 1, -6, True), (95, 1, -6, True)]
)
def test_a_steady_second_partial_is_not_named_as_a_top_string(midi, seed, knock_db, room):
    """C6 and B6 in a room, whose stretched second partial stands out and which YIN found
    steadily: the line an octave below it (the key's own fundamental) holds 0.4 of it, so the
    steady run does not decide the octave up (named before that check: C7, B7)."""
    notes = transcribe_array(knocked_key(midi, seed, knock_db, room), RATE)
    assert not notes or notes[0]["midi"] != midi + 12, notes[0]


def sines(size: int, *lines: tuple[float, float]) -> np.ndarray:
    """A window of sines: (frequency in Hz, amplitude) each, at the analysis rate."""
    t = np.arange(size) / ANALYSIS_RATE
    return sum(a * np.sin(2 * np.pi * f * t + f) for f, a in lines).astype(np.float32)


def test_a_top_string_that_stands_out_wins_over_a_rumbles_period():
    """B7 (3951 Hz) beside five knock modes that together outweigh it above 500 Hz, YIN unsure
    of a rumble's period: the string is the answer, confident enough to count."""
    knock = [(f, 0.6) for f in (420.0, 650.0, 930.0, 1190.0, 1480.0)]
    window = sines(768, (3951.0, 1.0), (62.0, 2.0), *knock)
    check = SpectralCheck(ANALYSIS_RATE)
    assert check.top_string_hz(window) == pytest.approx(3951.0, rel=0.01)
    freq, dominance = check.check(window, 62.0, 0.53)
    assert freq == pytest.approx(3951.0, rel=0.01)
    assert dominance >= 0.6


def test_a_bright_partial_as_strong_as_its_fundamental_is_not_a_top_string():
    """C5 with its fifth partial (2.6 kHz) a little stronger than its fundamental, and YIN
    finding no period: the partial is not clearly the strongest line, so it is not named
    (a note 28 semitones up)."""
    c5 = 523.25
    window = sines(768, (c5, 1.0), (2 * c5, 0.5), (3 * c5, 0.4), (5.05 * c5, 1.05))
    check = SpectralCheck(ANALYSIS_RATE)
    assert check.top_string_hz(window) is None
    assert check.check(window, None) is None


def test_a_top_string_is_not_asked_for_over_yins_own_note():
    """F6 whose stretched second partial (2.03 x) is the strongest line, over a knock. YIN's
    period is F6's, not one in a rumble (below 200 Hz), so the line that stands out is not
    taken for a top string, and F6 stands."""
    f6 = 1396.9
    knock = [(f, 0.45) for f in (500.0, 800.0, 1100.0)]
    window = sines(768, (f6, 0.7), (2.03 * f6, 1.0), *knock)
    check = SpectralCheck(ANALYSIS_RATE)
    assert check.top_string_hz(window) == pytest.approx(2.03 * f6, rel=0.01)
    freq, _ = check.check(window, f6, 0.82)
    assert freq == pytest.approx(f6, rel=0.03)


# (key, seed, knock level in dB, room, named before): the knock's rumble read as a bass key
# whose series explains next to none of the strike's peaks (NoteListener._no_string_behind)
RUMBLE_NAMED_BASS = [
    (99, 2, -6, True, 46),
    (101, 1, 0, False, 46),
    (102, 2, 0, False, 41),
    (104, 2, 0, False, 38),
    (104, 4, 0, False, 29),
]


@pytest.mark.parametrize(("midi", "seed", "knock_db", "room", "before"), RUMBLE_NAMED_BASS)
def test_a_knocks_rumble_is_no_bass_string(midi, seed, knock_db, room, before):
    """No string is behind the rumble's period, so it is no note; later windows find the top
    string (within the 100 ms YIN's longest window takes)."""
    audio = knocked_key(midi, seed, knock_db, room)
    first = transcribe_array(audio, RATE)[0]
    assert first["midi"] == midi, first
    assert first["emitted_s"] - LEAD_S <= 0.1
    without = ListenerParams(bass_string_check=False)
    assert transcribe_array(audio, RATE, without)[0]["midi"] == before  # what it was before


def test_a_bass_string_explains_its_strike():
    """A struck bass string (stiff, synthetic) is named its key: its partials explain the
    strike's peaks."""
    for midi in (28, 33, 40, 45):
        audio = stiff_tone(midi, seconds=1.0)
        first = transcribe_array(audio, RATE)[0]
        assert first["midi"] == midi, first


# (key, seed, knock level in dB, room): the knock outweighed the top string in every window
# from the strike; the newest 30 ms of the longer windows show the string alone above the
# thump (NoteListener._top_string_rings_on). No note without that look.
RINGS_ON_PAST_THE_KNOCK = [(100, 4, 0, False), (106, 4, 0, True)]


@pytest.mark.parametrize(("midi", "seed", "knock_db", "room"), RINGS_ON_PAST_THE_KNOCK)
def test_a_top_string_that_rings_on_past_its_knock_is_named(midi, seed, knock_db, room):
    audio = knocked_key(midi, seed, knock_db, room)
    first = transcribe_array(audio, RATE)[0]
    assert first["midi"] == midi, first
    assert first["emitted_s"] - LEAD_S <= 0.1
    assert transcribe_array(audio, RATE, ListenerParams(top_rings_on=False)) == []


def test_a_top_string_stretched_sharp_of_c8_is_c8():
    """A top string 88 cents over C8 (stiff_tone at 108.6: its stiffness adds 28 cents), as a
    grand's stretched top octave can be (Salamander's C8 rings 87 cents sharp): C8, with its
    cents. With the range ending half a key over C8 it gave no note."""
    audio = knocked(108.6, 1, 0)  # a pitch between keys: stiff_tone takes any
    first = transcribe_array(audio, RATE)[0]
    assert first["midi"] == 108, first
    assert first["name"] == "C8"
    assert first["cents"] == pytest.approx(88, abs=3)
    assert transcribe_array(audio, RATE, ListenerParams(top_reach_semitones=0.5)) == []


# Knocked top keys whose rumble the harmonic check, asked without the harmonics under the
# thump, would move up to a middle key (the key it named so, in the last column).
RUMBLE_MOVED_UP = [(81, 2, 0, False, 50), (84, 3, 0, False, 49), (91, 3, 0, True, 57)]


@pytest.mark.parametrize(("midi", "seed", "knock_db", "room", "moved"), RUMBLE_MOVED_UP)
def test_a_knocks_rumble_is_not_moved_up_to_a_middle_key(midi, seed, knock_db, room, moved):
    """The check without the thump's harmonics moves an estimate only to a note from
    ListenerParams.harmonic_thump_note_hz up (NoteListener._check_harmonics): a rumble's
    period has harmonics over 200 Hz that can pass for a note's under it."""
    audio = knocked_key(midi, seed, knock_db, room)
    assert moved not in [n["midi"] for n in transcribe_array(audio, RATE)]
    unbounded = ListenerParams(harmonic_thump_note_hz=0.0)
    assert transcribe_array(audio, RATE, unbounded)[0]["midi"] == moved  # what it would be


# (key, seed, knock level in dB, room, the key named without the rule): an earlier window found
# the top string with the confidence two windows need, and the decided window (61.18, 63.44,
# 44.57) repeats as well at a third of its period (C#4 under G#5) or a fifth (D#4 under G7,
# between G#2 and A2 under a stretched C5).
DECIDED_AS_A_SUBHARMONIC = [(80, 1, -6, False, 61), (91, 4, -6, True, 63), (72, 4, 0, True, 45)]


@pytest.mark.parametrize(("midi", "seed", "knock_db", "room", "low"), DECIDED_AS_A_SUBHARMONIC)
def test_a_subharmonic_decided_is_taken_up_to_the_note_an_earlier_window_found(
    midi, seed, knock_db, room, low
):
    """NoteListener._multiple_seen: the note YIN's long period is a whole fraction of."""
    audio = knocked_key(midi, seed, knock_db, room)
    assert transcribe_array(audio, RATE)[0]["midi"] == midi
    without = ListenerParams(multiple_seen=False)
    assert transcribe_array(audio, RATE, without)[0]["midi"] == low  # what it would be


# (key, seed, knock level in dB, room): YIN found the top string, then the rumble's period,
# then the string again; no two windows in a row agreed and these gave no note.
AGREEING_OVER_THE_RUMBLE = [(79, 3, -6, True), (81, 3, -6, True), (91, 2, -6, False)]


@pytest.mark.parametrize(("midi", "seed", "knock_db", "room"), AGREEING_OVER_THE_RUMBLE)
def test_windows_agreeing_over_the_rumbles_period_between_them_decide(midi, seed, knock_db, room):
    """NoteListener._agrees_over_subharmonics."""
    audio = knocked_key(midi, seed, knock_db, room)
    first = transcribe_array(audio, RATE)[0]
    assert first["midi"] == midi, first
    assert first["emitted_s"] - LEAD_S <= 0.05, first
    without = ListenerParams(agree_over_subharmonics=False)
    assert transcribe_array(audio, RATE, without) == []  # what it would be
