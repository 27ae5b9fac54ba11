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

# Hops of log spectra the onset detector keeps before moving the two newest back.
_RING = 64


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
        # The log spectra of past hops, newest first: row `_row` holds this hop's and the two
        # rows after it the two hops before, so that one broadcast subtraction gives both
        # rises. Rows fill from the end towards 0; at 0 the two newest move back to the end
        # (once every _RING hops), so nothing is allocated or copied on most hops.
        self._spectra = np.zeros((_RING + 2, self._band_bins), np.float32)
        self._row = _RING
        self._rises = np.zeros((2, self._band_bins), np.float32)
        self.flux2 = 0.0  # the rise over two hops, set by flux()
        # float32 constants: a Python float operand costs numpy a conversion on every call.
        self._scale = np.array(100.0, np.float32)
        self._zero = np.array(0.0, np.float32)
        # sensitivity 0..1 -> absolute flux threshold (per bin, in log1p(100|X|) units)
        self._delta = 0.12 * (1.0 - sensitivity) + 0.02
        self._history: deque[float] = deque(maxlen=max(3, round(history_s * sample_rate / hop)))
        self._history_sum = 0.0
        self._history2: deque[float] = deque(maxlen=self._history.maxlen)
        self._history2_sum = 0.0
        self._last_flux2 = 0.0
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
        """The rise of the log spectrum since the last hop; the rise since the hop before
        that goes to `flux2`."""
        # In-place arithmetic on preallocated arrays, both rises at once: this runs every hop
        # on small arrays, where numpy's per-call overhead is most of the cost.
        row = self._row - 1
        if row < 0:
            self._spectra[_RING:] = self._spectra[:2]
            row = _RING - 1
        self._row = row
        spectra, rises = self._spectra, self._rises
        spectrum = spectra[row]
        np.multiply(self._stft(hop).norm[self._band], self._scale, out=spectrum)
        np.log1p(spectrum, out=spectrum)
        np.subtract(spectrum, spectra[row + 1 : row + 3], out=rises)
        np.maximum(rises, self._zero, out=rises)
        # np.add.reduce is what ndarray.sum() calls, without its Python-level wrapper.
        flux, flux2 = np.add.reduce(rises, axis=1).tolist()
        self.flux2 = flux2 / self._band_bins
        return flux / self._band_bins

    def process(self, hop: np.ndarray, level_dbfs: float, floor_dbfs: float) -> float | None:
        flux = self.flux(hop)
        flux2 = self.flux2
        history, history2 = self._history, self._history2
        recent = self._history_sum / len(history) if history else 0.0
        recent2 = self._history2_sum / len(history2) if history2 else 0.0
        if len(history) == history.maxlen:
            self._history_sum -= history[0]
            self._history2_sum -= history2[0]
        history.append(flux)
        history2.append(flux2)
        self._history_sum += flux
        self._history2_sum += flux2
        threshold = self._delta + 1.5 * recent
        rising = flux > self._last_flux
        rising2 = flux2 > self._last_flux2
        self._last_flux, self._last_flux2 = flux, flux2
        self._hops_since_onset += 1
        levels = self._levels
        loudest_recent = max(levels) if levels else level_dbfs
        # Against the quieter of the last two hops: the hop level of a steady note swings by
        # a few dB (its period beats against the hop), and a soft new key under a loud old
        # one often lands on a hop just after a crest.
        falling = False
        if levels:
            quieter = min(levels[-1], levels[-2]) if len(levels) > 1 else levels[-1]
            falling = level_dbfs < quieter - self._max_fall_db
        levels.append(level_dbfs)
        if falling:
            return None  # a strike never makes the sound quieter; a damper or a fade does
        level_jump = rising and level_dbfs - loudest_recent >= self._level_rise
        # A strike that straddles two hops splits its rise between them; over two hops it is
        # whole. It matters most in a noisy room, where the noise's own flux raises the
        # threshold and a soft legato key's half-rises stay under it.
        whole_rise = rising2 and flux2 > self._delta + 1.5 * recent2
        if not ((rising and flux > threshold) or level_jump or whole_rise):
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
