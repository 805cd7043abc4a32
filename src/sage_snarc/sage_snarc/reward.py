"""Reward association (the reward axis) and online adaptation of the axis weights.

Association (README.md, "reward"): each modality keeps up to `max_prototypes` prototypes
(a stimulus descriptor and a value v). The predicted reward of an input x is
R(x) = sum_i v_i k(x, p_i) with the kernel k = exp(-0.5 (d / kernel_width)^2), d the chord
distance between unit descriptors (the same stimulus descriptor habituation uses). The reward
axis is clip(R(x), 0, 1).

Learning is Rescorla-Wagner over attended inputs: a reward r at time t credits every input
attended in [t - window_s, t] with eligibility e = exp(-(t - t_x) / tau_s):
v_i += lr * e * k_i * (r - R(x)), and a new prototype (v = lr * e * (r - R(x))) is made when
no prototype matches (max k < 0.5). An attended input whose window closes without any reward
moves its prototypes towards 0 (extinction, rate extinction_rate); values also decay with time
constant decay_s. So a kind of input that keeps being rewarded gains reward salience, and loses
it again when rewards stop.

Weights: on each credited input, w_a += weight_lr * r * e * (x_a - mean_a x_a) (axes that made
the rewarded input salient gain weight), then w is clipped at w_min and renormalised to sum 1
(an axis the profile weighs 0 stays 0: switched off); between rewards w relaxes to the profile
weights with time constant weight_decay_s.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math
from typing import Any

import numpy as np

from sage_snarc.robust import chord

# SNARC's reward learning (SnarcCore):
MAX_PROTOTYPES = 64  # per modality
KERNEL_WIDTH = 0.25  # chord distance between descriptors (larger generalises more)
TAU_S = 1.5  # eligibility time constant (s) of an attended input's credit
WEIGHT_MIN = 0.05  # smallest weight learning leaves an axis: it switches none off
WEIGHT_DECAY_S = 600.0  # time constant of the weights relaxing to the profile's (s of stamps)


@dataclass
class Pending:
    """An attended input waiting for a reward."""

    stamp: float
    modality: str
    vec: np.ndarray
    axes: np.ndarray  # (5,) surprise, novelty, arousal, reward, conflict
    rewarded: bool = False


class Prototypes:
    """Reward prototypes of one modality."""

    def __init__(self, max_prototypes: int, kernel_width: float, decay_s: float) -> None:
        self.max_prototypes = max(1, int(max_prototypes))
        self.kernel_width = float(kernel_width)
        self.decay_s = float(decay_s)
        self.vecs: np.ndarray | None = None
        self.v = np.zeros(0)
        self.t = np.zeros(0)

    def _decay(self, now: float) -> None:
        if self.v.size:
            self.v = self.v * np.exp(-np.maximum(now - self.t, 0.0) / self.decay_s)
            self.t = np.maximum(self.t, now)

    def kernel(self, x: np.ndarray) -> np.ndarray:
        """Kernel value of unit vector x against every prototype (empty when none)."""
        vecs = self.vecs
        if vecs is None or vecs.shape[0] == 0 or vecs.shape[1] != x.shape[0]:
            return np.empty(0)
        d = chord(vecs @ x)
        return np.exp(-0.5 * (d / self.kernel_width) ** 2)

    def predict(self, x: np.ndarray, now: float) -> float:
        """Predicted reward R(x) in [-1, 1]."""
        self._decay(now)
        k = self.kernel(x)
        if k.size == 0:
            return 0.0
        return float(np.clip(np.dot(self.v, k), -1.0, 1.0))

    def learn(self, x: np.ndarray, delta: float, now: float, create: bool) -> None:
        """v += delta * k; when nothing matches and `create`, add a prototype with v=delta."""
        self._decay(now)
        k = self.kernel(x)
        if k.size and float(np.max(k)) >= 0.5:
            self.v = np.clip(self.v + delta * k, -1.0, 1.0)
            return
        if not create:
            return
        if self.vecs is None or self.vecs.shape[1] != x.shape[0]:
            self.vecs = np.zeros((0, x.shape[0]), dtype=np.float32)
            self.v = np.zeros(0)
            self.t = np.zeros(0)
        if self.vecs.shape[0] >= self.max_prototypes:
            j = int(np.argmin(np.abs(self.v)))
            self.vecs[j] = x
            self.v[j] = delta
            self.t[j] = now
            return
        self.vecs = np.vstack([self.vecs, x[None, :].astype(np.float32)])
        self.v = np.append(self.v, float(np.clip(delta, -1.0, 1.0)))
        self.t = np.append(self.t, now)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'vecs': None if self.vecs is None else self.vecs.copy(),
                'v': self.v.copy(), 't': self.t.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        vecs = state['vecs']
        self.vecs = None if vecs is None else np.asarray(vecs, dtype=np.float32).copy()
        self.v = np.asarray(state['v'], dtype=np.float64).copy()
        self.t = np.asarray(state['t'], dtype=np.float64).copy()


class WeightAdapter:
    """Per-axis weights, adapted by reward and relaxing to the profile weights."""

    def __init__(self, base: np.ndarray, learning_rate: float, w_min: float = WEIGHT_MIN,
                 decay_s: float = WEIGHT_DECAY_S) -> None:
        base = np.asarray(base, dtype=np.float64)
        # An axis the profile weighs 0 is off: the floor is for the axes it weighs.
        self.on = ~(base <= 0.0)
        self.w_min = float(w_min)
        self.base = self._normalise(base)
        self.w = self.base.copy()
        self.learning_rate = float(learning_rate)
        self.decay_s = float(decay_s)
        self.t = -math.inf

    def _normalise(self, w: np.ndarray) -> np.ndarray:
        w = np.where(self.on, np.maximum(np.nan_to_num(w, nan=self.w_min), self.w_min), 0.0)
        return w / w.sum()

    def current(self, now: float) -> np.ndarray:
        """Weights at time `now` (relaxed towards the profile weights since the last call)."""
        if math.isfinite(self.t) and now > self.t:
            self.w = self.base + (self.w - self.base) * math.exp(-(now - self.t) / self.decay_s)
        self.t = max(self.t, now)
        return self.w

    def learn(self, axes: np.ndarray, reward: float, eligibility: float, now: float) -> None:
        """Move weight towards the axes that were high on a credited input."""
        w = self.current(now)
        step = self.learning_rate * reward * eligibility * (axes - float(np.mean(axes)))
        self.w = self._normalise(w + step)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'w': self.w.copy(), 't': self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        self.w = np.asarray(state['w'], dtype=np.float64).copy()
        self.t = float(state['t'])


class RewardLearner:
    """Credits rewards to recently attended inputs and keeps the per-modality prototypes."""

    def __init__(self, *, window_s: float, learning_rate: float, extinction_rate: float,
                 decay_s: float, modalities: tuple[str, ...], tau_s: float = TAU_S,
                 kernel_width: float = KERNEL_WIDTH, max_prototypes: int = MAX_PROTOTYPES,
                 max_pending: int = 512) -> None:
        self.window_s = float(window_s)
        self.tau_s = float(tau_s)
        self.learning_rate = float(learning_rate)
        self.extinction_rate = float(extinction_rate)
        self.protos = {m: Prototypes(max_prototypes, kernel_width, decay_s)
                       for m in modalities}
        self.pending: deque[Pending] = deque(maxlen=max_pending)

    def predict(self, modality: str, x: np.ndarray, now: float) -> float:
        """Signed predicted reward of unit descriptor x."""
        protos = self.protos.get(modality)
        return 0.0 if protos is None else protos.predict(x, now)

    def attended(self, item: Pending) -> None:
        """Remember an attended input as eligible for the next rewards."""
        self.pending.append(item)

    def expire(self, now: float) -> None:
        """Close the windows that ended before `now`; unrewarded inputs extinguish."""
        while self.pending and self.pending[0].stamp < now - self.window_s:
            item = self.pending.popleft()
            if item.rewarded:
                continue
            protos = self.protos.get(item.modality)
            if protos is None:
                continue
            predicted = protos.predict(item.vec, now)
            if predicted != 0.0:
                delta = self.extinction_rate * (0.0 - predicted)
                protos.learn(item.vec, delta, now, create=False)

    def reward(self, stamp: float, value: float) -> list[tuple[Pending, float]]:
        """Credit a reward to the eligible inputs.

        Returns:
            (input, eligibility) of every credited input, for the weight update and
            habituation relief.
        """
        credited = []
        for item in self.pending:
            age = stamp - item.stamp
            if age < 0.0 or age > self.window_s:
                continue
            e = math.exp(-age / self.tau_s)
            protos = self.protos.get(item.modality)
            if protos is not None:
                predicted = protos.predict(item.vec, stamp)
                delta = self.learning_rate * e * (value - predicted)
                protos.learn(item.vec, delta, stamp, create=True)
            item.rewarded = True
            credited.append((item, e))
        return credited

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint of the prototypes (pending inputs are short-lived and not kept)."""
        return {m: p.state_dict() for m, p in self.protos.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        for m, st in state.items():
            if m in self.protos:
                self.protos[m].load_state_dict(st)
