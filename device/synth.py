"""Piano audio rendered with FluidSynth from Debian's soundfonts: test material, benchmark
material and the demo clip. Uses the `fluidsynth` command (package fluidsynth) and a MIDI file
written with mido, so renders are exactly what any FluidSynth user would hear."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import NotesightError

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"))
SOUNDFONT_PACKAGES = {
    "FluidR3_GM": ("FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "TimGM6mb": ("TimGM6mb.sf2", "timgm6mb-soundfont"),
    "MuseScore_General": ("MuseScore_General_Full.sf3", "musescore-general-soundfont"),
}
TICKS_PER_SECOND = 1000  # tempo 1 beat/s with 1000 ticks a beat: a tick is 1 ms


class SynthError(NotesightError):
    """FluidSynth or a soundfont is missing, or rendering failed."""


@dataclass(frozen=True, slots=True)
class Note:
    onset_s: float
    duration_s: float
    midi: int
    velocity: int


def find_soundfont(name: str) -> Path:
    """Path of a soundfont by name: FluidR3_GM, TimGM6mb or MuseScore_General."""
    if name not in SOUNDFONT_PACKAGES:
        raise SynthError(f"unknown soundfont {name!r}; known: {', '.join(SOUNDFONT_PACKAGES)}")
    filename, package = SOUNDFONT_PACKAGES[name]
    for folder in SOUNDFONT_DIRS:
        if (folder / filename).is_file():
            return folder / filename
    raise SynthError(f"soundfont {name} not found: install it with `apt-get install {package}`")


def write_midi(notes: list[Note], path: Path, program: int = 0, tail_s: float = 1.5) -> None:
    import mido

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000))
    track.append(mido.Message("program_change", program=program, time=0))
    events = []
    for n in notes:
        start = round(n.onset_s * TICKS_PER_SECOND)
        stop = max(start + 1, round((n.onset_s + n.duration_s) * TICKS_PER_SECOND))
        events.append((start, 1, mido.Message("note_on", note=n.midi, velocity=n.velocity)))
        events.append((stop, 0, mido.Message("note_off", note=n.midi, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    end = round((max(n.onset_s + n.duration_s for n in notes) + tail_s) * TICKS_PER_SECOND)
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_SECOND)
    midi.tracks.append(track)
    midi.save(str(path))


def render_notes(notes: list[Note], soundfont: Path, sample_rate: int = 44100) -> np.ndarray:
    """Mono float32 audio of `notes` played on the soundfont's piano, dry (no reverb/chorus)."""
    if not notes:
        raise SynthError("nothing to render: no notes")
    if shutil.which("fluidsynth") is None:
        raise SynthError("fluidsynth not found: install it with `apt-get install fluidsynth`")
    with tempfile.TemporaryDirectory(prefix="notesight-synth-") as tmp:
        midi_path, wav_path = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        write_midi(notes, midi_path)
        command = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6"]
        command += ["-r", str(sample_rate), "-F", str(wav_path), str(soundfont), str(midi_path)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not wav_path.exists():
            raise SynthError(f"fluidsynth failed: {done.stderr.strip()[:300]}")
        audio, _ = sf.read(wav_path, dtype="float32", always_2d=True)
    return audio.mean(axis=1)
