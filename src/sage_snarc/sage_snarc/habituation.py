"""Habituation: a stimulus that keeps coming back loses salience; a changed one does not.

Each modality keeps up to `max_traces` traces (a stimulus descriptor, a strength h in [0, 1]
and when it was last reinforced); see `ModalityState.descriptor` in snarc_core for what the
descriptor is per modality. An input matches the closest trace if their chord distance is at
most match_dist. The stimulus part of salience is multiplied by 1 - max_drop * max_i h_i k(d_i),
where k is 1 within match_dist and falls off beyond it as a Gaussian of width near_miss (a near
miss counts partly; 0 = not at all), and h decays back to 0 with time constant recovery_s
(spontaneous recovery).

An episode is a run of noticed inputs of one modality less than `episode_gap_s` apart (the
windows an audio event spans, the frames of an object's arrival). It counts as one repeat: its
onset is matched by descriptor and reinforces (h <- h + rate (1 - h)) or starts (h = rate)
one trace; its later inputs share that trace (or a stronger one they recognise), so the windows
of a repeated sound fade together whatever part of it each holds, and they also fade within
the episode by an episode-local strength (kept by the core).

One stimulus can leave traces that do not match each other: an impact whose attack falls at the
end of an audio hop looks unlike the same impact caught whole. When an episode that started a
trace moves to a stronger one, the two are linked (`share`): the link follows the stronger
trace's strength from then on, so the next time the stimulus is caught at that phase it is
habituated as much.

Habituation is to stimuli without consequences: a reward credited to a stimulus weakens its
traces (h <- h (1 - |r| e), `relieve`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sage_snarc.robust import chord


class Habituation:
    """Habituation traces of one modality."""

    def __init__(self, *, max_traces: int, rate: float, max_drop: float, recovery_s: float,
                 match_dist: float, near_miss: float | None = None,
                 merge: float = 0.2) -> None:
        self.max_traces = max(1, int(max_traces))
        self.rate = float(rate)
        self.max_drop = float(max_drop)
        self.recovery_s = float(recovery_s)
        self.match_dist = float(match_dist)
        self.near_miss = self.match_dist / 3.0 if near_miss is None else float(near_miss)
        self.merge = float(merge)
        self.vecs: np.ndarray | None = None  # (k, dim)
        self.h = np.zeros(0, dtype=np.float64)
        self.t = np.zeros(0, dtype=np.float64)
        self.parent = np.zeros(0, dtype=np.int64)  # linked trace (-1: none), see `share`

    def _root(self, index: int) -> int:
        seen = 0
        while self.parent[index] >= 0 and seen < self.parent.shape[0]:
            index = int(self.parent[index])
            seen += 1
        return index

    def _sync(self, root: int) -> None:
        """Give the traces linked to `root` its strength and time."""
        kids = self.parent == root
        self.h[kids] = self.h[root]
        self.t[kids] = self.t[root]

    def share(self, child: int, other: int, now: float) -> None:
        """Link trace `child` to trace `other` (the same stimulus caught another way)."""
        n = self.h.shape[0]
        if not (0 <= child < n and 0 <= other < n):
            return
        root = self._root(other)
        if root == child:
            return
        strength = self._strength(now)
        self.h[root] = max(float(strength[root]), float(strength[child]))
        self.t[root] = now
        self.parent[self.parent == child] = root
        self.parent[child] = root
        self._sync(root)

    def _distances(self, x: np.ndarray) -> np.ndarray:
        vecs = self.vecs
        if vecs is None or vecs.shape[0] == 0 or vecs.shape[1] != x.shape[0]:
            return np.empty(0)
        return chord(vecs @ x)

    def _strength(self, now: float) -> np.ndarray:
        return self.h * np.exp(-np.maximum(now - self.t, 0.0) / self.recovery_s)

    def match(self, x: np.ndarray, now: float) -> tuple[int, float]:
        """Closest trace within match_dist of unit descriptor x, and the salience factor.

        The factor is 1 - max_drop * max_i h_i k(d_i), with k = 1 within match_dist and
        exp(-0.5 ((d - match_dist) / near_miss)^2) beyond: a near miss (a sound caught at another
        phase of the audio window) is partly habituated instead of not at all.

        Returns:
            (trace index or -1, factor in [1 - max_drop, 1]).
        """
        d = self._distances(x)
        if d.size == 0:
            return -1, 1.0
        excess = np.maximum(d - self.match_dist, 0.0)
        if self.near_miss > 0.0:
            kernel = np.exp(-0.5 * (excess / self.near_miss) ** 2)
        else:
            kernel = (excess == 0.0).astype(np.float64)
        h = self._strength(now) * kernel
        factor = 1.0 - self.max_drop * float(np.max(h))
        i = int(np.argmin(d))
        return (i if float(d[i]) <= self.match_dist else -1), factor

    def factor(self, index: int, now: float) -> float:
        """Salience factor of trace `index` now (1 when there is no such trace)."""
        if index < 0 or index >= self.h.shape[0]:
            return 1.0
        return 1.0 - self.max_drop * float(self._strength(now)[index])

    def reinforce(self, x: np.ndarray | None, index: int, now: float) -> int:
        """Strengthen trace `index` (drifting it towards x), or start a trace for x.

        Returns:
            The index of the reinforced or new trace (-1 when there was nothing to do).
        """
        if 0 <= index < self.h.shape[0] and self.vecs is not None:
            root = self._root(index)
            h_now = float(self._strength(now)[root])
            self.h[root] = h_now + self.rate * (1.0 - h_now)
            self.t[root] = now
            self._sync(root)
            if x is not None:
                # The trace drifts towards its instances (a prototype of the stimulus).
                v = (1.0 - self.merge) * self.vecs[index] + self.merge * x
                self.vecs[index] = v / max(float(np.linalg.norm(v)), 1e-12)
            return index
        if x is None:
            return -1
        if self.vecs is None or self.vecs.shape[1] != x.shape[0]:
            self.vecs = np.zeros((0, x.shape[0]), dtype=np.float32)
            self.h = np.zeros(0)
            self.t = np.zeros(0)
            self.parent = np.zeros(0, dtype=np.int64)
        if self.vecs.shape[0] >= self.max_traces:
            # Forget the weakest trace (ties: the oldest, by index order).
            j = int(np.argmin(self._strength(now)))
            self.parent[self.parent == j] = -1
            self.parent[j] = -1
            self.vecs[j] = x
            self.h[j] = self.rate
            self.t[j] = now
            return j
        self.vecs = np.vstack([self.vecs, x[None, :].astype(np.float32)])
        self.h = np.append(self.h, self.rate)
        self.t = np.append(self.t, now)
        self.parent = np.append(self.parent, -1)
        return self.vecs.shape[0] - 1

    def relieve(self, x: np.ndarray, amount: float, now: float) -> None:
        """Weaken the traces matching x by a fraction `amount` (a stimulus had consequences)."""
        d = self._distances(x)
        if d.size == 0:
            return
        hit = d <= self.match_dist
        if np.any(hit):
            for i in np.flatnonzero(hit):  # a link shares its stimulus' relief
                hit |= self.parent == self._root(int(i))
                hit[self._root(int(i))] = True
            self.h[hit] = self._strength(now)[hit] * (1.0 - min(max(amount, 0.0), 1.0))
            self.t[hit] = now

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'vecs': None if self.vecs is None else self.vecs.copy(),
                'h': self.h.copy(), 't': self.t.copy(), 'parent': self.parent.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        vecs = state['vecs']
        self.vecs = None if vecs is None else np.asarray(vecs, dtype=np.float32).copy()
        self.h = np.asarray(state['h'], dtype=np.float64).copy()
        self.t = np.asarray(state['t'], dtype=np.float64).copy()
        parent = state.get('parent')  # checkpoints from before links: none
        self.parent = (np.full(self.h.shape[0], -1, dtype=np.int64) if parent is None
                       else np.asarray(parent, dtype=np.int64).copy())
