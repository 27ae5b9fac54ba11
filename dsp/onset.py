"""Onset detection for struck strings: log-magnitude spectral flux with an adaptive threshold.

Why not aubio.onset: its peak picker confirms a peak one hop after it (plus a median window),
costing 12-25 ms that the "key lights within a blink" goal cannot spare. A piano hammer makes
a steep, broadband rise, so a rising-edge threshold on the flux fires on the hop that contains
the strike. Decaying notes give negative flux, so a held note never re-triggers. The STFT is
aubio's phase vocoder (C, one call per hop).
"""

from __future__ import annotations

from collections import deque

import aubio
import numpy as np


class OnsetDetector:
    """Call `process(hop, level_dbfs, floor_dbfs)` once per hop; returns the onset strength
    (flux over threshold, >= 1.0) on the hop that holds a strike, else None."""

    def __init__(
        self,
        sample_rate: int,
        hop: int,
        frame_size: int,
        sensitivity: float = 0.5,
        min_level_dbfs: float = -70.0,
        min_interval_s: float = 0.045,
        min_rise_above_floor_db: float = 12.0,
        history_s: float = 0.1,
        level_rise_db: float = 8.0,
        level_rise_s: float = 0.04,
        max_fall_db: float = 1.0,
    ) -> None:
        self.hop = hop
        self.frame_size = frame_size
        self._stft = aubio.pvoc(frame_size, hop)
        freqs = np.fft.rfftfreq(frame_size, 1.0 / sample_rate)
        self._band = slice(int(np.searchsorted(freqs, 25.0)), int(np.searchsorted(freqs, 8000.0)))
        self._band_bins = self._band.stop - self._band.start
        self._previous = np.zeros(self._band_bins, np.float32)
        self._spare = np.zeros(self._band_bins, np.float32)
        # float32 constants: a Python float operand costs numpy a conversion on every call.
        self._scale = np.array(100.0, np.float32)
        self._zero = np.array(0.0, np.float32)
        # sensitivity 0..1 -> absolute flux threshold (per bin, in log1p(100|X|) units)
        self._delta = 0.12 * (1.0 - sensitivity) + 0.02
        self._history: deque[float] = deque(maxlen=max(3, round(history_s * sample_rate / hop)))
        self._history_sum = 0.0
        self._min_level = min_level_dbfs
        self._min_rise = min_rise_above_floor_db
        self._min_interval_hops = max(1, round(min_interval_s * sample_rate / hop))
        self._hops_since_onset = 10**9
        self._last_flux = 0.0
        # A soft bass note builds up over several hops and its flux is spread over few bins,
        # so a level above everything of the last 40 ms also counts as a strike. (Above the
        # loudest, not the quietest: the hop level of a bass note swings with its long period.)
        self._levels: deque[float] = deque(maxlen=max(2, round(level_rise_s * sample_rate / hop)))
        self._level_rise = level_rise_db
        # A strike adds energy: the hop that holds it is never quieter than the one before.
        self._max_fall_db = max_fall_db

    def flux(self, hop: np.ndarray) -> float:
        # In-place arithmetic on two preallocated arrays: this runs every hop.
        spectrum, previous = self._spare, self._previous
        np.multiply(self._stft(hop).norm[self._band], self._scale, out=spectrum)
        np.log1p(spectrum, out=spectrum)
        rise = np.subtract(spectrum, previous, out=previous)  # the old spectrum is done with
        np.maximum(rise, self._zero, out=rise)
        # np.add.reduce is what ndarray.sum() calls, without its Python-level wrapper.
        flux = float(np.add.reduce(rise)) / self._band_bins
        self._previous, self._spare = spectrum, rise
        return flux

    def process(self, hop: np.ndarray, level_dbfs: float, floor_dbfs: float) -> float | None:
        flux = self.flux(hop)
        history = self._history
        recent = self._history_sum / len(history) if history else 0.0
        if len(history) == history.maxlen:
            self._history_sum -= history[0]
        history.append(flux)
        self._history_sum += flux
        threshold = self._delta + 1.5 * recent
        rising = flux > self._last_flux
        self._last_flux = flux
        self._hops_since_onset += 1
        levels = self._levels
        loudest_recent = max(levels) if levels else level_dbfs
        falling = bool(levels) and level_dbfs < levels[-1] - self._max_fall_db
        levels.append(level_dbfs)
        if falling:
            return None  # a strike never makes the sound quieter; a damper or a fade does
        level_jump = rising and level_dbfs - loudest_recent >= self._level_rise
        if not ((rising and flux > threshold) or level_jump):
            return None
        if self._hops_since_onset < self._min_interval_hops:
            return None
        if level_dbfs <= self._min_level or level_dbfs <= floor_dbfs + self._min_rise:
            return None
        self._hops_since_onset = 0
        return max(flux / threshold, 1.0)


def locate_strike(recent: np.ndarray, search: int, chunk: int) -> int:
    """How many samples before the end of `recent` the envelope rises most steeply, looking
    only at the newest `search` samples: that is where the hammer hit."""
    usable = (len(recent) // chunk) * chunk
    tail = recent[len(recent) - usable :].reshape(-1, chunk)
    log_energy = np.log(np.einsum("ij,ij->i", tail, tail) + 1e-10)
    first = max(1, len(log_energy) - search // chunk)
    rises = log_energy[first:] - log_energy[first - 1 : -1]
    strike_chunk = first + int(np.argmax(rises))
    return (len(log_energy) - strike_chunk) * chunk
