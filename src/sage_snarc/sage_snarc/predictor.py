"""Per-modality predictors whose errors make the surprise axis.

Each channel of a modality (the embedding, the code grid, each raw feature, the encoder's
reconstruction error) has a small predictor of its next value; the prediction error is
turned into a robust z-score against the channel's own recent errors (`RobustStats`), and
surprise is the saturated largest z (see README.md, "surprise").
"""
from __future__ import annotations

from functools import lru_cache
import math
from typing import Any, Literal

import numpy as np

from sage_snarc.robust import RobustStats, chord, saturate

Metric = Literal['cosine', 'l2']
# Prediction errors beyond this robust z restart the channel's predictor at the new value.
RESTART_Z = 8.0
# SNARC's surprise model (ModalityState.create):
PREDICTOR_ALPHA = 0.8  # smoothing of each channel's predictor: the newest value weighs most
TREND_BETA = 0.05  # trend smoothing of the scalar (Holt) predictors: only a lasting ramp is one
COMBINE_CHANNELS = 2  # strongest channels whose z add in quadrature (independent evidence)
# The code-grid change (`grid_change`): new codes per CODE_BLOCK-cell vision block, blocks every
# CODE_STRIDE cells (overlapping: an object on a block boundary is whole in one), compared with
# the last grid's block widened by CODE_MARGIN cells (content that moved this little is not new).
CODE_BLOCK = 6
CODE_STRIDE = 3
CODE_MARGIN = 1
AUDIO_HOP_CELLS = 4  # grid columns an audio window slides per hop (16 x hop 4096 / window 16384)
# Smallest spreads of prediction errors: sensor noise in a static scene is not a surprise.
CODES_FLOOR = 0.07  # code-grid change (fraction of a block): a few flipped cells
COLOUR_CHANGE_FLOOR = 0.005  # rg chromaticity: noise moves a block by a few thousandths
GREY_CHANGE_FLOOR = 0.015  # luma over the frame's mean: a calm realistic scene's largest is 0.02


class VectorPredictor:
    """Exponentially weighted mean of past vectors as the prediction of the next one.

    The error is the chord distance sqrt(2 - 2 cos) for embeddings or the Euclidean distance for
    raw feature vectors (IMU).
    """

    def __init__(self, alpha: float, metric: Metric = 'cosine') -> None:
        self.alpha = float(alpha)
        self.metric: Metric = metric
        self.mean: np.ndarray | None = None

    def error(self, x: np.ndarray) -> float:
        """Prediction error of x, NaN when there is no prediction yet or dims differ."""
        if self.mean is None or self.mean.shape != x.shape:
            return math.nan
        if self.metric == 'cosine':
            norm = float(np.linalg.norm(self.mean))
            if norm <= 1e-12:
                return math.nan
            return float(chord(float(np.dot(self.mean, x)) / norm))
        return float(np.linalg.norm(x - self.mean))

    def restart(self, x: np.ndarray) -> None:
        """Predict x from now on."""
        self.mean = x.astype(np.float64).copy()

    def update(self, x: np.ndarray) -> None:
        """Move the prediction towards x (restart on a dimension change)."""
        if self.mean is None or self.mean.shape != x.shape:
            self.mean = x.astype(np.float64).copy()
        else:
            self.mean += self.alpha * (x - self.mean)


class ScalarPredictor:
    """Holt's linear-trend smoothing: a steady ramp is predicted, a step is not."""

    def __init__(self, alpha: float, beta: float) -> None:
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.level: float | None = None
        self.trend = 0.0

    def error(self, x: float) -> float:
        """Absolute error of x against level + trend; NaN before the first value."""
        if self.level is None:
            return math.nan
        return abs(x - (self.level + self.trend))

    def restart(self, x: float) -> None:
        """Predict x, with no trend, from now on."""
        self.level = x
        self.trend = 0.0

    def update(self, x: float) -> None:
        """Fold x into level and trend."""
        if self.level is None:
            self.level = x
            return
        prev = self.level
        self.level = self.alpha * x + (1.0 - self.alpha) * (self.level + self.trend)
        self.trend = self.beta * (self.level - prev) + (1.0 - self.beta) * self.trend


@lru_cache(maxsize=8)
def _block_cells(h: int, w: int, block: int, stride: int, margin: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Flat cell indices of every block (n, block^2) and of its widened reference (n, m).

    Blocks start every `stride` cells (the last one flush with the far edge, so no cell is
    left out); a reference clipped at the grid's edge repeats its first cell to fill the row
    (a repeat changes no set of codes).
    """
    def starts(n: int) -> list[int]:
        out = list(range(0, n - block + 1, stride))
        return out if out[-1] == n - block else out + [n - block]

    cur, ref = [], []
    width = (block + 2 * margin) ** 2
    for y in starts(h):
        for x in starts(w):
            cur.append((np.arange(y, y + block)[:, None] * w
                        + np.arange(x, x + block)[None, :]).ravel())
            ys = np.arange(max(0, y - margin), min(h, y + block + margin))
            xs = np.arange(max(0, x - margin), min(w, x + block + margin))
            r = (ys[:, None] * w + xs[None, :]).ravel()
            ref.append(np.concatenate([r, np.full(width - r.size, r[0])]))
    return np.stack(cur), np.stack(ref)


def grid_change(last: np.ndarray, codes: np.ndarray, block: int, shift: int,
                margin: int = 1, stride: int = 0) -> float:
    """How much of a code grid is new where it is newest, NaN when grids do not compare.

    Args:
        last, codes: consecutive (h, w) grids.
        block: side of the square blocks (cells) the grid is cut into. Per block, the share
            of its cells whose code appears nowhere in the same block of the last grid
            widened by `margin` cells (so content that moved a little is not new); the result
            is the newest block's share minus the median block's, so a change everywhere (a
            pan, an exposure step) scores low and new content in one place (an object that
            appeared) high. 0: the share of cells that differ, over the whole grid.
        shift: columns the content moves between consecutive grids (an audio grid slides by
            one hop); the overlapping columns are compared.
        margin: cells the last grid's block is widened by.
        stride: cells between block origins (0 = block: blocks side by side). Overlapping
            blocks (stride < block) keep an object that straddles a block boundary whole in
            one of them instead of splitting its new codes over four.
    """
    if last.shape != codes.shape or not codes.size or shift >= codes.shape[1]:
        return math.nan
    if shift > 0:
        last, codes = last[:, shift:], codes[:, :-shift]
    h, w = codes.shape
    if block <= 0 or block > min(h, w):
        return float(np.count_nonzero(last != codes)) / codes.size
    cur, ref = _block_cells(h, w, block, stride if stride > 0 else block, margin)
    flat_last, flat_codes = last.ravel(), codes.ravel()
    # seen[b, c]: code c occurs in block b's widened reference of the last grid.
    seen = np.zeros((cur.shape[0], int(max(flat_last.max(), flat_codes.max())) + 1), bool)
    rows = np.arange(cur.shape[0])[:, None]
    seen[rows, flat_last[ref]] = True
    shares = 1.0 - seen[rows, flat_codes[cur]].mean(axis=1)
    return float(shares.max() - np.median(shares))


class SurpriseModel:
    """Surprise of one modality: robust z of each channel's prediction error, saturated.

    surprise = saturate(sqrt(sum of the `combine` largest positive z_c^2) / z_ref) (combine 1:
    the largest z), where z_c = (err_c - median_c) / robust spread over the channel's last
    `window` errors. Channels appear when their first value arrives.
    """

    def __init__(self, *, alpha: float, beta: float, z_ref: float, window: int,
                 min_count: int, priors: dict[str, tuple[float, float]] | None = None,
                 floors: dict[str, float] | None = None, default_floor: float = 1e-3,
                 vector_metric: Metric = 'cosine', level_floor: float = 0.01,
                 code_block: int = 0, code_shift: int = 0, code_margin: int = 1,
                 code_stride: int = 0, combine: int = 1) -> None:
        self._alpha = alpha
        self._beta = beta
        self._z_ref = z_ref
        self._window = window
        self._min_count = min_count
        self._priors = dict(priors or {})
        self._floors = dict(floors or {})
        self._default_floor = default_floor
        self._level_floor = float(level_floor)
        self._vector_metric: Metric = vector_metric
        self._code_block = int(code_block)
        self._code_shift = int(code_shift)
        self._code_margin = max(0, int(code_margin))
        self._code_stride = max(0, int(code_stride))
        self._combine = max(1, int(combine))
        self.vectors: dict[str, VectorPredictor] = {}
        self.scalars: dict[str, ScalarPredictor] = {}
        self.stats: dict[str, RobustStats] = {}
        self.last_codes: np.ndarray | None = None
        self.last_z: dict[str, float] = {}

    def _stats(self, name: str) -> RobustStats:
        st = self.stats.get(name)
        if st is None:
            st = RobustStats(self._window, self._min_count, prior=self._priors.get(name),
                             abs_floor=self._floors.get(name, self._default_floor))
            self.stats[name] = st
        return st

    def observe(self, vectors: dict[str, np.ndarray], scalars: dict[str, float],
                codes: np.ndarray | None = None,
                direct: dict[str, float] | None = None, hops: int = 1) -> float:
        """Score one input, then learn from it.

        Args:
            vectors: named vectors (already finite); errors use the model's vector metric.
            scalars: named finite raw features, each with a Holt predictor.
            codes: code grid; error = `grid_change` against the last grid.
            direct: channels that already are errors (e.g. reconstruction error).
            hops: hops of the stream since the last grid (`ModalityState.hops_to`): the
                content slid code_shift cells per hop; 0 (a late or repeated input): the grid
                is not compared and the last one stays the reference.

        Returns:
            Surprise in [0, 1].
        """
        errors: dict[str, float] = {}
        min_scale: dict[str, float] = {}
        learn: list[tuple[VectorPredictor | ScalarPredictor, str, Any]] = []
        for name, vec in vectors.items():
            pred = self.vectors.get(name)
            if pred is None:
                pred = self.vectors[name] = VectorPredictor(self._alpha, self._vector_metric)
            errors['v.' + name] = pred.error(vec)
            learn.append((pred, 'v.' + name, vec))
        for name, value in scalars.items():
            sp = self.scalars.get(name)
            if sp is None:
                sp = self.scalars[name] = ScalarPredictor(self._alpha, self._beta)
            errors['f.' + name] = sp.error(value)
            # A change below 1 % of the feature's level (0.5 dB of -50 dBFS, half a grey
            # level of mid brightness) is not news however quiet the signal has been.
            min_scale['f.' + name] = self._level_floor * abs(value)
            learn.append((sp, 'f.' + name, value))
        if codes is not None and hops > 0:
            last = self.last_codes
            if last is not None:
                errors['codes'] = grid_change(last, codes, self._code_block,
                                              self._code_shift * hops, self._code_margin,
                                              self._code_stride)
            self.last_codes = codes.copy()
        for name, value in (direct or {}).items():
            errors['d.' + name] = value
        self.last_z = {}
        for name, err in errors.items():
            if not math.isfinite(err):
                continue
            st = self._stats(name)
            z = st.z(err, min_scale.get(name, 0.0))
            st.update(err)
            self.last_z[name] = z
        for pred, name, value in learn:
            # A jump far outside the error statistics restarts the predictor at the new
            # value: a step is news once, a one-off glitch twice (there and back).
            if self.last_z.get(name, 0.0) > RESTART_Z:
                pred.restart(value)
            else:
                pred.update(value)
        # The strongest channels' evidence adds in quadrature: an object that shifts the
        # brightness a little and the codes in one place a little is one surprise, not two
        # small ones; one noisy channel alone still needs its full z.
        top = sorted((z for z in self.last_z.values() if z > 0.0),
                     reverse=True)[:self._combine]
        return saturate(math.sqrt(sum(z * z for z in top)) / self._z_ref)

    def restart(self, channels: tuple[str, ...]) -> None:
        """Forget the predictions of `channels` (vector, scalar or 'codes' names): the next
        input sets them and is not scored on them. Their error statistics stay."""
        for name in channels:
            self.vectors.pop(name, None)
            self.scalars.pop(name, None)
        if 'codes' in channels:
            self.last_codes = None

    def forget_errors(self, channels: tuple[str, ...]) -> None:
        """Forget the error statistics of `channels` (as in `restart`): they were learnt on
        another signal. Until min_count new errors are in, those channels score 0."""
        names = {p + c for c in channels for p in ('', 'v.', 'f.', 'd.')}
        self.stats = {k: st for k, st in self.stats.items() if k not in names}

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint of predictors and statistics."""
        return {
            'vectors': {k: None if p.mean is None else p.mean.copy()
                        for k, p in self.vectors.items()},
            'scalars': {k: [p.level, p.trend] for k, p in self.scalars.items()},
            'stats': {k: s.state_dict() for k, s in self.stats.items()},
            'last_codes': None if self.last_codes is None else self.last_codes.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by `state_dict`."""
        self.vectors = {}
        for k, mean in state['vectors'].items():
            p = VectorPredictor(self._alpha, self._vector_metric)
            p.mean = None if mean is None else np.asarray(mean, dtype=np.float64).copy()
            self.vectors[k] = p
        self.scalars = {}
        for k, (level, trend) in state['scalars'].items():
            sp = ScalarPredictor(self._alpha, self._beta)
            sp.level = None if level is None else float(level)
            sp.trend = float(trend)
            self.scalars[k] = sp
        self.stats = {}
        for k, st in state['stats'].items():
            self._stats(k).load_state_dict(st)
        codes = state['last_codes']
        self.last_codes = None if codes is None else np.asarray(codes).copy()
