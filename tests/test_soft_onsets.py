"""Soft keys in legato: a key struck softly as a louder one is let go rises less than the onset
threshold that the old key's decay keeps up, and was never found. While a note sounds, a rise
over two hops past a lower threshold is a strike when no ordinary strike follows within two
hops (`ListenerParams.soft_onset_sensitivity`, NoteListener._soft_onset_factor). Bars of the
development bass lines (seeds 5100+), rendered on the development pianos at test time, each
moved across one hop: the soft key must not depend on where its strike falls."""

from __future__ import annotations

import pytest
from test_legato import ACROSS_A_HOP_S, moved  # tests/ is on sys.path

from notesight.device.transcribe import transcribe_array
from notesight.dsp.listener import ListenerParams
from notesight.dsp.onset import OnsetDetector

SR = 44100
WITHOUT_SOFT_ONSETS = ListenerParams(soft_onset_sensitivity=None)

# (onset_s, midi, velocity, duration_s), each bar moved to start at 0.5 s.
# Bass line 5102's opening: a loud B2, a loud G2, then a soft D#2.
SOFT_D_SHARP_2 = [(0.5, 47, 110, 0.1921), (0.6921, 43, 107, 0.1948), (0.8868, 39, 66, 0.2953)]
# Bass line 5109 at 7.65-9.06 s: B1, a loud C#2, then a soft D#2.
SOFT_AFTER_C_SHARP_2 = [(0.5, 35, 87, 0.544), (1.0439, 37, 107, 0.3627), (1.4066, 39, 51, 0.507)]
# Bass line 5104 at 1.54-2.57 s: C2, A1, then a soft B1.
SOFT_B_1 = [(0.5, 36, 90, 0.5504), (1.0503, 33, 79, 0.2192), (1.2695, 35, 54, 0.2555)]
CASES = [
    (SOFT_D_SHARP_2, "TimGM6mb"),
    (SOFT_D_SHARP_2, "csound"),
    (SOFT_AFTER_C_SHARP_2, "csound"),
    (SOFT_B_1, "csound"),
]
IDS = ["D#2-after-G2-TimGM6mb", "D#2-after-G2-csound", "D#2-after-C#2-csound", "B1-after-A1-csound"]


@pytest.mark.parametrize(("rows", "soundfont"), CASES, ids=IDS)
def test_soft_key_let_in_by_a_loud_one_lights(piano, rows, soundfont):
    keys = [midi for _, midi, _, _ in rows]
    soft_onset = rows[-1][0]
    for shift in ACROSS_A_HOP_S:
        audio = piano(moved(rows, shift), soundfont)
        found = transcribe_array(audio, SR)
        assert [n["midi"] for n in found] == keys, f"moved {shift} s"
        assert abs(found[-1]["onset_s"] - (soft_onset + shift)) <= 0.05  # the benchmark's window
        assert found[-1]["emitted_s"] - (soft_onset + shift) <= 0.08


@pytest.mark.parametrize(("rows", "soundfont"), CASES, ids=IDS)
def test_without_soft_onsets_the_soft_key_is_lost(piano, rows, soundfont):
    """What the lower threshold is for: at most of the shifts the ordinary one misses it."""
    keys = [midi for _, midi, _, _ in rows]
    lost = 0
    for shift in ACROSS_A_HOP_S:
        audio = piano(moved(rows, shift), soundfont)
        found = transcribe_array(audio, SR, WITHOUT_SOFT_ONSETS)
        lost += [n["midi"] for n in found] != keys
    assert lost >= 3


def settled(detector: OnsetDetector) -> OnsetDetector:
    """The detector after 20 quiet hops (no recent rise: thresholds at their floors)."""
    for _ in range(20):
        assert detector.decide(0.0, 0.0, -30.0, -90.0, 1.5, SOFT_FACTOR) is None
    return detector


SOFT_FACTOR = 1.3
# Rises over two hops between the soft floor (0.044 at soft sensitivity 0.8) and the ordinary
# one (0.08 at sensitivity 0.5), and one over the ordinary floor.
SOFT_RISES = (0.06, 0.07, 0.05)
ORDINARY_RISE = 0.2


def test_an_ordinary_strike_keeps_its_hop():
    """A strike whose first hop passes only the lower threshold and its second the ordinary
    one is reported on that second hop, as ordinary (0 hops ago), as it was without soft
    onsets."""
    detector = settled(OnsetDetector(22050, 128, 512, soft_sensitivity=0.8))
    assert detector.decide(0.0, SOFT_RISES[0], -30.0, -90.0, 1.5, SOFT_FACTOR) is None
    strike = detector.decide(0.0, ORDINARY_RISE, -30.0, -90.0, 1.5, SOFT_FACTOR)
    assert strike is not None and strike.hops_ago == 0


def test_a_soft_rise_is_a_strike_two_hops_later():
    detector = settled(OnsetDetector(22050, 128, 512, soft_sensitivity=0.8))
    decisions = [detector.decide(0.0, r, -30.0, -90.0, 1.5, SOFT_FACTOR) for r in SOFT_RISES]
    assert decisions[:2] == [None, None]
    assert decisions[2] is not None and decisions[2].hops_ago == 2


@pytest.mark.parametrize(("soft_sensitivity", "soft_factor"), [(None, SOFT_FACTOR), (0.8, None)])
def test_no_soft_strike_without_its_threshold(soft_sensitivity, soft_factor):
    """Without a soft sensitivity, or without a soft factor (the listener gives none when no
    note sounds), the same rises are no strike."""
    detector = OnsetDetector(22050, 128, 512, soft_sensitivity=soft_sensitivity)
    for _ in range(20):
        detector.decide(0.0, 0.0, -30.0, -90.0, 1.5, soft_factor)
    decisions = [detector.decide(0.0, r, -30.0, -90.0, 1.5, soft_factor) for r in SOFT_RISES]
    assert decisions == [None, None, None]
