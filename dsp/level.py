"""Loudness of each hop in dBFS and a slow estimate of the room's noise floor."""

from __future__ import annotations

import math

import numpy as np

SILENCE_DBFS = -120.0


def _dbfs(mean_power: float) -> float:
    return 10.0 * math.log10(mean_power) if mean_power > 1e-12 else SILENCE_DBFS


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to a full-scale square wave (+-1.0 -> 0 dBFS)."""
    return _dbfs(float(np.dot(samples, samples)) / max(len(samples), 1))


def rms_dbfs_rows(rows: np.ndarray) -> list[float]:
    """`rms_dbfs` of each row of a 2-D float32 array, in one call for all rows. With numpy >= 2
    bit for bit: np.vecdot takes each row's dot product as np.dot takes one
    (tests/test_blocks.py checks)."""
    length = max(rows.shape[1], 1)
    powers = np.vecdot(rows, rows) if hasattr(np, "vecdot") else np.einsum("ij,ij->i", rows, rows)
    return [_dbfs(power / length) for power in powers.tolist()]


class NoiseFloor:
    """Minimum-following noise floor: drops at once to a quieter hop, rises slowly.

    A piano note decays for seconds, so the floor must rise much more slowly than notes decay
    (default 2 dB/s) or a held chord would become "the floor".
    """

    def __init__(self, hop_s: float, rise_db_per_s: float = 2.0, initial_dbfs: float = -70.0):
        self._rise_per_hop = rise_db_per_s * hop_s
        self.dbfs = initial_dbfs

    def update(self, level_dbfs: float) -> float:
        if level_dbfs < self.dbfs:
            self.dbfs = level_dbfs
        else:
            self.dbfs = min(level_dbfs, self.dbfs + self._rise_per_hop)
        return self.dbfs

    def hold(self, level_dbfs: float) -> float:
        """As `update`, but without rising: for hops the floor must not learn from."""
        self.dbfs = min(self.dbfs, level_dbfs)
        return self.dbfs


class LevelMeter:
    """Streaming processor: feed blocks, get one (level_dbfs, floor_dbfs) pair per full hop."""

    def __init__(self, sample_rate: int, hop: int, rise_db_per_s: float = 2.0) -> None:
        self.sample_rate = sample_rate
        self.hop = hop
        self._floor = NoiseFloor(hop / sample_rate, rise_db_per_s)
        self._pending = np.zeros(0, np.float32)

    def feed(self, block: np.ndarray) -> list[tuple[float, float]]:
        data = np.concatenate((self._pending, block))
        n_hops = len(data) // self.hop
        readings = [self.measure(data[i * self.hop : (i + 1) * self.hop]) for i in range(n_hops)]
        self._pending = data[n_hops * self.hop :]
        return readings

    def measure(self, hop_samples: np.ndarray) -> tuple[float, float]:
        level = rms_dbfs(hop_samples)
        return level, self._floor.update(level)

    def flush(self) -> list[tuple[float, float]]:
        if len(self._pending) == 0:
            return []
        reading = self.measure(self._pending)
        self._pending = np.zeros(0, np.float32)
        return [reading]
