"""Polyphonic listening: the note model's per-frame probabilities turned into note events.

`PolyListener` has the listening core's shape (`feed(block)` -> events, `flush()`, and
`level_dbfs` / `floor_dbfs` for the daemon): audio at the microphone's rate is brought to
16 kHz, `LogSpectrogram` makes one frame per 16 ms hop, and the model (injected: anything that
maps a (1, CONTEXT, N_BINS, 2) window to (1, 1, 1, 176) probabilities, see
device/note_model.py) is run once per hop on the last CONTEXT frames. `PolyDecoder` turns its
onset and sounding probabilities into NoteOn / NoteOff; `ChordTracker` names what sounds.

No I/O here: the model is passed in, so tests and the bench can drive it with any callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

from .chords import ChordTracker
from .decimate import Decimator
from .events import Chord, NoteOff, NoteOn
from .level import NoiseFloor, rms_dbfs
from .logspec import (
    HOP,
    LONG_WINDOW,
    N_BINS,
    SAMPLE_RATE,
    WINDOWS,
    LogSpectrogram,
    log_spectrogram,
)
from .music import PIANO_LOWEST_MIDI, midi_to_freq, midi_to_name, nearest_midi_and_cents

N_KEYS = 88
HOP_S = HOP / SAMPLE_RATE

NoteModel = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PolyParams:
    """Decoding thresholds (the model card gives the values they were chosen with)."""

    context: int = 7  # input frames per decision (the model's receptive field)
    lookahead: int = 1  # frames after the decided one that the model sees
    onset_threshold: float = 0.7
    # A silent key whose sounding probability jumps this high starts a note too: the onset
    # output misses some keys of a chord that the sounding output is sure of (above 1: off).
    rising_threshold: float = 1.1
    sounding_threshold: float = 0.5  # a note keeps sounding while its probability stays above
    release_frames: int = 2  # frames below the threshold before a note-off
    a4_hz: float = 440.0
    lowest_midi: int = 21
    highest_midi: int = 108
    min_level_dbfs: float = -70.0  # no note starts in a frame quieter than this
    chord_debounce_s: float = 0.06
    velocity_floor_dbfs: float = -60.0
    velocity_range_db: float = 54.0


def allowed_keys(params: PolyParams) -> np.ndarray:
    """Which of the 88 keys lie within the configured range, as a mask."""
    keys = np.arange(N_KEYS) + PIANO_LOWEST_MIDI
    return (keys >= params.lowest_midi) & (keys <= params.highest_midi)


class PolyDecoder:
    """Per key: a note starts on the first frame whose onset probability reaches the threshold
    (and must fall below it before the same key can start again: one strike, one note), or when
    a key that is not sounding gets a sounding probability above `rising_threshold`; it ends
    after `release_frames` frames below the sounding threshold, or when the key is struck again.
    """

    def __init__(self, params: PolyParams) -> None:
        self.params = params
        self._armed = np.ones(N_KEYS, bool)  # the onset probability has been low since the last
        self._sounding = np.zeros(N_KEYS, bool)
        self._quiet_frames = np.zeros(N_KEYS, int)
        self._allowed = allowed_keys(params)

    def step(self, onset: np.ndarray, sounding: np.ndarray, loud_enough: bool):
        """One frame's probabilities -> (keys struck, keys released), key indices 0..87."""
        p = self.params
        above = onset >= p.onset_threshold
        rising = (sounding >= p.rising_threshold) & ~self._sounding
        struck = ((above & self._armed) | rising) & self._allowed & loud_enough
        self._armed = ~above
        still = sounding >= p.sounding_threshold
        self._quiet_frames = np.where(still, 0, self._quiet_frames + 1)
        released = self._sounding & ~struck & (self._quiet_frames >= p.release_frames)
        restruck = self._sounding & struck
        self._sounding = (self._sounding & ~released) | struck
        self._quiet_frames[struck] = 0
        return np.flatnonzero(struck), np.flatnonzero(released | restruck)

    def sounding(self) -> np.ndarray:
        return np.flatnonzero(self._sounding)

    def reset(self) -> None:
        self._sounding[:] = False


class _To16k:
    """Mono audio at the input rate -> 16 kHz with next to no delay: an integer decimator
    where the rates allow (48 kHz), else soxr's "quick" cubic resampler, the only soxr quality
    that does not hold back ~20 ms of audio in streaming."""

    def __init__(self, sample_rate: int) -> None:
        self._decimator = None
        self._soxr = None
        if sample_rate == SAMPLE_RATE:
            return
        if sample_rate % SAMPLE_RATE == 0:
            self._decimator = Decimator(sample_rate // SAMPLE_RATE, sample_rate)
        else:
            self._soxr = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, "float32", quality="QQ")

    def feed(self, block: np.ndarray) -> np.ndarray:
        if self._decimator is not None:
            return self._decimator.feed(block)
        if self._soxr is not None:
            return self._soxr.resample_chunk(block)
        return block


class PolyListener:
    """Feed mono float blocks at `sample_rate`; get NoteOn / NoteOff / Chord events.

    Times are seconds of the input stream. A note's `onset_s` is the middle of the hop in which
    the model places the strike; `emitted_s` is the input consumed when the event left.
    """

    def __init__(
        self, sample_rate: int, model: NoteModel, params: PolyParams | None = None
    ) -> None:
        self.params = params or PolyParams()
        self.input_rate = sample_rate
        self._model = model
        self._resampler = _To16k(sample_rate)
        self._spectrogram = LogSpectrogram()
        self._window = np.zeros((1, self.params.context, N_BINS, len(WINDOWS)), np.float32)
        self._decoder = PolyDecoder(self.params)
        self._chords = ChordTracker(self.params.chord_debounce_s)
        self._floor = NoiseFloor(HOP_S)
        # 16 kHz history: a frame's last 128 ms measure its level and a new note's tuning.
        self._audio = np.zeros(LONG_WINDOW + HOP, np.float32)
        self._frames = 0
        self._consumed_input = 0
        self._frame_levels: list[float] = []  # level of each recent frame, for velocity
        self.level_dbfs = -120.0

    @property
    def floor_dbfs(self) -> float:
        return self._floor.dbfs

    def feed(self, block: np.ndarray) -> list:
        block = np.asarray(block, np.float32)
        self._consumed_input += len(block)
        audio = self._resampler.feed(block)
        frames = self._spectrogram.feed(audio)
        joined = np.concatenate([self._audio, audio])
        # Where the first new frame ends in `joined` (the newest samples may not fill a frame).
        end = len(joined) - self._spectrogram.pending - (frames.shape[0] - 1) * HOP
        events: list = []
        for k in range(frames.shape[0]):
            self._frame(frames[k], joined[end + k * HOP - LONG_WINDOW : end + k * HOP], events)
        self._audio = joined[-(LONG_WINDOW + HOP) :]
        stream_s = self._consumed_input / self.input_rate
        events += self._chords.feed([e for e in events if isinstance(e, NoteOn | NoteOff)])
        events += self._chords.tick(stream_s)
        return events

    def flush(self) -> list:
        emitted = self._consumed_input / self.input_rate
        events: list = [self._note_off(int(k), emitted, emitted) for k in self._decoder.sounding()]
        self._decoder.reset()
        events += self._chords.feed(events)
        events += self._chords.flush()
        return events

    # -- per frame ------------------------------------------------------------------------------
    def _frame(self, frame: np.ndarray, recent: np.ndarray, events: list) -> None:
        """One 16 ms frame: `recent` is the 16 kHz audio of the last LONG_WINDOW samples up to
        the frame's end."""
        self._window[0, :-1] = self._window[0, 1:]
        self._window[0, -1] = frame
        self._frames += 1
        level = rms_dbfs(recent[-HOP:])
        self.level_dbfs = level
        self._floor.update(level)
        self._frame_levels = [*self._frame_levels, level][-4:]
        probabilities = np.asarray(self._model(self._window), np.float32).reshape(-1)
        onset, sounding = probabilities[:N_KEYS], probabilities[N_KEYS:]
        loud = max(self._frame_levels) >= self.params.min_level_dbfs
        struck, released = self._decoder.step(onset, sounding, loud)
        # The decided frame is `lookahead` frames before the newest one.
        decided = self._frames - 1 - self.params.lookahead
        emitted = self._consumed_input / self.input_rate
        for key in released:
            events.append(self._note_off(int(key), (decided + 1) * HOP_S, emitted))
        for key in struck:
            events.append(self._note_on(int(key) + PIANO_LOWEST_MIDI, decided, emitted, recent))

    @staticmethod
    def _note_off(key: int, offset_s: float, emitted_s: float) -> NoteOff:
        midi = key + PIANO_LOWEST_MIDI
        return NoteOff(midi, midi_to_name(midi), offset_s, emitted_s)

    def _note_on(self, midi: int, frame: int, emitted: float, recent: np.ndarray) -> NoteOn:
        p = self.params
        freq, cents = key_tuning(midi, recent, p.a4_hz)
        velocity = 1 + 126 * (max(self._frame_levels) - p.velocity_floor_dbfs) / p.velocity_range_db
        return NoteOn(
            midi=midi,
            name=midi_to_name(midi),
            freq_hz=freq,
            cents=cents,
            velocity=int(min(127, max(1, round(velocity)))),
            onset_s=(frame + 0.5) * HOP_S,
            emitted_s=emitted,
        )


def key_tuning(midi: int, recent: np.ndarray, a4_hz: float) -> tuple[float, float]:
    """(Hz, cents) a key sounds at, from `recent`, the last LONG_WINDOW samples at 16 kHz: the
    peak of a zero-padded FFT (parabolic interpolation) within a semitone of where the key
    should be. Bass fundamentals are weak and the 128 ms window blurs them, so below 200 Hz the
    partial nearest 200 Hz is measured and divided by its number (piano strings'
    inharmonicity makes that read a few cents sharp). No reading: the key's own frequency and
    0 cents."""
    expected = midi_to_freq(midi, a4_hz)
    harmonic = max(1, math.ceil(200.0 / expected))
    target = expected * harmonic
    size = 4 * LONG_WINDOW
    spectrum = np.abs(np.fft.rfft(recent[-LONG_WINDOW:] * np.hanning(LONG_WINDOW), size))
    bin_hz = SAMPLE_RATE / size
    low = max(int(target * 2 ** (-1 / 12) / bin_hz), 1)
    high = min(int(target * 2 ** (1 / 12) / bin_hz) + 1, len(spectrum) - 2)
    if high <= low:
        return expected, 0.0
    peak = low + int(np.argmax(spectrum[low:high]))
    a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    curvature = a - 2 * b + c
    # Only a real peak (curved down, the vertex between its neighbours) is read; silence
    # or a flat stretch of spectrum gives no reading.
    shift = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
    measured = (peak + shift) * bin_hz / harmonic
    if curvature >= 0 or abs(shift) > 1 or measured <= 0:
        return expected, 0.0
    nearest, cents = nearest_midi_and_cents(measured, a4_hz)
    if nearest != midi:  # the peak belongs to a neighbour: no reading
        return expected, 0.0
    return measured, round(cents, 1)


class StrikeReading:
    """The note model asked once about one strike: which key it places there. The monophonic
    core (`NoteListener`) asks when none of its own rules has named a key by its longest
    window; the note model then gives a second, independent reading. It was trained on whole
    keyboards of rendered pianos, so it hears a bass key in a room whose fundamental YIN and
    the partial rules lose under the room's modes (FluidR3_GM's soft C2 and loud D2 in the
    benchmark's room gave no note at all; the model names both).

    Called with mono audio ending now at any rate and the strike's index in it: the audio is
    brought to 16 kHz and turned into `LogSpectrogram` frames (zeros before it count as
    silence), the model is run over all of them at once, and the key whose onset probability
    is highest in the frames around the strike is the reading, if that probability reaches
    the decoder's own `onset_threshold` and the key's sounding probability in the newest
    frame its `sounding_threshold` (a knock or a thump is struck but does not ring on; a
    reading that fails either is no reading). Thresholds are `PolyParams`'s, chosen for the
    note model on its validation clips, not here.
    """

    # Audio the reading needs before the strike: the frames the model decides the frame before
    # the strike's from reach back 5 frames (80 ms), each over a 128 ms window: 208 ms, and a
    # margin.
    history_s = 0.3

    def __init__(self, model: NoteModel, params: PolyParams | None = None) -> None:
        self.params = params or PolyParams()
        self._model = model

    def __call__(
        self, audio: np.ndarray, sample_rate: float, strike: int
    ) -> tuple[int, float, float] | None:
        """(midi, Hz, onset probability) of the key struck at `audio[strike]`, or None."""
        p = self.params
        audio16 = np.asarray(
            soxr.resample(np.asarray(audio, np.float32), sample_rate, SAMPLE_RATE, quality="QQ"),
            np.float32,
        )
        frames = log_spectrogram(audio16)
        if len(frames) < p.context:
            return None
        out = np.asarray(self._model(frames[None]), np.float32).reshape(-1, 2 * N_KEYS)
        # Output i decides input frame i + first; the strike lands in one frame, and the model
        # may place it a frame early or up to two late.
        first = p.context - 1 - p.lookahead
        strike_frame = int(strike * SAMPLE_RATE / sample_rate) // HOP
        low, high = max(0, strike_frame - 1 - first), min(len(out), strike_frame + 3 - first)
        if high <= low:
            return None
        onset = out[low:high, :N_KEYS].max(axis=0)
        onset[~allowed_keys(p)] = 0.0
        key = int(np.argmax(onset))
        if onset[key] < p.onset_threshold or out[-1, N_KEYS + key] < p.sounding_threshold:
            return None
        midi = key + PIANO_LOWEST_MIDI
        freq, _ = key_tuning(midi, audio16, p.a4_hz)
        return midi, freq, float(onset[key])


__all__ = ["Chord", "PolyDecoder", "PolyListener", "PolyParams", "StrikeReading", "key_tuning"]
