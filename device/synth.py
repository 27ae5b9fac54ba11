"""Piano audio rendered with FluidSynth from Debian's soundfonts: test, benchmark and demo material.

We drive the `fluidsynth` command (Debian package fluidsynth) with a MIDI file written by mido,
so a render is exactly what any FluidSynth user hears; no Python binding is needed.

Onset timing (measured with FluidSynth 2.3.1, Debian bookworm): the MIDI player does NOT add a
fixed offset. It runs on an integer-millisecond clock that is ticked once per 64-sample block,
and a note dispatched in block b sounds from the first sample of block b + 1 (the sample at the
block start is still 0; the first non-zero sample is the one after it). Playing a MIDI file
naively therefore starts a note 1.2-3.9 ms late at 44.1 kHz (0.9-3.2 ms at 48 kHz, 2.9-6.5 ms at
22.05 kHz), varying with where the onset falls on the grid. `render_notes` inverts that model:
it picks, for each event, the millisecond tick that makes FluidSynth start the note at the block
boundary nearest to the asked time, so every onset lands within half a block (+-0.73 ms at
44.1 kHz) of where it was asked. Checked on 60 random onsets at 16, 22.05, 44.1 and 48 kHz: every
note started exactly on the predicted block (tests/test_synth.py guards it). Above 64 kHz a
block is shorter than the clock's millisecond and the error grows to ~1.1 ms (96 kHz).

What counts as the onset is the note-on; the soundfont's own sample may open with silence.
FluidR3_GM and MuseScore_General sound within 0.7 ms of it on all 88 keys; TimGM6mb's F4-A4
(MIDI 65-69) samples open with 7.6 ms of silence.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import NotesightError

# Where Debian (and most distributions) install soundfonts; searched in this order.
SOUNDFONT_DIRS = (
    Path("/usr/share/sounds/sf2"),
    Path("/usr/share/sounds/sf3"),
    Path("/usr/share/soundfonts"),
    Path("/usr/local/share/soundfonts"),
    Path("/usr/share/sounds"),
)
# Known soundfonts: file names to look for (preferred first) and the Debian package with them.
SOUNDFONTS: dict[str, tuple[tuple[str, ...], str]] = {
    "FluidR3_GM": (("FluidR3_GM.sf2", "FluidR3_GM.sf3"), "fluid-soundfont-gm"),
    "TimGM6mb": (("TimGM6mb.sf2",), "timgm6mb-soundfont"),
    "csound": (("sf_GMbank.sf2",), "csound-soundfont"),
    "MuseScore_General": (
        ("MuseScore_General.sf3", "MuseScore_General_Full.sf3", "MuseScore_General.sf2"),
        "musescore-general-soundfont",
    ),
}

FLUID_BLOCK = 64  # FluidSynth's fixed internal block (FLUID_BUFSIZE); its clock ticks per block
LEAD_BLOCKS = 4  # rendered before t=0 and cut, so a note at t=0 can be dispatched a block early
TICKS_PER_BEAT = 1000  # with a tempo of one beat per second a MIDI tick is exactly 1 ms,
TEMPO_US = 1_000_000  # the resolution of FluidSynth's player clock
GAIN = 0.5  # FluidSynth's default 0.2 leaves its pianos around -35 dBFS; 0.5 is mic-like
TAIL_S = 1.5  # rendered after the last note-off so releases ring out
RENDER_VERSION = 1  # bump when rendering changes, so cached renders are redone


class SynthError(NotesightError):
    """FluidSynth or a soundfont is missing, or rendering failed."""


@dataclass(frozen=True, slots=True)
class Note:
    """One key press: when (s), how long until release (s), which key, how hard (1..127)."""

    onset_s: float
    duration_s: float
    midi: int
    velocity: int = 80

    def __post_init__(self) -> None:
        if self.onset_s < 0 or self.duration_s <= 0:
            raise ValueError(f"note needs onset >= 0 and duration > 0: {self}")
        if not 0 <= self.midi <= 127 or not 1 <= self.velocity <= 127:
            raise ValueError(f"note needs midi 0..127 and velocity 1..127: {self}")

    @property
    def offset_s(self) -> float:
        return self.onset_s + self.duration_s


def _install_hint(name: str) -> str:
    if name in SOUNDFONTS:
        return f"install it with `sudo apt-get install {SOUNDFONTS[name][1]}`"
    known = ", ".join(f"{n} ({package})" for n, (_, package) in SOUNDFONTS.items())
    return f"known: {known}"


def find_soundfont(name: str) -> Path:
    """Path of an installed soundfont by name ("FluidR3_GM", "TimGM6mb", "MuseScore_General");
    other names are looked up as <name>.sf2 / <name>.sf3 in the same folders."""
    filenames = SOUNDFONTS.get(name, ((f"{name}.sf2", f"{name}.sf3"), ""))[0]
    for filename in filenames:
        for folder in SOUNDFONT_DIRS:
            if (folder / filename).is_file():
                return folder / filename
    searched = ", ".join(str(d) for d in SOUNDFONT_DIRS)
    raise SynthError(f"soundfont {name} not found in {searched}: {_install_hint(name)}")


# -- timing ---------------------------------------------------------------------------------
def _block_clock_ms(block: int, sample_rate: int) -> int:
    """FluidSynth's player clock (integer ms) when it is ticked at the start of `block`."""
    return block * FLUID_BLOCK * 1000 // sample_rate


def event_tick(sample: int, sample_rate: int) -> int:
    """The MIDI tick (ms) that makes FluidSynth start an event at the block boundary nearest to
    `sample`. An event at tick e is dispatched in the first block whose clock reaches e and
    sounds from the next block, so block k needs clock(k-2) < e <= clock(k-1). Above 64 kHz a
    block is shorter than a millisecond and some blocks can't be hit: take the nearest that can."""
    nearest = round(sample / FLUID_BLOCK)
    for block in sorted(
        range(nearest - 2, nearest + 3), key=lambda b: abs(b - sample / FLUID_BLOCK)
    ):
        if block < 2:
            continue
        earlier = _block_clock_ms(block - 2, sample_rate)
        tick = _block_clock_ms(block - 1, sample_rate)
        if earlier < tick:
            return tick
    raise SynthError(f"no MIDI tick starts a note near sample {sample} at {sample_rate} Hz")


def _midi_events(notes: Sequence[Note], sample_rate: int) -> list[tuple[int, int, int, int, int]]:
    """(tick, order, channel, key, velocity) for every note-on and note-off, in render time
    (shifted by the lead). Note-offs sort before note-ons at the same tick so a repeated key
    is released before it is struck again."""
    lead = LEAD_BLOCKS * FLUID_BLOCK
    channels = _channels(notes)
    events = []
    for note, channel in zip(notes, channels, strict=True):
        on = event_tick(round(note.onset_s * sample_rate) + lead, sample_rate)
        off = max(on + 1, event_tick(round(note.offset_s * sample_rate) + lead, sample_rate))
        events.append((on, 1, channel, note.midi, note.velocity))
        events.append((off, 0, channel, note.midi, 0))
    return sorted(events)


def _channels(notes: Sequence[Note]) -> list[int]:
    """A MIDI channel per note: 0 unless the same key is still held on it, because a note-off
    on a channel releases every sounding copy of that key. Channel 9 is drums in GM: skipped."""
    usable = [c for c in range(16) if c != 9]
    busy_until: dict[tuple[int, int], float] = {}
    chosen = []
    for note in notes:
        channel = next(
            (c for c in usable if busy_until.get((c, note.midi), -1.0) <= note.onset_s),
            usable[0],
        )
        busy_until[(channel, note.midi)] = note.offset_s
        chosen.append(channel)
    return chosen


def write_midi(notes: Sequence[Note], path: Path, sample_rate: int, program: int = 0) -> float:
    """Write the notes as a type-0 MIDI file timed for FluidSynth at `sample_rate`; returns the
    length (s) to render, lead and tail included."""
    import mido  # only needed here; keeps `import notesight.device.synth` light

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0))
    for channel in sorted(set(_channels(notes))):
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    for tick, order, channel, key, velocity in _midi_events(notes, sample_rate):
        kind = "note_on" if order else "note_off"
        track.append(
            mido.Message(kind, channel=channel, note=key, velocity=velocity, time=tick - now)
        )
        now = tick
    lead_s = LEAD_BLOCKS * FLUID_BLOCK / sample_rate
    length_s = lead_s + max(n.offset_s for n in notes) + TAIL_S
    # The player stops at the end of the track; putting it after the tail keeps it rendering.
    end = int(np.ceil(length_s * 1000)) + 1
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    midi.save(str(path))
    return length_s


# -- rendering ------------------------------------------------------------------------------
def _fluidsynth() -> str:
    path = shutil.which("fluidsynth")
    if path is None:
        raise SynthError("fluidsynth not found: install it with `sudo apt-get install fluidsynth`")
    return path


def _run_fluidsynth(midi_path: Path, soundfont: Path, sample_rate: int) -> np.ndarray:
    """Render a MIDI file dry (reverb and chorus off) to mono float32."""
    if not Path(soundfont).is_file():
        raise SynthError(f"soundfont {soundfont} does not exist: check the path")
    wav_path = midi_path.with_suffix(".wav")
    command = [_fluidsynth(), "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", str(GAIN)]
    command += ["-r", str(sample_rate), "-o", f"synth.sample-rate={sample_rate}"]
    # Load only the samples the piano uses: MuseScore_General.sf3 (Ogg-compressed) takes 9 s to
    # decode whole and under 2 s this way; the audio is bit-identical.
    command += ["-o", "synth.dynamic-sample-loading=1"]
    command += ["-F", str(wav_path), "-T", "wav", "-O", "float", str(soundfont), str(midi_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    failed = done.returncode != 0 or "error" in done.stderr.lower()
    if failed or not wav_path.is_file() or wav_path.stat().st_size == 0:
        detail = (done.stderr or done.stdout).strip()[-400:]
        raise SynthError(f"fluidsynth could not render with {soundfont}: {detail}")
    audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise SynthError(f"fluidsynth rendered at {rate} Hz instead of {sample_rate} Hz")
    return audio.mean(axis=1)


def render_notes(
    notes: Iterable[Note], soundfont: Path, sample_rate: int = 44100, program: int = 0
) -> np.ndarray:
    """Mono float32 audio of `notes` on a soundfont's General MIDI `program` (0: grand piano),
    dry, onsets within half a 64-sample block of where asked, and TAIL_S after the last
    release. Length: last note-off + TAIL_S, exactly."""
    notes = list(notes)
    if not notes:
        raise SynthError("nothing to render: no notes")
    with tempfile.TemporaryDirectory(prefix="notesight-synth-") as tmp:
        midi_path = Path(tmp) / "notes.mid"
        length_s = write_midi(notes, midi_path, sample_rate, program)
        audio = _run_fluidsynth(midi_path, Path(soundfont), sample_rate)
    return without_lead(audio, length_s, sample_rate)


def without_lead(audio: np.ndarray, length_s: float, sample_rate: int) -> np.ndarray:
    """A render of `write_midi`'s file cut to the notes' own time line: the lead that file
    starts with taken off, the end padded or cut to its length (as float32)."""
    lead = LEAD_BLOCKS * FLUID_BLOCK
    length = round(length_s * sample_rate) - lead
    audio = audio[lead : lead + length]
    return np.pad(audio, (0, length - len(audio))).astype(np.float32)


def render_midi_file(path: Path, soundfont: Path, sample_rate: int = 44100) -> np.ndarray:
    """Mono float32 render of an existing MIDI file, dry. Its timing is FluidSynth's own: notes
    start 1.2-3.9 ms late at 44.1 kHz (see the module docstring); use `render_notes` when
    onsets must be exact."""
    with tempfile.TemporaryDirectory(prefix="notesight-synth-") as tmp:
        midi_path = Path(tmp) / "file.mid"
        shutil.copyfile(path, midi_path)
        return _run_fluidsynth(midi_path, Path(soundfont), sample_rate)


def render_key(notes: Sequence[Note], soundfont: Path, sample_rate: int, program: int) -> str:
    """A stable name for a render: identical inputs (and soundfont file) give the same name."""
    font = Path(soundfont).resolve()
    stat = font.stat()
    text = repr((RENDER_VERSION, tuple(notes), str(font), stat.st_size, sample_rate, program))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def render_notes_cached(
    notes: Iterable[Note],
    soundfont: Path,
    cache_dir: Path,
    sample_rate: int = 44100,
    program: int = 0,
    label: str = "",
) -> np.ndarray:
    """`render_notes`, kept as a float WAV in `cache_dir` so an identical render is done once.
    `label` only prefixes the file name, for people browsing the cache."""
    notes = list(notes)
    key = render_key(notes, soundfont, sample_rate, program)
    path = Path(cache_dir) / (f"{label}-{key}.wav" if label else f"{key}.wav")
    if path.is_file():
        return sf.read(path, dtype="float32")[0]
    audio = render_notes(notes, soundfont, sample_rate, program)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.wav")  # a crash mid-write never leaves a bad cache entry
    sf.write(partial, audio, sample_rate, subtype="FLOAT")
    partial.replace(path)
    return audio
