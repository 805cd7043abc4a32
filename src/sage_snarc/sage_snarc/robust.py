"""Running robust statistics and the saturating map every SNARC axis uses.

A score must mean the same on a quiet and on a busy day, so raw errors and distances are
turned into robust z-scores against their own recent history (median and MAD over the last
`window` values), then squashed into [0, 1] by `saturate`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

# MAD of a normal distribution times this constant estimates its standard deviation.
MAD_TO_SIGMA = 1.4826
# The 90th and 95th percentiles of a normal lie this many standard deviations above its
# median.
Q90_TO_SIGMA = 1.2816
Q95_TO_SIGMA = 1.6449
# Values more than this many MAD spreads above the median are left out of the tail estimate.
TRIM_Z = 8.0
# Values a SNARC channel needs before it scores (warm-up; language starts from priors).
MIN_COUNT = 16


def saturate(x: float) -> float:
    """Map x >= 0 to [0, 1): 1 - exp(-x^2); 0.22 at 0.5, 0.63 at 1, 0.98 at 2.

    Non-finite or negative x maps to 0 (NaN) or 1 (+inf) so scores stay in range.
    """
    if x != x:  # NaN
        return 0.0
    if x <= 0.0:
        return 0.0
    if x == math.inf:
        return 1.0
    return 1.0 - math.exp(-x * x)


def chord(sims: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors from their dot products: sqrt(2 - 2 cos).

    Unlike 1 - cos, it grows linearly with a small perturbation, so small differences are
    not squashed below float32 resolution.
    """
    return np.sqrt(np.maximum(2.0 - 2.0 * np.asarray(sims, dtype=np.float64), 0.0))


def clip01(x: float) -> float:
    """Clip to [0, 1]; NaN becomes 0."""
    if x != x:
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else float(x)


class RobustStats:
    """Median and robust spread of the last `window` values of one channel.

    The spread is the largest of 1.4826 MAD, (q90 - median) / 1.2816 and (q95 - median) /
    1.6449: all three estimate sigma for a normal distribution, the last two follow a heavier
    upper tail (prediction errors and distances are right-skewed, and a static camera gives
    mostly identical embeddings, i.e. a zero MAD). The tail quantiles are taken over the values
    within TRIM_Z MAD spreads of the median, so events, even frequent ones, do not inflate it.

    Values are winsorised at `clip_z` robust standard deviations before they enter the
    window, so one burst cannot inflate the scale, while a lasting change of level still
    moves the median within about half a window. Until `min_count` values have been seen
    the optional prior (center, scale) is used; without a prior `z` returns 0.
    """

    def __init__(self, window: int = 256, min_count: int = 16, *,
                 prior: tuple[float, float] | None = None, abs_floor: float = 1e-6,
                 rel_floor: float = 0.05, clip_z: float = 12.0, refresh: int = 8) -> None:
        """Create empty statistics.

        Args:
            window: number of recent values kept.
            min_count: values needed before the window's own statistics are used.
            prior: (center, scale) used while warming up, or None.
            abs_floor: smallest scale (guards constant signals).
            rel_floor: smallest scale as a fraction of |median|.
            clip_z: winsorising bound in robust standard deviations.
            refresh: recompute median and MAD every `refresh` updates (cost control).
        """
        self._buf = np.zeros(max(4, int(window)), dtype=np.float64)
        self._n = 0
        self._pos = 0
        self._min_count = max(1, int(min_count))
        self._prior = prior
        self._abs_floor = float(abs_floor)
        self._rel_floor = float(rel_floor)
        self._clip_z = float(clip_z)
        self._refresh = max(1, int(refresh))
        self._since = 0
        self._center = 0.0
        self._scale = 1.0

    @property
    def count(self) -> int:
        """Number of values ever added (saturates at nothing; the window keeps the last ones)."""
        return self._n

    @property
    def ready(self) -> bool:
        """True once `min_count` values were seen or a prior was given."""
        return self._n >= self._min_count or self._prior is not None

    def _recompute(self) -> None:
        k = min(self._n, self._buf.shape[0])
        vals = self._buf[:k]
        # Order statistics by partition (much cheaper than np.percentile on short windows).
        i50 = (k - 1) // 2
        med = float(np.partition(vals, i50)[i50])
        mad_sigma = MAD_TO_SIGMA * float(np.partition(np.abs(vals - med), i50)[i50])
        floor = max(self._abs_floor, self._rel_floor * abs(med))
        # Tail quantiles of the background only: values far beyond the MAD spread are events
        # (however frequent), which must not define what is normal.
        body = vals[vals <= med + TRIM_Z * max(mad_sigma, floor)]
        n = body.shape[0]
        i90 = min(n - 1, int(0.90 * (n - 1) + 0.5))
        i95 = min(n - 1, int(0.95 * (n - 1) + 0.5))
        part = np.partition(body, (i90, i95))
        q90, q95 = float(part[i90]), float(part[i95])
        self._center = med
        self._scale = max(mad_sigma, (q90 - med) / Q90_TO_SIGMA, (q95 - med) / Q95_TO_SIGMA,
                          floor)
        self._since = 0

    def center_scale(self) -> tuple[float, float]:
        """Current (center, scale); the prior while warming up; (0, 1) when not ready."""
        if self._n >= self._min_count:
            return self._center, self._scale
        if self._prior is not None:
            return float(self._prior[0]), max(float(self._prior[1]), self._abs_floor)
        return 0.0, 1.0

    def z(self, x: float, min_scale: float = 0.0) -> float:
        """Robust z-score of x (scale at least min_scale); 0 when not ready or not finite."""
        if not math.isfinite(x) or not self.ready:
            return 0.0
        center, scale = self.center_scale()
        return (x - center) / max(scale, min_scale)

    def update(self, x: float) -> None:
        """Add one value (non-finite values are ignored)."""
        if not math.isfinite(x):
            return
        if self._n >= self._min_count:
            bound = self._clip_z * self._scale
            x = min(max(x, self._center - bound), self._center + bound)
        self._buf[self._pos] = x
        self._pos = (self._pos + 1) % self._buf.shape[0]
        self._n += 1
        self._since += 1
        if self._n <= self._min_count or self._since >= self._refresh:
            self._recompute()

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint of the window and counters."""
        return {'buf': self._buf.copy(), 'n': self._n, 'pos': self._pos,
                'since': self._since, 'center': self._center, 'scale': self._scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by `state_dict` (window sizes must match)."""
        buf = np.asarray(state['buf'], dtype=np.float64)
        if buf.shape != self._buf.shape:
            raise ValueError(f'window size {buf.shape[0]} != {self._buf.shape[0]}')
        self._buf = buf.copy()
        self._n = int(state['n'])
        self._pos = int(state['pos'])
        self._since = int(state['since'])
        self._center = float(state['center'])
        self._scale = float(state['scale'])
