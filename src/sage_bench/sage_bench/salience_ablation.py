"""What each SNARC mechanism earns: `sage bench salience --ablate` scores the same scenes once
as the profile ships and once with each mechanism below switched off.

Every variant is the profile with a few parameter overrides, so each is a configuration a user
could run (`sage bench salience --set ...` gives the same figures for one of them). What the
encoders made of the scenes is cached, so a variant costs SNARC's replay only. An axis is
switched off by its weight 0 (the weight adapter neither floors nor learns an axis the profile
weighs 0); the other axes' weights are renormalised as in a profile without that axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ablation:
    """One mechanism switched off."""

    name: str
    off: str  # what the variant removes, for the table
    overrides: tuple[str, ...]


def _axis(axis: str, what: str) -> Ablation:
    return Ablation(f'no {axis}', what, (f'snarc.weights.{axis}=0.0',))


ABLATIONS: tuple[Ablation, ...] = (
    _axis('surprise', 'the surprise axis (prediction errors of codes, embedding and features)'),
    _axis('novelty', 'the novelty axis (distance to recent inputs and memories)'),
    _axis('arousal', 'the arousal axis (motion, level and band rises, shakes)'),
    _axis('conflict', 'the conflict axis (one sense active while another stays still)'),
    _axis('reward', 'the reward axis (learnt reward prediction)'),
    Ablation('no habituation', 'habituation to repeated stimuli (habituation.max_drop 0)',
             ('snarc.habituation.max_drop=0.0',)),
    Ablation('fixed threshold', 'the adaptive attend threshold (threshold.gain 0: it stays at '
             'threshold.initial)', ('snarc.threshold.gain=0.0',)),
    Ablation('mean of axes', 'the near-max combination of the axes (combine.power 1: their '
             'weighted mean)', ('snarc.combine.power=1.0',)),
)


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures an ablation row compares: recall mean over kinds, worst kind at its worst
    seed, false alarms per calm minute (all and per modality), habituation drop."""
    kinds = summary['by_kind'].values()
    recall = [k['recall']['mean'] for k in kinds if k['recall']['mean'] is not None]
    worst = [k['recall']['worst'] for k in kinds if k['recall']['worst'] is not None]
    return {
        'recall_mean': sum(recall) / len(recall) if recall else None,
        'recall_worst': min(worst) if worst else None,
        'false_alarms_per_min': summary['false_alarms_per_min_all']['mean'],
        'false_alarms_by_modality': {m: v['mean'] for m, v
                                     in summary['false_alarms_per_min'].items()},
        'habituation_drop': summary['habituation_drop']['mean'],
    }
