"""Streaming integer-factor decimation with a short linear-phase FIR.

Why hand-written: soxr's HQ/MQ streams hold back 30-40 ms of output (the whole latency
budget of a key lighting up), and its quick mode does not low-pass before decimating.
A 2x/3x/4x polyphase FIR of a few dozen taps costs well under a millisecond of delay.
"""

from __future__ import annotations

import numpy as np

# np.vecdot came with numpy 2.0; with an older numpy, feed() takes the whole convolution.
_VECDOT = getattr(np, "vecdot", None)


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
    by the caller through `delay_s`). Works in float32: blocks are converted on the way in.
    """

    def __init__(self, factor: int, sample_rate: int) -> None:
        if factor < 1:
            raise ValueError("factor must be >= 1")
        self.factor = factor
        self._taps = lowpass_taps(factor) if factor > 1 else np.ones(1, np.float32)
        # np.convolve(x, taps) is x correlated with the reversed taps: one dot product per
        # output sample. Keeping them reversed lets feed() compute only the outputs it keeps.
        self._reversed_taps = np.ascontiguousarray(self._taps[::-1])
        self._keep = len(self._taps) - 1  # input samples each output reaches back
        # The last `_keep` input samples, then the current block; `_windows[phase]` views it
        # as one row of len(taps) samples per output sample kept when the block's first
        # output falls on index `phase` (views made once, not on every block).
        self._extended = np.zeros(self._keep, np.float32)
        self._windows = self._windows_of(self._extended)
        self._phase = 0  # index, within the next input block, of the next output sample
        self.delay_s = (len(self._taps) - 1) / 2 / sample_rate

    def feed(self, block: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return block
        keep, consumed = self._keep, len(block)
        if consumed == 0:
            return np.zeros(0, np.float32)
        if len(self._extended) != keep + consumed:  # a new block length (once, for a stream)
            self._resize(consumed)
        extended = self._extended
        extended[keep:] = block
        start = self._phase
        if _VECDOT is not None:
            # Only every `factor`-th output is needed. np.vecdot takes each row's dot product
            # with the same BLAS dot that np.convolve uses, so the samples are bit for bit
            # those of the convolution below (tests/test_dsp.py checks), at 1/factor of the
            # work and without np.convolve's per-call argument handling.
            filtered = _VECDOT(self._windows[start], self._reversed_taps)
        else:
            filtered = np.convolve(extended, self._taps, mode="valid")[start :: self.factor]
        self._phase = (start - consumed) % self.factor
        extended[:keep] = extended[consumed:]  # the newest samples: the next block's history
        return filtered

    def _resize(self, block_length: int) -> None:
        extended = np.zeros(self._keep + block_length, np.float32)
        extended[: self._keep] = self._extended[: self._keep]
        self._extended = extended
        self._windows = self._windows_of(extended)

    def _windows_of(self, extended: np.ndarray) -> list[np.ndarray]:
        """For each phase, row i: the len(taps) samples the i-th kept output is computed from."""
        rows = len(extended) - self._keep
        step = extended.strides[0]
        shape = (rows, self._keep + 1)
        every = np.lib.stride_tricks.as_strided(extended, shape, (step, step), writeable=False)
        return [every[phase :: self.factor] for phase in range(self.factor)]
