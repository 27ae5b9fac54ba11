"""Log-mel features for the household-sound classifier, shared by training and the runtime.

One function turns a window of 16 kHz mono audio into the model's input, so the features the
model was trained on and the ones it sees on the Pi are computed by the same lines.

Hand-written on purpose: librosa (the usual source of mel filterbanks) pulls in numba and
scipy, far too heavy for a Pi daemon that needs one 64-band filterbank; the textbook HTK mel
formula and a triangular filterbank are a few lines of numpy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000  # the classifier's rate: everything above 8 kHz is dropped
WINDOW_S = 1.0  # one classification looks at this much audio
# and one is made this often by default ([alerts].hop_s): more often only costs CPU, and lets
# the n-of-m confirmation decide on finer steps (models/alerts.md has the measurements)
HOP_S = 0.25
WINDOW = int(SAMPLE_RATE * WINDOW_S)
HOP = int(SAMPLE_RATE * HOP_S)
N_FFT = 512  # 32 ms frames: resolves a 3 kHz beep and a knock's transient alike
FRAME_HOP = 320  # 20 ms between frames
N_MELS = 64
F_MIN_HZ = 50.0
F_MAX_HZ = 8000.0
N_FRAMES = 1 + (WINDOW - N_FFT) // FRAME_HOP  # 49 frames per window
FLOOR_DB = -100.0  # power floor: digital silence reads as this, not as -inf
# The model sees (dB - OFFSET) / SCALE: roughly zero-mean, unit-range for room-level sound.
DB_OFFSET = -60.0
DB_SCALE = 20.0


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters with peak 1, equally spaced on the HTK mel
    scale. Read-only (cached)."""
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN_HZ), _hz_to_mel(F_MAX_HZ), n_mels + 2))
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz - lower) / (centre - lower)
    falling = (upper - bins_hz) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank = bank.astype(np.float32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    window = np.hanning(n + 1)[:-1].astype(np.float32)  # periodic Hann: frames overlap-add flat
    window.setflags(write=False)
    return window


def log_mel(window: np.ndarray) -> np.ndarray:
    """Features of one 1 s window at 16 kHz: (N_FRAMES, N_MELS) float32, scaled log-mel power.

    A full-scale sine reads about 0 dB in its band before scaling; silence reads FLOOR_DB.
    Windows shorter than WINDOW are zero-padded at the front (as a stream that just started),
    longer ones use their last WINDOW samples.
    """
    audio = np.asarray(window, dtype=np.float32).reshape(-1)
    if len(audio) < WINDOW:
        audio = np.concatenate([np.zeros(WINDOW - len(audio), np.float32), audio])
    audio = audio[-WINDOW:]
    starts = np.arange(N_FRAMES) * FRAME_HOP
    frames = audio[starts[:, None] + np.arange(N_FFT)[None, :]] * _hann(N_FFT)
    # Scaled so a full-scale sine's peak bin is 1.0 (0 dB), whatever the frame length.
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 * (2.0 / float(np.sum(_hann(N_FFT)))) ** 2
    mel = power.astype(np.float32) @ mel_filterbank().T
    db = 10.0 * np.log10(np.maximum(mel, 10.0 ** (FLOOR_DB / 10.0)))
    return ((db - DB_OFFSET) / DB_SCALE).astype(np.float32)


def log_mel_batch(windows: np.ndarray) -> np.ndarray:
    """`log_mel` of each row of a (n, WINDOW) array: (n, N_FRAMES, N_MELS)."""
    return (
        np.stack([log_mel(w) for w in windows])
        if len(windows)
        else np.zeros((0, N_FRAMES, N_MELS), np.float32)
    )


def window_starts(n_samples: int, hop: int = HOP) -> np.ndarray:
    """Start sample of every full window a stream of `n_samples` yields, one per `hop`
    samples; the first window ends at `hop` (the rest of it is leading silence), as the
    runtime does."""
    ends = np.arange(hop, n_samples + 1, hop)
    return ends - WINDOW
