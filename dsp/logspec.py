"""Log-frequency spectrogram for the polyphonic note model, streaming and batch.

16 kHz mono in; one frame every HOP = 256 samples (16 ms). A frame holds two spectra that both
end at the frame's last sample: a long window (2048 samples, 128 ms) for the frequency detail
bass keys need, and a short one (512 samples, 32 ms) that reacts to a strike within a hop.
Each is pooled onto the same axis of N_BINS bands, two per semitone from MIDI 20 (G#0) up,
and compressed with log1p. The streaming `LogSpectrogram` and the batch `log_spectrogram`
give the same frames (tests check it), so training and the daemon see identical features.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
HOP = 256
LONG_WINDOW = 2048
SHORT_WINDOW = 512
WINDOWS = (LONG_WINDOW, SHORT_WINDOW)
BINS_PER_SEMITONE = 2
LOWEST_BIN_MIDI = 20.0
N_BINS = 192  # up to MIDI 115.5 (about 6.6 kHz): C8's fundamental plus a margin
# Magnitudes are sinusoid amplitudes (a full-scale sine is 1.0); x1000 puts -60 dBFS at log1p(1).
COMPRESSION = 1000.0


def band_centres_hz() -> np.ndarray:
    midi = LOWEST_BIN_MIDI + np.arange(N_BINS) / BINS_PER_SEMITONE
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def band_matrix(window: int) -> np.ndarray:
    """(window // 2 + 1, N_BINS) weights pooling an rfft magnitude into the log bands.

    Each band is a triangle in Hz reaching the neighbouring band centres, but never narrower
    than one FFT bin, so low bands of a short window interpolate between bins instead of
    being empty. Columns sum to 1, so bands are averages and a band's level does not depend on
    how many FFT bins it spans."""
    centres = band_centres_hz()
    ratio = 2.0 ** (1.0 / (12 * BINS_PER_SEMITONE))
    bin_hz = SAMPLE_RATE / window
    freqs = np.arange(window // 2 + 1) * bin_hz
    lower = centres - centres / ratio
    upper = centres * ratio - centres
    weights = np.zeros((freqs.size, N_BINS))
    for band, centre in enumerate(centres):
        below = max(lower[band], bin_hz)
        above = max(upper[band], bin_hz)
        rising = 1.0 - (centre - freqs) / below
        falling = 1.0 - (freqs - centre) / above
        weights[:, band] = np.clip(np.where(freqs <= centre, rising, falling), 0.0, None)
    weights /= weights.sum(axis=0, keepdims=True)
    return weights.astype(np.float32)


def _window_scale(window: np.ndarray) -> float:
    # |rfft| of a sine of amplitude a under this window peaks at a * sum(window) / 2.
    return 2.0 / float(window.sum())


class _Bank:
    """Window, FFT and band pooling for one window length."""

    def __init__(self, length: int) -> None:
        self.length = length
        hann = np.hanning(length + 2)[1:-1]  # no zero end points: every sample counts
        self.window = (hann * _window_scale(hann)).astype(np.float32)
        # The band matrix is 99 % zeros: each band's nonzero weights, band after band, and where
        # each band starts in that list, pool a spectrum in a tenth of a dense product's time.
        bands = band_matrix(length)
        self.bins, self.bands_of = np.nonzero(bands.T)[1], np.nonzero(bands.T)[0]
        self.weights = bands[self.bins, self.bands_of]
        self.starts = np.searchsorted(self.bands_of, np.arange(N_BINS))

    def frames(self, segments: np.ndarray) -> np.ndarray:
        """(n, length) audio segments -> (n, N_BINS) compressed band magnitudes."""
        magnitude = np.abs(np.fft.rfft(segments * self.window, axis=-1)).astype(np.float32)
        pooled = np.add.reduceat(magnitude[:, self.bins] * self.weights, self.starts, axis=1)
        return np.log1p(COMPRESSION * pooled)


class LogSpectrogram:
    """Streaming: `feed(block)` of 16 kHz samples -> (n_new_frames, N_BINS, 2) float32.

    Frame k ends at sample (k + 1) * HOP; audio before the stream began counts as silence.
    """

    def __init__(self) -> None:
        self._banks = [_Bank(length) for length in WINDOWS]
        self._history = np.zeros(LONG_WINDOW, np.float32)
        self._pending = np.zeros(0, np.float32)
        self.frames_out = 0

    @property
    def pending(self) -> int:
        """Samples fed that do not yet complete a frame."""
        return len(self._pending)

    def feed(self, block: np.ndarray) -> np.ndarray:
        audio = np.concatenate([self._pending, np.asarray(block, np.float32)])
        n_frames = audio.size // HOP
        self._pending = audio[n_frames * HOP :]
        if n_frames == 0:
            return np.zeros((0, N_BINS, len(WINDOWS)), np.float32)
        joined = np.concatenate([self._history, audio[: n_frames * HOP]])
        frames = _frames(joined, n_frames, self._banks)
        self._history = joined[-LONG_WINDOW:]
        self.frames_out += n_frames
        return frames


def _frames(joined: np.ndarray, n_frames: int, banks: list[_Bank]) -> np.ndarray:
    """Frames ending at LONG_WINDOW + k * HOP of `joined` for k = 1..n_frames."""
    ends = LONG_WINDOW + HOP * np.arange(1, n_frames + 1)
    out = np.empty((n_frames, N_BINS, len(banks)), np.float32)
    for channel, bank in enumerate(banks):
        segments = np.stack([joined[end - bank.length : end] for end in ends])
        out[:, :, channel] = bank.frames(segments)
    return out


def log_spectrogram(audio: np.ndarray, chunk_frames: int = 512) -> np.ndarray:
    """Batch version for training: all frames of a 16 kHz signal, (len // HOP, N_BINS, 2)."""
    banks = [_Bank(length) for length in WINDOWS]
    audio = np.concatenate([np.zeros(LONG_WINDOW, np.float32), np.asarray(audio, np.float32)])
    total = (audio.size - LONG_WINDOW) // HOP
    parts = []
    for start in range(0, total, chunk_frames):
        n = min(chunk_frames, total - start)
        parts.append(_frames(audio[start * HOP :], n, banks))
    if not parts:
        return np.zeros((0, N_BINS, len(WINDOWS)), np.float32)
    return np.concatenate(parts)
