"""Streaming integer-factor decimation with a short linear-phase FIR.

Why hand-written: soxr's HQ/MQ streams hold back 30-40 ms of output (the whole latency
budget of a key lighting up), and its quick mode does not low-pass before decimating.
A 2x/3x/4x polyphase FIR of a few dozen taps costs well under a millisecond of delay.
"""

from __future__ import annotations

import numpy as np


def lowpass_taps(factor: int, taps_per_phase: int = 16) -> np.ndarray:
    """Windowed-sinc low-pass at 0.9 x the new Nyquist frequency (Blackman window)."""
    n_taps = factor * taps_per_phase + 1
    cutoff = 0.9 / factor  # as a fraction of the input Nyquist frequency
    n = np.arange(n_taps) - (n_taps - 1) / 2
    h = cutoff * np.sinc(cutoff * n) * np.blackman(n_taps)
    return (h / h.sum()).astype(np.float32)


class Decimator:
    """Feed blocks at `factor` x the output rate, get low-passed, decimated blocks back.

    Output sample k corresponds to input sample k*factor - delay_in (group delay compensated
    by the caller through `delay_s`).
    """

    def __init__(self, factor: int, sample_rate: int) -> None:
        if factor < 1:
            raise ValueError("factor must be >= 1")
        self.factor = factor
        self._taps = lowpass_taps(factor) if factor > 1 else np.ones(1, np.float32)
        self._history = np.zeros(len(self._taps) - 1, np.float32)
        self._phase = 0  # index, within the next input block, of the next output sample
        self.delay_s = (len(self._taps) - 1) / 2 / sample_rate

    def feed(self, block: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return block
        extended = np.concatenate((self._history, block))
        # Only every `factor`-th output of the full convolution is needed.
        start = self._phase
        filtered = np.convolve(extended, self._taps, mode="valid")[start :: self.factor]
        consumed = len(block)
        self._phase = (start - consumed) % self.factor
        self._history = extended[len(extended) - len(self._history) :]
        return filtered.astype(np.float32, copy=False)
