"""The audio the note benchmark runs on, with its reference notes.

Rendered sets (FluidSynth, cached as float WAVs under <out>/cache, redone only when the notes,
the soundfont or the renderer change):
  - isolated keys: every key alone in its own 3 s clip (0.5 s silence, 1.0 s note, 1.5 s for
    the release), soft (velocity 40) and loud (110);
  - melodies: seeded random legato single lines in C3..C6, about 12 s each;
  - pieces: 20 s excerpts of the music21 scores held out of the note model's training
    (models/note_data.py: split_of), two hands, on the unseen MuseScore_General piano only.
Each rendered clip comes dry and in a "room" (dsp.augment.room_version, fixed seeds).

Real sets (from ../shared/data, skipped when absent): the 30 Salamander Grand notes and three
annotated performances (SMD Chopin Op. 28 No. 4 whole and its beginning, madmom sample).
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from notesight.device.synth import Note, find_soundfont, render_notes_cached
from notesight.dsp.augment import room_version

SAMPLE_RATE = 44100
EVALUATION_PIANOS = ("FluidR3_GM", "MuseScore_General")
DEVELOPMENT_PIANOS = ("TimGM6mb",)  # parameters were tuned on it: never in the headline figures
VELOCITIES = (40, 110)
KEY_SLOT_S = 3.0
KEY_LEAD_S = 0.5
KEY_NOTE_S = 1.0
MELODY_LENGTH_S = 12.0
MELODY_LOWEST, MELODY_HIGHEST = 48, 84  # C3..C6
ROOM_SEED = 7
SALAMANDER_STEPS = {"C": 0, "Cs": 1, "D": 2, "Ds": 3, "E": 4, "F": 5, "Fs": 6, "G": 7}
SALAMANDER_STEPS |= {"Gs": 8, "A": 9, "As": 10, "B": 11}
SALAMANDER_ONSET_FRACTION = 0.1


@dataclass(frozen=True, eq=False)
class Clip:
    """One piece of audio and the notes really in it. `condition`: dry, room or real."""

    dataset: str
    piano: str
    condition: str
    name: str
    audio: np.ndarray
    sample_rate: int
    reference: tuple[Note, ...]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def label(self) -> str:
        return f"{self.piano} {self.condition}"


def stable_seed(*parts: object) -> int:
    """A seed from names, the same in every run (Python's hash() is salted per process)."""
    return zlib.crc32(repr(parts).encode()) + ROOM_SEED


def with_room(clip: Clip) -> Clip:
    """The clip as heard in the room, with a seed of its own so rooms don't repeat exactly."""
    rng = np.random.default_rng(stable_seed(clip.dataset, clip.piano, clip.name))
    audio = room_version(clip.audio, clip.sample_rate, rng)
    return Clip(
        clip.dataset, clip.piano, "room", clip.name, audio, clip.sample_rate, clip.reference
    )


def dry_and_room(clips: list[Clip]) -> list[Clip]:
    return clips + [with_room(c) for c in clips]


# -- isolated keys ----------------------------------------------------------------------------
def isolated_keys(piano: str, keys: list[int], cache: Path) -> list[Clip]:
    """Every key of `keys` alone, soft and loud, dry and in the room. The keys of one velocity
    are rendered in one FluidSynth run (loading MuseScore_General takes ~2 s) with a 3 s slot
    each and cut into clips; 1.5 s after its note-off a key's release is below -80 dBFS, so a
    clip holds its own key only."""
    soundfont = find_soundfont(piano)
    clips = []
    for velocity in VELOCITIES:
        notes = [
            Note(KEY_SLOT_S * i + KEY_LEAD_S, KEY_NOTE_S, key, velocity)
            for i, key in enumerate(keys)
        ]
        label = f"keys{len(keys)}_v{velocity}_{piano}"
        audio = render_notes_cached(notes, soundfont, cache, SAMPLE_RATE, label=label)
        slot = round(KEY_SLOT_S * SAMPLE_RATE)
        for i, key in enumerate(keys):
            clip_audio = audio[i * slot : (i + 1) * slot]
            reference = (Note(KEY_LEAD_S, KEY_NOTE_S, key, velocity),)
            name = f"{key}_v{velocity}"
            clips.append(Clip("keys", piano, "dry", name, clip_audio, SAMPLE_RATE, reference))
    return dry_and_room(clips)


# -- melodies ---------------------------------------------------------------------------------
def melody(seed: int) -> list[Note]:
    """A legato single line: steps of -5..+5 semitones kept within C3..C6, 0.15-0.6 s per note,
    each note held until the next one starts, velocities 50-110, about 12 s."""
    rng = np.random.default_rng(seed)
    onsets, keys, velocities = [], [], []
    t, key = 0.5, int(rng.integers(MELODY_LOWEST + 7, MELODY_HIGHEST - 7))
    while t < MELODY_LENGTH_S:
        onsets.append(t)
        keys.append(key)
        velocities.append(int(rng.integers(50, 111)))
        t += float(rng.uniform(0.15, 0.6))
        key = int(np.clip(key + rng.integers(-5, 6), MELODY_LOWEST, MELODY_HIGHEST))
    ends = [*onsets[1:], t]
    rows = zip(onsets, ends, keys, velocities, strict=True)
    return [Note(on, end - on, key, velocity) for on, end, key, velocity in rows]


def held_into_the_next(notes: list[Note], overlap_s: float) -> list[Note]:
    """The line played with finger legato: each key let go `overlap_s` after the next one is
    struck (a repeated key is let go before it is struck again)."""
    held = []
    for note, after in zip(notes, [*notes[1:], None], strict=True):
        extra = overlap_s if after is not None and after.midi != note.midi else 0.0
        held.append(Note(note.onset_s, note.duration_s + extra, note.midi, note.velocity))
    return held


def melodies(piano: str, count: int, cache: Path, overlap_s: float = 0.0) -> list[Clip]:
    """`count` melodies (`melody`, seeds 1000 on), dry and in the room; with `overlap_s`, each
    key held that long into the next (`held_into_the_next`), as dataset "overlap"."""
    soundfont = find_soundfont(piano)
    dataset = "overlap" if overlap_s > 0.0 else "melody"
    clips = []
    for k in range(count):
        notes = held_into_the_next(melody(1000 + k), overlap_s)
        label = f"{dataset}{k}_{piano}"
        audio = render_notes_cached(notes, soundfont, cache, SAMPLE_RATE, label=label)
        clips.append(Clip(dataset, piano, "dry", f"{dataset}{k}", audio, SAMPLE_RATE, tuple(notes)))
    return dry_and_room(clips)


# -- a bass key struck under a ringing one ---------------------------------------------------
UNDER_UPPER = (62, 67, 72, 79)  # D4 G4 C5 G5, struck at UNDER_UPPER_VELOCITY and held
UNDER_BASS = (28, 33, 38, 43, 48)  # E1 A1 D2 G2 C3, struck under them
UNDER_UPPER_VELOCITY = 90
UNDER_SLOT_S = 3.5  # the bass key is let go at 2.0 s; 1.5 s of release follows
UNDER_UPPER_AT_S = 0.5
UNDER_BASS_AT_S = 1.0  # half a second after the upper key: it rings loud over the strike
UNDER_OFF_S = 2.0


def struck_under(piano: str, cache: Path) -> list[Clip]:
    """A left hand under a held melody note: each of `UNDER_BASS` struck half a second after
    each of `UNDER_UPPER`, which rings on over it, the bass key soft and loud (`VELOCITIES`),
    dry and in the room. Neither the melodies (steps of a fourth at most) nor the isolated keys
    strike a key far below one still sounding. `reference[0]` is the bass key, the note
    judged (the upper one follows). One FluidSynth run per velocity, cut into slots as
    `isolated_keys` does."""
    soundfont = find_soundfont(piano)
    pairs = [(upper, bass) for upper in UNDER_UPPER for bass in UNDER_BASS]
    clips = []
    for velocity in VELOCITIES:
        references = [_bass_under(upper, bass, velocity) for upper, bass in pairs]
        notes = [
            Note(UNDER_SLOT_S * i + n.onset_s, n.duration_s, n.midi, n.velocity)
            for i, reference in enumerate(references)
            for n in reversed(reference)  # the upper key first, as it is struck
        ]
        label = f"under{len(pairs)}_v{velocity}_{piano}"
        audio = render_notes_cached(notes, soundfont, cache, SAMPLE_RATE, label=label)
        slot = round(UNDER_SLOT_S * SAMPLE_RATE)
        for i, ((upper, bass), reference) in enumerate(zip(pairs, references, strict=True)):
            clip_audio = audio[i * slot : (i + 1) * slot]
            name = f"{bass}_under_{upper}_v{velocity}"
            clips.append(Clip("under", piano, "dry", name, clip_audio, SAMPLE_RATE, reference))
    return dry_and_room(clips)


def _bass_under(upper: int, bass: int, velocity: int) -> tuple[Note, Note]:
    """One clip's bass key and the key ringing over it, in the clip's time."""
    return (
        Note(UNDER_BASS_AT_S, UNDER_OFF_S - UNDER_BASS_AT_S, bass, velocity),
        Note(UNDER_UPPER_AT_S, UNDER_OFF_S - UNDER_UPPER_AT_S, upper, UNDER_UPPER_VELOCITY),
    )


# -- polyphonic pieces -----------------------------------------------------------------------
PIECE_PIANO = "MuseScore_General"  # never in the note model's training or tuning
PIECE_LENGTH_S = 20.0


def pieces(count: int, cache: Path) -> list[Clip]:
    """`count` excerpts of held-out scores (every n-th of the evaluation split, so the choice
    is fixed), at a seeded tempo, transposition and dynamics, dry and in the room."""
    from notesight.models import note_data  # needs music21 (the train extra)

    paths = note_data.corpus_paths("eval")
    chosen = paths[:: max(len(paths) // count, 1)][:count]
    soundfont = find_soundfont(PIECE_PIANO)
    clips = []
    for path in chosen:
        name = path.split("/corpus/")[-1]
        rng = np.random.default_rng(stable_seed("piece", name))
        events = note_data.score_events(path, cache / "scores")
        notes = note_data.score_clip_notes(events, rng, PIECE_LENGTH_S)
        if not notes:
            continue
        label = "piece_" + name.replace("/", "_")
        audio = render_notes_cached(notes, soundfont, cache, SAMPLE_RATE, label=label)
        clips.append(Clip("pieces", PIECE_PIANO, "dry", name, audio, SAMPLE_RATE, tuple(notes)))
    return dry_and_room(clips)


# -- real recordings --------------------------------------------------------------------------
def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.mean(axis=1)), rate


def salamander_midi(stem: str) -> int:
    """File name to key: A0 -> 21, C4 -> 60, Ds3 (D#3) -> 51, Fs5 (F#5) -> 78."""
    return 12 * (int(stem[-1]) + 1) + SALAMANDER_STEPS[stem[:-1]]


def attack_onset_s(audio: np.ndarray, sample_rate: int) -> float:
    """Where a Salamander note starts: its first sample above 10 % of the file's peak. The
    README says the attack starts within the first few ms; the 10 % crossing is at most a few
    ms after the true start, so latencies measured from it are, if anything, flattered."""
    level = SALAMANDER_ONSET_FRACTION * float(np.abs(audio).max())
    return int(np.argmax(np.abs(audio) > level)) / sample_rate


def salamander(shared: Path) -> list[Clip]:
    """The 30 real Salamander Grand notes (Yamaha C5, CC BY 3.0, Alexander Holm)."""
    clips = []
    for path in sorted((shared / "piano" / "salamander").glob("*.ogg")):
        audio, rate = read_mono(path)
        onset = attack_onset_s(audio, rate)
        note = Note(onset, max(len(audio) / rate - onset, 0.01), salamander_midi(path.stem), 100)
        clips.append(Clip("salamander", "Salamander", "real", path.stem, audio, rate, (note,)))
    return clips


def smd_notes(csv_path: Path) -> tuple[Note, ...]:
    """SMD CSV: `;`-separated Start;Duration;Pitch;Velocity(0..1);Instrument, with a header."""
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return tuple(_smd_note(r) for r in rows)


def _smd_note(row: dict[str, str]) -> Note:
    velocity = max(1, min(127, round(float(row["Velocity"]) * 127)))
    duration = max(float(row["Duration"]), 0.001)
    return Note(float(row["Start"]), duration, int(row["Pitch"]), velocity)


def madmom_notes(notes_path: Path) -> tuple[Note, ...]:
    """madmom .notes: tab-separated onset, MIDI pitch, duration, velocity; '#' comments."""
    notes = []
    for line in notes_path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            onset, pitch, duration, velocity = line.split()[:4]
            vel = max(1, min(127, round(float(velocity))))
            notes.append(Note(float(onset), float(duration), round(float(pitch)), vel))
    return tuple(notes)


def annotated(shared: Path) -> list[Clip]:
    """SMD Chopin Op. 28 No. 4 beginning (CC BY-NC-SA 3.0) and the madmom sample
    (CC BY-NC-SA 4.0): polyphonic performances with every note annotated."""
    folder = shared / "piano" / "annotated"
    sets = [
        ("smd_chopin_op28-4.mp3", "smd_chopin_op28-4.csv", smd_notes),
        ("smd_chopin_op28-4_beginning.wav", "smd_chopin_op28-4_beginning.csv", smd_notes),
        ("madmom_stereo_sample.flac", "madmom_stereo_sample.notes", madmom_notes),
    ]
    clips = []
    for audio_name, notes_name, parse in sets:
        if (folder / audio_name).is_file() and (folder / notes_name).is_file():
            audio, rate = read_mono(folder / audio_name)
            reference = parse(folder / notes_name)
            stem = Path(audio_name).stem
            clips.append(Clip("annotated", stem, "real", stem, audio, rate, reference))
    return clips
