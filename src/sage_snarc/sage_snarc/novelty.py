"""Novelty: distance to the nearest recent input and the nearest stored memory.

`RecentWindow` keeps the last inputs of a modality; `MemoryIndex` holds what memory stored
(fed from /sage/memory/stored) and answers nearest-neighbour queries with an exact dot
product while small and an inverted-file (IVF) coarse quantiser once large, so a query stays
well under a millisecond at 100k memories. `NoveltyModel` combines both and normalises the
distance with running robust statistics (README.md, "novelty").
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from sage_snarc.predictor import Metric
from sage_snarc.robust import RobustStats, chord, saturate

# Smallest spread of the nearest distance (chord units): a static scene's specks are not novel.
MIN_SCALE = 0.005
# ... and as a multiple of its median: each encoder model spreads a scene by its own scale (one
# fitted to the room by sleep put a calm scene's embeddings about 12 % further apart).
REL_MIN_SCALE = 2.0
EXACT_MAX = 4096  # memories searched exactly before the IVF index is used
IVF_SEED = 0  # seed of the IVF quantiser's training sample (the same memories, the same index)


def unit(x: np.ndarray) -> np.ndarray | None:
    """x / |x| as float32, or None when x is empty, not finite or zero."""
    if x.size == 0:
        return None
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.max(np.abs(x)))
    if not math.isfinite(peak) or peak <= 0.0:
        return None
    x = x / np.float32(peak)  # no overflow in the dot product below
    norm = math.sqrt(float(np.dot(x, x)))
    if not math.isfinite(norm) or norm <= 1e-12:
        return None
    return x / np.float32(norm)


class RecentWindow:
    """Ring buffer of the last `capacity` vectors of one modality."""

    def __init__(self, capacity: int, metric: Metric = 'cosine') -> None:
        self.capacity = max(1, int(capacity))
        self.metric: Metric = metric
        self._buf: np.ndarray | None = None  # (capacity, dim) float32
        self._n = 0
        self._pos = 0

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Distances from x to every stored vector (empty when none or dims differ)."""
        buf = self._buf
        if buf is None or self._n == 0 or buf.shape[1] != x.shape[0]:
            return np.empty(0, dtype=np.float32)
        rows = buf[:len(self)]
        if self.metric == 'cosine':
            return chord(rows @ x)
        return np.sqrt(np.sum((rows - x) ** 2, axis=1))

    def add(self, x: np.ndarray) -> None:
        """Append x (the window restarts if the dimension changed)."""
        if self._buf is None or self._buf.shape[1] != x.shape[0]:
            self._buf = np.zeros((self.capacity, x.shape[0]), dtype=np.float32)
            self._n = 0
            self._pos = 0
        self._buf[self._pos] = x
        self._pos = (self._pos + 1) % self.capacity
        self._n += 1

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'buf': None if self._buf is None else self._buf.copy(),
                'n': self._n, 'pos': self._pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint (the capacity may differ: newest rows are kept)."""
        buf = state['buf']
        self._buf, self._n, self._pos = None, 0, 0
        if buf is None:
            return
        buf = np.asarray(buf, dtype=np.float32)
        n, pos = int(state['n']), int(state['pos'])
        k = min(n, buf.shape[0])
        # Oldest to newest, then re-add the newest ones that fit.
        order = [(pos - k + i) % buf.shape[0] for i in range(k)] if n > buf.shape[0] else \
            list(range(k))
        for i in order[-self.capacity:]:
            self.add(buf[i])


class MemoryIndex:
    """Nearest stored memory by cosine similarity over L2-normalised float32 vectors.

    Exact (one matrix-vector product) up to `exact_max` vectors. Beyond that a spherical
    k-means coarse quantiser with about sqrt(n) lists is trained (deterministically: seeded
    sample, fixed iterations), each list's vectors are kept in one contiguous block, and a
    query scans the `nprobe` closest lists; the quantiser is retrained whenever the index has
    doubled since the last training. Approximate answers can only overestimate the distance,
    i.e. make an input look slightly more novel.
    """

    def __init__(self, dim: int, *, exact_max: int = EXACT_MAX, nprobe: int = 8,
                 seed: int = IVF_SEED, train_size: int = 16384, iters: int = 6) -> None:
        self.dim = int(dim)
        self.exact_max = int(exact_max)
        self.nprobe = int(nprobe)
        self.seed = int(seed)
        self.train_size = int(train_size)
        self.iters = int(iters)
        self._data = np.zeros((1024, self.dim), dtype=np.float32)  # insertion order
        self._list = np.zeros(1024, dtype=np.int32)  # each vector's list, once built
        self._n = 0
        self._centroids: np.ndarray | None = None  # (nlist, dim)
        self._blocks: list[np.ndarray] = []  # per list: (capacity, dim), first _sizes[i] used
        self._sizes: list[int] = []
        self._built_at = 0

    def __len__(self) -> int:
        return self._n

    def add(self, x: np.ndarray) -> None:
        """Add one unit vector of this index's dimension."""
        if self._n == self._data.shape[0]:
            grown = np.zeros((2 * self._data.shape[0], self.dim), dtype=np.float32)
            grown[:self._n] = self._data[:self._n]
            self._data = grown
            self._list = np.resize(self._list, grown.shape[0])
        self._data[self._n] = x
        if self._centroids is not None:
            self._list[self._n] = i = int(np.argmax(self._centroids @ x))
            self._append(i, x)
        self._n += 1
        if self._n > self.exact_max and self._n >= 2 * self._built_at:
            self._build(self._n)

    def _append(self, i: int, x: np.ndarray) -> None:
        block, size = self._blocks[i], self._sizes[i]
        if size == block.shape[0]:
            grown = np.zeros((max(8, 2 * size), self.dim), dtype=np.float32)
            grown[:size] = block[:size]
            self._blocks[i] = block = grown
        block[size] = x
        self._sizes[i] = size + 1

    def _build(self, n: int) -> None:
        data = self._data[:n]
        nlist = int(min(4096, max(16, round(math.sqrt(n)))))
        rng = np.random.default_rng(self.seed)
        sample = data[np.sort(rng.permutation(n)[:max(self.train_size, nlist)])]
        cents = sample[np.sort(rng.permutation(sample.shape[0])[:nlist])].copy()
        for _ in range(self.iters):
            assign = self._assign(sample, cents)
            sums = np.zeros_like(cents)
            np.add.at(sums, assign, sample)
            norms = np.linalg.norm(sums, axis=1)
            keep = norms > 1e-12
            cents[keep] = sums[keep] / norms[keep, None]
        self._fill(cents, self._assign(data, cents))
        self._built_at = n

    def _fill(self, cents: np.ndarray, assign: np.ndarray) -> None:
        """The lists from each stored vector's list, in insertion order within a list."""
        data = self._data[:assign.shape[0]]
        self._list[:assign.shape[0]] = assign
        order = np.argsort(assign, kind='stable')
        bounds = np.searchsorted(assign[order], np.arange(cents.shape[0] + 1))
        self._centroids = cents
        self._blocks = [np.ascontiguousarray(data[order[bounds[i]:bounds[i + 1]]])
                        for i in range(cents.shape[0])]
        self._sizes = [int(bounds[i + 1] - bounds[i]) for i in range(cents.shape[0])]

    @staticmethod
    def _assign(x: np.ndarray, cents: np.ndarray, chunk: int = 8192) -> np.ndarray:
        out = np.empty(x.shape[0], dtype=np.int64)
        for s in range(0, x.shape[0], chunk):
            out[s:s + chunk] = np.argmax(x[s:s + chunk] @ cents.T, axis=1)
        return out

    def vectors(self) -> np.ndarray:
        """The stored unit vectors in insertion order (a view)."""
        return self._data[:self._n]

    def nearest(self, x: np.ndarray) -> float:
        """Chord distance sqrt(2 - 2 cos) to the nearest stored vector; inf when empty."""
        if self._n == 0:
            return math.inf
        if self._centroids is None:
            return float(chord(np.max(self._data[:self._n] @ x)))
        sims = self._centroids @ x
        k = min(self.nprobe, sims.shape[0])
        best = -math.inf
        for p in np.argpartition(-sims, k - 1)[:k]:
            size = self._sizes[p]
            if size:
                best = max(best, float(np.max(self._blocks[p][:size] @ x)))
        return math.inf if best == -math.inf else float(chord(best))

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint: the vectors, when the quantiser was trained, and (once it was) its
        centroids and every vector's list, so a load needs no k-means (0.35 s of SNARC's start
        with a day's memories)."""
        state: dict[str, Any] = {'dim': self.dim, 'data': self._data[:self._n].copy(),
                                 'built_at': self._built_at}
        if self._centroids is not None:
            state['centroids'] = self._centroids.copy()
            state['assign'] = self._list[:self._n].copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; queries answer as before the save. A checkpoint without the quantiser (or
        one whose lists do not match its vectors) retrains it on the same prefix."""
        data = np.asarray(state['data'], dtype=np.float32).reshape(-1, self.dim)
        built_at = int(state['built_at'])
        self._data = np.zeros((max(1024, data.shape[0]), self.dim), dtype=np.float32)
        self._data[:data.shape[0]] = data
        self._list = np.zeros(self._data.shape[0], dtype=np.int32)
        self._n = data.shape[0]
        self._centroids, self._blocks, self._sizes, self._built_at = None, [], [], 0
        if not built_at:
            return
        cents = state.get('centroids')
        assign = state.get('assign')
        if (cents is not None and assign is not None
                and np.asarray(assign).shape == (self._n,)):
            cents = np.asarray(cents, dtype=np.float32).reshape(-1, self.dim)
            assign = np.asarray(assign, dtype=np.int64)
            if assign.size == 0 or (assign.min() >= 0 and assign.max() < cents.shape[0]):
                self._fill(cents, assign)
                self._built_at = built_at
                return
        self._build(built_at)
        cents = self._centroids
        assert cents is not None
        for idx in range(built_at, self._n):
            self._list[idx] = i = int(np.argmax(cents @ self._data[idx]))
            self._append(i, self._data[idx])


class NoveltyModel:
    """Novelty of one modality.

    d = min(distance to the nearest of the last `window` inputs, distance to the nearest
    memory); novelty = saturate(z(d) / z_ref) with z from the running robust statistics of
    d itself. The same statistics say what distance is "noise level" for this modality, which
    habituation and reward use to decide whether two inputs are the same stimulus.
    """

    def __init__(self, *, window: int, z_ref: float, stats_window: int, min_count: int,
                 metric: Metric = 'cosine', prior: tuple[float, float] | None = None,
                 floor: float = 1e-3, rel_floor: float = 0.05) -> None:
        self.recent = RecentWindow(window, metric)
        self.metric: Metric = metric
        self.memory: MemoryIndex | None = None
        self.stats = RobustStats(stats_window, min_count, prior=prior, abs_floor=floor,
                                 rel_floor=rel_floor)
        self._z_ref = z_ref
        self._restarted = False

    def restart(self) -> None:
        """Forget the recent inputs (they came from another encoder model): the next input
        starts the window again and is not new for that. The distance statistics stay."""
        self.recent = RecentWindow(self.recent.capacity, self.metric)
        self._restarted = True

    def distance(self, x: np.ndarray) -> float:
        """Nearest distance over the recent window and memory (inf when both are empty)."""
        d_recent = self.recent.distances(x)
        d = float(np.min(d_recent)) if d_recent.size else math.inf
        if self.memory is not None and self.memory.dim == x.shape[0]:
            d = min(d, self.memory.nearest(x))
        return d

    def observe(self, x: np.ndarray) -> tuple[float, float]:
        """Score x, then remember it in the recent window.

        Returns:
            (novelty in [0, 1], nearest distance d; inf when nothing was seen before).
        """
        d = self.distance(x)
        if self._restarted:
            score = 0.0  # the first input of another model: nothing of its kind to compare
        elif math.isinf(d):
            score = 1.0 if self.stats.ready else 0.0
        else:
            score = saturate(self.stats.z(d) / self._z_ref)
            self.stats.update(d)
        self.recent.add(x)
        self._restarted = False
        return score, d

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint: the recent window and the distance statistics (not the memory)."""
        return {'recent': self.recent.state_dict(), 'stats': self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by `state_dict`."""
        self.recent.load_state_dict(state['recent'])
        self.stats.load_state_dict(state['stats'])

    def distance_z(self, d: float) -> float:
        """How many noise-level deviations d lies above the typical nearest distance."""
        center, scale = self.stats.center_scale()
        return (d - center) / scale
