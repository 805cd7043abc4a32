"""Bounded memory of what was seen, so what comes twice is used once (pure).

A puzzle encoder can publish an input's latent on /sage/<modality>/latent_initial before
refinement and the refined one on /sage/<modality>/latent; both carry the same input_seq and
capture stamp, and what SNARC scores (the nearest codes, embedding, features and their
reconstruction error) is the same in both. Whichever of the two arrives first is scored: the
early one normally, the refined one when the early one was lost (best effort) or never sent.
A stored experience can also reach SNARC twice (on /sage/memory/stored and in the preload).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Hashable

# Inputs remembered: 30 s of vision at 15 fps and audio at 4 windows/s, far more than the
# refinement between the two messages of one input takes.
KEEP = 600


class SeenOnce:
    """Remembers the newest `keep` keys; `first(key)` is True only the first time."""

    def __init__(self, keep: int = KEEP) -> None:
        self._order: deque[Hashable] = deque()
        self._seen: set[Hashable] = set()
        self._keep = keep

    def first(self, key: Hashable) -> bool:
        """True the first time a key is offered, False while it is remembered."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._keep:
            self._seen.discard(self._order.popleft())
        return True


def input_key(modality: str, input_seq: int, stamp: float) -> tuple[str, int, int]:
    """What identifies one input across its two latents: modality, input_seq and stamp (us)."""
    return modality, int(input_seq), round(stamp * 1e6)
