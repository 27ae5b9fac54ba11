"""Onset detection for struck strings: log-magnitude spectral flux with an adaptive threshold.

Why not aubio.onset: its peak picker confirms a peak one hop after it (plus a median window),
costing 12-25 ms that the "key lights within a blink" goal cannot spare. A piano hammer makes
a steep, broadband rise, so a rising-edge threshold on the flux fires on the hop that contains
the strike. Decaying notes give negative flux, so a held note never re-triggers.

The spectra are what aubio's phase vocoder gives (a Hann window, float32; the two agree to
2e-7), computed with numpy's FFT, because numpy takes a whole block of hops in one call:
`transcribe` feeds 64 hops at a time and spends a quarter less time here than with one
phase-vocoder call per hop. A hop's row comes out the same bit for bit whether it is alone
(the daemon's block) or in a block (tests/test_blocks.py checks), so the daemon and
`transcribe` decide alike. The daemon pays a little for this: its one-hop `flux` costs about
10 us more than one phase-vocoder call did (28-30 us against 17-21 us here, ~0.2 % of a core).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np


class Strike(NamedTuple):
    """An onset: its strength (rise over threshold, >= 1.0) and how many hops before the one
    that reported it the strike's rise was (0 for all but a soft strike, see `OnsetDetector`)."""

    strength: float
    hops_ago: int


def flux_floor(sensitivity: float) -> float:
    """A sensitivity 0..1 as the flux threshold's absolute floor (per bin, in log1p(100|X|)
    units)."""
    return 0.12 * (1.0 - sensitivity) + 0.02


class OnsetDetector:
    """Per hop, in order: its two rises from `flux(hop)` (or `fluxes(hops)` for many hops at
    once), then `decide(flux, flux2, level_dbfs, floor_dbfs)`, which returns a `Strike` on the
    hop that holds a strike (or, for a soft one, `soft_wait_hops` later), else None."""

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
        fall_overruled: float = 1.5,
        soft_sensitivity: float | None = None,
        soft_wait_hops: int = 2,
        soft_after_s: float = 0.0,
    ) -> None:
        self.hop = hop
        self.frame_size = frame_size
        # The samples before the newest hop that its frame reaches back to.
        self._tail = np.zeros(frame_size - hop, np.float32)
        # Periodic Hann, aubio's "hanningz": the phase vocoder's window.
        n = np.arange(frame_size)
        self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / frame_size)).astype(np.float32)
        freqs = np.fft.rfftfreq(frame_size, 1.0 / sample_rate)
        self._band = slice(int(np.searchsorted(freqs, 25.0)), int(np.searchsorted(freqs, 8000.0)))
        self._band_bins = self._band.stop - self._band.start
        # The log spectra of the two hops before the next, oldest first.
        self._previous = np.zeros((2, self._band_bins), np.float32)
        # `flux`'s working arrays, allocated once.
        self._windowed = np.zeros(frame_size, np.float32)
        self._current = np.zeros(self._band_bins, np.float32)
        self._rises = np.zeros((2, self._band_bins), np.float32)
        # float32 constants: a Python float operand costs numpy a conversion on every call.
        self._scale = np.array(100.0, np.float32)
        self._zero = np.array(0.0, np.float32)
        self._delta = flux_floor(sensitivity)
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
        # A strike adds energy: the hop that holds it is never quieter than the one before...
        self._max_fall_db = max_fall_db
        # ...unless the key before is let go as it lands (legato without overlap): its damper
        # takes more than the new string adds. A rise this many times the threshold, over
        # one hop or over two (a strike that straddles two hops splits its rise), is a strike
        # all the same: a damper or a fade takes energy away and raises few bins.
        self._fall_overruled = fall_overruled
        # A soft key, most of all one struck as a loud one is let go, rises less than the
        # threshold. A rise over two hops past a lower threshold (`soft_sensitivity`, and
        # `decide`'s `soft_factor` times the recent mean) starts a candidate that becomes a
        # strike when no ordinary strike follows within `soft_wait_hops`. Waiting keeps every
        # ordinary onset where it was: the first hop of a strike often passes only the lower
        # threshold, and the listener's decisions were tuned on the hop the ordinary threshold
        # finds. Over two hops only: the one-hop rises that passed the lower threshold alone
        # were mostly a ringing bass note's beating (development melodies). No damper test
        # (`max_fall_db`): the old key's damper falls as the soft key lands. Not within
        # `soft_after_s` of the last onset (see NoteListener._soft_onset_factor).
        self._soft_delta = None if soft_sensitivity is None else flux_floor(soft_sensitivity)
        self._soft_wait = soft_wait_hops
        self._soft_after_hops = max(
            self._min_interval_hops, round(soft_after_s * sample_rate / hop)
        )
        self._candidate_age: int | None = None  # hops since a candidate's rise, if one waits

    def flux(self, hop: np.ndarray) -> tuple[float, float]:
        """The rise of the log spectrum since the last hop, and since the hop before that.
        `fluxes` for one hop (the daemon's block), in preallocated arrays: per-hop numpy calls
        cost more in overhead than in work. The same operations on the same float32 values,
        so the same numbers bit for bit (tests/test_blocks.py checks)."""
        samples = np.concatenate((self._tail, hop))
        self._tail = samples[len(hop) :]
        windowed, current, rises, previous = (
            self._windowed,
            self._current,
            self._rises,
            self._previous,
        )
        np.multiply(samples, self._window, out=windowed)
        np.abs(np.fft.rfft(windowed)[self._band], out=current)
        np.multiply(current, self._scale, out=current)
        np.log1p(current, out=current)
        np.subtract(current, previous, out=rises)  # since two hops before, since one before
        np.maximum(rises, self._zero, out=rises)
        rise2, rise = np.add.reduce(rises, axis=1).tolist()
        previous[0] = previous[1]
        previous[1] = current
        return rise / self._band_bins, rise2 / self._band_bins

    def fluxes(self, hops: np.ndarray) -> tuple[list[float], list[float]]:
        """`flux` of each row of `hops` (consecutive hops, oldest first), as two lists."""
        count, hop = hops.shape
        samples = np.concatenate((self._tail, hops.reshape(-1)))
        self._tail = samples[len(samples) - len(self._tail) :]
        step = samples.strides[0]
        frames = np.lib.stride_tricks.as_strided(
            samples, (count, self.frame_size), (hop * step, step), writeable=False
        )
        # Oldest first: the two hops before these, then these.
        spectra = np.empty((count + 2, self._band_bins), np.float32)
        spectra[:2] = self._previous
        block = spectra[2:]
        np.abs(np.fft.rfft(frames * self._window, axis=1)[:, self._band], out=block)
        np.multiply(block, self._scale, out=block)
        np.log1p(block, out=block)
        self._previous = spectra[count:].copy()  # `flux` writes into it
        rises = np.maximum(block - spectra[1:-1], self._zero)
        rises2 = np.maximum(block - spectra[:-2], self._zero)
        # np.add.reduce is what ndarray.sum() calls, without its Python-level wrapper.
        bins = self._band_bins
        return (
            [rise / bins for rise in np.add.reduce(rises, axis=1).tolist()],
            [rise / bins for rise in np.add.reduce(rises2, axis=1).tolist()],
        )

    def decide(
        self,
        flux: float,
        flux2: float,
        level_dbfs: float,
        floor_dbfs: float,
        factor: float = 1.5,
        soft_factor: float | None = None,
    ) -> Strike | None:
        """The strike of the hop after the last one decided, given its two rises (see `flux`),
        or None. A rise must exceed `factor` times the recent mean rise (over the last
        `history_s`) plus the sensitivity's floor; with a `soft_factor`, a soft strike's rise
        that factor times it plus the soft sensitivity's floor (see __init__)."""
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
        threshold = self._delta + factor * recent
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
        threshold2 = self._delta + factor * recent2
        overruled = self._fall_overruled
        # A damper or a fade, not a strike (see _fall_overruled).
        faded = falling and flux <= overruled * threshold and flux2 <= overruled * threshold2
        level_jump = rising and level_dbfs - loudest_recent >= self._level_rise
        # A strike that straddles two hops splits its rise between them; over two hops it is
        # whole. It matters most in a noisy room, where the noise's own flux raises the
        # threshold and a soft legato key's half-rises stay under it.
        whole_rise = rising2 and flux2 > threshold2
        struck = not faded and ((rising and flux > threshold) or level_jump or whole_rise)
        ready = self._hops_since_onset >= self._min_interval_hops
        audible = level_dbfs > self._min_level and level_dbfs > floor_dbfs + self._min_rise
        if struck and ready and audible:
            self._candidate_age = None
            self._hops_since_onset = 0
            return Strike(max(flux / threshold, 1.0), 0)
        if self._candidate_age is not None:
            self._candidate_age += 1
            if self._candidate_age < self._soft_wait:
                return None
            age, self._candidate_age = self._candidate_age, None
            self._hops_since_onset = age
            return Strike(1.0, age)
        soft_delta = self._soft_delta
        soft_rise = (
            soft_delta is not None
            and soft_factor is not None
            and rising2
            and flux2 > soft_delta + soft_factor * recent2
        )
        if soft_rise and audible and self._hops_since_onset >= self._soft_after_hops:
            self._candidate_age = 0
        return None


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
