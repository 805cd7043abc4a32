"""The 'hnsw' index structure: a FAISS HNSW graph over the unit vectors.

Recall holds on embeddings of any shape (clustered or not), at a price at insert time: on
clustered 384-d embeddings the graph needs efConstruction 128 for recall@10 0.99, which costs
450-500 us of CPU a row at 100 k rows (sage_memory.index.ivf is the default for that reason).
A snapshot without vectors holds the graph alone (FAISS IO_FLAG_SKIP_STORAGE); the vectors are
read back from the database at start and attached to it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from sage_memory.index.snapshot_files import read_index, serialise
from sage_memory.index.structure import BufferFiller, Filler, IndexConfig


class Graph:
    """An HNSW graph (see the module docstring)."""

    kind = 'hnsw'

    def __init__(self, dim: int, cfg: IndexConfig, index: Any | None = None) -> None:
        self.dim = int(dim)
        self.cfg = cfg
        if index is None:
            index = faiss.IndexHNSWFlat(self.dim, cfg.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        self.index = index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(vectors)

    def rebuilt(self) -> Graph | None:
        return None  # a graph grows in place

    def search(self, query: np.ndarray, k: int, selector: Any | None,
               exhaustive: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        if exhaustive:
            return None  # the caller ranks the stored vectors itself
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.cfg.ef_search, k)
        if selector is not None:
            params.sel = selector
        scores, labels = self.index.search(query, k, params=params)
        return scores, labels

    def vectors(self, labels: np.ndarray | None, max_floats: int) -> np.ndarray:
        storage = faiss.downcast_index(self.index.storage)
        n = self.ntotal
        # Zero-copy view of the stored (normalised) vectors, (ntotal, dim).
        xb = faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)
        return xb if labels is None else xb[labels]

    def save(self, with_vectors: bool) -> tuple[bytes, dict[str, np.ndarray], dict[str, Any]]:
        flags = 0 if with_vectors else faiss.IO_FLAG_SKIP_STORAGE
        return serialise(self.index, flags), {}, {}


def restore(path: Path, dim: int, cfg: IndexConfig, entry: dict[str, Any],
            meta: dict[str, np.ndarray], with_vectors: bool,
            compressed: bool = True) -> Graph | Filler:
    """A Graph from its snapshot, or a Filler for its vectors (see Restore in
    sage_memory.index.structure); `compressed` is False for the uncompressed files of
    snapshot versions 1 and 2.

    Raises:
        ValueError: the graph and its label arrays do not fit together.
    """
    if with_vectors:
        return Graph(dim, cfg, read_index(path, compressed))
    index = read_index(path, compressed, faiss.IO_FLAG_SKIP_STORAGE)
    n = int(meta['ids'].size)
    if int(index.d) != dim or int(index.ntotal) != n:
        raise ValueError('graph does not match its label arrays')

    def attach(vectors: np.ndarray) -> Graph:
        storage = faiss.IndexFlat(dim, index.metric_type)
        storage.add(vectors)
        index.storage = storage
        storage.this.disown()  # the index owns and frees its storage, as after read_index
        index.own_fields = True
        return Graph(dim, cfg, index)
    return BufferFiller(n, dim, attach)
