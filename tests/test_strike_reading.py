"""The note model's reading of a strike the monophonic core's rules cannot name
(`polynotes.StrikeReading`, `NoteListener._read_strike`) and its wiring into [listen]."""

from __future__ import annotations

import numpy as np
import pytest
from test_piano import bench_room_key  # tests/ is on sys.path (pytest rootdir)

from notesight.device.config import ListenSettings
from notesight.device.errors import ModelError
from notesight.device.note_model import SHIPPED_NOTE_MODEL, MonoPipeline, NoteModel
from notesight.device.transcribe import listener_params, transcribe_array
from notesight.dsp.listener import ListenerParams, NoteListener
from notesight.dsp.logspec import HOP, N_BINS, SAMPLE_RATE, WINDOWS
from notesight.dsp.music import midi_to_freq
from notesight.dsp.polynotes import N_KEYS, PolyParams, StrikeReading

SR = 44100


class FakeNoteModel:
    """Answers every frame with `onset` for one key in chosen frames and `sounding` for it in
    all; records the windows it was given."""

    def __init__(self, key: int, onset: float, sounding: float, onset_frames: set[int]) -> None:
        self.key, self.onset, self.sounding, self.onset_frames = key, onset, sounding, onset_frames
        self.windows: list[tuple[int, ...]] = []

    def __call__(self, window: np.ndarray) -> np.ndarray:
        self.windows.append(window.shape)
        outputs = window.shape[1] - 6
        out = np.zeros((1, outputs, 1, 2 * N_KEYS), np.float32)
        for i in range(outputs):
            if i + 5 in self.onset_frames:  # output i decides input frame i + 5
                out[0, i, 0, self.key] = self.onset
            out[0, i, 0, N_KEYS + self.key] = self.sounding
        return out


def _strike_audio(midi: int, rate: int = SAMPLE_RATE, before_s: float = 0.3) -> np.ndarray:
    t = np.arange(int(0.1 * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * midi_to_freq(midi) * t)
    return np.concatenate([np.zeros(int(before_s * rate)), tone]).astype(np.float32)


def test_the_reading_is_the_key_the_model_places_at_the_strike_and_still_hears():
    audio = _strike_audio(60)
    strike = int(0.3 * SAMPLE_RATE)
    frame = strike // HOP
    model = FakeNoteModel(60 - 21, onset=0.9, sounding=0.95, onset_frames={frame + 1})
    midi, freq, confidence = StrikeReading(model)(audio, SAMPLE_RATE, strike)
    assert midi == 60 and confidence == pytest.approx(0.9)
    assert abs(freq - midi_to_freq(60)) < 1.0  # measured from the audio: a sine on the key
    # the whole stretch in one call: every frame from the stream's audio, two channels
    assert model.windows == [(1, len(audio) // HOP, N_BINS, len(WINDOWS))]


@pytest.mark.parametrize(
    "onset, sounding, frames",
    [
        (0.69, 0.95, {0}),  # under the decoder's onset threshold (0.7)
        (0.9, 0.49, {0}),  # struck but not ringing on: a knock, a thump
        (0.9, 0.95, {-2, 3}),  # placed too far from the strike
    ],
)
def test_no_reading_under_the_thresholds_or_away_from_the_strike(onset, sounding, frames):
    audio = _strike_audio(60)
    strike = int(0.3 * SAMPLE_RATE)
    frame = strike // HOP
    model = FakeNoteModel(60 - 21, onset, sounding, {frame + f for f in frames})
    assert StrikeReading(model)(audio, SAMPLE_RATE, strike) is None


def test_no_reading_of_a_key_outside_the_configured_range():
    audio = _strike_audio(60)
    strike = int(0.3 * SAMPLE_RATE)
    model = FakeNoteModel(60 - 21, 0.9, 0.95, {strike // HOP})
    assert StrikeReading(model, PolyParams(highest_midi=59))(audio, SAMPLE_RATE, strike) is None


def test_the_reading_places_the_strike_at_any_rate():
    """The listener hands over audio at its analysis rate (22.05 kHz for a 44.1 kHz mic)."""
    rate = 22050
    audio = _strike_audio(69, rate)
    strike = int(0.3 * rate)
    frame = int(strike * SAMPLE_RATE / rate) // HOP
    model = FakeNoteModel(69 - 21, 0.9, 0.95, {frame})
    assert StrikeReading(model)(audio, rate, strike)[0] == 69


class RecordingReader:
    """A strike reader that records what it was asked and names C4."""

    history_s = 0.3

    def __init__(self) -> None:
        self.calls: list[tuple[int, float, int]] = []

    def __call__(self, audio: np.ndarray, sample_rate: float, strike: int):
        self.calls.append((len(audio), sample_rate, strike))
        return 60, 262.0, 0.9


def test_the_core_asks_the_reader_only_when_its_rules_name_no_key():
    t = np.arange(SR) / SR
    tone = np.where(t > 0.5, 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-(t - 0.5) * 2), 0)
    reader = RecordingReader()
    listener = NoteListener(SR, None, reader)
    events = listener.feed(tone.astype(np.float32)) + listener.flush()
    assert [e.midi for e in events] == [69, 69]  # A4 on and off, named by the rules
    assert reader.calls == []


def test_a_strike_no_rule_names_is_read_from_before_the_strike_to_now():
    """A burst of noise is a strike without a pitch: the rules give up at the longest window
    and the reader gets 0.3 s before the strike and the ~95 ms since, at the analysis rate."""
    audio = np.zeros(SR, np.float32)
    audio[SR // 2 : SR // 2 + SR // 10] = np.random.default_rng(0).normal(0, 0.1, SR // 10)
    reader = RecordingReader()
    listener = NoteListener(SR, None, reader)
    events = listener.feed(audio) + listener.flush()
    assert len(reader.calls) == 1
    length, rate, strike = reader.calls[0]
    assert rate == SR / 2 and strike == round(0.3 * rate)
    assert 0.08 < (length - strike) / rate < 0.12
    on = events[0]
    assert on.midi == 60 and abs(on.onset_s - 0.5) < 0.01 and 0.58 < on.emitted_s < 0.62
    # without a reader the same burst names nothing
    bare = NoteListener(SR)
    assert bare.feed(audio) + bare.flush() == []


def test_the_mono_pipeline_asks_the_configured_note_model(tmp_path):
    params = listener_params(ListenSettings())
    assert isinstance(params, MonoPipeline) and params.model == SHIPPED_NOTE_MODEL
    missing = listener_params(ListenSettings(model=str(tmp_path / "none.tflite")))
    with pytest.raises(ModelError, match=r"none\.tflite does not exist"):
        transcribe_array(np.zeros(4800, np.float32), 48000, missing)


# -- the shipped note model -------------------------------------------------------------------
needs_model = pytest.mark.skipif(not SHIPPED_NOTE_MODEL.is_file(), reason="no models/notes.tflite")


@needs_model
def test_the_shipped_model_reads_no_key_in_a_burst_of_noise():
    audio = np.zeros(SR, np.float32)
    audio[SR // 2 : SR // 2 + SR // 10] = np.random.default_rng(0).normal(0, 0.1, SR // 10)
    assert transcribe_array(audio, SR) == []
    reading = StrikeReading(NoteModel(SHIPPED_NOTE_MODEL, 7))
    assert reading(audio[: int(0.6 * SR)], SR, SR // 2) is None


@needs_model
@pytest.mark.parametrize("midi, velocity", [(36, 40), (38, 110)])
def test_a_bass_key_lost_in_the_room_is_read_by_the_note_model(piano, midi, velocity):
    """The benchmark's soft C2 and loud D2 in a room on FluidR3_GM (their seeds): YIN reads the
    room's boom, no rule names a key by the longest window and the core alone gives no note;
    the note model places the key at the strike and hears it ringing."""
    audio = bench_room_key(piano, "FluidR3_GM", midi, velocity)
    notes = transcribe_array(audio, SR)
    assert notes[0]["midi"] == midi and abs(notes[0]["onset_s"] - 0.5) < 0.02
    assert transcribe_array(audio, SR, ListenerParams()) == []  # the rules alone
