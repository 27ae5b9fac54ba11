"""A room around dry audio: reverb from a synthetic impulse response plus pink noise.

Why hand-written: the benchmark and tests need a reproducible "piano in a living room"
version of rendered audio; a full acoustic simulator (pyroomacoustics) is a heavy dependency
for an exponential decay and a 1/f noise.
"""

from __future__ import annotations

import numpy as np


def room_impulse_response(sample_rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Direct path at index 0, a few early reflections, then exponentially decaying noise."""
    length = int(rt60_s * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / rt60_s)  # -60 dB at rt60
    tail[: int(0.005 * sample_rate)] = 0.0  # the first reflection arrives after ~5 ms
    response = 0.15 * tail / np.sqrt(np.sum(tail**2))
    for delay_s, gain in ((0.007, 0.5), (0.011, 0.35), (0.017, 0.25)):
        response[int(delay_s * sample_rate)] += gain
    response[0] = 1.0
    return response.astype(np.float32)


def convolve(audio: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Same-length FFT convolution (the direct path keeps every onset where it was)."""
    n = len(audio) + len(response) - 1
    size = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size), size)
    return wet[: len(audio)].astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(len(spectrum), dtype=float)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def add_noise_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Noise scaled so that signal RMS / noise RMS is `snr_db`; the signal RMS is taken over
    the samples within 40 dB of the peak (the part where something is playing)."""
    active = np.abs(audio) > np.abs(audio).max() * 0.01
    signal_rms = float(np.sqrt(np.mean(audio[active] ** 2))) if active.any() else 0.0
    noise_rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    scale = signal_rms / noise_rms / 10.0 ** (snr_db / 20.0)
    return (audio + scale * noise).astype(np.float32)


def room_version(
    audio: np.ndarray, sample_rate: int, seed: int = 0, rt60_s: float = 0.5, snr_db: float = 30.0
) -> np.ndarray:
    """Dry audio as a microphone in a living room would hear it."""
    rng = np.random.default_rng(seed)
    wet = convolve(audio, room_impulse_response(sample_rate, rt60_s, rng))
    return add_noise_at_snr(wet, pink_noise(len(wet), rng), snr_db)
