"""Pitch of a freshly struck note, decided from windows that grow with the time since the strike.

High notes are decided from a few milliseconds of sound; a bass note waits for the longer window
its period needs (two periods of A0 take 73 ms). Each estimate is aubio's YIN on the newest
samples after the strike, in the longest window from `window_sizes` that fits.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import aubio
import numpy as np

from .music import freq_to_midi, midi_to_freq


@dataclass(frozen=True, slots=True)
class PitchEstimate:
    freq_hz: float
    confidence: float  # 1 - YIN's aperiodicity, 0..1
    window: int  # samples analysed
    midi_float: float
    periods: float  # how many periods of freq_hz the window holds


def yin(
    samples: np.ndarray,
    sample_rate: int,
    tolerance: float = 0.3,
    max_lag: int | None = None,
    min_lag: int = 2,
) -> tuple[float, float]:
    """(frequency Hz, confidence) by YIN (de Cheveigne & Kawahara 2002), the way aubio's "yin"
    decides: the difference function over the first half of the window for lags up to half
    the window, cumulative-mean normalised, the first dip below `tolerance` (else the lowest
    point), refined by a parabola; confidence is 1 - the normalised dip. 0 Hz when silent.
    `max_lag` (samples) caps the lags searched: the period of the lowest note wanted;
    `min_lag` starts them: the period of the highest.

    Why not aubio.pitch("yin"): it computes the difference function directly, O(N^2): 0.3 ms
    for 1024 samples, 1.2 ms for 2048, on every bass decision. Its FFT version ("yinfast")
    takes powers of two only, and the growing windows are multiples of a hop. Here the same
    function comes from one FFT correlation, O(N log N), at any length."""
    x = np.asarray(samples, dtype=np.float64)
    half = len(x) // 2
    if half < 6:
        return 0.0, 0.0
    n_fft = 1 << (len(x) + half - 1).bit_length()
    spectrum = np.fft.rfft(x, n_fft)
    head = np.fft.rfft(x[:half], n_fft)
    correlation = np.fft.irfft(spectrum * np.conj(head), n_fft)[:half]
    energy = np.zeros(len(x) + 1)  # energy[i]: sum of x[j]^2 over j < i
    np.cumsum(x * x, out=energy[1:])
    shifted_energy = energy[half : 2 * half] - energy[:half]  # sum of x[j+tau]^2 over j < half
    difference = energy[half] + shifted_energy - 2.0 * correlation
    difference[0] = 0.0
    # FFT rounding leaves noise of ~1e-16 of the energy where the direct sum is exactly 0
    # (a constant window, a DC offset): zero it, or it would look periodic.
    difference[difference < 1e-12 * (energy[-1] + 1e-30)] = 0.0
    running = np.cumsum(difference[1:])
    normalised = np.ones(half)
    # Divided only where the running sum is positive; elsewhere it stays 1 (and no warning).
    weighted = difference[1:] * _lag_numbers(half)
    np.divide(weighted, running, out=normalised[1:], where=running > 0.0)
    # The first lag from `min_lag` (at least 2) on that dips below the tolerance and is a
    # local minimum.
    end = half if max_lag is None else max(6, min(half, max_lag + 3))
    start = min(max(2, min_lag), end - 4)
    candidates = normalised[start : end - 3]  # never empty: start <= end - 4
    dips = (candidates < tolerance) & (candidates < normalised[start + 1 : end - 2])
    first = int(np.argmax(dips))
    # No dip: the lowest point, unless nothing lies below lags 0 and 1 (always 1.0): no period.
    lag = first + start if dips[first] else start + int(np.argmin(normalised[start:end]))
    if normalised[lag] >= 1.0:
        return 0.0, 0.0
    offset = 0.0
    if lag < half - 1:  # at the last lag there is no right neighbour: aubio keeps the lag
        a, b, c = normalised[lag - 1 : lag + 2]
        curvature = a - 2.0 * b + c
        offset = 0.5 * (a - c) / curvature if curvature > 0.0 else 0.0
    period = lag + offset
    if period <= 0.0:
        return 0.0, 0.0
    return sample_rate / period, float(1.0 - normalised[lag])


def low_passed(samples: np.ndarray, cutoff_hz: float, sample_rate: float) -> np.ndarray:
    """The samples without what lies above `cutoff_hz`: zero-padded FFT, a gain that falls
    linearly from 1 at 0.75 x `cutoff_hz` to 0 at 1.25 x (a brick wall would ring), inverse
    FFT. Why not a filter from a library: this runs on one finished window at a time, and
    the FFT gives zero phase and a cutoff that follows each estimate for free."""
    return band_passed(samples, 0.0, cutoff_hz, sample_rate)


def band_passed(
    samples: np.ndarray, low_hz: float, high_hz: float, sample_rate: float
) -> np.ndarray:
    """The samples without what lies below `low_hz` (0: nothing) or above `high_hz`, each
    edge a linear ramp from 0.75 x to 1.25 x its frequency, in one FFT (see `low_passed`)."""
    n_fft = 1 << (2 * len(samples) - 1).bit_length()
    spectrum = np.fft.rfft(samples, n_fft)
    freqs = np.arange(len(spectrum)) * (sample_rate / n_fft)
    gain = np.clip((1.25 * high_hz - freqs) / (0.5 * high_hz), 0.0, 1.0)
    if low_hz > 0.0:
        gain *= np.clip((freqs - 0.75 * low_hz) / (0.5 * low_hz), 0.0, 1.0)
    spectrum *= gain
    return np.fft.irfft(spectrum, n_fft)[: len(samples)]


@cache
def _lag_numbers(half: int) -> np.ndarray:
    """1.0, 2.0, ... half - 1 (read-only): YIN's normalisation weights, built once a length."""
    numbers = np.arange(1, half, dtype=np.float64)
    numbers.flags.writeable = False
    return numbers


class MultiWindowPitch:
    """YIN at several window lengths; `estimate(samples)` uses the longest that fits."""

    # aubio's direct YIN costs O(N^2), the FFT one here O(N log N) with a larger constant:
    # they break even near 700 samples, so short windows (the treble, decided first) go to
    # aubio and the long bass windows to `yin`. Both give the same answers (tests check).
    FFT_FROM = 700

    def __init__(self, sample_rate: int, sizes: list[int], tolerance: float = 0.3) -> None:
        self.sample_rate = sample_rate
        self.sizes = sorted(set(sizes))
        self.tolerance = tolerance
        self._aubio = {}
        for size in self.sizes:
            if size >= self.FFT_FROM:
                continue
            # buf_size == hop_size: each call analyses exactly the samples passed in.
            detector = aubio.pitch("yin", size, size, sample_rate)
            detector.set_unit("Hz")
            detector.set_tolerance(tolerance)
            # aubio answers 0 Hz below its silence gate (-50 dB by default); a soft note on a
            # quiet mic is quieter than that, and the listener gates on level itself.
            detector.set_silence(-120.0)
            self._aubio[size] = detector

    @property
    def shortest(self) -> int:
        return self.sizes[0]

    @property
    def longest(self) -> int:
        return self.sizes[-1]

    def fitting_size(self, available: int) -> int | None:
        fitting = bisect_right(self.sizes, available)  # how many sizes are <= available
        return self.sizes[fitting - 1] if fitting else None

    def estimate(
        self, samples: np.ndarray, a4_hz: float, newest_as_reference: bool = False
    ) -> PitchEstimate | None:
        """Estimate over the newest `fitting_size(len(samples))` samples.

        YIN compares the window's first half with the samples a lag later, so the oldest
        samples are its reference. With `newest_as_reference` it reads the window backwards:
        the same difference function with the newest half as the reference, for a window
        whose oldest samples may not yet show the pitch (a string's first milliseconds)."""
        size = self.fitting_size(len(samples))
        if size is None:
            return None
        window = samples[-size:]
        if newest_as_reference:
            window = window[::-1]
        detector = self._aubio.get(size)
        if detector is None:
            freq, confidence = yin(window, self.sample_rate, self.tolerance)
        else:
            freq = float(detector(np.ascontiguousarray(window, dtype=np.float32))[0])
            confidence = float(detector.get_confidence())
        if freq <= 0.0:
            return None
        midi_float = freq_to_midi(freq, a4_hz)
        periods = size * freq / self.sample_rate
        return PitchEstimate(freq, confidence, size, midi_float, periods)


@cache
def hann(size: int) -> np.ndarray:
    """A read-only Hann window. Memoized: the listener asks for the same dozen lengths on
    every note, and building one costs as much as the FFT it weights."""
    window = np.hanning(size)
    window.flags.writeable = False
    return window


def _spectrum_split(
    samples: np.ndarray, freq_hz: float, sample_rate: int, lowest_hz: float
) -> tuple[np.ndarray, float, int, int]:
    """Power spectrum of the Hann-windowed samples (zero-padded to twice their length or
    more), its bin width, the first bin above `lowest_hz` and the first at 0.75 x `freq_hz`."""
    n_fft = max(1024, 1 << (2 * len(samples) - 1).bit_length())
    power = np.abs(np.fft.rfft(samples * hann(len(samples)), n_fft)) ** 2
    bin_hz = sample_rate / n_fft
    lowest = int(lowest_hz / bin_hz) + 1
    return power, bin_hz, lowest, max(lowest, int(0.75 * freq_hz / bin_hz))


def energy_below(
    samples: np.ndarray, freq_hz: float, sample_rate: int, lowest_hz: float = 20.0
) -> float:
    """Fraction of the power (above `lowest_hz`) that lies below 0.75 x `freq_hz`.

    Early in a bass note YIN can lock onto a strong upper partial, because the window is still
    shorter than the true period. The lower partials are already there, though, smeared over
    a short window: a real note has almost nothing below its fundamental, a partial has plenty.
    """
    power, _, lowest, split = _spectrum_split(samples, freq_hz, sample_rate, lowest_hz)
    total = float(power[lowest:].sum())
    return float(power[lowest:split].sum()) / total if total > 0.0 else 0.0


def peak_below(samples: np.ndarray, freq_hz: float, sample_rate: int) -> float:
    """The strongest spectral peak (above 20 Hz) below 0.75 x `freq_hz`, as a fraction of the
    strongest within +-3 % of `freq_hz`.

    What `energy_below` guards against is a lower note that really sounds: a bass note whose
    upper partial YIN took, or the fundamental an octave down. Such a note is a peak as
    strong as the estimate's own. Under a treble note the energy below is mostly spread
    thin instead: the hammer's knock and, in a room, its reverberation, which outlast a soft
    top note and can hold a third of a window without one peak near the note's."""
    power, bin_hz, lowest, split = _spectrum_split(samples, freq_hz, sample_rate, 20.0)
    own = _strongest_near(power, bin_hz, freq_hz)
    below = float(power[lowest:split].max()) if split > lowest else 0.0
    return below / own if own > 0.0 else 1.0


def _strongest_near(power: np.ndarray, bin_hz: float, freq_hz: float) -> float:
    """The strongest bin of `power` within +-3 % of `freq_hz` (0 past the spectrum's end)."""
    near = power[int(0.97 * freq_hz / bin_hz) : int(1.03 * freq_hz / bin_hz) + 2]
    return float(near.max()) if len(near) else 0.0


def octave_below(samples: np.ndarray, freq_hz: float, sample_rate: int) -> float:
    """The strongest spectral peak within +-3 % of half `freq_hz`, as a fraction of the
    strongest within +-3 % of `freq_hz`: how much of a note an octave down there is, whose
    second partial the estimate may be."""
    power, bin_hz, _, _ = _spectrum_split(samples, freq_hz, sample_rate, 20.0)
    own = _strongest_near(power, bin_hz, freq_hz)
    return _strongest_near(power, bin_hz, 0.5 * freq_hz) / own if own > 0.0 else 1.0


def whole_multiple(ratio: float, tolerance: float = 0.03) -> int:
    """The whole number `ratio` is within `tolerance` (relative) of, else 0."""
    whole = round(ratio)
    return whole if whole >= 1 and abs(ratio - whole) <= tolerance * whole else 0


# The k-th partial of a stiff string lies up to a few % above k times the fundamental.
_PARTIAL_TOLERANCE = 0.04


def _string_lines(peak: int) -> tuple[slice, slice]:
    """The bins of a string's line at bin `peak` (+-3 %) and of its second partial, which
    stiffness stretches up to 5 % above twice the line."""
    line = slice(int(peak * 0.97), int(peak * 1.03) + 1)
    return line, slice(int(peak * 1.96), int(peak * 2.1) + 1)


class SpectralCheck:
    """Checks and refines a YIN estimate against the spectrum of the same window.

    Three things YIN gets wrong on a real piano, that the spectrum gets right:
    - Treble notes: only a few samples per period, and the undamped strings and soundboard
      add low components, so YIN often prefers a multiple of the period (an octave or more
      too low). Up there the fundamental is the strongest partial by far, so when the
      strongest peak above `treble_hz` sits at a whole multiple of YIN's frequency, it wins.
    - Soft top keys: the string is quieter than its own hammer's knock, and YIN finds a period
      in the low rumble, no whole fraction of the string's. The string is still the window's
      strongest line, and then it wins (see `_string_share`).
    - Frequency: within the first few periods the envelope still rises or falls fast, which
      biases YIN's period by up to a semitone. The spectral peak next to the estimate,
      interpolated on a zero-padded FFT, is not biased by the envelope.
    """

    def __init__(
        self,
        sample_rate: int,
        treble_hz: float = 1000.0,
        refine_periods: float = 6.0,
        partial_ratio: float = 0.1,
        partial_max_hz: float = 2000.0,
        top_hz: float = 4500.0,
        string_margin: float = 2.0,
        rumble_hz: float = 200.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.treble_hz = treble_hz
        self.refine_periods = refine_periods
        self.partial_ratio = partial_ratio
        # Above this a dominant peak is the string itself: a low thump under a soft top note
        # would otherwise pass for the "other partials" of YIN's far-too-low frequency.
        self.partial_max_hz = partial_max_hz
        # C8 (4186 Hz) with a top octave stretched sharp: no piano string sounds above it.
        self.top_hz = top_hz
        # A top string's line must be this much stronger than any other (see _string_share).
        self.string_margin = string_margin
        # ...over YIN's frequency only below this, where a strike's low thump lies.
        self.rumble_hz = rumble_hz

    def check(
        self, samples: np.ndarray, freq_hz: float | None, confidence: float = 0.0
    ) -> tuple[float, float] | None:
        """(frequency, treble dominance 0..1) for a YIN frequency, or for none. In the top
        octaves YIN may find no period, or the period of a low thump, while above ~500 Hz the
        spectrum is one clear peak: the string."""
        window = len(samples)
        power, bin_hz = self._power(samples)
        upper = int(0.5 * self.treble_hz / bin_hz)
        treble = int(0.9 * self.treble_hz / bin_hz)
        peak = treble + int(np.argmax(power[treble:]))
        peak_hz = peak * bin_hz
        near, _ = _string_lines(peak)
        dominance = float(power[near].sum() / (power[upper:].sum() + 1e-30))
        # Only against no period or one in the knock's rumble: a lower string whose upper
        # partial stands out has YIN's period (a sample's F4 had its ninth partial stand out).
        if freq_hz is None or freq_hz < self.rumble_hz:
            dominance = max(dominance, self._string_share(power, bin_hz, peak))
        if (
            freq_hz is not None
            and peak_hz < self.partial_max_hz
            and self._is_partial_of(power, bin_hz, freq_hz, peak_hz)
        ):
            pass  # the peak is an upper partial of YIN's note (a low string's bright partial)
        elif dominance >= 0.5 and (freq_hz is None or confidence < 0.8):
            freq_hz = peak_hz  # YIN found nothing, or something weak: trust the clear peak
        elif freq_hz is None:
            return None
        elif dominance >= 0.5 and whole_multiple(peak_hz / freq_hz, _PARTIAL_TOLERANCE) >= 2:
            freq_hz = peak_hz  # YIN took a multiple of the treble period
        if window * freq_hz / self.sample_rate < self.refine_periods:
            return freq_hz, dominance  # too few periods for the peak to be sharper than YIN
        strongest = float(power[1:].max())
        return self._refine(power, bin_hz, freq_hz, strongest), dominance

    def top_string_hz(self, samples: np.ndarray, floor_hz: float = 100.0) -> float | None:
        """The frequency of a top string that stands out of the window (see
        `_string_share`): its strongest line from `partial_max_hz` to `top_hz`, when that is
        stronger by `string_margin` than any other line above `floor_hz`; else None."""
        power, bin_hz = self._power(samples)
        low = int(self.partial_max_hz / bin_hz)
        peak = low + int(np.argmax(power[low : int(self.top_hz / bin_hz) + 1]))
        return peak * bin_hz if self._stands_out(power, bin_hz, peak, floor_hz) else None

    def _power(self, samples: np.ndarray) -> tuple[np.ndarray, float]:
        """Power of the Hann-windowed window, zero-padded to at least 4x (and 8192 points)
        for a fine grid of peak positions, and the bin width in Hz."""
        window = len(samples)
        n_fft = max(8192, 1 << (4 * window - 1).bit_length())
        return np.abs(np.fft.rfft(samples * hann(window), n_fft)) ** 2, self.sample_rate / n_fft

    def _stands_out(
        self, power: np.ndarray, bin_hz: float, peak: int, floor_hz: float = 100.0
    ) -> bool:
        """Whether the line at `peak` is in the top octaves (`partial_max_hz`..`top_hz`) and
        stronger by `string_margin` than any other line above `floor_hz` but its own second
        partial (stretched by up to 5 %)."""
        if not self.partial_max_hz <= peak * bin_hz <= self.top_hz:
            return False
        line, second = _string_lines(peak)
        others = np.concatenate(
            [
                power[int(floor_hz / bin_hz) : line.start],
                power[line.stop : second.start],
                power[second.stop :],
            ]
        )
        return float(power[line].max()) >= self.string_margin * float(others.max())

    def _string_share(self, power: np.ndarray, bin_hz: float, peak: int) -> float:
        """How much of what lies from half the peak up is one top string (its line and its
        second partial), when the peak is in the top octaves (`partial_max_hz`..`top_hz`)
        and stronger by `string_margin` than any other line above 100 Hz; else 0.

        Up there a string's fundamental is its strongest partial, and a soft top key is
        short and quiet beside its own hammer's knock and the action's and body's modes,
        which spread over a few hundred Hz to 2 kHz and hold more of the window above
        `treble_hz` than the string does: the dominance over all of it stays under a half
        and YIN meanwhile finds a period in the low rumble (below `rumble_hz`), more than
        three octaves down. Counted from half the peak up, a lower string's fundamental
        still counts against its bright upper partial. The margin keeps a lower note whose
        upper partial is about as strong as its fundamental out (a bright C5's fifth
        partial, in a room)."""
        if not self._stands_out(power, bin_hz, peak):
            return 0.0
        line, second = _string_lines(peak)
        string = float(power[line].sum() + power[second].sum())
        # From just under half: a fundamental below the peak lies at 1/2.03 of it (stretched).
        return string / (float(power[int(0.45 * peak) :].sum()) + 1e-30)

    def _is_partial_of(
        self, power: np.ndarray, bin_hz: float, freq_hz: float, peak_hz: float
    ) -> bool:
        """Whether `peak_hz` is the k-th partial of a note at `freq_hz` that really sounds: its
        other partials (not multiples of k) carry energy, and no other factor leaves them out.
        When YIN took a multiple of a treble note's period, those are missing (see
        `missing_harmonic_factor`): next to nothing, under `partial_ratio`. A bright string's
        2nd or 3rd partial can hold eight to sixteen times its fundamental's power, so a
        stricter share (it was a quarter) moved such a note up a twelfth."""
        k = whole_multiple(peak_hz / freq_hz, _PARTIAL_TOLERANCE)
        if k < 2:
            return False
        energies = harmonic_energies(power, bin_hz, freq_hz, peak_hz * 1.02)
        shared, other = split_by_multiples(energies, k)
        if other < self.partial_ratio * shared:
            return False
        return missing_harmonic_factor(power, bin_hz, freq_hz) == 1

    def _refine(self, power: np.ndarray, bin_hz: float, freq_hz: float, peak: float) -> float:
        lo = max(1, int(freq_hz * 0.95 / bin_hz))
        hi = min(len(power) - 2, int(freq_hz * 1.05 / bin_hz) + 1)
        if hi <= lo:
            return freq_hz
        k = lo + int(np.argmax(power[lo:hi]))
        # Only a real peak, not the flank of a neighbour, and not 30 dB below the strongest.
        if k in (lo, hi - 1) or power[k] < 1e-3 * peak:
            return freq_hz
        return (k + float(_peak_offset(power, k))) * bin_hz


def power_spectrum(samples: np.ndarray, min_fft: int = 4096) -> np.ndarray:
    """Power of a Hann-windowed, zero-padded FFT (at least `min_fft` points, 2x padding)."""
    n_fft = max(min_fft, 1 << (2 * len(samples) - 1).bit_length())
    return np.abs(np.fft.rfft(samples * hann(len(samples)), n_fft)) ** 2


def harmonic_energies(
    power: np.ndarray, bin_hz: float, freq_hz: float, top_hz: float, tolerance: float = 0.03
) -> np.ndarray:
    """Peak power near each harmonic h * freq_hz (h = 1, 2, ...) up to `top_hz`, +-3% (or
    +-`tolerance`); the harmonics whose band runs past the spectrum's end are left out."""
    count = max(1, int(top_hz / freq_hz))
    centres = np.arange(1, count + 1) * freq_hz / bin_hz
    # truncation, as int() does: the bins are positive
    lo = (centres * (1.0 - tolerance)).astype(np.intp)
    hi = (centres * (1.0 + tolerance)).astype(np.intp) + 2
    count = int(np.searchsorted(hi, len(power), side="right"))  # hi grows with h
    if count == 0:
        return np.zeros(0)
    # One reduceat instead of a loop of slices: element 2h is the max of power[lo[h]:hi[h]]
    # (the odd ones, from hi[h] to lo[h + 1], are not wanted). Cut at the last band's end so
    # that the final segment stops there.
    bounds = np.empty(2 * count - 1, np.intp)
    bounds[0::2], bounds[1::2] = lo[:count], hi[: count - 1]
    return np.maximum.reduceat(power[: hi[count - 1]], bounds)[0::2].astype(np.float64)


def ringing_partials(
    power: np.ndarray, bin_hz: float, freq_hz: float, count: int = 8, within_db: float = 20.0
) -> int:
    """How many of the first `count` partials of `freq_hz` (+-3 %) peak within `within_db` of
    the spectrum's strongest bin. A struck bass string rings most of its first eight; a
    strike's rumble (one or two body modes) or a higher note heard through its subharmonic
    does not."""
    energies = harmonic_energies(power, bin_hz, freq_hz, (count + 0.5) * freq_hz)
    return int(np.count_nonzero(energies >= power.max() * 10.0 ** (-within_db / 10.0)))


def peaked_partials(
    power: np.ndarray,
    bin_hz: float,
    freq_hz: float,
    *,
    count: int = 8,
    within_db: float = 20.0,
    tolerance: float = 0.015,
) -> int:
    """How many of the first `count` partials of `freq_hz` have a spectral peak of their own:
    a local maximum within `within_db` of the strongest from half of `freq_hz` to just past
    the last partial, within `tolerance` of the partial (or one bin). Unlike
    `ringing_partials`, which takes the strongest bin in each partial's band, the skirt of
    another note's loud partial next to the band does not count: over a ~50 ms window a
    partial's main lobe reaches 20 Hz either side."""
    peaks = _spectral_peaks(power, bin_hz, 0.5 * freq_hz, (count + 0.5) * freq_hz, within_db)
    if len(peaks) == 0:
        return 0
    partials = np.arange(1, count + 1) * freq_hz
    near = np.abs(peaks[None, :] - partials[:, None]) <= tolerance * partials[:, None] + bin_hz
    return int(np.count_nonzero(near.any(axis=1)))


def lone_partial(
    power: np.ndarray,
    bin_hz: float,
    freq_hz: float,
    low_hz: float,
    high_hz: float,
    neighbour_ratio: float,
    divisor_ratio: float,
) -> tuple[float, float] | None:
    """(frequency, power) of the strongest line from `low_hz` to `high_hz` when it lies on a
    harmonic n >= 4 of `freq_hz` that stands alone: harmonics n - 1 and n + 1 under
    `neighbour_ratio` of its power, the fundamental under it, and, for each divisor d of n,
    the partials below it of a string at line / d (harmonics n / d, 2 n / d ...) under
    `divisor_ratio` of it. Else None.

    A string's partials fall off smoothly with their number (a hammer's position cuts a
    notch, not a lone peak), so such a line is no partial of `freq_hz`: it is a string of its
    own whose subharmonic YIN took. Unless it is the d-th partial of a real string at
    line / d, whose partials are harmonics of `freq_hz` too, and loud: a synthetic knocked
    F#5 read as F#4 had its third partial alone among F#4's 5th-7th harmonics, its own
    fundamental 10 dB and its second partial 2 dB under it."""
    low, high = int(low_hz / bin_hz), min(len(power) - 1, int(high_hz / bin_hz))
    if high - low < 3:
        return None
    peak = low + int(np.argmax(power[low:high]))
    if peak == low or power[peak + 1] > power[peak]:
        return None  # the flank of a line outside the range, not a line
    n = whole_multiple(peak * bin_hz / freq_hz)
    if n < 4:
        return None
    energies = harmonic_energies(power, bin_hz, freq_hz, (n + 1.5) * freq_hz)
    if len(energies) < n + 1:
        return None
    line = float(power[peak])
    if max(energies[n - 2], energies[n]) > neighbour_ratio * line or energies[0] > line:
        return None
    for d in range(2, n):
        # a string at line / d: its partials below the line are every (n / d)-th harmonic
        if n % d == 0 and energies[n // d - 1 : n - 1 : n // d].max() > divisor_ratio * line:
            return None
    return (peak + float(_peak_offset(power, peak))) * bin_hz, line


def split_by_multiples(energies: np.ndarray, k: int) -> tuple[float, float]:
    """(energy of harmonics 1, 2, ... that are multiples of k, energy of the others)."""
    multiple, other = _multiples_of(len(energies), k)
    return float(energies[multiple].sum()), float(energies[other].sum())


@cache
def _multiples_of(count: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of harmonics 1..count: those that are multiples of k, and the others (read-only;
    the checks ask for the same few on every note)."""
    multiple = np.arange(1, count + 1) % k == 0
    other = ~multiple
    multiple.flags.writeable = other.flags.writeable = False
    return multiple, other


def missing_harmonic_factor(
    power: np.ndarray, bin_hz: float, freq_hz: float, max_ratio: float = 0.1
) -> int:
    """k > 1 when `freq_hz` is k times too low: its harmonics that are not multiples of k hold
    almost no energy (< `max_ratio` of those that are), so the sound is really k * freq_hz.

    YIN's classic mistake on a mixture or a clean high note is a period that is a multiple of
    the true one; then every k-th harmonic of the estimate is all there is. A real bass note
    with a weak fundamental still has its odd partials, so it is not mistaken for this."""
    return factor_from_harmonics(checked_harmonics(power, bin_hz, freq_hz), max_ratio)


def checked_harmonics(power: np.ndarray, bin_hz: float, freq_hz: float) -> np.ndarray:
    """The harmonic energies `missing_harmonic_factor` weighs: up to the 12th, under 0.45 x
    the sample rate."""
    top_hz = min(0.45 * bin_hz * 2 * (len(power) - 1), 12 * freq_hz)
    return harmonic_energies(power, bin_hz, freq_hz, top_hz)


def factor_from_harmonics(energies: np.ndarray, max_ratio: float = 0.1, first: int = 1) -> int:
    """`missing_harmonic_factor` on harmonic energies already measured, counting harmonics
    from the `first` on (1 is the fundamental): one measurement serves several questions."""
    if first > 1:
        energies = energies.copy()
        energies[: first - 1] = 0.0
    for k in (5, 4, 3, 2):
        if len(energies) < 2 * k:
            continue
        shared, other = split_by_multiples(energies, k)
        if shared > 0.0 and other < max_ratio * shared:
            return k
    return 1


@dataclass(frozen=True, slots=True)
class PartialSeries:
    """A key named by the spectral peaks its (stretched) partials explain."""

    midi: int
    freq_hz: float  # fitted on the explained peaks, within half a key of `midi`
    share: float  # of the peaks in the series' band that it explains
    explained: int  # how many


# String stiffness B to try (partial n at n * f * sqrt(1 + B n^2)): from none to a short
# upright's lowest strings. Fitting B, not widening the tolerance, keeps a dense low series
# from "explaining" every stray peak.
_STRETCHES = (0.0, 1e-4, 3e-4, 1e-3)


def partial_series_key(
    power: np.ndarray,
    bin_hz: float,
    lowest_midi: int,
    highest_midi: int,
    a4_hz: float,
    *,
    min_explained: int = 10,
    min_share: float = 0.7,
    within_db: float = 25.0,
    cents: float = 35.0,
    partials: int = 16,
) -> PartialSeries | None:
    """The key from `lowest_midi` to `highest_midi` whose first `partials` partials explain
    the most of the spectrum's peaks (those within `within_db` of the strongest below the
    highest key's 20th partial), as a share of the peaks in its own band; at least
    `min_explained` peaks, two of them odd partials (else the octave above explains the same),
    and at least `min_share`. Ties go to the higher key, whose partials the lower one's
    include. None when no key qualifies.

    For a bass string that YIN cannot read because something else rules the window: a body
    resonance under a weak-fundamental string (a sampled A0 whose first 90 ms are led by a
    74 Hz line that is no partial of it), while its partials 4-15 stand clear. aubio's
    spectral pitch methods (mcomb, fcomb, specacf, yinfft) named none of four such bass keys
    of FluidR3_GM on the same 93 ms windows (2026-11-22); this asks instead which key's
    series explains the peaks.
    """
    freqs = _series_peaks(power, bin_hz, lowest_midi, highest_midi, a4_hz, within_db)
    if len(freqs) < min_explained:
        return None
    midis = np.arange(lowest_midi, highest_midi + 1)
    f0s = midi_to_freq(midis.astype(float), a4_hz)
    explained, nearest, in_band = _explained_by(freqs, f0s, partials, cents)
    count = explained.sum(axis=2)
    odd = (explained & (nearest % 2 == 0)).sum(axis=2)  # index 0 is partial 1
    share = count / np.maximum(in_band.sum(axis=2), 1)
    valid = (count >= min_explained) & (odd >= 2) & (share >= min_share)
    if not valid.any():
        return None
    # the most of its band explained; ties to the higher key, then to the stiffness tried first
    candidates = np.argwhere(valid)
    k, s = max(candidates, key=lambda ks: (share[ks[0], ks[1]], ks[0], -ks[1]))
    kept = explained[k, s]
    n = nearest[k, s][kept] + 1
    fitted = float(np.median(freqs[kept] / (n * np.sqrt(1.0 + _STRETCHES[s] * n**2))))
    f0 = float(f0s[k])
    fitted = float(np.clip(fitted, f0 * 2 ** (-0.49 / 12), f0 * 2 ** (0.49 / 12)))
    return PartialSeries(int(midis[k]), fitted, float(share[k, s]), int(count[k, s]))


def partials_explained(
    power: np.ndarray,
    bin_hz: float,
    midis: Sequence[int],
    lowest_midi: int,
    highest_midi: int,
    a4_hz: float,
    *,
    within_db: float = 25.0,
    cents: float = 35.0,
    partials: int = 16,
) -> int:
    """How many of the spectrum's peaks (as `partial_series_key` takes them between
    `lowest_midi` and `highest_midi`) the first `partials` partials of one of `midis`
    explain: the most, over those keys and the string stiffnesses."""
    freqs = _series_peaks(power, bin_hz, lowest_midi, highest_midi, a4_hz, within_db)
    if len(freqs) == 0:
        return 0
    f0s = midi_to_freq(np.asarray(midis, dtype=float), a4_hz)
    return int(_explained_by(freqs, f0s, partials, cents)[0].sum(axis=2).max())


def odd_half_partials(
    power: np.ndarray,
    bin_hz: float,
    freq_hz: float,
    *,
    top: float = 8.0,
    within_db: float = 25.0,
    cents: float = 35.0,
) -> int:
    """How many of the spectrum's peaks (within `within_db` of the strongest from just under
    half of `freq_hz` to `top` times it) lie within `cents` of an odd multiple of half of
    `freq_hz` from the third on: 1.5, 2.5, 3.5 ... times it. A string at `freq_hz` has no
    partial there; a string an octave down has its odd partials there. A lower string's
    first partial is left out: a body mode or the thump may sit under any note."""
    half = 0.5 * freq_hz
    peaks = _spectral_peaks(power, bin_hz, 0.9 * half, (top + 0.6) * freq_hz, within_db)
    if len(peaks) == 0:
        return 0
    ratio = peaks / half
    number = np.maximum(np.round(ratio), 1.0)
    near = np.abs(1200.0 * np.log2(ratio / number)) <= cents
    return int(np.count_nonzero(near & (number % 2 == 1) & (number >= 3)))


def _series_peaks(
    power: np.ndarray,
    bin_hz: float,
    lowest_midi: int,
    highest_midi: int,
    a4_hz: float,
    within_db: float,
) -> np.ndarray:
    """The peaks a partial series is fitted on: from just under the lowest key to the 20th
    partial of the highest, within `within_db` of the strongest (`_spectral_peaks`)."""
    low_hz = 0.9 * midi_to_freq(lowest_midi, a4_hz)
    top_hz = 20.0 * midi_to_freq(highest_midi, a4_hz)
    return _spectral_peaks(power, bin_hz, low_hz, top_hz, within_db)


def _explained_by(
    freqs: np.ndarray, f0s: np.ndarray, partials: int, cents: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every fundamental in `f0s` and stiffness in `_STRETCHES` (partial n at
    n * f0 * sqrt(1 + B n^2), up to `partials`), arrays of key x stiffness x peak: which of
    the peaks `freqs` lie within `cents` of a partial, inside the series' band; the index of
    each peak's nearest partial (0 is the first); and which lie in the band. All at once:
    a loop over keys and stiffnesses cost 13 % of `transcribe`'s time on melodies and keys
    (126x against 145x real time)."""
    numbers = np.arange(1, partials + 1)
    stretches = np.asarray(_STRETCHES)
    factors = numbers * np.sqrt(1.0 + stretches[:, None] * numbers**2)  # stiffness x partial
    series = f0s[:, None, None] * factors[None, :, :]  # key x stiffness x partial
    in_band = (freqs >= 0.97 * f0s[:, None, None]) & (freqs <= 1.02 * series[:, :, -1:])
    off = 1200.0 * np.abs(np.log2(freqs[None, None, :, None] / series[:, :, None, :]))
    nearest = off.argmin(axis=3)
    explained = in_band & (np.take_along_axis(off, nearest[..., None], axis=3)[..., 0] <= cents)
    return explained, nearest, in_band


def _spectral_peaks(
    power: np.ndarray, bin_hz: float, low_hz: float, high_hz: float, within_db: float
) -> np.ndarray:
    """Frequencies of the local maxima of `power` between `low_hz` and `high_hz` that lie
    within `within_db` of the strongest one there, refined on the log spectrum."""
    lo = max(1, int(low_hz / bin_hz))
    hi = min(len(power) - 1, int(high_hz / bin_hz))
    band = power[lo - 1 : hi + 1]
    inner = band[1:-1]
    is_peak = (inner > band[:-2]) & (inner >= band[2:])
    if not is_peak.any():
        return np.zeros(0)
    k = np.flatnonzero(is_peak & (inner >= inner.max() * 10.0 ** (-within_db / 10.0))) + 1
    return (lo - 1 + k + _peak_offset(band, k)) * bin_hz


def _peak_offset(power: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """Where the peak at bin(s) `k` really lies, in bins from `k`: the vertex of a parabola
    through the log power at k - 1, k, k + 1 (0 where the three do not curve down)."""
    a, b, c = (np.log(power[np.asarray(k) + d] + 1e-30) for d in (-1, 0, 1))
    curvature = a - 2.0 * b + c
    return np.where(
        curvature < 0.0, 0.5 * (a - c) / np.where(curvature < 0.0, curvature, -1.0), 0.0
    )
