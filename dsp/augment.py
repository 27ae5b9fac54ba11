"""A room around dry audio: reverb from a synthetic impulse response, plus pink noise.

Tests and benchmarks need a reproducible "piano in a living room, USB mic nearby" version of
rendered audio. Hand-written on purpose: the well-kept acoustic simulators (pyroomacoustics and
the like) are heavy dependencies with compiled parts, and what we need is an exponential decay,
a few early reflections and 1/f noise - a few lines of numpy.

Every function keeps the input's length, and the impulse response's direct path sits at index 0,
so onsets stay exactly where they were in the dry audio.
"""

from __future__ import annotations

import numpy as np

EARLY_REFLECTIONS = 4  # walls, floor, lid: the first distinct echoes of a living room
EARLY_SHARE = 0.5  # share of the reverberant energy in those echoes; the rest is the diffuse tail
FRAME_S = 0.010  # frame for the active-signal level in add_noise_at_snr
ACTIVE_RANGE_DB = 40.0  # frames within this of the loudest frame count as "playing"
LIVING_ROOM_RT60_S = 0.5
LIVING_ROOM_WET = 0.7  # reverberant/direct amplitude: direct-to-reverberant ratio of +3 dB,
# a mic about half a critical distance (~0.3 m) from the piano in a 50 m3 room


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a Generator (used as is), a seed, or None (seed 0: reproducible by default)."""
    return np.random.default_rng(0 if rng is None else rng)


def room_impulse_response(
    sample_rate: int, rt60_s: float = 0.5, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Direct path 1.0 at index 0, then a few early reflections (3-20 ms) and exponentially
    decaying noise reaching -60 dB at `rt60_s`. The reverberant part (everything after index 0)
    is normalised to unit energy, so scaling it by `wet` sets the direct-to-reverberant ratio
    to -20*log10(wet) dB."""
    if rt60_s <= 0:
        raise ValueError(f"rt60_s must be positive, got {rt60_s}")
    rng = _generator(rng)
    length = max(int(rt60_s * sample_rate), 2)
    t = np.arange(length) / sample_rate
    first = max(int(0.003 * sample_rate), 1)  # nothing reaches the mic before the direct sound
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / rt60_s)  # amplitude -60 dB at rt60
    tail[:first] = 0.0
    early = np.zeros(length)
    latest = max(int(0.020 * sample_rate), first + 1)
    delays = np.minimum(rng.integers(first, latest, EARLY_REFLECTIONS), length - 1)
    signs = rng.choice((-1.0, 1.0), EARLY_REFLECTIONS)
    np.add.at(early, delays, signs * 10.0 ** (-3.0 * t[delays] / rt60_s))
    response = np.sqrt(EARLY_SHARE) * _unit_energy(early)
    response += np.sqrt(1.0 - EARLY_SHARE) * _unit_energy(tail)
    response = _unit_energy(response)
    response[0] = 1.0
    return response.astype(np.float32)


def _unit_energy(x: np.ndarray) -> np.ndarray:
    energy = float(np.sum(x**2))
    return x / np.sqrt(energy) if energy > 0 else x


def fft_convolve(audio: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Linear convolution by FFT, cut to the input's length (the tail past the end is dropped)."""
    n = len(audio) + len(response) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size), size)
    return out[: len(audio)].astype(np.float32)


def add_reverb(
    audio: np.ndarray,
    sample_rate: int,
    rt60_s: float = LIVING_ROOM_RT60_S,
    wet: float = LIVING_ROOM_WET,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """`audio` in a room: the dry signal (direct path, unmoved) plus `wet` times its
    reverberation. Same length as `audio`."""
    response = room_impulse_response(sample_rate, rt60_s, rng)
    response[1:] *= wet
    return fft_convolve(np.asarray(audio, np.float32), response)


def pink_noise(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """`n` samples of unit-RMS noise with a 1/f power spectrum (white noise shaped by FFT)."""
    spectrum = np.fft.rfft(_generator(rng).standard_normal(n))
    bins = np.arange(len(spectrum), dtype=float)
    bins[0] = np.inf  # no DC: a microphone chain blocks it
    noise = np.fft.irfft(spectrum / np.sqrt(bins), n)
    return _unit_rms(noise).astype(np.float32)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    return x / rms if rms > 0 else x


def active_rms(audio: np.ndarray, sample_rate: int | None = None) -> float:
    """RMS of the part of `audio` where something is playing: the 10 ms frames whose RMS is
    within 40 dB of the loudest frame. Silence before and after notes doesn't dilute it, and
    it doesn't depend on the recording's gain. Without a sample rate, frames are 441 samples."""
    frame = max(int(FRAME_S * (sample_rate or 44100)), 1)
    usable = len(audio) // frame * frame
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    power = np.mean(np.square(audio[:usable], dtype=np.float64).reshape(-1, frame), axis=1)
    if power.max() <= 0:
        return 0.0
    active = power >= power.max() * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    return float(np.sqrt(np.mean(power[active])))


def add_noise_at_snr(
    audio: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate: int | None = None
) -> np.ndarray:
    """`audio` plus `noise` (cut to its length) scaled so that active_rms(audio) over the
    noise's RMS is `snr_db`. Silent audio has no level to measure against and is returned
    unchanged."""
    if len(noise) < len(audio):
        raise ValueError(f"noise ({len(noise)} samples) is shorter than audio ({len(audio)})")
    noise = np.asarray(noise[: len(audio)], np.float64)
    signal_rms = active_rms(audio, sample_rate)
    noise_rms = float(np.sqrt(np.mean(noise**2))) if len(noise) else 0.0
    if signal_rms == 0 or noise_rms == 0:
        return np.asarray(audio, np.float32).copy()
    scale = signal_rms / noise_rms * 10.0 ** (-snr_db / 20.0)
    return (audio + scale * noise).astype(np.float32)


def room_version(
    audio: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator | int | None = None,
    snr_db: float = 30.0,
    *,
    seed: int | None = None,
) -> np.ndarray:
    """Dry audio as a USB mic in a living room hears it: reverb (RT60 0.5 s, direct-to-
    reverberant +3 dB), then pink noise 30 dB below the reverberant signal's active RMS.
    `seed` is the same as passing an int as `rng` (kept for callers that name it)."""
    rng = _generator(seed if seed is not None else rng)
    wet = add_reverb(audio, sample_rate, LIVING_ROOM_RT60_S, LIVING_ROOM_WET, rng)
    return add_noise_at_snr(wet, pink_noise(len(wet), rng), snr_db, sample_rate)
