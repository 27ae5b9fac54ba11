"""The polyphonic pipeline's parts: features, decoder, listener timing and tuning (with a
scripted model that records every window it is given), the model loader's errors, and the
shipped model on FluidSynth piano chords."""

from __future__ import annotations

import numpy as np
import pytest
from test_daemon import RecordingOutput  # tests/ is on sys.path (pytest rootdir)

from notesight.device.config import ListenSettings
from notesight.device.daemon import Daemon
from notesight.device.errors import ModelError
from notesight.device.note_model import SHIPPED_NOTE_MODEL, NoteModel, PolyPipeline
from notesight.device.synth import Note
from notesight.device.transcribe import (
    blocks_of,
    daemon_block_size,
    listener_params,
    transcribe_array,
)
from notesight.dsp.events import Chord, NoteOff, NoteOn
from notesight.dsp.logspec import (
    BINS_PER_SEMITONE,
    HOP,
    LOWEST_BIN_MIDI,
    N_BINS,
    SAMPLE_RATE,
    LogSpectrogram,
    log_spectrogram,
)
from notesight.dsp.polynotes import HOP_S, N_KEYS, PolyDecoder, PolyListener, PolyParams


def _sine(freq_hz: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


# -- features ---------------------------------------------------------------------------------
def test_streaming_frames_equal_batch_frames_for_any_block_size():
    audio = np.random.default_rng(1).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    batch = log_spectrogram(audio)
    for block in (1, 37, 256, 700, 5000):
        stream = LogSpectrogram()
        frames = np.concatenate(
            [stream.feed(audio[i : i + block]) for i in range(0, len(audio), block)]
        )
        assert frames.shape == batch.shape == (len(audio) // HOP, N_BINS, 2)
        np.testing.assert_allclose(frames, batch, atol=1e-5)


@pytest.mark.parametrize("midi", [33, 45, 60, 69, 84, 100])
def test_a_sine_peaks_in_its_own_band_in_the_long_window(midi):
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    frames = log_spectrogram(_sine(freq, 0.5))
    peak_band = int(frames[-1, :, 0].argmax())
    assert peak_band == round((midi - LOWEST_BIN_MIDI) * BINS_PER_SEMITONE)


def test_silence_gives_zero_features():
    assert np.all(log_spectrogram(np.zeros(SAMPLE_RATE, np.float32)) == 0)


# -- decoder ----------------------------------------------------------------------------------
def _probabilities(onset_keys=(), sounding_keys=(), onset=0.9, sounding=0.9):
    o = np.zeros(N_KEYS, np.float32)
    s = np.zeros(N_KEYS, np.float32)
    o[list(onset_keys)] = onset
    s[list(sounding_keys)] = sounding
    return o, s


def test_decoder_one_strike_one_note_then_release_after_quiet_frames():
    decoder = PolyDecoder(PolyParams(release_frames=2))
    struck, released = decoder.step(*_probabilities([48], [48]), True)
    assert list(struck) == [48] and list(released) == []
    # Onset probability stays high on the next frame (the strike spans two): no second note.
    struck, released = decoder.step(*_probabilities([48], [48]), True)
    assert list(struck) == [] and list(released) == []
    struck, released = decoder.step(*_probabilities([], [48]), True)
    assert list(struck) == [] and list(released) == []
    assert list(decoder.step(*_probabilities([], []), True)[1]) == []  # one quiet frame
    assert list(decoder.step(*_probabilities([], []), True)[1]) == [48]  # two: released
    assert list(decoder.sounding()) == []


def test_decoder_restrike_ends_the_old_note_and_starts_a_new_one():
    decoder = PolyDecoder(PolyParams())
    decoder.step(*_probabilities([40], [40]), True)
    decoder.step(*_probabilities([], [40]), True)
    struck, released = decoder.step(*_probabilities([40], [40]), True)
    assert list(struck) == [40] and list(released) == [40]


def test_decoder_ignores_keys_outside_the_range_and_quiet_frames():
    decoder = PolyDecoder(PolyParams(lowest_midi=40, highest_midi=80))
    struck, _ = decoder.step(*_probabilities([0, 30, 70]), True)  # A0, D#3, A#6
    assert list(struck) == [30]
    quiet = PolyDecoder(PolyParams())
    assert list(quiet.step(*_probabilities([30]), False)[0]) == []


# -- the listener, driven by a scripted model -------------------------------------------------
class ScriptedModel:
    """Says key `key` is struck on call number `strike_call` (0-based) and sounds for
    `sounding_calls`; records the shape and newest frame of every window it is given."""

    def __init__(self, key: int, strike_call: int, sounding_calls: int = 10) -> None:
        self.key, self.strike_call, self.sounding_calls = key, strike_call, sounding_calls
        self.windows: list[tuple[tuple[int, ...], np.ndarray]] = []

    def __call__(self, window: np.ndarray) -> np.ndarray:
        call = len(self.windows)
        self.windows.append((window.shape, window[0, -1].copy()))
        out = np.zeros((1, 1, 1, 2 * N_KEYS), np.float32)
        if call in (self.strike_call, self.strike_call + 1):
            out[..., self.key] = 0.95
        if self.strike_call <= call < self.strike_call + self.sounding_calls:
            out[..., N_KEYS + self.key] = 0.95
        return out


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_listener_times_a_note_by_its_frame_and_the_audio_consumed(rate):
    model = ScriptedModel(key=69 - 21, strike_call=20)
    listener = PolyListener(rate, model, PolyParams(min_level_dbfs=-100))
    audio = _sine(440.0, 1.0, rate)
    block = rate // 100
    events = []
    for start in range(0, len(audio), block):
        events += [(start + block, e) for e in listener.feed(audio[start : start + block])]
    events += [(len(audio), e) for e in listener.flush()]
    ons = [(end, e) for end, e in events if isinstance(e, NoteOn)]
    offs = [e for _, e in events if isinstance(e, NoteOff)]
    assert len(ons) == 1 and len(offs) == 1
    end, on = ons[0]
    assert on.midi == 69 and on.name == "A4"
    # Decided frame = the 21st frame minus the one frame of look-ahead.
    assert on.onset_s == pytest.approx((20 - 1 + 0.5) * HOP_S)
    assert on.emitted_s == pytest.approx(end / rate)
    assert on.emitted_s >= (20 + 1) * HOP_S  # not before the frame the model decided on
    assert offs[0].offset_s == pytest.approx((20 + 10 + 2 - 1) * HOP_S)
    assert all(shape == (1, 7, N_BINS, 2) for shape, _ in model.windows)
    assert len(model.windows) == len(audio) * SAMPLE_RATE // rate // HOP


@pytest.mark.parametrize("cents", [-20.0, 0.0, 15.0])
@pytest.mark.parametrize("midi", [45, 69, 81])
def test_listener_measures_the_tuning_of_a_struck_note(midi, cents):
    freq = 440.0 * 2 ** ((midi - 69 + cents / 100) / 12)
    model = ScriptedModel(key=midi - 21, strike_call=15)
    listener = PolyListener(48000, model)
    # Four partials, as a string has: below 200 Hz the tuning is read from one of them.
    tone = sum(_sine(freq * k, 0.5, 48000, 0.3 / k) for k in range(1, 5))
    events = listener.feed(tone)
    (on,) = [e for e in events if isinstance(e, NoteOn)]
    assert on.cents == pytest.approx(cents, abs=3.0)
    assert on.freq_hz == pytest.approx(freq, rel=0.002)


def test_listener_names_the_chord_of_three_sounding_keys():
    class ThreeKeys(ScriptedModel):
        def __call__(self, window):
            out = super().__call__(window)
            for key in (60 - 21, 64 - 21, 67 - 21):
                out[..., key] = out[..., self.key]
                out[..., N_KEYS + key] = out[..., N_KEYS + self.key]
            return out

    listener = PolyListener(16000, ThreeKeys(key=60 - 21, strike_call=10, sounding_calls=30))
    audio = _sine(261.6, 1.0)
    events = [
        e for start in range(0, len(audio), 160) for e in listener.feed(audio[start : start + 160])
    ]
    events += listener.flush()
    chords = [e for e in events if isinstance(e, Chord)]
    assert [c.name for c in chords] == ["C", ""]
    assert chords[0].midis == (60, 64, 67)


# -- the model file ---------------------------------------------------------------------------
def test_a_missing_model_names_the_file_and_the_setting(tmp_path):
    with pytest.raises(ModelError, match=r"notes\.tflite does not exist.*\[listen\]\.model"):
        NoteModel(tmp_path / "notes.tflite", 7)


def test_a_corrupt_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ModelError, match=r"is not a usable \.tflite model"):
        NoteModel(bad, 7)


def test_a_model_with_the_wrong_shape_says_what_was_expected():
    alerts = SHIPPED_NOTE_MODEL.parent / "alerts.tflite"
    with pytest.raises(ModelError, match=r"does not fit.*expected \(1, frames, 192, 2\)"):
        NoteModel(alerts, 7)


def test_the_transcribe_pipeline_reports_a_missing_model(tmp_path):
    params = listener_params(ListenSettings(pipeline="poly", model=str(tmp_path / "none.tflite")))
    assert isinstance(params, PolyPipeline)
    with pytest.raises(ModelError, match=r"none\.tflite does not exist"):
        transcribe_array(np.zeros(4800, np.float32), 48000, params)


# -- the shipped model on rendered piano ------------------------------------------------------
needs_model = pytest.mark.skipif(not SHIPPED_NOTE_MODEL.is_file(), reason="no models/notes.tflite")


@needs_model
def test_the_shipped_model_takes_one_window_or_many_with_the_same_result():
    model = NoteModel(SHIPPED_NOTE_MODEL, 7)
    frames = log_spectrogram(_sine(261.6, 1.0))[None]
    whole = model(frames)
    assert whole.shape == (1, frames.shape[1] - 6, 1, 2 * N_KEYS)
    for k in (0, 20, 40):
        np.testing.assert_allclose(model(frames[:, k : k + 7])[0, 0], whole[0, k], atol=1e-5)


CHORDS = [  # (keys, name): both hands, root position and inversions, on the unseen piano
    ((48, 60, 64, 67), "C"),
    ((43, 59, 62, 65, 67), "G7/B"),
    ((45, 57, 60, 64), "Am"),
    ((41, 53, 57, 60, 65), "F"),
]


@pytest.fixture(scope="module")
def chord_render(piano):
    notes = tuple(
        Note(0.5 + 1.5 * i, 1.2, key, 80) for i, (keys, _) in enumerate(CHORDS) for key in keys
    )
    return piano(notes, "MuseScore_General")


CHORD_MISSES = (
    "known weakness of the shipped model, measured: it misses keys of chords on the unseen "
    "piano (bench/notes.py: MuseScore pieces recall 0.426, F1 0.504; here C, G7/B, Am, F "
    "come out as C3 C4 G4, A#2 D4, C3, C2 C3 C4)"
)


@needs_model
@pytest.mark.xfail(strict=True, reason=CHORD_MISSES)
def test_the_note_model_hears_every_key_of_two_hand_chords(chord_render):
    found = transcribe_array(chord_render, 44100, listener_params(ListenSettings(pipeline="poly")))
    for i, (keys, _) in enumerate(CHORDS):
        onset = 0.5 + 1.5 * i
        heard = {n["midi"] for n in found if abs(n["onset_s"] - onset) < 0.05}
        assert heard == set(keys), f"chord {i}"
    assert len(found) == sum(len(keys) for keys, _ in CHORDS)
    assert all(n["emitted_s"] - n["onset_s"] < 0.06 for n in found)


@needs_model
@pytest.mark.xfail(strict=True, reason=CHORD_MISSES)
def test_the_daemon_names_the_chords_it_hears(chord_render):
    recorder = RecordingOutput()
    params = listener_params(ListenSettings(pipeline="poly"))
    daemon = Daemon(44100, [recorder], params=params)
    daemon.run(blocks_of(chord_render, daemon_block_size(44100)))
    names = [e.name for e in recorder.events if isinstance(e, Chord) and e.name]
    assert names == [name for _, name in CHORDS]


@needs_model
def test_transcribe_command_runs_the_note_model_when_the_config_asks(
    chord_render, tmp_path, monkeypatch, capsys
):
    import json

    import soundfile as sf

    from notesight.device.cli import main
    from notesight.device.config import CONFIG_ENV_VAR

    config = tmp_path / "poly.toml"
    config.write_text('[listen]\npipeline = "poly"\n')
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config))
    path = tmp_path / "chords.wav"
    sf.write(path, chord_render, 44100)
    capsys.readouterr()
    assert main(["transcribe", str(path), "--jsonl"]) == 0
    notes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first_chord = {n["midi"] for n in notes if abs(n["onset_s"] - 0.5) < 0.05}
    assert len(first_chord) >= 3 and first_chord <= set(CHORDS[0][0])
    assert set(notes[0]) == {
        "midi", "name", "onset_s", "offset_s", "emitted_s", "velocity", "cents", "freq_hz"
    }  # fmt: skip


def test_decoder_starts_a_silent_key_the_sounding_output_is_sure_of():
    decoder = PolyDecoder(PolyParams(rising_threshold=0.7))
    struck, _ = decoder.step(*_probabilities([], [50], sounding=0.8), True)
    assert list(struck) == [50]
    struck, _ = decoder.step(*_probabilities([], [50], sounding=0.8), True)
    assert list(struck) == []  # already sounding: no second note
    off = PolyDecoder(PolyParams(rising_threshold=1.1))
    assert list(off.step(*_probabilities([], [50], sounding=0.99), True)[0]) == []


def test_a_strike_heard_in_silence_gives_the_key_in_tune_not_an_error():
    model = ScriptedModel(key=69 - 21, strike_call=5)
    listener = PolyListener(16000, model, PolyParams(min_level_dbfs=-120))
    events = listener.feed(np.zeros(16000, np.float32))
    (on,) = [e for e in events if isinstance(e, NoteOn)]
    assert (on.freq_hz, on.cents) == (440.0, 0.0)
