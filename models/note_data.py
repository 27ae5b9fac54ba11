"""Training and evaluation material for the polyphonic note model (models/train_notes.py).

Everything is rendered here with FluidSynth from Debian's soundfonts, so the recipe needs no
download: real scores from the music21 corpus (Bach chorales, Palestrina, the classical string
quartets, ...), and generated material that the corpus lacks: chords, two-hand voicings,
scales and arpeggios over all 88 keys, isolated keys soft and loud, repeated notes and legato
lines. Training pianos are FluidR3_GM, TimGM6mb and csound's GM bank; MuseScore_General is kept
out of training and tuning as the unseen evaluation piano (`EVAL_PIANO`).

Scores are split by a hash of their corpus path (`split_of`), never at random per run, so the
evaluation pieces stay the same across machines and retrainings.

Each example is a clip of audio at 16 kHz with its notes; `labels` turns notes into the
per-frame onset and sounding targets on the feature frames of `notesight.dsp.logspec`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from notesight.device.synth import Note, find_soundfont, render_notes
from notesight.dsp import augment
from notesight.dsp.logspec import HOP, SAMPLE_RATE
from notesight.dsp.music import PIANO_HIGHEST_MIDI, PIANO_LOWEST_MIDI

log = logging.getLogger(__name__)

TRAIN_PIANOS = ("FluidR3_GM", "TimGM6mb", "csound")
EVAL_PIANO = "MuseScore_General"
N_KEYS = PIANO_HIGHEST_MIDI - PIANO_LOWEST_MIDI + 1
# Composers whose scores are used (the corpus also has thousands of one-line folk tunes; the
# generated melodies cover monophony). The classical string quartets are left out: music21
# takes minutes to parse each movement.
CORPUS_COMPOSERS = (
    "bach",
    "palestrina",
    "schumann_robert",
    "schumann_clara",
    "monteverdi",
    "trecento",
    "josquin",
    "chopin",
    "joplin",
    "handel",
    "corelli",
    "schubert",
    "beach",
    "cpebach",
    "weber",
    "verdi",
)
EVAL_SHARE = 10  # one score in ten is held out for evaluation
# music21 takes minutes over a big string quartet movement and Palestrina alone has 1300
# masses: scores above this (compressed) size are left out and Palestrina is thinned to one in
# PALESTRINA_SHARE, which keeps the parse of the whole training set to a few minutes.
MAX_SCORE_BYTES = 60_000
PALESTRINA_SHARE = 6
CLIP_S = 20.0


@dataclass(frozen=True)
class Clip:
    """16 kHz mono audio and the notes that sound in it (times in seconds of the clip)."""

    audio: np.ndarray
    notes: tuple[Note, ...]
    source: str


# -- the music21 corpus ---------------------------------------------------------------------------
def _path_hash(corpus_path: str) -> int:
    """Stable across machines: only the part of the path after `corpus/` is hashed."""
    relative = str(corpus_path).split("/corpus/")[-1]
    return int(hashlib.sha1(relative.encode()).hexdigest(), 16)


def split_of(corpus_path: str) -> str:
    """ "eval" for one score in EVAL_SHARE (by a hash of its path inside the corpus), else
    "train"."""
    return "eval" if _path_hash(corpus_path) % EVAL_SHARE == 0 else "train"


def corpus_paths(split: str) -> list[str]:
    from music21 import corpus  # train extra; imported here so the runtime never needs it

    paths = []
    for path in sorted(str(p) for p in corpus.getPaths()):
        composer = path.split("/corpus/")[-1].split("/")[0]
        if composer not in CORPUS_COMPOSERS or split_of(path) != split:
            continue
        if Path(path).stat().st_size > MAX_SCORE_BYTES:
            continue
        if composer == "palestrina" and (_path_hash(path) // EVAL_SHARE) % PALESTRINA_SHARE:
            continue
        paths.append(path)
    return paths


def score_events(path: str, cache: Path) -> list[tuple[float, float, int]]:
    """(offset, duration, midi) in quarter notes for every pitched note of a score, all parts,
    ties joined. Parsed once and kept as JSON in `cache` (music21 parsing is slow)."""
    key = hashlib.sha1(path.split("/corpus/")[-1].encode()).hexdigest()[:16]
    cached = cache / f"score-{key}.json"
    if cached.is_file():
        return [tuple(e) for e in json.loads(cached.read_text())]
    from music21 import converter

    events: list[tuple[float, float, int]] = []
    try:
        score = converter.parse(path)
        if hasattr(score, "scores"):  # an Opus of several scores: the first one
            score = score.scores[0]
        flat = score.stripTies().flatten()
        for element in flat.notes:
            duration = float(element.quarterLength)
            if duration <= 0:
                continue
            for pitch in element.pitches:
                events.append((float(element.offset), duration, int(pitch.midi)))
    except Exception as exc:  # a score music21 cannot read is skipped, and logged
        log.warning("skipping %s: %s", path, exc)
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(events))
    return events


def score_clip_notes(
    events: Sequence[tuple[float, float, int]], rng: np.random.Generator, length_s: float
) -> list[Note]:
    """A random excerpt of a score at a random tempo, transposition and dynamics."""
    if not events:
        return []
    seconds_per_quarter = 60.0 / rng.uniform(50, 150)
    lowest = min(e[2] for e in events)
    highest = max(e[2] for e in events)
    # Shift anywhere the whole score still fits on the keyboard (scores sit mid-keyboard;
    # shifting them down and up is how the corpus reaches the bass and the treble).
    low_shift = PIANO_LOWEST_MIDI - lowest
    high_shift = PIANO_HIGHEST_MIDI - highest
    shift = int(rng.integers(low_shift, high_shift + 1)) if low_shift <= high_shift else 0
    start_q = float(rng.uniform(0, max(events[-1][0] - length_s / seconds_per_quarter, 0.0)))
    base_velocity = rng.uniform(35, 105)
    legato = rng.uniform(0.7, 1.15)
    notes = []
    for offset_q, duration_q, midi in events:
        onset = (offset_q - start_q) * seconds_per_quarter + 0.2
        key = midi + shift
        if onset < 0 or onset > length_s - 0.5 or not _on_keyboard(key):
            continue
        duration = max(duration_q * seconds_per_quarter * legato, 0.05)
        velocity = int(np.clip(base_velocity + rng.normal(0, 12), 8, 127))
        notes.append(Note(round(onset, 4), round(duration, 4), key, velocity))
    return notes


def _on_keyboard(midi: int) -> bool:
    return PIANO_LOWEST_MIDI <= midi <= PIANO_HIGHEST_MIDI


# -- generated material -----------------------------------------------------------------------
CHORD_SHAPES = (
    (0, 4, 7),
    (0, 3, 7),
    (0, 3, 6),
    (0, 4, 8),
    (0, 5, 7),
    (0, 2, 7),
    (0, 4, 7, 10),
    (0, 4, 7, 11),
    (0, 3, 7, 10),
    (0, 3, 6, 9),
    (0, 3, 6, 10),
    (0, 4, 7, 9),
    (0, 4, 10, 14),
    (0, 7, 12),
    (0, 12),
    (0, 4, 7, 12),
)


def _velocity(rng: np.random.Generator, base: float, spread: float = 12) -> int:
    return int(np.clip(base + rng.normal(0, spread), 5, 127))


def chord_notes(rng: np.random.Generator, length_s: float) -> list[Note]:
    """Block and rolled chords anywhere on the keyboard, often over a left-hand bass note,
    sometimes held over the next one (the sustain pedal)."""
    notes: list[Note] = []
    t = 0.2
    base = rng.uniform(25, 115)
    while t < length_s - 1.0:
        shape = CHORD_SHAPES[int(rng.integers(len(CHORD_SHAPES)))]
        inversion = int(rng.integers(len(shape)))
        keys = [k + (12 if i < inversion else 0) for i, k in enumerate(shape)]
        root = int(rng.integers(PIANO_LOWEST_MIDI, PIANO_HIGHEST_MIDI - max(keys) + 1))
        keys = [root + k for k in keys]
        if rng.random() < 0.5:  # left hand below: root, or root and fifth, one or two octaves down
            bass = root - 12 * int(rng.integers(1, 3))
            keys += [b for b in (bass, bass + 7 * int(rng.random() < 0.4)) if _on_keyboard(b)]
        duration = rng.uniform(0.15, 1.6)
        roll = rng.uniform(0.0, 0.04) if rng.random() < 0.3 else 0.0
        velocity = rng.uniform(20, 120) if rng.random() < 0.3 else base
        for i, key in enumerate(sorted(set(keys))):
            notes.append(
                Note(round(t + i * roll, 4), round(duration, 4), key, _velocity(rng, velocity))
            )
        pedal = rng.random() < 0.3
        t += duration * (rng.uniform(0.4, 0.9) if pedal else rng.uniform(1.0, 1.5))
    return notes


def run_notes(rng: np.random.Generator, length_s: float) -> list[Note]:
    """Scales and arpeggios (one or two hands, legato or detached) over the whole keyboard."""
    notes: list[Note] = []
    t = 0.2
    base = rng.uniform(25, 115)
    while t < length_s - 1.0:
        step = rng.uniform(0.07, 0.35)
        if rng.random() < 0.5:
            pattern = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 11]
        else:
            pattern = list(CHORD_SHAPES[int(rng.integers(8))])
        span = int(rng.integers(1, 4))
        keys = [o * 12 + p for o in range(span) for p in pattern]
        start = int(rng.integers(PIANO_LOWEST_MIDI, PIANO_HIGHEST_MIDI - max(keys) + 1))
        keys = [start + k for k in keys]
        if rng.random() < 0.5:
            keys = keys[::-1]
        hands = 2 if rng.random() < 0.3 and start + 12 + max(keys) - start <= 108 else 1
        legato = rng.uniform(0.5, 1.6)
        for i, key in enumerate(keys):
            for hand in range(hands):
                played = key + 12 * hand
                if _on_keyboard(played):
                    notes.append(
                        Note(
                            round(t + i * step, 4),
                            round(step * legato, 4),
                            played,
                            _velocity(rng, base),
                        )
                    )
        t += len(keys) * step + rng.uniform(0.1, 0.6)
    return notes


def single_notes(rng: np.random.Generator, length_s: float) -> list[Note]:
    """Isolated keys, soft to loud, short to long, some repeated, all over the keyboard, so
    the model learns every key's timbre on its own (the listening core's test)."""
    notes: list[Note] = []
    t = 0.2
    while t < length_s - 1.0:
        key = int(rng.integers(PIANO_LOWEST_MIDI, PIANO_HIGHEST_MIDI + 1))
        velocity = rng.uniform(10, 127)
        repeats = int(rng.integers(1, 4)) if rng.random() < 0.3 else 1
        for _ in range(repeats):
            duration = rng.uniform(0.1, 1.5)
            notes.append(Note(round(t, 4), round(duration, 4), key, _velocity(rng, velocity, 8)))
            t += duration + rng.uniform(0.02, 0.8)
    return notes


def melody_notes(rng: np.random.Generator, length_s: float) -> list[Note]:
    """One line, legato (each note held into the next) with steps and leaps."""
    notes: list[Note] = []
    t = 0.2
    key = int(rng.integers(36, 96))
    base = rng.uniform(30, 110)
    beat = rng.uniform(0.12, 0.6)
    while t < length_s - 1.0:
        length = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        notes.append(
            Note(round(t, 4), round(length * rng.uniform(0.8, 1.3), 4), key, _velocity(rng, base))
        )
        t += length
        key = int(np.clip(key + rng.choice([-7, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 12]), 21, 108))
    return notes


GENERATORS = {
    "chords": chord_notes,
    "runs": run_notes,
    "single": single_notes,
    "melody": melody_notes,
}


# -- rendering and augmentation ---------------------------------------------------------------
def augmented(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a USB mic on a real piano adds: a room (often), noise, a tilted and band-limited
    response, and any gain."""
    if rng.random() < 0.7:
        audio = augment.add_reverb(
            audio, SAMPLE_RATE, rng.uniform(0.2, 1.2), rng.uniform(0.2, 1.0), rng
        )
    audio = _band_limit(audio, rng)
    if rng.random() < 0.8:
        noise = augment.pink_noise(len(audio), rng)
        if rng.random() < 0.3:
            noise = rng.standard_normal(len(audio)).astype(np.float32)
        audio = augment.add_noise_at_snr(audio, noise, rng.uniform(15, 45), SAMPLE_RATE)
    peak = float(np.max(np.abs(audio))) or 1.0
    gain_db = rng.uniform(-30, 0)  # peaks from -30 dBFS to full scale
    return (audio / peak * 10 ** (gain_db / 20)).astype(np.float32)


def _band_limit(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random EQ in the frequency domain: high-pass 40-200 Hz, low-pass 4-8 kHz, and a tilt
    of +-6 dB over the band (cheap mics and where they sit on the piano)."""
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    high_pass = rng.uniform(40, 200)
    low_pass = rng.uniform(4000, 8000)
    response = 1 / np.sqrt(1 + (high_pass / np.maximum(freqs, 1.0)) ** 4)
    response /= np.sqrt(1 + (freqs / low_pass) ** 8)
    tilt_db = rng.uniform(-6, 6) * np.log2(np.maximum(freqs, 50) / 1000) / np.log2(8)
    response *= 10 ** (tilt_db / 20)
    return np.fft.irfft(spectrum * response, len(audio)).astype(np.float32)


def detuned(
    audio: np.ndarray, notes: Sequence[Note], cents: float
) -> tuple[np.ndarray, list[Note]]:
    """The whole clip played `cents` sharp (resampled: it also runs that much faster)."""
    ratio = 2 ** (cents / 1200)
    faster = soxr.resample(audio, SAMPLE_RATE * ratio, SAMPLE_RATE).astype(np.float32)
    moved = [Note(n.onset_s / ratio, n.duration_s / ratio, n.midi, n.velocity) for n in notes]
    return faster, moved


def render_clip(
    notes: Sequence[Note], piano: str, rng: np.random.Generator, source: str, augment_it: bool
) -> Clip:
    program = int(rng.choice([0, 0, 1])) if piano != "TimGM6mb" else 0
    audio = render_notes(notes, find_soundfont(piano), SAMPLE_RATE, program)
    notes = list(notes)
    if augment_it:
        audio, notes = detuned(audio, notes, rng.uniform(-15, 15))
        audio = augmented(audio, rng)
    return Clip(audio, tuple(notes), f"{source}@{piano}/p{program}")


# -- targets ----------------------------------------------------------------------------------
def onset_frame(onset_s: float) -> int:
    """The first feature frame that holds audio after the onset (frame k ends at (k+1)*HOP)."""
    return int(np.floor(onset_s * SAMPLE_RATE / HOP))


def labels(notes: Sequence[Note], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, sounding), each (n_frames, 88) uint8. A note's onset marks its first two
    frames (the strike spreads over them); it sounds until its key is released."""
    onsets = np.zeros((n_frames, N_KEYS), np.uint8)
    sounding = np.zeros((n_frames, N_KEYS), np.uint8)
    for note in notes:
        key = note.midi - PIANO_LOWEST_MIDI
        first = onset_frame(note.onset_s)
        last = max(onset_frame(note.offset_s), first + 1)
        if 0 <= key < N_KEYS and first < n_frames:
            onsets[first : first + 2, key] = 1
            sounding[first:last, key] = 1
    return onsets, sounding
