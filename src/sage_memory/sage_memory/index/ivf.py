"""The 'ivf' index structure: exact while small, then an inverted file (IVF).

Up to `exact_work` floats (rows * dim) the vectors sit in a flat inner-product index and every
search is exact. Beyond that a spherical k-means coarse quantiser with about sqrt(n) lists is
trained on a seeded sample and the vectors are filed into its lists; it is retrained whenever
the index has doubled since, so a list stays a few hundred rows. A query scans the `nprobe`
lists whose centroids are closest to it (SNARC's novelty memory takes the same path).

Why not a graph (sage_memory.index.hnsw): on 384-d embeddings that cluster (scenes recur) an
HNSW graph needed efConstruction 128 for recall@10 0.99, and inserting into it cost 450-500 us
of CPU a row at 100 k rows (efConstruction 40: about 110 us, recall 0.95), so the index, not
the database, bounded committed-and-indexed inserts. Filing a row into a list costs one scan of
the centroids (about 12 us at 256 lists), and on such embeddings the lists scanned hold the
exact top 10. The price: on embeddings that do not cluster (near-uniform directions) the
nearest rows spread over many lists and a few probes miss some of them; the graph does not.

A snapshot without vectors holds the centroids and each row's list: at start the vectors read
back from the database are filed straight into their saved lists (no training, no search for
the closest centroid).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from sage_memory.index.snapshot_files import read_index, serialise
from sage_memory.index.structure import BufferFiller, Filler, IndexConfig

# k-means of the coarse quantiser: iterations, and sample rows per list (FAISS asks for at
# least 39; a few iterations settle clustered embeddings).
_KMEANS_ITERS = 8
_TRAIN_PER_LIST = 40
# Rows moved at a time into a retrained inverted file.
_MOVE_BLOCK = 16384


def list_count(rows: int) -> int:
    """Inverted lists for `rows` rows: about sqrt(rows), each with enough rows to train on."""
    return int(max(1, min(round(math.sqrt(rows)), rows // _TRAIN_PER_LIST)))


def training_rows(rows: int, lists: int, seed: int) -> np.ndarray:
    """The labels (ascending) a quantiser of `lists` lists over `rows` rows is trained on."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(rows)[:lists * _TRAIN_PER_LIST])


def train_quantiser(sample: np.ndarray, lists: int, seed: int) -> Any:
    """A flat inner-product index of `lists` spherical k-means centroids of unit vectors.

    Deterministic for a given sample (training_rows) and seed: FAISS is told not to draw a
    sample of its own.
    """
    dim = sample.shape[1]
    km = faiss.Kmeans(dim, lists, niter=_KMEANS_ITERS, seed=seed, spherical=True,
                      min_points_per_centroid=1, max_points_per_centroid=sample.shape[0])
    km.train(np.ascontiguousarray(sample))
    quantiser = faiss.IndexFlatIP(dim)
    quantiser.add(km.centroids)
    return quantiser


def inverted_file(quantiser: Any, vectors: np.ndarray,
                  lists_of: np.ndarray | None = None) -> Any:
    """An IVF index over unit vectors (labels 0..N-1) with a label -> list map.

    Args:
        quantiser: flat index of the centroids (the IVF takes ownership).
        vectors: (N, dim) unit vectors in label order.
        lists_of: (N,) list of each vector as saved (None = the closest centroid's).

    Raises:
        ValueError: lists_of does not fit the centroids.
    """
    dim, lists = int(quantiser.d), int(quantiser.ntotal)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    assign = None
    if lists_of is not None:
        assign = np.ascontiguousarray(lists_of, dtype=np.int64)
        if assign.shape != (x.shape[0],) or (assign.size and (
                assign.min() < 0 or assign.max() >= lists)):
            raise ValueError('saved list numbers do not match the centroids')
    ivf = faiss.IndexIVFFlat(quantiser, dim, lists, faiss.METRIC_INNER_PRODUCT)
    quantiser.this.disown()
    ivf.own_fields = True
    ivf.make_direct_map(True)  # label -> (list, offset): reconstruct, and save each row's list
    if assign is None:
        ivf.add(x)
    elif x.shape[0]:
        ivf.add_core(x.shape[0], faiss.swig_ptr(x), None, faiss.swig_ptr(assign))
    return ivf


class InvertedFile:
    """A flat index until it outgrows exact search, then an IVF (see the module docstring)."""

    kind = 'ivf'

    def __init__(self, dim: int, cfg: IndexConfig, index: Any | None = None,
                 trained_at: int = 0) -> None:
        self.dim = int(dim)
        self.cfg = cfg
        self.index = index if index is not None else faiss.IndexFlatIP(self.dim)
        self.trained_at = int(trained_at)  # rows when the lists were trained (0 = flat)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def lists(self) -> int:
        """Inverted lists (0 while flat)."""
        return int(self.index.nlist) if self.trained_at else 0

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(vectors)

    def rebuilt(self) -> InvertedFile | None:
        n = self.ntotal
        if n * self.dim <= self.cfg.exact_work or n < 2 * self.trained_at:
            return None
        lists = list_count(n)
        quantiser = train_quantiser(self._rows(training_rows(n, lists, self.cfg.seed)), lists,
                                    self.cfg.seed)
        # The rows move over a block at a time: the old index, the new one and a block in
        # memory, not a third copy of every vector.
        ivf = inverted_file(quantiser, np.zeros((0, self.dim), np.float32))
        for lo in range(0, n, _MOVE_BLOCK):
            ivf.add(self._rows(np.arange(lo, min(n, lo + _MOVE_BLOCK))))
        return InvertedFile(self.dim, self.cfg, ivf, n)

    def _rows(self, labels: np.ndarray) -> np.ndarray:
        # Unit vectors of labels (a copy).
        if not self.trained_at:
            return self._all()[labels]  # a fancy index: a copy
        return self.index.reconstruct_batch(labels)

    def search(self, query: np.ndarray, k: int, selector: Any | None,
               exhaustive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if not self.trained_at:
            params: Any = faiss.SearchParameters()
        else:
            params = faiss.SearchParametersIVF()
            params.nprobe = self.lists if exhaustive else min(self.cfg.nprobe, self.lists)
        if selector is not None:
            params.sel = selector
        scores, labels = self.index.search(query, k, params=params)
        return scores, labels

    def vectors(self, labels: np.ndarray | None, max_floats: int) -> np.ndarray | None:
        if not self.trained_at:
            xb = self._all()  # a view of the flat index
            return xb if labels is None else xb[labels]
        count = self.ntotal if labels is None else labels.size
        if count * self.dim > max_floats:
            return None
        return self._all() if labels is None else self.index.reconstruct_batch(labels)

    def _all(self) -> np.ndarray:
        # Every vector in label order: a view of a flat index, a copy out of the lists.
        n = self.ntotal
        if not self.trained_at:
            xb = faiss.rev_swig_ptr(self.index.get_xb(), n * self.dim)
            return xb.reshape(n, self.dim)
        return self.index.reconstruct_n(0, n)

    def save(self, with_vectors: bool) -> tuple[bytes, dict[str, np.ndarray], dict[str, Any]]:
        fields = {'trained_at': self.trained_at}
        if with_vectors:
            return serialise(self.index), {}, fields
        if not self.trained_at:
            return b'', {}, fields
        places = faiss.vector_to_array(self.index.direct_map.array)
        lists = (places >> 32).astype(np.int32)  # a place is (list << 32) | offset
        return serialise(self.index.quantizer), {'lists': lists}, fields


class ListFiller:
    """Files vectors straight into the saved lists of a restored IVF (a Filler): no training,
    no search for the closest centroid. Each list is sized once, from the saved list of every
    row, and filled in place: no list grows by copies, and no second copy of every vector is
    made on the way (fresh memory is what a start pays for most)."""

    def __init__(self, quantiser: Any, lists_of: np.ndarray, trained_at: int,
                 cfg: IndexConfig) -> None:
        dim, lists = int(quantiser.d), int(quantiser.ntotal)
        self._lists_of = np.asarray(lists_of, np.int64)
        if self._lists_of.size and (self._lists_of.min() < 0
                                    or self._lists_of.max() >= lists):
            raise ValueError('saved list numbers do not match the centroids')
        self._ivf = faiss.IndexIVFFlat(quantiser, dim, lists, faiss.METRIC_INNER_PRODUCT)
        quantiser.this.disown()
        self._ivf.own_fields = True
        self._lists = faiss.downcast_InvertedLists(self._ivf.invlists)
        self._sizes = np.bincount(self._lists_of, minlength=lists)
        for i in np.flatnonzero(self._sizes).tolist():
            self._lists.resize(i, int(self._sizes[i]))
        self._filled = np.zeros(lists, np.int64)
        self._seen = np.zeros(self._lists_of.size, bool)
        self._trained_at = trained_at
        self._cfg = cfg

    def put(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        labels = np.asarray(labels, np.int64)
        lists = self._lists_of[labels]
        order = np.argsort(lists, kind='stable')
        # One gather into list order; each list's rows are then a contiguous slice.
        ids = np.ascontiguousarray(labels[order])
        codes = np.ascontiguousarray(np.asarray(vectors, np.float32)[order]).view(np.uint8)
        present, starts, counts = np.unique(lists[order], return_index=True,
                                            return_counts=True)
        for i, start, count in zip(present.tolist(), starts.tolist(), counts.tolist(),
                                   strict=True):
            self._lists.update_entries(i, int(self._filled[i]), count,
                                       faiss.swig_ptr(ids[start:]),
                                       faiss.swig_ptr(codes[start:]))
            self._filled[i] += count
        self._seen[labels] = True

    def done(self) -> InvertedFile:
        missing = np.flatnonzero(~self._seen)
        if missing.size:
            self.put(missing, np.zeros((missing.size, int(self._ivf.d)), np.float32))
        if not np.array_equal(self._filled, self._sizes):
            raise ValueError('a label was offered twice')
        self._ivf.ntotal = int(self._lists_of.size)
        self._ivf.make_direct_map(True)  # label -> (list, offset), as inverted_file() keeps
        return InvertedFile(int(self._ivf.d), self._cfg, self._ivf, self._trained_at)


def restore(path: Path, dim: int, cfg: IndexConfig, entry: dict[str, Any],
            meta: dict[str, np.ndarray], with_vectors: bool) -> InvertedFile | Filler:
    """An InvertedFile from its snapshot, or a Filler for its vectors (see Restore in
    sage_memory.index.structure).

    Raises:
        ValueError: the files do not fit together.
    """
    trained_at = int(entry['trained_at'])
    n = int(meta['ids'].size)
    if with_vectors:
        index = read_index(path)
        if bool(trained_at) != isinstance(index, faiss.IndexIVF):
            raise ValueError('snapshot index kind does not match its manifest')
        return InvertedFile(dim, cfg, index, trained_at)
    if not trained_at:
        def flat(vectors: np.ndarray) -> InvertedFile:
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            return InvertedFile(dim, cfg, index)
        return BufferFiller(n, dim, flat)
    quantiser = read_index(path)
    if int(quantiser.d) != dim:
        raise ValueError('centroids do not match the dimension')
    if meta['lists'].shape != (n,):
        raise ValueError('saved list numbers do not match the label arrays')
    return ListFiller(quantiser, meta['lists'], trained_at, cfg)
