"""Another development piano: freepats' Acoustic Grand (Debian `freepats`), played by
TiMidity++ (Debian `timidity`). Other samples than the soundfonts' and another
synthesizer; its attacks glide (its C5 starts a semitone sharp and settles in ~25 ms), which
FluidSynth's pianos show in a few zones only. Not used for the evaluation figures."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from notesight.device.synth import Note, without_lead, write_midi

FREEPATS_CFG = Path("/etc/timidity/freepats.cfg")


def missing() -> str | None:
    """Why freepats can't be rendered here, or None."""
    if shutil.which("timidity") is None:
        return "timidity not found: install it with `sudo apt-get install timidity`"
    if not FREEPATS_CFG.is_file():
        return f"{FREEPATS_CFG} not found: install it with `sudo apt-get install freepats`"
    return None


def render_freepats(notes: Iterable[Note], sample_rate: int = 44100) -> np.ndarray:
    """Mono float32 audio of `notes` on freepats' grand piano, dry (TiMidity's reverb and
    chorus off), timed as `synth.render_notes` times FluidSynth: the same MIDI file, the
    same lead cut, notes within a millisecond of where asked."""
    notes = list(notes)
    with tempfile.TemporaryDirectory(prefix="notesight-timidity-") as tmp:
        midi_path, wav_path = Path(tmp) / "notes.mid", Path(tmp) / "notes.wav"
        length_s = write_midi(notes, midi_path, sample_rate)
        command = ["timidity", "-c", str(FREEPATS_CFG), "-Ow", "--output-mono"]
        command += ["-s", str(sample_rate), "-EFreverb=0", "-EFchorus=0", "--preserve-silence"]
        subprocess.run(
            [*command, "-o", str(wav_path), str(midi_path)], check=True, capture_output=True
        )
        audio, rate = sf.read(wav_path, dtype="float32")
    assert rate == sample_rate, (rate, sample_rate)
    return without_lead(audio, length_s, sample_rate)
