"""What SNARC learns and runs on, as one dataclass: its fields are the checkpoint.

`SnarcCore` is a `SnarcState` with the scoring on top; `state_codec` saves and restores the
fields (each modality's `ModalityState` field by field too), so a field added here is saved
without a hand-kept list to extend. `stats` summarises the state for /diagnostics.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from sage_common.records import AXES
from sage_snarc.conflict import ConflictWindow
from sage_snarc.imu import ImuAggregator
from sage_snarc.modality_state import ModalityState
from sage_snarc.novelty import MemoryIndex
from sage_snarc.reward import RewardLearner, WeightAdapter
from sage_snarc.threshold import ThresholdController

# Attention-rate and score-distribution horizon for diagnostics (s of stamp time).
DIAG_HORIZON_S = 60.0


@dataclass(eq=False)
class SnarcState:
    """SNARC's learnt and running state (field order is restore order: the memories are in
    before the modalities attach to them)."""

    now: float
    weights: WeightAdapter
    reward: RewardLearner
    threshold: ThresholdController
    conflict: ConflictWindow
    imu: ImuAggregator
    gravity: np.ndarray | None  # the IMU's gravity vector estimate
    # Stored memories' embeddings per modality and encoder model version: novelty compares
    # an input only with memories its own model embedded ('' = version not recorded).
    memory: dict[str, dict[str, MemoryIndex]]
    # (modality, model version name) whose re-embedded memories are in: a latched
    # /sage/models/live message comes again (a restart of its publisher), they do not.
    model_memories: set[tuple[str, str]]
    modalities: dict[str, ModalityState]


def stats(state: SnarcState, issues: Counter[str]) -> dict[str, str]:
    """Diagnostic values: per-modality counts, attention rate, salience percentiles."""
    out: dict[str, str] = {}
    now = state.now
    for m, ms in sorted(state.modalities.items()):
        recent = [r for r in ms.recent if r[0] >= now - DIAG_HORIZON_S]
        span = min(DIAG_HORIZON_S, max(1e-9, now - recent[0][0])) if recent else 0.0
        out[f'{m}.inputs'] = str(ms.count)
        out[f'{m}.attended'] = str(ms.attended)
        out[f'{m}.alive'] = str(state.conflict.alive(m, now)).lower()
        out[f'{m}.threshold'] = f'{state.threshold.threshold(m):.3f}'
        if ms.model_version:
            out[f'{m}.model_version'] = ms.model_version
            out[f'{m}.model_changes'] = str(ms.model_changes)
        if ms.room_changes:
            out[f'{m}.room_changes'] = str(ms.room_changes)
        if recent and span > 0.0:
            sal = np.array([r[2] for r in recent])
            axes = np.array([r[3] for r in recent])
            out[f'{m}.attention_rate_hz'] = f'{sum(r[1] for r in recent) / span:.3f}'
            out[f'{m}.salience_p50'] = f'{np.percentile(sal, 50):.3f}'
            out[f'{m}.salience_p95'] = f'{np.percentile(sal, 95):.3f}'
            for i, a in enumerate(AXES):
                out[f'{m}.{a}_p95'] = f'{np.percentile(axes[:, i], 95):.3f}'
    w = state.weights.w
    for i, a in enumerate(AXES):
        out[f'weight.{a}'] = f'{w[i]:.3f}'
    for m, by_version in sorted(state.memory.items()):
        current = state.modalities[m].model_version if m in state.modalities else ''
        mine = by_version.get(current)
        out[f'{m}.memories'] = str(len(mine) if mine is not None else 0)
        others = sum(len(i) for v, i in by_version.items() if v != current)
        if others:  # embedded by another model version: not compared with
            out[f'{m}.memories_other_models'] = str(others)
    out['metabolic_state'] = state.threshold.state
    for key, n in sorted(issues.items()):
        out[f'issue.{key}'] = str(n)
    return out
