"""bench/notes.py's scores, checked on hand-made note lists (needs mir_eval, from the dev
extra): note_f1, the polyphonic score the Basic Pitch comparison relies on, and
struck_under_figures, which judges a bass key struck under a ringing one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("mir_eval")

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_notes():
    # bench/ is a folder of scripts, not a package: load the file itself, with its folder on
    # the path for its sibling module piano_sets.
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_notes", BENCH / "notes.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_notes"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.fixture(scope="module")
def note_f1(bench_notes):
    return bench_notes.note_f1


CHORD = [(1.0, 2.0, 60), (1.0, 2.0, 64), (1.0, 2.0, 67)]


def test_identical_chord_scores_one(note_f1) -> None:
    assert note_f1(CHORD, CHORD) == (1.0, 1.0, 1.0)


def test_offsets_are_ignored(note_f1) -> None:
    cut_short = [(on, on + 0.05, midi) for on, _, midi in CHORD]
    assert note_f1(CHORD, cut_short) == (1.0, 1.0, 1.0)


def test_onset_window_is_50_ms(note_f1) -> None:
    inside = [(1.04, 2.0, 60), (0.96, 2.0, 64), (1.0, 2.0, 67)]
    outside = [(1.06, 2.0, 60), (0.94, 2.0, 64), (1.0, 2.0, 67)]
    assert note_f1(CHORD, inside)[2] == 1.0
    assert note_f1(CHORD, outside) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_wrong_key_is_a_miss_and_a_false_note(note_f1) -> None:
    # 61 is a semitone (100 cents) off 60: outside the 50 cent pitch window.
    estimate = [(1.0, 2.0, 61), (1.0, 2.0, 64), (1.0, 2.0, 67)]
    assert note_f1(CHORD, estimate) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_extra_and_missing_notes_split_precision_and_recall(note_f1) -> None:
    # Two of three found plus two extra notes: precision 2/4, recall 2/3, F1 4/7.
    estimate = [(1.0, 2.0, 60), (1.0, 2.0, 64), (1.0, 2.0, 72), (3.0, 4.0, 60)]
    assert note_f1(CHORD, estimate) == pytest.approx((0.5, 2 / 3, 4 / 7))


def test_one_estimate_matches_one_reference_only(note_f1) -> None:
    # The same key struck twice 30 ms apart; a single found note pairs with one of them.
    reference = [(1.0, 1.5, 60), (1.03, 1.5, 60)]
    assert note_f1(reference, [(1.01, 1.5, 60)]) == pytest.approx((1.0, 0.5, 2 / 3))


def test_nothing_found_scores_zero(note_f1) -> None:
    assert note_f1(CHORD, []) == (0.0, 0.0, 0.0)


def test_empty_reference_is_refused(note_f1) -> None:
    with pytest.raises(ValueError, match="reference"):
        note_f1([], CHORD)


def _found(midi: int, onset_s: float, emitted_s: float) -> dict:
    return {"midi": midi, "onset_s": onset_s, "offset_s": onset_s + 0.5, "emitted_s": emitted_s}


def test_struck_under_judges_the_first_note_from_the_bass_strike_on(bench_notes) -> None:
    from notesight.device.synth import Note

    bass = Note(1.0, 1.0, 33, 40)
    ringing = _found(67, 0.5, 0.53)  # the upper key, out before the strike: not judged
    right = bench_notes.struck_under_figures(bass, [ringing, _found(33, 1.01, 1.07)])
    assert right["right"] and right["found"] == 33
    assert right["latency_s"] == pytest.approx(0.07)
    # the ringing key named again at the strike is the note judged, and it is wrong
    wrong = bench_notes.struck_under_figures(bass, [ringing, _found(67, 0.98, 1.03)])
    assert not wrong["right"] and wrong["found"] == 67 and wrong["latency_s"] is None
    nothing = bench_notes.struck_under_figures(bass, [ringing])
    assert not nothing["right"] and nothing["found"] is None
