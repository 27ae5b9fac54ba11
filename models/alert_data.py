"""Training and evaluation material for the alert classifier: real recordings, synthesized
alerts, piano, speech and room noise, mixed into labelled 1 s windows.

Real recordings come from `../shared/data/sounds` (see its README). They are split by source
recording (ESC-10: by fold, whose clips from one recording share a fold; the other sets: by
file, named in `HELD_OUT`), never at random, so no recording is heard in training and in the
benchmark. Where real recordings are scarce the alert is synthesized (smoke-alarm T3/T4
patterns, chimes, ring tones, knocks, sirens, breaking glass). Speech is synthesized with
espeak-ng (no real speech recordings are available to the project); training and evaluation
use different voices. Piano comes from FluidSynth (FluidR3_GM, TimGM6mb, csound for training;
MuseScore_General only for evaluation) and the real piano recordings in `../shared/data/piano`.

Every alert window is mixed, half the time, with piano 0-20 dB louder than the alert, and
always with room noise, because the alert must be heard through the music.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from notesight.dsp.alerts import CLASSES
from notesight.dsp.augment import add_reverb, pink_noise
from notesight.dsp.features import SAMPLE_RATE, WINDOW
from notesight.models import note_data

SR = SAMPLE_RATE
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")

# Files held out of training for the benchmark (stem -> class). ESC-10 fold 5 is held out too.
HELD_OUT: dict[str, str] = {
    "bigsoundbank_1151_smoke_detector_2": "smoke_alarm",
    "freesound_325367_fire_house_alarm": "smoke_alarm",
    "doorbell2": "doorbell",
    "old_phone3": "phone_ring",
    "modern_phone2": "phone_ring",
    "police_siren2": "siren",
    "GlassBreak2": "glass_break",
    "glass_break2": "glass_break",
    "running_water_1": "water_running",
    "water_in_sink3": "water_running",
    "dog_bark_2": "dog_bark",
    "DoorSlam2": "other",
    "door_close2": "other",
    "alarm2": "other",
}
ESC_TEST_FOLD = 5
# The class of each Berklee file, by the start of its name (alarm*: digital alarm clocks, ~8 kHz,
# not smoke alarms: "other", which teaches the model that not every beep is a smoke alarm).
BERKLEE_CLASSES = (
    ("doorbell", "doorbell"),
    ("old_phone", "phone_ring"),
    ("modern_phone", "phone_ring"),
    ("police_siren", "siren"),
    ("ambient_policesiren", "siren"),
    ("glass", "glass_break"),
    ("GlassBreak", "glass_break"),
    ("running_water", "water_running"),
    ("water_", "water_running"),
    ("dog", "dog_bark"),
    ("DoorSlam", "other"),
    ("door_close", "other"),
    ("alarm", "other"),
)
ESC_CLASSES = {"dog_bark": "dog_bark", "baby_cry": "baby_cry"}  # the other eight are "other"
DONATEACRY_TEST_EVERY = 5  # every 5th file (sorted by name) is held out


@dataclass(frozen=True)
class Source:
    """One recording or synthesized sound of one class, at 16 kHz mono."""

    label: str
    name: str  # file stem or synth name, for the card and the benchmark's tables
    audio: np.ndarray = field(repr=False)
    split: str  # "train" or "test"
    origin: str  # "real" or "synth"


# -- reading --------------------------------------------------------------------------------
def read_16k(path: Path) -> np.ndarray:
    """Any audio file as 16 kHz mono float32."""
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != SR:
        mono = soxr.resample(mono, rate, SR)
    return np.asarray(mono, np.float32)


def _berklee_class(stem: str) -> str | None:
    return next((label for prefix, label in BERKLEE_CLASSES if stem.startswith(prefix)), None)


def real_sources(sounds_dir: Path) -> list[Source]:
    """Every recording in ../shared/data/sounds with its class and split."""
    sources = []
    for path in sorted((sounds_dir / "esc10").glob("*/*.ogg")):
        label = ESC_CLASSES.get(path.parent.name, "other")
        split = "test" if path.name.startswith(f"{ESC_TEST_FOLD}-") else "train"
        sources.append(
            Source(label, f"esc10/{path.parent.name}/{path.stem}", read_16k(path), split, "real")
        )
    for path in sorted((sounds_dir / "berklee").glob("*.mp3")):
        label = _berklee_class(path.stem)
        if label is not None:
            split = "test" if path.stem in HELD_OUT else "train"
            sources.append(Source(label, f"berklee/{path.stem}", read_16k(path), split, "real"))
    for path in sorted((sounds_dir / "smoke_alarm").glob("*.flac")):
        split = "test" if path.stem in HELD_OUT else "train"
        sources.append(
            Source("smoke_alarm", f"smoke_alarm/{path.stem}", read_16k(path), split, "real")
        )
    cries = sorted((sounds_dir / "baby_cry_donateacry").glob("*.wav"))
    for index, path in enumerate(cries):
        split = "test" if index % DONATEACRY_TEST_EVERY == DONATEACRY_TEST_EVERY - 1 else "train"
        name = f"donateacry/{path.stem[:8]}"
        sources.append(Source("baby_cry", name, read_16k(path), split, "real"))
    return sources


def folder_sources(folder: Path) -> list[Source]:
    """A caretaker's own recordings: one sub-folder per class (named like the classes), any
    audio files in it. Every fifth file of a class (sorted by name) is held out for the report.
    Unknown folder names are an error, so a typo does not silently drop a class."""
    sources = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if class_dir.name not in CLASSES:
            raise ValueError(f"{class_dir}: not a class name; use one of {', '.join(CLASSES)}")
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        for index, path in enumerate(files):
            split = "test" if index % 5 == 4 else "train"
            name = f"{class_dir.name}/{path.stem}"
            sources.append(Source(class_dir.name, name, read_16k(path), split, "real"))
    return sources


# -- synthesized alerts -----------------------------------------------------------------------
def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _gate(
    pattern: Sequence[tuple[float, float]], repeats: int, ramp_s: float = 0.005
) -> np.ndarray:
    """An on/off envelope: (on_s, off_s) pairs, the whole pattern `repeats` times."""
    pieces = []
    ramp = int(ramp_s * SR)
    for _ in range(repeats):
        for on_s, off_s in pattern:
            on = np.ones(int(on_s * SR))
            if ramp and len(on) > 2 * ramp:
                on[:ramp] = np.linspace(0, 1, ramp)
                on[-ramp:] = np.linspace(1, 0, ramp)
            pieces += [on, np.zeros(int(off_s * SR))]
    return np.concatenate(pieces)


def smoke_alarm(rng: np.random.Generator) -> np.ndarray:
    """A piezo smoke (T3: three 0.5 s beeps, 1.5 s pause) or CO (T4: four 0.1 s beeps, then a
    pause) alarm at 2.8-3.6 kHz (sometimes 2.4-4 kHz), with the piezo's warble and harmonics."""
    kind = rng.choice(["t3", "t4", "fast"], p=[0.55, 0.25, 0.2])
    if kind == "t3":
        on = rng.uniform(0.4, 0.6)
        gate = _gate([(on, rng.uniform(0.4, 0.6))] * 2 + [(on, rng.uniform(1.3, 1.7))], 3)
    elif kind == "t4":
        gate = _gate([(0.1, 0.1)] * 3 + [(0.1, rng.uniform(1.0, 2.0))], 3)
    else:  # continuous-sounding alarms with short gaps, like many mains-powered units
        gate = _gate([(rng.uniform(0.3, 0.8), rng.uniform(0.03, 0.15))], 10)
    f0 = rng.uniform(2800, 3600) if rng.random() < 0.8 else rng.uniform(2400, 4000)
    t = np.arange(len(gate)) / SR
    warble = 1.0 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(5, 60) * t)
    phase = 2 * np.pi * np.cumsum(f0 * warble) / SR
    tone = (
        np.sin(phase)
        + rng.uniform(0, 0.3) * np.sin(2 * phase)
        + rng.uniform(0, 0.2) * np.sin(3 * phase)
    )
    return (tone * gate).astype(np.float32)


def _bell(f0: float, seconds: float, decay_s: float, rng: np.random.Generator) -> np.ndarray:
    """A struck chime bar: a few inharmonic partials decaying exponentially."""
    t = _t(seconds)
    ratios = (1.0, 2.0, 2.76, 3.0, 5.4) if rng.random() < 0.5 else (1.0, 2.0, 3.0, 4.16)
    out = np.zeros_like(t)
    for k, ratio in enumerate(ratios):
        if f0 * ratio < 7500:
            amp = rng.uniform(0.2, 1.0) / (k + 1)
            out += amp * np.sin(2 * np.pi * f0 * ratio * t) * np.exp(-t / (decay_s / (1 + 0.5 * k)))
    attack = int(0.003 * SR)
    out[:attack] *= np.linspace(0, 1, attack)
    return out


def doorbell(rng: np.random.Generator) -> np.ndarray:
    """Ding-dong (two chimes a third to a fifth apart), a 4-note Westminster phrase, or a
    buzzer."""
    kind = rng.choice(["dingdong", "westminster", "buzzer"], p=[0.55, 0.3, 0.15])
    if kind == "buzzer":
        f0 = rng.uniform(100, 400)
        t = _t(rng.uniform(0.6, 1.5))
        buzz = np.sign(np.sin(2 * np.pi * f0 * t)) * 0.5
        return np.concatenate([buzz, np.zeros(int(0.5 * SR))]).astype(np.float32)
    high = rng.uniform(500, 1100)
    decay = rng.uniform(0.4, 1.2)
    if kind == "dingdong":
        low = high / 2 ** (rng.choice([3, 4, 5, 7]) / 12)
        notes, gaps = [high, low], [rng.uniform(0.4, 0.8), 0.0]
    else:
        scale = [high, high * 2 ** (-2 / 12), high * 2 ** (-4 / 12), high * 2 ** (-9 / 12)]
        notes = [scale[i] for i in rng.permutation(4)]
        gaps = [rng.uniform(0.4, 0.6)] * 3 + [0.0]
    length = sum(gaps) + 2.5
    out = np.zeros(int(length * SR))
    start = 0.0
    for f0, gap in zip(notes, gaps, strict=True):
        bell = _bell(f0, 2.5, decay, rng)
        i = int(start * SR)
        out[i : i + len(bell)] += bell[: len(out) - i]
        start += gap
    return out.astype(np.float32)


def phone_ring(rng: np.random.Generator) -> np.ndarray:
    """Telephone rings: dual-tone cadences (US 440+480 Hz, UK 400+450 Hz double ring), an old
    bell phone's 20 Hz striker, an electronic trill, or a short melodic ring tone."""
    kind = rng.choice(["us", "uk", "bell", "trill", "melody"])
    if kind in ("us", "uk"):
        pair = (440.0, 480.0) if kind == "us" else (400.0, 450.0)
        pattern = [(2.0, 1.0)] if kind == "us" else [(0.4, 0.2), (0.4, 1.2)]
        gate = _gate(pattern, 2)
        t = np.arange(len(gate)) / SR
        tone = sum(np.sin(2 * np.pi * f * t) for f in pair)
        return (tone * gate).astype(np.float32)
    if kind == "bell":
        gate = _gate([(rng.uniform(1.0, 2.0), rng.uniform(0.5, 1.5))], 2)
        t = np.arange(len(gate)) / SR
        striker = 0.5 * (1 + np.sign(np.sin(2 * np.pi * rng.uniform(15, 25) * t)))
        f0 = rng.uniform(800, 1600)
        bell = sum(
            np.sin(2 * np.pi * f0 * r * t) / (k + 1) for k, r in enumerate((1.0, 2.3, 3.1, 4.7))
        )
        return (bell * (0.4 + 0.6 * striker) * gate).astype(np.float32)
    if kind == "trill":
        gate = _gate([(rng.uniform(0.8, 1.5), rng.uniform(0.5, 1.5))], 3)
        t = np.arange(len(gate)) / SR
        f1, f2 = rng.uniform(900, 1500), rng.uniform(1500, 2500)
        switch = np.sin(2 * np.pi * rng.uniform(12, 25) * t) > 0
        freq = np.where(switch, f1, f2)
        return (np.sin(2 * np.pi * np.cumsum(freq) / SR) * gate).astype(np.float32)
    notes = rng.uniform(600, 2000, size=rng.integers(4, 9))
    note_s = rng.uniform(0.08, 0.2)
    phrase = np.concatenate(
        [np.sin(2 * np.pi * f * _t(note_s)) * np.hanning(int(note_s * SR)) for f in notes]
    )
    return np.concatenate([phrase, np.zeros(int(0.3 * SR))] * 3).astype(np.float32)


def knock(rng: np.random.Generator) -> np.ndarray:
    """Knuckles on a door: 2-5 knocks 0.12-0.35 s apart, each a short noise burst exciting a
    few damped wooden-panel modes; the series once or twice."""
    out = []
    modes = rng.uniform(80, 1200, size=rng.integers(3, 7))
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(int(rng.integers(2, 6))):
            t = _t(0.08)
            burst = rng.standard_normal(len(t)) * np.exp(-t / 0.002)
            body = sum(
                rng.uniform(0.3, 1.0)
                * np.sin(2 * np.pi * f * t)
                * np.exp(-t / rng.uniform(0.008, 0.04))
                for f in modes
            )
            hit = (rng.uniform(0.1, 0.5) * burst + body) * rng.uniform(0.6, 1.0)
            out += [hit, np.zeros(int(rng.uniform(0.04, 0.27) * SR))]
        out.append(np.zeros(int(rng.uniform(0.6, 1.2) * SR)))
    return np.concatenate(out).astype(np.float32)


def siren(rng: np.random.Generator) -> np.ndarray:
    """Emergency-vehicle sirens: wail (slow sweep), yelp (fast sweep) or hi-lo two-tone, with
    the harmonics of a horn speaker."""
    seconds = rng.uniform(4, 8)
    t = _t(seconds)
    kind = rng.choice(["wail", "yelp", "hilo"])
    low, high = rng.uniform(450, 800), rng.uniform(1100, 1700)
    if kind == "hilo":
        period = rng.uniform(0.8, 1.4)
        freq = np.where((t % period) < period / 2, low, low * rng.uniform(1.2, 1.45))
    else:
        period = rng.uniform(2.5, 5.0) if kind == "wail" else rng.uniform(0.2, 0.4)
        freq = low + (high - low) * 0.5 * (1 - np.cos(2 * np.pi * t / period))
    phase = 2 * np.pi * np.cumsum(freq) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 5))
    return tone.astype(np.float32)


def glass_break(rng: np.random.Generator) -> np.ndarray:
    """A crash (broadband burst) followed by many bright, fast-decaying inharmonic pings as the
    shards fall."""
    seconds = rng.uniform(1.0, 2.0)
    t = _t(seconds)
    out = rng.standard_normal(len(t)) * np.exp(-t / rng.uniform(0.02, 0.08))
    out = np.diff(out, prepend=0.0)  # tilt the crash towards the treble
    for _ in range(int(rng.integers(15, 50))):
        start = rng.uniform(0, seconds * 0.8) ** 1.5 / max(seconds * 0.8, 1e-9) ** 0.5
        f = rng.uniform(2000, 7500)
        ping_t = _t(rng.uniform(0.03, 0.2))
        ping = np.sin(2 * np.pi * f * ping_t) * np.exp(-ping_t / rng.uniform(0.005, 0.04))
        i = int(start * SR)
        n = min(len(ping), len(out) - i)
        out[i : i + n] += rng.uniform(0.1, 0.8) * ping[:n]
    return out.astype(np.float32)


SYNTHS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "smoke_alarm": smoke_alarm,
    "doorbell": doorbell,
    "knock": knock,
    "phone_ring": phone_ring,
    "siren": siren,
    "glass_break": glass_break,
}


def synth_sources(count: int, split: str, seed: int) -> list[Source]:
    """`count` synthesized sounds of every synthesized class; seeds differ per split."""
    sources = []
    for label, make in SYNTHS.items():
        for k in range(count):
            rng = np.random.default_rng([seed, zlib.crc32(label.encode()), k])
            sources.append(Source(label, f"synth/{label}/{k}", make(rng), split, "synth"))
    return sources


# -- speech (espeak-ng) -------------------------------------------------------------------------
TRAIN_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+f2", "de", "fr+m3", "en+m4", "es+f4")
TEST_VOICES = ("en-gb-scotland", "en-us+f1", "en-029+m2", "it", "nl+f2", "en+klatt")
# Neither training's nor the benchmark's: development audio with voices the model never heard,
# which is where the benchmark's speech false alerts come from.
DEV_VOICES = ("en-us+m3", "en-gb+f4", "pt+m2", "pl+f4", "sv+m5", "hu+f1")
_TEXT = (
    "the piano is out of tune again and we should call someone about it before the concert "
    "could you please bring me a glass of water when you have a moment dinner is ready "
    "I think it will rain this afternoon so take an umbrella with you the children are "
    "playing in the garden the bus was late this morning did you hear about the new shop "
    "on the corner let us try that passage once more slowly with the left hand only "
    "what time is the lesson tomorrow my grandmother used to play this piece every sunday"
)


def speech_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's rendering of `text` at 16 kHz."""
    with tempfile.TemporaryDirectory(prefix="notesight-speech-") as tmp:
        wav = Path(tmp) / "speech.wav"
        command = [
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "-w",
            str(wav),
            text,
        ]
        subprocess.run(command, check=True, capture_output=True)
        return read_16k(wav)


def speech_sources(count: int, split: str, seed: int) -> list[Source]:
    """`count` synthesized utterances of 8-20 words, in the split's own voices ("train",
    "dev", anything else: the benchmark's)."""
    if not speech_available():
        raise RuntimeError("espeak-ng not found: install it with `sudo apt-get install espeak-ng`")
    voices = {"train": TRAIN_VOICES, "dev": DEV_VOICES}.get(split, TEST_VOICES)
    rng = np.random.default_rng([seed, 7])
    words = _TEXT.split()
    sources = []
    for k in range(count):
        start = int(rng.integers(0, len(words) - 20))
        text = " ".join(words[start : start + int(rng.integers(8, 21))])
        voice = voices[k % len(voices)]
        audio = speak(text, voice, int(rng.integers(130, 200)), int(rng.integers(20, 80)))
        sources.append(Source("speech", f"espeak/{voice}/{k}", audio, split, "synth"))
    return sources


# -- piano ----------------------------------------------------------------------------------
# The note model's training pianos: FluidR3_GM, TimGM6mb and csound's GM bank (three timbres;
# with two, the classifier learnt those two pianos and called another piano's treble an alarm).
TRAIN_PIANOS = note_data.TRAIN_PIANOS
TEST_PIANOS = ("MuseScore_General",)  # the project's unseen evaluation piano


def piano_piece(seed: int, length_s: float) -> list:
    """Random piano music: a right-hand line over left-hand chords or arpeggios, with tempo,
    register, dynamics and articulation drawn per piece."""
    from notesight.device.synth import Note

    rng = np.random.default_rng(seed)
    beat = 60.0 / rng.uniform(60, 160)
    base_velocity = int(rng.integers(40, 100))
    notes = []
    t = 0.1
    root = int(rng.integers(43, 55))
    melody = int(rng.integers(64, 80))
    arpeggio = rng.random() < 0.5
    while t < length_s - 1.0:
        chord = [root, root + int(rng.choice([3, 4])), root + 7]
        if arpeggio:
            for k, key in enumerate([*chord, chord[1]]):
                velocity = int(np.clip(base_velocity + rng.integers(-15, 10), 1, 127))
                notes.append(Note(t + k * beat / 2, beat * 1.5, key, velocity))
        else:
            for key in chord:
                velocity = int(np.clip(base_velocity + rng.integers(-20, 5), 1, 127))
                notes.append(Note(t, beat * rng.uniform(1.5, 2.0), key, velocity))
        step = 0.0
        while step < 2 * beat:
            length = beat * float(rng.choice([0.25, 0.5, 0.5, 1.0]))
            velocity = int(np.clip(base_velocity + rng.integers(-10, 25), 1, 127))
            notes.append(Note(t + step, length * rng.uniform(0.6, 1.2), melody, velocity))
            melody = int(np.clip(melody + rng.integers(-4, 5), 55, 96))
            step += length
        t += 2 * beat
        root = int(np.clip(root + rng.choice([-5, -2, 0, 2, 5, 7]), 36, 57))
    return [n for n in notes if n.offset_s < length_s]


def rendered_piano(
    pianos: Iterable[str],
    count: int,
    seed: int,
    cache: Path,
    programs: Sequence[int] = (0,),
) -> list[np.ndarray]:
    """`count` random pieces of about 30 s on each soundfont, at 16 kHz (renders cached),
    played in turn on the General MIDI `programs` (0 acoustic grand, 1 bright acoustic,
    3 honky-tonk: more piano timbres than one soundfont has)."""
    from notesight.device.synth import find_soundfont, render_notes_cached

    pieces = []
    for piano in pianos:
        font = find_soundfont(piano)
        for k in range(count):
            notes = piano_piece(seed + k, 30.0)
            program = programs[k % len(programs)]
            label = f"alerts_piece{seed + k}_{piano}_p{program}"
            audio = render_notes_cached(notes, font, cache, SR, program=program, label=label)
            pieces.append(audio)
    return pieces


def varied_piano(pianos: Iterable[str], count: int, seed: int, cache: Path) -> list[np.ndarray]:
    """`count` clips of 20 s per soundfont from the note model's generators (`note_data`):
    chords, runs, repeated single keys and melodies over all 88 keys, which `piano_piece`
    (mid-keyboard music) never plays: the top octave's runs and repeated keys are the piano
    sounds most like a beeping alarm."""
    from notesight.device.synth import find_soundfont, render_notes_cached

    names = sorted(note_data.GENERATORS)
    clips = []
    for piano in pianos:
        font = find_soundfont(piano)
        for k in range(count):
            rng = np.random.default_rng(seed + k)
            name = names[k % len(names)]
            notes = note_data.GENERATORS[name](rng, note_data.CLIP_S)
            label = f"alerts_{name}{seed + k}_{piano}"
            clips.append(render_notes_cached(notes, font, cache, SR, label=label))
    return clips


def real_piano(piano_dir: Path, split: str) -> list[np.ndarray]:
    """Real piano: the SMD Chopin take (first 60 s for training, the rest for evaluation), and
    for training the Salamander notes strung together, for evaluation the madmom sample."""
    pieces = []
    smd = piano_dir / "annotated" / "smd_chopin_op28-4.mp3"
    if smd.is_file():
        audio = read_16k(smd)
        pieces.append(audio[: 60 * SR] if split == "train" else audio[60 * SR :])
    if split == "train":
        notes = [
            read_16k(p)[: int(1.5 * SR)] for p in sorted((piano_dir / "salamander").glob("*.ogg"))
        ]
        if notes:
            rng = np.random.default_rng(11)
            pieces.append(np.concatenate([notes[i] for i in rng.permutation(len(notes))]))
    else:
        madmom = piano_dir / "annotated" / "madmom_stereo_sample.flac"
        if madmom.is_file():
            pieces.append(read_16k(madmom))
    return pieces


# -- mixing ---------------------------------------------------------------------------------
FRAME = int(0.02 * SR)
PIANO_SHARE = 6  # piano-alone windows per class's share


def frame_db(audio: np.ndarray) -> np.ndarray:
    """Level of each 20 ms frame in dBFS."""
    usable = len(audio) // FRAME * FRAME
    if usable == 0:
        return np.full(1, -120.0)
    power = np.mean(np.square(audio[:usable], dtype=np.float64).reshape(-1, FRAME), axis=1)
    return 10 * np.log10(power + 1e-12)


def active_level_db(audio: np.ndarray, range_db: float = 25.0) -> float:
    """dBFS of the frames within `range_db` of the loudest: the level of the sound itself."""
    db = frame_db(audio)
    active = db >= db.max() - range_db
    return float(10 * np.log10(np.mean(10 ** (db[active] / 10)) + 1e-12))


def loud_frames(audio: np.ndarray, range_db: float = 25.0) -> np.ndarray:
    """Which 20 ms frames lie within `range_db` of the loudest: where the sound is on. The
    first of them is where the benchmark says the sound starts."""
    db = frame_db(audio)
    return db >= db.max() - range_db


def set_level(audio: np.ndarray, level_db: float) -> np.ndarray:
    return (audio * 10 ** ((level_db - active_level_db(audio)) / 20)).astype(np.float32)


def crop_with_sound(
    audio: np.ndarray, rng: np.random.Generator, min_active: float = 0.15
) -> np.ndarray | None:
    """A 1 s window of `audio` in which at least `min_active` of the frames carry the sound
    (within 25 dB of its loudest frame); shorter sounds are placed at a random spot of a
    silent window with at least a quarter second of them inside. None if no window qualifies
    in a few tries."""
    active = loud_frames(audio)
    if len(audio) <= WINDOW:
        out = np.zeros(WINDOW, np.float32)
        shift = (
            int(rng.integers(-len(audio) + SR // 4, WINDOW - SR // 4))
            if len(audio) > SR // 4
            else 0
        )
        lo, hi = max(shift, 0), min(shift + len(audio), WINDOW)
        out[lo:hi] = audio[lo - shift : hi - shift]
        return out
    frames = WINDOW // FRAME
    for _ in range(12):
        start = int(rng.integers(0, len(audio) - WINDOW + 1))
        first = start // FRAME
        if active[first : first + frames].mean() >= min_active:
            return np.asarray(audio[start : start + WINDOW], np.float32)
    return None


def onset_crop(
    audio: np.ndarray,
    rng: np.random.Generator,
    keep_s: tuple[float, float] = (0.2, 0.6),
) -> np.ndarray | None:
    """A 1 s window that ends shortly after the sound starts: what a stream's first windows
    hear of it. From a random point of `audio` (its start for recordings up to 6 s, which the
    benchmark plays whole), the sound starts at the first frame within 25 dB of the loudest of
    the next 5 s (the benchmark's definition); 0.2-0.6 s from there end the window, silence
    before. None when that part carries too little of the sound (under 3 frames)."""
    start = 0
    if len(audio) > 6 * SR:
        start = int(rng.integers(0, len(audio) - SR))
    piece = audio[start : start + 5 * SR]
    active = loud_frames(piece)
    first = int(np.argmax(active))
    keep_frames = int(rng.uniform(*keep_s) * SR) // FRAME
    if active[first : first + keep_frames].sum() < 3:
        return None
    part = piece[first * FRAME : (first + keep_frames) * FRAME]
    out = np.zeros(WINDOW, np.float32)
    out[WINDOW - len(part) :] = part
    return out


def room_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS room noise: pink, brown or white, or a mains hum with pink noise."""
    kind = rng.choice(["pink", "brown", "white", "hum"], p=[0.45, 0.3, 0.1, 0.15])
    if kind == "pink":
        return pink_noise(n, rng)
    if kind == "white":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "brown":
        noise = np.cumsum(rng.standard_normal(n))
        noise -= np.convolve(noise, np.ones(401) / 401, mode="same")  # no drift below ~40 Hz
    else:
        t = np.arange(n) / SR
        mains = rng.choice([50.0, 60.0])
        noise = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3)) + pink_noise(n, rng)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def random_crop(audio: np.ndarray, rng: np.random.Generator, length: int = WINDOW) -> np.ndarray:
    if len(audio) <= length:
        return np.pad(audio, (0, length - len(audio))).astype(np.float32)
    start = int(rng.integers(0, len(audio) - length + 1))
    return np.asarray(audio[start : start + length], np.float32)


def _piano_crop(pianos: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    for _ in range(8):
        crop = random_crop(pianos[int(rng.integers(len(pianos)))], rng)
        if frame_db(crop).max() > -70:
            return crop
    return crop


def _octaves_from_1k(n: int) -> np.ndarray:
    """Octaves from 1 kHz of each rfft bin of an `n`-sample window (0 Hz counted as 1 Hz)."""
    return np.log2(np.maximum(np.fft.rfftfreq(n, 1.0 / SR), 1.0) / 1000.0)


def _with_gain_db(audio: np.ndarray, gain_db: np.ndarray) -> np.ndarray:
    """`audio` with each rfft bin's gain set to `gain_db` (zero phase)."""
    return np.fft.irfft(np.fft.rfft(audio) * 10 ** (gain_db / 20), len(audio)).astype(np.float32)


def tilt(audio: np.ndarray, rng: np.random.Generator, max_db: float = 8.0) -> np.ndarray:
    """A random spectral tilt, up to +-`max_db` at 125 Hz and 8 kHz relative to 1 kHz: other
    microphones, other rooms, other pianos."""
    tilt_db = rng.uniform(-max_db, max_db)
    octaves = np.clip(_octaves_from_1k(len(audio)), -3.0, 3.0) / 3.0
    return _with_gain_db(audio, tilt_db * octaves)


def body_eq(audio: np.ndarray, rng: np.random.Generator, bands: int = 3) -> np.ndarray:
    """Another instrument's body: `bands` random resonances or dips (100 Hz-6 kHz, +-9 dB,
    0.2-1 octave wide, bell-shaped in log frequency) on the spectrum. A piano's timbre is its
    soundboard's and case's resonances; a handful of soundfonts has only a handful of them."""
    octaves = _octaves_from_1k(len(audio))
    gain_db = np.zeros(len(octaves))
    for _ in range(bands):
        centre = rng.uniform(np.log2(0.1), np.log2(6.0))
        width = rng.uniform(0.2, 1.0)
        gain_db += rng.uniform(-9.0, 9.0) * np.exp(-0.5 * ((octaves - centre) / (width / 2)) ** 2)
    return _with_gain_db(audio, gain_db)


def mix_window(
    label_indices: list[int],
    foreground: np.ndarray | None,
    pianos: Sequence[np.ndarray],
    rng: np.random.Generator,
    piano_probability: float,
    piano_eq: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One training window and its multi-hot labels: the foreground at -45..-12 dBFS, maybe in
    a room, maybe under piano 0-20 dB louder (with `piano_eq`, through `body_eq`), always over
    room noise 20-50 dB down."""
    labels = np.zeros(len(CLASSES), np.float32)
    labels[label_indices] = 1.0
    level = rng.uniform(-45, -12)
    if foreground is not None:
        mix = set_level(tilt(foreground, rng), level)
        if rng.random() < 0.35:
            mix = add_reverb(
                mix, SR, rt60_s=rng.uniform(0.2, 0.8), wet=rng.uniform(0.2, 1.0), rng=rng
            )
    else:
        mix = np.zeros(WINDOW, np.float32)
    if pianos and rng.random() < piano_probability:
        piano = tilt(_piano_crop(pianos, rng), rng)
        if piano_eq:
            piano = body_eq(piano, rng)
        louder = rng.uniform(0, 20) if foreground is not None else 0.0
        mix = mix + set_level(piano, min(level + louder, -3.0))
        labels[CLASSES.index("piano")] = 1.0
    noise_db = level - rng.uniform(20, 50)
    mix = mix + room_noise(WINDOW, rng) * 10 ** (noise_db / 20)
    peak = float(np.max(np.abs(mix)))
    if peak > 0.99:  # a real microphone would have clipped; keep the window usable instead
        mix *= 0.99 / peak
    return mix.astype(np.float32), labels


def make_windows(
    sources: Sequence[Source],
    pianos: Sequence[np.ndarray],
    per_class: int,
    seed: int,
    onset_share: float = 0.0,
    onset_skip: Collection[str] = (),
    piano_eq: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` windows for every class that has sources, plus as many windows of room
    noise only (no label); returns (windows (n, WINDOW), labels (n, len(CLASSES))).
    `onset_share` of each sound class's windows are `onset_crop`s (the start of the sound at
    the end of the window) instead of crops from anywhere in the sound; 0 draws no random
    number for it, so the windows are those of a recipe without it; classes in `onset_skip`
    get none. `piano_eq` passes every piano through `body_eq` (no random numbers drawn
    without it)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Source]] = {}
    for source in sources:
        by_class.setdefault(source.label, []).append(source)
    windows, labels = [], []
    piano_index = CLASSES.index("piano")
    for label in CLASSES:
        if label == "piano":
            # Piano alone is what the classifier hears most: it gets several classes' share, so
            # that "piano with a faint alert in it" does not become "piano means an alert".
            for _ in range(PIANO_SHARE * per_class if pianos else 0):
                crop = _piano_crop(pianos, rng)
                window, y = mix_window([], body_eq(crop, rng) if piano_eq else crop, [], rng, 0.0)
                y[piano_index] = 1.0
                windows.append(window)
                labels.append(y)
            continue
        pool = by_class.get(label, [])
        if not pool:
            continue
        real = [s for s in pool if s.origin == "real"]
        synth = [s for s in pool if s.origin == "synth"]
        onsets = 0.0 if label in onset_skip else onset_share
        made = 0
        while made < per_class:
            group = real if real and (not synth or rng.random() < 0.5) else synth
            source = group[int(rng.integers(len(group)))]
            if onsets and rng.random() < onsets:
                crop = onset_crop(source.audio, rng)
            else:
                crop = crop_with_sound(source.audio, rng)
            if crop is None:
                continue
            piano_probability = 0.5 if label in CLASSES[:9] else 0.3
            window, y = mix_window(
                [CLASSES.index(label)], crop, pianos, rng, piano_probability, piano_eq
            )
            windows.append(window)
            labels.append(y)
            made += 1
    for _ in range(per_class):
        window, y = mix_window([], None, [], rng, 0.0)
        windows.append(window)
        labels.append(y)
    return np.stack(windows), np.stack(labels)
