"""Adaptive attend threshold: holds a target attention rate, shifted by the metabolic state.

Per modality, the base threshold follows a stochastic-approximation rule on stamps:
after every input, base += gain * (attended - target_rate_hz * dt), with dt the time since the
modality's previous input (capped at max_dt_s). In steady state the modality is attended
target_rate_hz times per second; base stays within [min, max], so a calm scene (few inputs
above `min`) is not forced to produce attention. The threshold in force is
clip(base + offset[state], 0, 1), where offset comes from the metabolic state
(e.g. DREAM raises it, FOCUS lowers it).
"""
from __future__ import annotations

from typing import Any

from sage_common.vocabulary import MetabolicState


class ThresholdController:
    """Per-modality thresholds with a shared target rate and state offsets."""

    def __init__(self, *, initial: float, lo: float, hi: float, target_rate_hz: float,
                 gain: float, offsets: dict[str, float], max_dt_s: float = 1.0) -> None:
        self.initial = float(initial)
        self.lo = float(lo)
        self.hi = float(hi)
        self.target_rate_hz = float(target_rate_hz)
        self.gain = float(gain)
        self.offsets = dict(offsets)
        self.max_dt_s = float(max_dt_s)
        self.base: dict[str, float] = {}
        self.state = MetabolicState.WAKE.value

    def threshold(self, modality: str) -> float:
        """Threshold in force for a modality."""
        base = self.base.get(modality, self.initial)
        value = base + self.offsets.get(self.state, 0.0)
        return min(max(value, 0.0), 1.0)

    def update(self, modality: str, attended: bool, dt: float) -> None:
        """Apply the rate rule after one input."""
        dt = min(max(dt, 0.0), self.max_dt_s)
        base = self.base.get(modality, self.initial)
        base += self.gain * ((1.0 if attended else 0.0) - self.target_rate_hz * dt)
        self.base[modality] = min(max(base, self.lo), self.hi)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'base': dict(self.base), 'state': self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        self.base = {k: float(v) for k, v in state['base'].items()}
        self.state = str(state['state'])
