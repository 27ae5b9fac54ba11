"""A soft key struck under a loud one a third or so above it: the old string keeps YIN on its
period, and in the longer windows YIN reads two of them, an octave under the old key, while
the comb (the old string taken out) hears the new key. The comb's answer wins when YIN's
reading is the old string's subharmonic and what the strike added lies on the comb's key
(`ListenerParams.old_subharmonic_check`, NoteListener._comb_over_old_subharmonic). An excerpt
of a development melody (bench/piano_sets.melody, seed 1005) on the development piano
TimGM6mb, moved across one hop: the soft key must not depend on where its strike falls."""

from __future__ import annotations

from test_legato import ACROSS_A_HOP_S, moved  # tests/ is on sys.path

from notesight.device.transcribe import transcribe_array
from notesight.dsp.listener import ListenerParams

SR = 44100
WITHOUT_THE_CHECK = ListenerParams(old_subharmonic_check=False)

# (onset_s, midi, velocity, duration_s), each excerpt moved to start at 0.5 s.
# Melody 1005 at 4.70-5.91 s: F#4, F#4 again loud, then a soft D4 (named F#3 before).
SOFT_D_4 = [(0.5, 66, 81, 0.1601), (0.6601, 66, 102, 0.5065), (1.1666, 62, 53, 0.5397)]


def test_soft_key_under_a_loud_third_is_named(piano):
    rows = SOFT_D_4
    keys = [midi for _, midi, _, _ in rows]
    for shift in ACROSS_A_HOP_S:
        found = transcribe_array(piano(moved(rows, shift), "TimGM6mb"), SR)
        assert [n["midi"] for n in found] == keys, f"moved {shift} s"
        assert abs(found[-1]["onset_s"] - (rows[-1][0] + shift)) <= 0.05


def test_without_the_check_the_old_strings_octave_is_named(piano):
    """What the check is for: without it the soft key is named an octave under the old key
    at most of the shifts."""
    rows = SOFT_D_4
    old_octave_down = rows[-2][1] - 12
    named_low = 0
    for shift in ACROSS_A_HOP_S:
        found = transcribe_array(piano(moved(rows, shift), "TimGM6mb"), SR, WITHOUT_THE_CHECK)
        named_low += [n["midi"] for n in found][-1:] == [old_octave_down]
    assert named_low >= 3
