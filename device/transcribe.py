"""Run the daemon's streaming listening pipeline over audio, as fast as possible.

`transcribe` uses exactly the processor the daemon uses, so `emitted_s` (seconds of audio
consumed when a note-on left the pipeline) is the latency the pianist would see, less the
microphone's own buffering. The daemon feeds it one hop (~5.8 ms) at a time. `transcribe`
feeds the monophonic core longer blocks (`transcribe_block_size`): it analyses them hop by hop
and gives the same events, `emitted_s` included, as the daemon's blocks (tests check), in
about half the time. The note model's pipeline emits at the end of each block it is fed, so
it gets the daemon's block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from notesight.dsp.events import NoteOff, NoteOn
from notesight.dsp.listener import ListenerParams, analysis_factor, analysis_hop
from notesight.dsp.polynotes import PolyParams

from .config import ListenSettings
from .note_model import (
    SHIPPED_NOTE_MODEL,
    ListeningParams,
    MonoPipeline,
    PolyPipeline,
    make_listener,
)


@dataclass(frozen=True, slots=True)
class Note:
    """A whole note: its note-on event plus when it stopped."""

    midi: int
    name: str
    onset_s: float
    offset_s: float
    emitted_s: float
    velocity: int
    cents: float
    freq_hz: float

    def as_dict(self) -> dict:
        return asdict(self)


def listener_params(settings: ListenSettings | None) -> ListeningParams:
    """What [listen] asks for: the note model ("poly") or the monophonic core ("mono")."""
    if settings is None:
        return MonoPipeline(ListenerParams())
    # Both pipelines take the tuning reference, the key range and the level gate alike.
    shared = {
        "a4_hz": settings.a4_hz,
        "lowest_midi": settings.lowest_midi,
        "highest_midi": settings.highest_midi,
        "min_level_dbfs": settings.min_level_dbfs,
    }
    model = Path(settings.model).expanduser() if settings.model else SHIPPED_NOTE_MODEL
    if settings.pipeline == "poly":
        return PolyPipeline(model, PolyParams(**shared, chord_debounce_s=settings.chord_debounce_s))
    core = ListenerParams(**shared, onset_sensitivity=settings.onset_sensitivity)
    return MonoPipeline(core, model)


def daemon_block_size(sample_rate: int) -> int:
    """The block the daemon reads from the microphone: one analysis hop (~5.8 ms)."""
    # Computed from the parameters: building a listener here would set up all its detectors.
    return analysis_hop(sample_rate, ListenerParams.hop_s) * analysis_factor(sample_rate)


# Hops per block `transcribe` feeds the monophonic core: 0.37 s at 44.1 kHz. Longer blocks
# gain little; the listener's buffers do not grow with them.
TRANSCRIBE_HOPS = 64


def transcribe_block_size(sample_rate: int, params: ListeningParams | None) -> int:
    """The block `transcribe` feeds the pipeline that `params` makes (see the module doc)."""
    block = daemon_block_size(sample_rate)
    return block if isinstance(params, PolyPipeline) else block * TRANSCRIBE_HOPS


def notes_from_blocks(
    blocks: Iterable[np.ndarray], sample_rate: int, params: ListeningParams | None = None
) -> Iterator[Note]:
    """Stream notes (each yielded when it ends) from blocks of mono float audio."""
    listener = make_listener(sample_rate, params)
    sounding: dict[int, NoteOn] = {}  # note-ons waiting for their note-off, by key
    for block in blocks:
        events = listener.feed(block)
        if events:  # most blocks end nothing: skip setting up the pairing for them
            yield from whole_notes(events, sounding)
    yield from whole_notes(listener.flush(), sounding)


def whole_notes(events: Iterable, sounding: dict[int, NoteOn]) -> Iterator[Note]:
    """The notes that `events` complete: each note-on waits in `sounding` (by key, so chords
    pair up) for its note-off; other events are passed over."""
    for event in events:
        if isinstance(event, NoteOn):
            sounding[event.midi] = event
        elif isinstance(event, NoteOff) and event.midi in sounding:
            yield _note(sounding.pop(event.midi), event)


def _note(open_note: NoteOn, event: NoteOff) -> Note:
    return Note(
        midi=open_note.midi,
        name=open_note.name,
        onset_s=open_note.onset_s,
        offset_s=max(event.offset_s, open_note.onset_s),
        emitted_s=open_note.emitted_s,
        velocity=open_note.velocity,
        cents=open_note.cents,
        freq_hz=open_note.freq_hz,
    )


def blocks_of(audio: np.ndarray, block_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(audio), block_size):
        yield audio[start : start + block_size]


def transcribe_array(
    audio: np.ndarray, sample_rate: int, params: ListeningParams | None = None
) -> list[dict]:
    """All notes in `audio` (mono float) as JSON-ready dicts, as `transcribe` finds them."""
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim > 1:
        mono = mono.mean(axis=1)
    block = transcribe_block_size(sample_rate, params)
    return [n.as_dict() for n in notes_from_blocks(blocks_of(mono, block), sample_rate, params)]


def write_midi(notes: Iterable[Note], path: Path) -> None:
    """A type-0 MIDI file at 120 BPM (960 ticks a second), piano on channel 1."""
    import mido  # only `--midi` needs it

    ticks_per_second = 960
    messages: list[tuple[int, int, mido.Message]] = []
    for note in notes:
        on = round(note.onset_s * ticks_per_second)
        off = max(on + 1, round(note.offset_s * ticks_per_second))
        messages.append((on, 1, mido.Message("note_on", note=note.midi, velocity=note.velocity)))
        messages.append((off, 0, mido.Message("note_off", note=note.midi, velocity=0)))
    messages.sort(key=lambda m: (m[0], m[1]))
    midi_file = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    midi_file.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000))
    now = 0
    for tick, _, message in messages:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi_file.save(str(path))
