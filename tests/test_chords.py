"""Chord naming (templates, inversions, root choice, fallbacks) and the debounced ChordTracker."""

from __future__ import annotations

import pytest

from notesight.dsp.chords import TEMPLATES, ChordTracker, chord_name
from notesight.dsp.events import Chord, NoteOff, NoteOn
from notesight.dsp.music import NOTE_NAMES, midi_to_name

# C4 = 60
C3, G3 = 48, 55
A3, B3, C4, D4, E4, F4, G4, A4, B4, C5 = 57, 59, 60, 62, 64, 65, 67, 69, 71, 72


@pytest.mark.parametrize(
    ("midis", "name"),
    [
        # the examples
        ((C4, E4, G4), "C"),
        ((A3, C4, E4, G4), "Am7"),
        ((66, A4, C5), "F#dim"),
        ((B3, D4, F4, G4), "G7/B"),
        ((E4, G4, C5), "C/E"),
        # inversions become slash chords
        ((G3, C4, E4), "C/G"),
        ((C4, E4, A4), "Am/C"),
        ((E4, A4, C5), "Am/E"),
        ((F4 - 12, G3, B3, D4), "G7/F"),
        ((F4, A4, B4, D4 + 12), "Bm7b5/F"),  # no G sounds: m7b5 ranks before Dm6
        ((B3, E4, G4, C5), "Cmaj7/B"),
        # the other qualities, one voicing each
        ((D4, 65, A4), "Dm"),
        ((C4, E4, 68), "Caug"),
        ((C4, F4, G4), "Csus4"),
        ((C4, D4, G4), "Csus2"),
        ((C3, G3), "C5"),
        ((C3, G3, C4), "C5"),
        ((G3, C4), "C5/G"),
        ((C4, E4, G4, A4), "C6"),
        ((C4, 63, G4, A4), "Cm6"),
        ((C4, E4, G4, B4), "Cmaj7"),
        ((B3, D4, F4, A4), "Bm7b5"),
        ((B3, D4, F4, 68), "Bdim7"),
        ((C4, 63, G4, B4), "CmMaj7"),
        ((G3, C4, D4, F4), "G7sus4"),
        ((C4, D4, E4, G4), "Cadd9"),
        ((C3, E4, G4, 70, D4 + 12), "C9"),
        ((C3, E4, B4, D4 + 12), "Cmaj9"),
        ((A3, C4, E4, G4, B4), "Am9"),
        # dropped 5ths in sevenths and ninths
        ((C3, E4, 70), "C7"),
        ((C3, 70, E4 + 12), "C7"),
        ((A3, C4, G4), "Am7"),
        ((C3, E4, B4), "Cmaj7"),
        ((C3, 63, B4), "CmMaj7"),
        ((C3, E4, 70, D4 + 12), "C9"),
        ((A3, C4, G4, B4), "Am9"),
        # octave doublings do not change the name; the bass still decides the slash
        ((C3, C4, E4, G4, C5), "C"),
        ((E4 - 12, C4, E4, G4, C5), "C/E"),
        ((G3 - 12, B3, D4, F4, G4), "G7"),
        # sharps spell every root, as midi_to_name does
        ((61, 65, 68), "C#"),
        ((70, 73, 77), "A#m"),
        ((63, 67, 70, 73), "D#7"),
    ],
)
def test_names_voicings(midis: tuple[int, ...], name: str) -> None:
    assert chord_name(midis) == name


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.suffix or "major")
def test_every_template_in_root_position_on_every_root(template) -> None:
    for root in range(12):
        bass = 48 + root
        full = [bass + interval for interval in sorted(template.intervals)]
        assert chord_name(full) == NOTE_NAMES[root] + template.suffix, full
        if template.fifth_optional:
            no_fifth = [key for key in full if key != bass + 7]
            assert chord_name(no_fifth) == NOTE_NAMES[root] + template.suffix, no_fifth


def test_the_templates_never_read_as_each_other() -> None:
    """No quality is another one's rotation or copy, so only the bass rule picks among roots."""
    shapes = []
    for template in TEMPLATES:
        shapes.append(template.intervals)
        if template.fifth_optional:
            shapes.append(template.intervals - {7})
    assert len(set(shapes)) == len(shapes)


@pytest.mark.parametrize(
    ("midis", "name"),
    [
        # C-E-G-A: C6 over C, Am7 over A; over E neither root is the bass, m7 ranks before 6
        ((C4, E4, G4, A4), "C6"),
        ((A3, C4, E4, G4), "Am7"),
        ((E4, G4, A4, C5), "Am7/E"),
        ((G3, C4, E4, A4), "Am7/G"),
        # C-Eb-G-A: Cm6 over C, Am7b5 over A, and m7b5 ranks before m6
        ((C4, 63, G4, A4), "Cm6"),
        ((A3, C4, 63, G4), "Am7b5"),
        ((63, G4, A4, C5), "Am7b5/D#"),
        # C-D-G: Csus2 over C, Gsus4 over G, and sus4 ranks before sus2 over D
        ((C4, D4, G4), "Csus2"),
        ((G3, C4, D4), "Gsus4"),
        ((D4, G4, C5), "Gsus4/D"),
        # symmetric chords take the bass as root
        ((C4, E4, 68), "Caug"),
        ((E4, 68, C5), "Eaug"),
        ((68, C5, E4 + 12), "G#aug"),
        ((C4, 63, 66, A4), "Cdim7"),
        ((A3, C4, 63, 66), "Adim7"),
        # a key under a triad that is no chord tone: the triad with an added tone over it
        ((G3, F4, A4, C5), "Fadd9/G"),
    ],
)
def test_root_choice_when_several_roots_fit(midis: tuple[int, ...], name: str) -> None:
    assert chord_name(midis) == name


@pytest.mark.parametrize(
    ("midis", "name"),
    [
        ((), ""),
        ((A4,), "A4"),
        ((61,), "C#4"),
        ((A3, A4), "A3"),  # one pitch class: the lowest key
        ((C4, E4), "C4 E4"),  # a third is no power chord
        ((C4, 61), "C4 C#4"),
        ((E4, C4, C5), "C4 E4 C5"),  # unsorted in, lowest first out, every key listed
        ((C4, E4, 66, 70, B4), "C4 E4 F#4 A#4 B4"),
        ((C4, 61, D4), "C4 C#4 D4"),  # a cluster
        ((C4, E4, G4, 70, 61), "C4 C#4 E4 G4 A#4"),  # C7b9 is not in the table
    ],
)
def test_fallbacks_name_the_notes(midis: tuple[int, ...], name: str) -> None:
    assert chord_name(midis) == name


def test_fallback_uses_project_note_names() -> None:
    keys = (21, 61, 108)
    assert chord_name(keys) == " ".join(midi_to_name(k) for k in keys) == "A0 C#4 C8"


# ---------------------------------------------------------------------------------------------
# ChordTracker
# ---------------------------------------------------------------------------------------------


def on(midi: int, t: float) -> NoteOn:
    return NoteOn(midi, midi_to_name(midi), 440.0, 0.0, 80, t - 0.01, t)


def off(midi: int, t: float) -> NoteOff:
    return NoteOff(midi, midi_to_name(midi), t - 0.01, t)


def test_rolled_chord_is_one_event_at_the_time_it_was_complete() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    assert tracker.feed([on(C4, 1.00), on(E4, 1.02), on(G4, 1.04), on(C5, 1.09)]) == []
    assert tracker.tick(1.14) == []  # 50 ms after the last key: still settling
    assert tracker.tick(1.15) == [Chord("C", (C4, E4, G4, C5), 1.09)]
    assert tracker.tick(1.5) == []


def test_a_later_event_lets_a_settled_chord_out_before_it_applies() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    events = [on(A3, 0.0), on(C4, 0.0), on(E4, 0.01), off(A3, 0.5), off(C4, 0.5), off(E4, 0.5)]
    assert tracker.feed(events) == [Chord("Am", (A3, C4, E4), 0.01)]
    assert tracker.tick(0.56) == [Chord("", (), 0.5)]


def test_chord_changes_and_release_clear_the_display() -> None:
    tracker = ChordTracker(debounce_s=0.05)
    out = tracker.feed([on(C4, 0.0), on(E4, 0.0), on(G4, 0.0)])
    out += tracker.tick(0.1)
    # C -> Am: G up, A down, 20 ms apart (one change, C-E alone never shows)
    out += tracker.feed([off(G4, 1.0), on(A4, 1.02)])
    out += tracker.tick(1.1)
    out += tracker.feed([off(C4, 2.0), off(E4, 2.01), off(A4, 2.03)])
    out += tracker.tick(2.1)
    assert out == [
        Chord("C", (C4, E4, G4), 0.0),
        Chord("Am/C", (C4, E4, A4), 1.02),
        Chord("", (), 2.03),
    ]


def test_quick_change_back_emits_nothing() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    tracker.feed([on(C4, 0.0), on(E4, 0.0), on(G4, 0.0)])
    assert tracker.tick(0.1) == [Chord("C", (C4, E4, G4), 0.0)]
    # E lifted and struck again within the debounce time; then C-E-G holds
    assert tracker.feed([off(E4, 1.0), on(E4, 1.03)]) == []
    assert tracker.tick(1.2) == []
    assert tracker.tick(5.0) == []


def test_same_name_new_voicing_is_emitted() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    tracker.feed([on(C4, 0.0), on(E4, 0.0), on(G4, 0.0)])
    tracker.tick(0.1)
    tracker.feed([on(C5, 0.5)])
    assert tracker.tick(0.6) == [Chord("C", (C4, E4, G4, C5), 0.5)]


def test_melody_notes_alone_never_emit() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    out = []
    for i, key in enumerate((C4, D4, E4, F4)):
        out += tracker.feed([on(key, i * 0.5), off(key, i * 0.5 + 0.3)])
        out += tracker.tick(i * 0.5 + 0.45)
    assert out == []


def test_chord_thinning_to_one_note_clears_once() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    tracker.feed([on(C4, 0.0), on(E4, 0.0), on(G4, 0.0)])
    assert tracker.tick(0.1) == [Chord("C", (C4, E4, G4), 0.0)]
    tracker.feed([off(E4, 1.0), off(G4, 1.0)])  # C alone keeps ringing
    assert tracker.tick(1.1) == [Chord("", (), 1.0)]
    tracker.feed([off(C4, 2.0)])
    assert tracker.tick(2.1) == []  # already clear


def test_min_notes_counts_pitch_classes() -> None:
    tracker = ChordTracker(debounce_s=0.06, min_notes=3)
    tracker.feed([on(C3, 0.0), on(G3, 0.0), on(C4, 0.0)])  # a power chord: two pitch classes
    assert tracker.tick(0.1) == []
    tracker.feed([on(E4, 0.5)])
    assert tracker.tick(0.6) == [Chord("C", (C3, G3, C4, E4), 0.5)]

    octaves = ChordTracker(debounce_s=0.06)  # min_notes=2: an octave is one pitch class
    octaves.feed([on(C3, 0.0), on(C4, 0.0)])
    assert octaves.tick(0.1) == []


def test_min_notes_one_shows_single_notes() -> None:
    tracker = ChordTracker(debounce_s=0.06, min_notes=1)
    tracker.feed([on(A4, 0.0)])
    assert tracker.tick(0.1) == [Chord("A4", (A4,), 0.0)]


def test_keys_of_one_hop_never_settle_each_other() -> None:
    """With no debounce, events stamped at the same moment still make one chord."""
    tracker = ChordTracker(debounce_s=0.0)
    assert tracker.feed([on(C4, 1.0), on(E4, 1.0), on(G4, 1.0)]) == []
    assert tracker.tick(1.0) == [Chord("C", (C4, E4, G4), 1.0)]


def test_restrike_of_a_held_key_does_not_restart_the_debounce() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    tracker.feed([on(C4, 0.0), on(E4, 0.0), on(G4, 0.0), on(C4, 0.05), off(B4, 0.05)])
    assert tracker.tick(0.06) == [Chord("C", (C4, E4, G4), 0.0)]


def test_flush_emits_the_pending_change_at_once() -> None:
    tracker = ChordTracker(debounce_s=0.06)
    assert tracker.flush() == []
    tracker.feed([on(B3, 0.0), on(D4, 0.0), on(F4, 0.01), on(G4, 0.02)])
    assert tracker.flush() == [Chord("G7/B", (B3, D4, F4, G4), 0.02)]
    assert tracker.flush() == []
    assert tracker.tick(1.0) == []
    assert tracker.sounding == (B3, D4, F4, G4)  # still held: the listener releases them
    tracker.feed([off(B3, 1.0), off(D4, 1.0), off(F4, 1.0), off(G4, 1.0)])
    assert tracker.flush() == [Chord("", (), 1.0)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"debounce_s": -0.01}, "debounce_s must be >= 0"),
        ({"min_notes": 0}, "min_notes must be >= 1"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChordTracker(**kwargs)  # type: ignore[arg-type]
