"""Score each input once when it comes twice: before refinement and refined (pure).

A puzzle encoder publishes an input's latent on /sage/<modality>/latent_initial before
refinement and the refined one on /sage/<modality>/latent; both carry the same input_seq and
capture stamp, and what SNARC scores (the nearest codes, embedding, features and their
reconstruction error) is the same in both. Whichever of the two arrives first is scored: the
early one normally, the refined one when the early one was lost (best effort) or never sent.
"""
from __future__ import annotations

from collections import deque

# Inputs remembered: 30 s of vision at 15 fps and audio at 4 windows/s, far more than the
# refinement between the two messages of one input takes.
KEEP = 600


class ScoredOnce:
    """Remembers the newest scored inputs by (modality, input_seq, stamp)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._order: deque[tuple[str, int, int]] = deque()
        self._seen: set[tuple[str, int, int]] = set()
        self._keep = keep

    def first(self, modality: str, input_seq: int, stamp: float) -> bool:
        """True the first time an input is offered (score it), False after."""
        key = (modality, int(input_seq), round(stamp * 1e6))
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._keep:
            self._seen.discard(self._order.popleft())
        return True
