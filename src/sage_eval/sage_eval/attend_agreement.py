"""How two runs' attend decisions agree on the inputs both scored (pure; no rclpy).

An input is keyed by (modality, capture stamp rounded to 0.1 ms): the stamp travels unchanged
from the sensor (or the bag) through encoder and SNARC, so the same input has the same key in
an offline replay, a played-back graph and a composed one.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

STAMP_DIGITS = 4  # 0.1 ms: far below any sensor period, above float noise of stamp sums

Key = tuple[str, float]


class Agreement(NamedTuple):
    """Precision and recall of one run's attend against a reference's, on common inputs."""

    precision: float
    recall: float
    attended: int  # inputs the reference attended, among the common ones
    compared: int  # inputs both runs scored


def decision_key(modality: str, stamp: float) -> Key:
    return modality, round(float(stamp), STAMP_DIGITS)


def attend_agreement(reference: Mapping[Key, bool], other: Mapping[Key, bool]) -> Agreement:
    """Precision and recall of other's attend against reference's, on inputs both scored."""
    common = reference.keys() & other.keys()
    both = sum(reference[k] and other[k] for k in common)
    said = sum(other[k] for k in common)
    truth = sum(reference[k] for k in common)
    return Agreement(both / max(said, 1), both / max(truth, 1), truth, len(common))


def sequence_gaps(seqs: Iterable[int]) -> int:
    """Counter values missing between the lowest and highest seen (lost inputs)."""
    ordered = sorted(set(seqs))
    return int(sum(b - a - 1 for a, b in zip(ordered, ordered[1:]) if b > a + 1))
