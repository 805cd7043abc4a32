"""Vector index for recall: the embeddings of one (modality, dimension), searched by cosine.

Embeddings are L2-normalised and searched by inner product, so scores are cosine similarities
in [-1, 1]. Each index keeps, per label, the row id, stamp, salience and an alive flag in numpy
arrays, so time-range and minimum-salience filters and evictions (the structures cannot delete)
become an `IDSelectorBitmap` passed to the search. When the filter leaves few rows, an exact
search over those rows' stored vectors is both faster and exact, and it is used whenever the
filtered search returns fewer than k hits.

The vectors live in a structure chosen by name (`IndexConfig.kind`, STRUCTURES): 'ivf' (exact
while small, then an inverted file; sage_memory.index.ivf) or 'hnsw' (a graph;
sage_memory.index.hnsw).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
import os
import threading
import time
from typing import Any

# OpenMP threads that spin after a parallel region steal the cores other nodes need: sleep.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from sage_memory.index import hnsw, ivf  # noqa: E402
from sage_memory.index.structure import IndexConfig, Restore, Structure  # noqa: E402
from sage_memory.index.vectors import Hit, IndexKey, normalise  # noqa: E402

# How long a chunked add sleeps while searches wait for the index.
_YIELD_S = 0.0002
# An exact search over a selection up to this many floats ranks copies of its vectors here
# (the same arithmetic whatever the structure); a larger one asks the structure to scan.
COPY_FLOATS = 4_000_000

# kind -> (new empty structure, restore from a snapshot)
STRUCTURES: dict[str, tuple[Callable[[int, IndexConfig], Structure], Restore]] = {
    'ivf': (ivf.InvertedFile, ivf.restore),
    'hnsw': (hnsw.Graph, hnsw.restore),
}


def new_structure(dim: int, cfg: IndexConfig) -> Structure:
    """An empty structure of cfg.kind.

    Raises:
        ValueError: an unknown kind.
    """
    if cfg.kind not in STRUCTURES:
        raise ValueError(f"index kind {cfg.kind!r}: one of {', '.join(STRUCTURES)}")
    return STRUCTURES[cfg.kind][0](dim, cfg)


class VectorIndex:
    """The embeddings of one (modality, dim), with row metadata for filters."""

    def __init__(self, modality: str, dim: int, cfg: IndexConfig,
                 structure: Structure | None = None) -> None:
        self.modality = modality
        self.dim = int(dim)
        self.cfg = cfg
        self._structure = structure if structure is not None else new_structure(dim, cfg)
        self._lock = threading.RLock()
        # Adders take turns (an add spans several chunks); searches waiting go first.
        self._add_lock = threading.Lock()
        self._searchers = 0
        self._count_lock = threading.Lock()
        n = self._structure.ntotal
        cap = max(1024, n)
        self._ids = np.zeros(cap, np.int64)
        self._stamp = np.zeros(cap, np.float64)
        self._sal = np.zeros(cap, np.float32)
        self._alive = np.zeros(cap, bool)
        self._label: dict[int, int] = {}
        self._dead = 0

    @property
    def key(self) -> IndexKey:
        """(modality, dim)."""
        return (self.modality, self.dim)

    @property
    def structure(self) -> Structure:
        """Where the vectors are kept (read-only use: snapshots, figures, tests)."""
        return self._structure

    @property
    def total(self) -> int:
        """Labels in the index, dead ones included."""
        return self._structure.ntotal

    def __len__(self) -> int:
        return len(self._label)

    def __contains__(self, row_id: object) -> bool:
        return row_id in self._label

    def alive_ids(self) -> np.ndarray:
        """Row ids currently searchable, sorted."""
        with self._lock:
            n = self.total
            return np.sort(self._ids[:n][self._alive[:n]])

    def _grow(self, need: int) -> None:
        cap = self._ids.size
        if need <= cap:
            return
        new = max(need, cap * 2)
        for name in ('_ids', '_stamp', '_sal', '_alive'):
            old = getattr(self, name)
            arr = np.zeros(new, old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, stamps: npt.ArrayLike,
            saliences: npt.ArrayLike, chunk: int = 0,
            stop: threading.Event | None = None, rebuild: bool = True) -> int:
        """Add rows not already present; returns how many were added.

        Args:
            ids: (N,) row ids.
            vectors: (N, dim) embeddings (normalised here).
            stamps: (N,) stamps in seconds.
            saliences: (N,) saliences.
            chunk: insert this many rows per lock hold, letting waiting searches in between
                (0 = all at once: bulk builds, where FAISS parallelises the batch).
            stop: once set, no further chunk is added (a closing memory; the rows left out
                are in the database, and the next start's reconcile indexes them).
            rebuild: let the structure rebuild itself afterwards when due (an inverted file
                retrained; False: a bulk load that calls rebuild_if_due once at its end).
        """
        rid = np.asarray(ids, np.int64).ravel()
        vecs = np.asarray(vectors, np.float32).reshape(len(rid), self.dim)
        stm = np.asarray(stamps, np.float64).ravel()
        sal = np.asarray(saliences, np.float32).ravel()
        with self._add_lock:
            with self._lock:
                keep = np.fromiter((int(i) not in self._label for i in rid), bool, len(rid))
            if keep.size and not keep.all():
                rid, vecs, stm, sal = rid[keep], vecs[keep], stm[keep], sal[keep]
            # Duplicates within the batch are dropped too (first occurrence wins).
            _, first = np.unique(rid, return_index=True)
            if first.size != rid.size:
                first.sort()
                rid, vecs, stm, sal = rid[first], vecs[first], stm[first], sal[first]
            vecs = normalise(vecs)
            step = chunk if chunk > 0 else max(1, rid.size)
            added = 0
            for lo in range(0, rid.size, step):
                if stop is not None and stop.is_set():
                    break
                while self._searchers > 0:
                    time.sleep(_YIELD_S)
                self._add_locked(rid[lo:lo + step], vecs[lo:lo + step], stm[lo:lo + step],
                                 sal[lo:lo + step])
                added += min(step, rid.size - lo)
            if rebuild and added:
                self._rebuild_locked()
            return added

    def _add_locked(self, rid: np.ndarray, vecs: np.ndarray, stm: np.ndarray,
                    sal: np.ndarray) -> None:
        with self._lock:
            start = self.total
            self._grow(start + rid.size)
            self._structure.add(vecs)
            sl = slice(start, start + rid.size)
            self._ids[sl] = rid
            self._stamp[sl] = stm
            self._sal[sl] = sal
            self._alive[sl] = True
            for off, r in enumerate(rid.tolist()):
                self._label[r] = start + off

    def rebuild_if_due(self) -> bool:
        """Let the structure rebuild itself for the rows it holds now, when due (an inverted
        file outgrown by its rows is retrained); returns True when it did."""
        with self._add_lock:
            return self._rebuild_locked()

    def _rebuild_locked(self) -> bool:
        # Adders are held off (the caller has _add_lock); searches go on with the old
        # structure while the new one is built, and wait only for the swap.
        fresh = self._structure.rebuilt()
        if fresh is None:
            return False
        with self._lock:
            self._structure = fresh
        return True

    def remove(self, ids: Iterable[int]) -> int:
        """Mark rows dead (they stay in the index but are never returned); returns count."""
        n = 0
        with self._lock:
            for rid in ids:
                label = self._label.pop(int(rid), None)
                if label is not None:
                    self._alive[label] = False
                    n += 1
            self._dead += n
        return n

    @property
    def dead_fraction(self) -> float:
        """Share of labels that are dead (a rebuild pays off when this grows large)."""
        return self._dead / self.total if self.total else 0.0

    @contextmanager
    def _for_search(self) -> Iterator[None]:
        # Counted while waiting, so a chunked add lets this search in before its next chunk.
        with self._count_lock:
            self._searchers += 1
        try:
            self._lock.acquire()
        finally:
            with self._count_lock:
                self._searchers -= 1
        try:
            yield
        finally:
            self._lock.release()

    def search(self, query: np.ndarray, k: int, start: float = 0.0, end: float = 0.0,
               min_salience: float = 0.0, exact: bool = False) -> list[Hit]:
        """The k most similar live rows passing the filters, best first.

        Args:
            query: (dim,) embedding.
            k: number of results.
            start: stamps >= start only (0 = unbounded).
            end: stamps <= end only (0 = unbounded).
            min_salience: salience >= this only.
            exact: brute-force search (reference for measuring the ANN's recall).
        """
        q = normalise(np.asarray(query, np.float32).reshape(1, self.dim))
        with self._for_search():
            n = self.total
            if n == 0 or not self._label:
                return []
            filtered = start > 0 or end > 0 or min_salience > 0
            mask = None
            if filtered or self._dead:
                mask = self._alive[:n].copy()
                if start > 0:
                    mask &= self._stamp[:n] >= start
                if end > 0:
                    mask &= self._stamp[:n] <= end
                if min_salience > 0:
                    mask &= self._sal[:n] >= np.float32(min_salience)
            selected = int(mask.sum()) if mask is not None else n
            if selected == 0:
                return []
            want = min(k, selected)
            if exact or selected * self.dim <= self.cfg.exact_work or selected <= 4 * k:
                return self._exact(q, want, mask)
            found = self._hits(self._structure.search(q, want, _selector(mask)))
            if len(found) < want:
                # The structure found too few rows passing the filter: answer exactly.
                return self._exact(q, want, mask)
            return found

    def _hits(self, result: tuple[np.ndarray, np.ndarray] | None) -> list[Hit]:
        if result is None:
            return []
        scores, labels = result
        ok = labels[0] >= 0
        return [Hit(int(self._ids[lab]), float(s), self.key)
                for lab, s in zip(labels[0][ok], scores[0][ok], strict=False)]

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> list[Hit]:
        labels = None if mask is None else np.flatnonzero(mask)
        xb = self._structure.vectors(labels, COPY_FLOATS)
        if xb is None:  # too many to copy out: the structure scans every candidate itself
            return self._hits(self._structure.search(q, k, _selector(mask), exhaustive=True))
        if labels is None:
            labels = np.arange(xb.shape[0])
        # einsum, not `@`: a multithreaded BLAS gemv is 5-10x slower on a busy 2-core board.
        scores = np.einsum('ij,j->i', xb, q[0])
        if k < scores.size:
            part = np.argpartition(-scores, k - 1)[:k]
        else:
            part = np.arange(scores.size)
        order = part[np.argsort(-scores[part], kind='stable')]
        return [Hit(int(self._ids[labels[i]]), float(scores[i]), self.key) for i in order]

    def snapshot(self, vectors: bool) -> tuple[bytes, dict[str, np.ndarray], dict[str, Any]]:
        """(compressed FAISS part, per-label arrays, manifest fields) for a snapshot.

        Taken under the lock (searches wait for a serialisation in memory, not for a file).

        Args:
            vectors: include the vectors (False: they are read back from the rows at load).
        """
        with self._lock:
            n = self.total
            blob, arrays, fields = self._structure.save(vectors)
            meta: dict[str, np.ndarray] = {
                'ids': self._ids[:n].copy(), 'stamp': self._stamp[:n].copy(),
                'salience': self._sal[:n].copy(), 'alive': self._alive[:n].copy(), **arrays}
        return blob, meta, {'kind': self._structure.kind, **fields}

    @classmethod
    def from_snapshot(cls, modality: str, dim: int, cfg: IndexConfig, structure: Structure,
                      meta: dict[str, np.ndarray]) -> VectorIndex:
        """Rebuild the index around a restored structure and its label arrays.

        Raises:
            ValueError: the structure and the arrays do not match.
        """
        n = structure.ntotal
        if any(meta[k].shape != (n,) for k in ('ids', 'stamp', 'salience', 'alive')):
            raise ValueError('snapshot arrays do not match the index')
        vi = cls(modality, dim, cfg, structure)
        vi._grow(n)
        vi._ids[:n] = meta['ids']
        vi._stamp[:n] = meta['stamp']
        vi._sal[:n] = meta['salience']
        vi._alive[:n] = meta['alive'].astype(bool)
        alive = np.flatnonzero(vi._alive[:n])
        vi._label = dict(zip(vi._ids[alive].tolist(), alive.tolist(), strict=False))
        vi._dead = n - len(vi._label)
        return vi


def _selector(mask: np.ndarray | None) -> Any | None:
    # The labels a search may return, as FAISS's bitmap selector (it keeps a reference to the
    # bitmap, which must outlive the search: the selector holds it).
    if mask is None:
        return None
    bitmap = np.packbits(mask, bitorder='little')
    sel = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))
    sel.bitmap_owner = bitmap  # a Python attribute: keeps the bitmap alive with the selector
    return sel
