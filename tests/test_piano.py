"""The listening core on real sampled pianos: FluidSynth renders made at test time, and the
real recordings in ../shared/data/piano (skipped when absent)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import soundfile as sf

from notesight.device.synth import Note
from notesight.device.transcribe import transcribe_array
from notesight.dsp.augment import room_version
from notesight.dsp.listener import ListenerParams

SR = 44100
SPACING_S = 2.5


def first_notes(
    audio: np.ndarray, keys: list[int], params: ListenerParams | None = None
) -> list[int | None]:
    """The first note found in each key's slot of a keys-one-after-another render."""
    found = transcribe_array(audio, SR, params=params)
    firsts = []
    for i in range(len(keys)):
        t0 = 0.5 + SPACING_S * i
        in_slot = [n for n in found if t0 - 0.1 <= n["onset_s"] < t0 + SPACING_S - 0.1]
        firsts.append(in_slot[0]["midi"] if in_slot else None)
    return firsts


def keys_render(piano, keys: list[int], velocity: int, soundfont: str = "FluidR3_GM"):
    notes = tuple(Note(0.5 + SPACING_S * i, 1.2, m, velocity) for i, m in enumerate(keys))
    return piano(notes, soundfont)


@pytest.mark.parametrize("velocity", [40, 110])
@pytest.mark.parametrize(
    ("register", "keys"),
    [
        ("middle C3-B5", list(range(48, 84, 5))),
        ("treble C6-C8", list(range(84, 109, 4))),
        ("bass C2-B2", list(range(36, 48, 3))),
    ],
)
def test_keys_of_each_register(piano, register, keys, velocity):
    assert first_notes(keys_render(piano, keys, velocity), keys) == keys, register


def test_low_bass_on_the_development_piano(piano):
    keys = [21, 24, 27, 30, 33]
    assert first_notes(keys_render(piano, keys, 100, "TimGM6mb"), keys) == keys


def test_repeated_key_and_held_note(piano):
    repeated = (Note(0.5, 0.3, 64, 90), Note(0.9, 0.3, 64, 90), Note(1.3, 0.3, 64, 90))
    found = transcribe_array(piano(repeated), SR)
    assert [n["midi"] for n in found] == [64, 64, 64]
    held = transcribe_array(piano((Note(0.5, 3.0, 67, 90),)), SR)
    assert [n["midi"] for n in held] == [67]


LEGATO_LINE = [60, 62, 64, 65, 67, 65, 64, 62, 60, 67, 72, 67]


def legato(piano, soundfont: str, room: bool):
    notes = tuple(Note(0.5 + 0.3 * i, 0.3, m, 80) for i, m in enumerate(LEGATO_LINE))
    audio = piano(notes, soundfont)
    return notes, room_version(audio, SR, seed=3) if room else audio


def test_legato_melody(piano):
    notes, audio = legato(piano, "MuseScore_General", room=False)
    found = transcribe_array(audio, SR)
    line = LEGATO_LINE
    assert [n["midi"] for n in found] == line
    for note, n in zip(notes, found, strict=True):
        assert abs(n["onset_s"] - note.onset_s) < 0.05
        assert n["emitted_s"] - note.onset_s < 0.1


# The start of the development melody 3009 (bench/piano_sets.py, the listener's tuning set) on
# TimGM6mb: (onset s, duration s, key, velocity), to 0.1 ms (rounded to 1 ms, the render differs
# enough that YIN never takes the long period). The soft D#4 at 3.5513 s comes under a loud A#3
# that was struck twice and was heard as A3.
DEVELOPMENT_MELODY_START = [
    (0.5, 0.2742, 60, 100),
    (0.7742, 0.1648, 63, 96),
    (0.939, 0.5411, 60, 67),
    (1.4801, 0.3636, 58, 60),
    (1.8437, 0.5407, 58, 55),
    (2.3844, 0.21, 55, 63),
    (2.5944, 0.5168, 58, 101),
    (3.1112, 0.4402, 58, 99),
    (3.5513, 0.3918, 63, 60),
]


def test_soft_key_over_a_loud_one_in_a_room_is_not_the_old_key(piano):
    """In the room, YIN took a long period of the D#4 and, capped at the lowest note legato
    expects, then found the old A#3's own (see NoteListener._shorter_period): a shorter
    period on the sounding key (here within a semitone of A3) must not pass for the new note."""
    notes = tuple(Note(*row) for row in DEVELOPMENT_MELODY_START)
    audio = room_version(
        piano(notes, "TimGM6mb"), SR, seed=zlib.crc32(b"TimGM6mb/mel3009") + 424242
    )
    found = [n for n in transcribe_array(audio, SR) if abs(n["onset_s"] - 3.5513) < 0.05]
    assert [n["midi"] for n in found] == [63]


SALAMANDER = {"C": 0, "Cs": 1, "D": 2, "Ds": 3, "E": 4, "F": 5, "Fs": 6, "G": 7}
SALAMANDER |= {"Gs": 8, "A": 9, "As": 10, "B": 11}


def test_real_grand_piano_notes(shared_data):
    """Salamander Grand Piano V2 (Yamaha C5), CC BY 3.0, Alexander Holm."""
    files = sorted((shared_data / "piano" / "salamander").glob("*.ogg"))
    assert len(files) == 30
    right = []
    for path in files:
        midi = 12 * (int(path.stem[-1]) + 1) + SALAMANDER[path.stem[:-1]]
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        found = transcribe_array(audio.mean(axis=1), rate)
        right.append(bool(found) and found[0]["midi"] == midi)
    # Measured 29 of 30, the goal: A4 is heard a semitone sharp in its first
    # windows (its line lies at 461 Hz over the first 12 ms, 440 Hz from 50 ms on).
    assert sum(right) >= 29


def test_real_c8_under_its_knock_and_tuned_sharp_is_named_c8(shared_data):
    """Salamander's C8 rings 88 cents sharp (a grand's stretched top octave) and stands under
    its knock for the first 40 ms; the newest samples of the longer windows show the string
    alone above the body's thump (NoteListener._top_string_rings_on). No note without."""
    audio, rate = sf.read(shared_data / "piano" / "salamander" / "C8.ogg", dtype="float32")
    mono = audio.mean(axis=1)
    found = transcribe_array(mono, rate)
    assert found[0]["midi"] == 108, found[0]
    assert found[0]["cents"] > 50
    assert transcribe_array(mono, rate, ListenerParams(top_rings_on=False)) == []


def test_real_disklavier_performance_runs_and_finds_its_notes(shared_data):
    """SMD Chopin Op. 28 No. 4 (CC BY-NC-SA 3.0): polyphonic, so only the melody-ish top is
    expected from the monophonic core; most of what it reports must be real notes."""
    path = shared_data / "piano" / "annotated" / "smd_chopin_op28-4_beginning.wav"
    rows = [r.split(";") for r in path.with_suffix(".csv").read_text().splitlines()[1:] if r]
    reference = [(float(r[0]), int(r[2])) for r in rows]
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    found = transcribe_array(audio.mean(axis=1), rate)
    assert found
    real = [
        n
        for n in found
        if any(abs(n["onset_s"] - t) < 0.05 and n["midi"] == m for t, m in reference)
    ]
    assert len(real) >= 0.2 * len(found)


def test_real_disklavier_chord_top_is_not_named_an_octave_low(shared_data):
    """The same recording at 4.057 s: a chord G3 B3 E4 struck while an A3 rings. Its short
    windows read 52.9 and 51.5 (E3), the harmonic check moved the next two up to E4, and a
    41 ms window's 63.77 waited for the energy below it. Deciding the octave down where an
    earlier window found it (NoteListener._octave_below_seen) named E3 until the rule was
    kept off strikes whose estimates the harmonic check had moved up."""
    path = shared_data / "piano" / "annotated" / "smd_chopin_op28-4_beginning.wav"
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    found = transcribe_array(audio.mean(axis=1), rate)
    assert [n["midi"] for n in found if abs(n["onset_s"] - 4.057) < 0.02] == [64]


def test_legato_melody_in_the_room_on_fluidr3(piano):
    """Long a known weakness (an xfail): in legato the previous string rings under the new one
    and YIN locks onto a period the two share. The last miss was the second E4, struck under a
    ringing F4 over FluidR3_GM's thump: named A#7 at 86 ms until the high-passed windows
    (NoteListener._high_passed_run) named it E4 at 34 ms."""
    _, audio = legato(piano, "FluidR3_GM", room=True)
    assert [n["midi"] for n in transcribe_array(audio, SR)] == LEGATO_LINE


def bench_room_key(piano, soundfont: str, midi: int, velocity: int) -> np.ndarray:
    """An isolated key in a room exactly as bench/notes.py plays it: rendered at its slot's
    time in the all-keys render (3 s a key from A0, struck 0.5 s in: FluidSynth starts notes
    on its block boundaries, so the time matters to a few samples), cut to its 3 s slot, in
    the room the bench seeds from the clip's names."""
    start = 3 * (midi - 21)
    rendered = piano((Note(start + 0.5, 1.0, midi, velocity),), soundfont)
    dry = np.pad(rendered, (0, max(0, (start + 3) * SR - len(rendered))))
    dry = dry[start * SR : (start + 3) * SR]
    names = ("keys", soundfont, f"{midi}_v{velocity}")
    seed = zlib.crc32(repr(names).encode()) + 7  # bench/piano_sets.py's ROOM_SEED
    return room_version(dry, SR, np.random.default_rng(seed))


def test_loud_f4_in_a_room_is_not_named_by_a_ninth_of_its_period(piano):
    """The benchmark's loud F4 in a room (its seed): the thump held back F4 read at 0.71-0.74,
    longer windows read F4 at 0.56-0.57 and then D#1, a ninth of it, at 0.59-0.62, which was
    decided. An earlier window's F4 at 0.55 or more lifts it (NoteListener._multiple_seen)."""
    audio = bench_room_key(piano, "FluidR3_GM", 65, 110)
    assert transcribe_array(audio, SR)[0]["midi"] == 65
    before = ListenerParams(multiple_seen_confidence=0.6)
    assert transcribe_array(audio, SR, before)[0]["midi"] == 27  # what it was: D#1


def test_soft_a_sharp_1_in_a_room_read_30_cents_flat_of_its_octave_waits(piano):
    """The benchmark's soft A#1 in a room (its seed) on the evaluation piano MuseScore_General:
    its 35 ms window read A#2 30 cents flat and named it; a reading 25 cents or more off every
    key waits one window (NoteListener._settling), in which the lower string's odd partials
    stand out (NoteListener._string_an_octave_down)."""
    audio = bench_room_key(piano, "MuseScore_General", 34, 40)
    assert transcribe_array(audio, SR)[0]["midi"] == 34
    before = ListenerParams(settle_cents=30.0)
    assert transcribe_array(audio, SR, before)[0]["midi"] == 46  # what it was: A#2
