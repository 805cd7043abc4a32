"""What every vector index structure shares: unit vectors, hits, keys, and where a snapshot
without vectors reads them back from."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

IndexKey = tuple[str, int]
# (modality, dim), row ids -> their (N, dim) embeddings in that order, as a new array (it is
# normalised in place), zeros where a row is gone.
VectorSource = Callable[[IndexKey, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Hit:
    """One search result: a row id, its cosine similarity and the index it came from."""

    row_id: int
    score: float
    key: IndexKey


def normalise(vectors: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero).

    Args:
        vectors: (N, dim) or (dim,) vectors.
        in_place: scale a float32 (N, dim) array itself (no copy of a large array).

    Returns:
        a float32 (N, dim) array: a new one, or `vectors` when in_place.
    """
    if (in_place and isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
            and vectors.ndim == 2):
        v = vectors
    else:
        v = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    np.divide(v, norms, out=v, where=norms > 1e-12)
    return v
