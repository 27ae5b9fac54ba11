"""A struck string whose pitch still moves: its first windows can fall between two keys.

freepats' grand (tests/timidity.py) starts several keys tens of cents off the pitch they settle
at (its C5 reads +25, +102, +56, +26 cents in the first four windows, within 17 ms) and was
named a key off. An estimate more than 30 cents from every key that moved since the window
before now waits for a later window, up to 35 ms (`NoteListener._settling`); one that stays put
off the key (a string tuned there) does not wait. Latency here is audio time (`emitted_s` -
the onset), not wall-clock time."""

from __future__ import annotations

import numpy as np
import pytest
from test_legato import ACROSS_A_HOP_S
from test_stiff_strings import LEAD_S, RATE, legato, second_key, stiff_tone

from notesight.device.synth import Note
from notesight.device.transcribe import transcribe_array
from notesight.dsp.listener import ListenerParams

# No estimate is 100 cents from every key, and none waits for moving onto a key
NEVER_SETTLING = ListenerParams(settle_cents=100.0, settle_across_keys=False)


def first_note(audio: np.ndarray, params: ListenerParams | None = None) -> dict:
    return transcribe_array(audio, RATE, params)[0]


@pytest.mark.parametrize(("midi", "start_cents"), [(72, 80), (72, 90), (76, 80), (76, 90)])
def test_a_string_gliding_down_to_its_key_is_named_its_key(midi, start_cents):
    audio = stiff_tone(midi, seconds=0.8, glide=(start_cents, 0.012))
    assert first_note(audio)["midi"] == midi
    assert first_note(audio, NEVER_SETTLING)["midi"] == midi + 1  # what it was named before


@pytest.mark.parametrize(("midi", "onset_s"), [(73, 0.5), (75, 0.5035)])
def test_freepats_keys_whose_attack_glides_are_named_their_key(freepats, midi, onset_s):
    """Where the hop grid meets the glide matters: these keys, struck at these times, were named
    a key up; at other times the same samples were named right before, or are named wrong
    still (freepats' C5 starts a whole semitone sharp, and a window there is on a key)."""
    audio = freepats([Note(onset_s, 1.0, midi, 110)])
    note = first_note(audio)
    assert note["midi"] == midi
    assert note["emitted_s"] - onset_s <= 0.05
    assert first_note(audio, NEVER_SETTLING)["midi"] == midi + 1  # what it was named before


@pytest.mark.parametrize("midi", [71, 76])
def test_freepats_keys_whose_attack_wanders_onto_the_next_key_are_named_their_key(freepats, midi):
    """freepats' B4 and E5, struck hard: the first windows' estimates climb from the key
    towards the next one, and a window near the next key (within 30 cents, so not waiting as
    an estimate between keys does) named it, a key up. An estimate that moved onto a key from
    a window on another now waits for the next window (ListenerParams.settle_across_keys).
    The strike is moved across one hop: without the rule some of these places were named a
    key up, others right."""
    named, before = [], []
    for shift in ACROSS_A_HOP_S:
        audio = freepats([Note(0.5 + shift, 1.0, midi, 110)])
        note = first_note(audio)
        assert note["emitted_s"] - 0.5 - shift <= 0.05, note
        named.append(note["midi"])
        # the newest half's reading (NoteListener._estimate) now names all of them right too
        without = ListenerParams(settle_across_keys=False, newest_half=False)
        before.append(first_note(audio, without)["midi"])
    assert named == [midi] * len(ACROSS_A_HOP_S)
    assert midi + 1 in before  # what some of them were named before


def test_freepats_key_wandering_onto_the_next_key_under_a_ringing_one_is_named_its_key(
    freepats,
):
    """In legato too: freepats' B4 struck (velocity 87) as its D#5 (58), held 0.45 s, is
    released, as in a development melody. Its first windows climb from B4 towards C5, and
    where the hop grid met that climb a window near C5 named C5. The strike is moved across
    one hop; without the rule one of these places was named C5 (and without the newest half's
    reading, NoteListener._estimate, which now names it right as well; and with settle_cents
    at 30, as then: at 25 a window 25-30 cents off C5 waits as well)."""
    without = ListenerParams(settle_across_keys=False, newest_half=False, settle_cents=30.0)
    named, before = [], []
    for shift in ACROSS_A_HOP_S:
        onset = 0.5 + 0.452 + shift
        audio = freepats([Note(0.5, onset - 0.5, 75, 58), Note(onset, 0.5, 71, 87)])
        notes = [n for n in transcribe_array(audio, RATE) if abs(n["onset_s"] - onset) < 0.05]
        assert len(notes) == 1 and notes[0]["emitted_s"] - onset <= 0.05, notes
        named.append(notes[0]["midi"])
        old = [
            n for n in transcribe_array(audio, RATE, without) if abs(n["onset_s"] - onset) < 0.05
        ]
        before.append(old[0]["midi"])
    assert named == [71] * len(ACROSS_A_HOP_S)
    assert 72 in before  # what one of them was named before


@pytest.mark.parametrize("midi", [84.35, 88.35, 88.4])
def test_a_string_tuned_off_the_key_does_not_wait_for_the_settling_windows(midi):
    """A stretched treble string lies 30-40 cents sharp for good; its estimates stay put, so
    it is named within the short windows, not when they are over (35 ms)."""
    note = first_note(stiff_tone(midi))
    assert note["midi"] == round(midi)
    assert note["emitted_s"] - LEAD_S < ListenerParams().settle_window_s


def test_a_held_estimate_decides_when_no_later_window_does():
    """A random legato pair (B5 ringing, F#5 struck as loud): the new key's first estimates
    were off the key and moving; the windows after them found nothing to accept (the old
    string's period), and the key was named A#1 at 90 ms. The held estimate now decides when
    the short windows are over."""
    note = second_key(legato(86, 78, 1.0, 231))
    assert note["midi"] == 78
    assert note["emitted_s"] - LEAD_S - 0.4 <= 0.05
