"""Vector index for recall: one FAISS HNSW index per (modality, embedding dimension).

Embeddings are L2-normalised and searched by inner product, so scores are cosine similarities
in [-1, 1]. Each index keeps, per label, the row id, stamp, salience and an alive flag in numpy
arrays, so time-range and minimum-salience filters and evictions (HNSW cannot delete) become an
`IDSelectorBitmap` passed to the search. When the filter leaves few rows, an exact search over
those rows' stored vectors is both faster and exact, and it is used whenever the filtered HNSW
search returns fewer than k hits.

Snapshots (`save`/`load`) make restart fast: the serialised indexes and their label arrays are
written to `<dir>/manifest.json` + files atomically; at start the saved indexes are loaded and
reconciled with the database (rows added or evicted since the snapshot), instead of rebuilt.
A snapshot may hold the HNSW graph alone (`save(..., vectors=False)`): the vectors are then
read back from where they already are (the database rows) at load, so each vector is kept on
disk once. Snapshot files are zlib-compressed: neighbour lists are 43 % empty slots and ids of
17 bits in 32, so at 100 k rows of M=16 the graph takes 58 bytes a row instead of 132, for
0.12 s of compression per save (level 1; a higher level saves 3 % more at 5x the time).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import threading
import time
from typing import Any
import zlib

# OpenMP threads that spin after a parallel region steal the cores other nodes need: sleep.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from sage_common.private_files import create_private, private_dir  # noqa: E402
from sage_memory.store.codec import decode_embeddings  # noqa: E402

log = logging.getLogger(__name__)

# How long a chunked add sleeps while searches wait for the index.
_YIELD_S = 0.0002

# 2: an entry may say its vectors live elsewhere ('vectors': false).
# 3: files are zlib-compressed. Versions 1 and 2 are still read; older code ignores a version 3
# snapshot and rebuilds from the database.
SNAPSHOT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_COMPRESSED_FROM = 3
_ZLIB_LEVEL = 1
# Compressed bytes read from a snapshot file at a time.
_READ_CHUNK = 1 << 16
IndexKey = tuple[str, int]
# (modality, dim), row ids -> their (N, dim) embeddings in that order (zeros where a row is gone).
VectorSource = Callable[[IndexKey, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class IndexConfig:
    """HNSW settings.

    Attributes:
        m: HNSW graph degree (memory grows with it; 16 is FAISS's usual choice).
        ef_construction: build-time candidate list (quality of the graph).
        ef_search: query-time candidate list (recall vs speed); raised to k when k is larger.
        exact_work: rows * dim under which a filtered query is answered by exact search.
        threads: OpenMP threads FAISS uses for incremental adds (0 = FAISS's default).
        bulk_threads: threads for large (re)builds at start (0 = all cores).
        snapshot_vectors: snapshots also hold the vectors (False: the graph alone, the
            vectors being read back from the database rows at start: one copy on disk).
        add_chunk: rows per graph insert while rows stream in: a query waits for one chunk
            at most, not for a whole burst (0 = the whole batch at once).
    """

    m: int = 16
    # 40 reached recall@10 0.96-0.98 on clustered 384-d embeddings; 128 reaches 0.99+.
    ef_construction: int = 128
    ef_search: int = 128
    exact_work: int = 2_000_000
    threads: int = 1
    bulk_threads: int = 0
    snapshot_vectors: bool = False
    add_chunk: int = 8


@dataclass(frozen=True)
class Hit:
    """One search result: a row id, its cosine similarity and the index it came from."""

    row_id: int
    score: float
    key: IndexKey


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero); returns a new float32 array."""
    v = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    np.divide(v, norms, out=v, where=norms > 1e-12)
    return v


class VectorIndex:
    """HNSW index of the embeddings of one (modality, dim), with row metadata for filters."""

    def __init__(self, modality: str, dim: int, cfg: IndexConfig,
                 index: Any | None = None) -> None:
        self.modality = modality
        self.dim = int(dim)
        self.cfg = cfg
        if index is None:
            index = faiss.IndexHNSWFlat(self.dim, cfg.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = cfg.ef_construction
        self._index = index
        self._lock = threading.RLock()
        # Adders take turns (an add spans several chunks); searches waiting go first.
        self._add_lock = threading.Lock()
        self._searchers = 0
        self._count_lock = threading.Lock()
        n = int(index.ntotal)
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
    def total(self) -> int:
        """Labels in the graph, dead ones included."""
        return int(self._index.ntotal)

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
            stop: threading.Event | None = None) -> int:
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
            return added

    def _add_locked(self, rid: np.ndarray, vecs: np.ndarray, stm: np.ndarray,
                    sal: np.ndarray) -> None:
        with self._lock:
            start = self.total
            self._grow(start + rid.size)
            self._index.add(vecs)
            sl = slice(start, start + rid.size)
            self._ids[sl] = rid
            self._stamp[sl] = stm
            self._sal[sl] = sal
            self._alive[sl] = True
            for off, r in enumerate(rid.tolist()):
                self._label[r] = start + off

    def remove(self, ids: Iterable[int]) -> int:
        """Mark rows dead (they stay in the graph but are never returned); returns count."""
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
        """Share of graph labels that are dead (a rebuild pays off when this grows large)."""
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
                return self._exact(q[0], want, mask)
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.cfg.ef_search, want)
            bitmap = None
            if mask is not None:
                bitmap = np.packbits(mask, bitorder='little')
                sel = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))
                params.sel = sel
            dist, labels = self._index.search(q, want, params=params)
            ok = labels[0] >= 0
            if int(ok.sum()) < want:
                # The graph walk found too few rows passing the filter: answer exactly.
                return self._exact(q[0], want, mask)
            return [Hit(int(self._ids[lab]), float(d), self.key)
                    for lab, d in zip(labels[0][ok], dist[0][ok], strict=False)]

    def _vectors(self) -> np.ndarray:
        storage = faiss.downcast_index(self._index.storage)
        # Zero-copy view of the stored (normalised) vectors, (ntotal, dim).
        xb = storage.get_xb()  # type: ignore[attr-defined]
        return faiss.rev_swig_ptr(xb, self.total * self.dim).reshape(
            self.total, self.dim)

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> list[Hit]:
        xb = self._vectors()
        # einsum, not `@`: a multithreaded BLAS gemv is 5-10x slower on a busy 2-core board.
        if mask is None:
            labels = np.arange(self.total)
            scores = np.einsum('ij,j->i', xb, q)
        else:
            labels = np.flatnonzero(mask)
            scores = np.einsum('ij,j->i', xb[labels], q)
        if k < scores.size:
            part = np.argpartition(-scores, k - 1)[:k]
        else:
            part = np.arange(scores.size)
        order = part[np.argsort(-scores[part], kind='stable')]
        return [Hit(int(self._ids[labels[i]]), float(scores[i]), self.key) for i in order]

    def serialize(self, vectors: bool = True) -> tuple[bytes, dict[str, np.ndarray]]:
        """(zlib-compressed serialised FAISS index, label metadata arrays) for a snapshot.

        The index is serialised under the lock (a copy in memory, so searches wait for a
        memcpy, not for the compression) and compressed from that copy without another.

        Args:
            vectors: include the vectors (False: the HNSW graph alone).
        """
        writer = faiss.VectorIOWriter()
        with self._lock:
            n = self.total
            faiss.write_index(self._index, writer, 0 if vectors else faiss.IO_FLAG_SKIP_STORAGE)
            meta: dict[str, np.ndarray] = {
                'ids': self._ids[:n].copy(), 'stamp': self._stamp[:n].copy(),
                'salience': self._sal[:n].copy(), 'alive': self._alive[:n].copy()}
        raw = faiss.rev_swig_ptr(writer.data.data(), writer.data.size())  # a view, no copy
        blob = zlib.compress(raw, _ZLIB_LEVEL)
        del raw, writer
        return blob, meta

    @classmethod
    def from_snapshot(cls, modality: str, dim: int, cfg: IndexConfig, index: Any,
                      meta: dict[str, np.ndarray]) -> VectorIndex:
        """Rebuild the wrapper around a loaded FAISS index and its label arrays.

        Raises:
            ValueError: the index and the arrays do not match.
        """
        n = int(index.ntotal)
        if int(index.d) != dim or any(meta[k].shape != (n,) for k in
                                      ('ids', 'stamp', 'salience', 'alive')):
            raise ValueError('snapshot arrays do not match the index')
        index.hnsw.efConstruction = cfg.ef_construction
        vi = cls(modality, dim, cfg, index=index)
        vi._grow(n)
        vi._ids[:n] = meta['ids']
        vi._stamp[:n] = meta['stamp']
        vi._sal[:n] = meta['salience']
        vi._alive[:n] = meta['alive'].astype(bool)
        alive = np.flatnonzero(vi._alive[:n])
        vi._label = dict(zip(vi._ids[alive].tolist(), alive.tolist(), strict=False))
        vi._dead = n - len(vi._label)
        return vi


class IndexSet:
    """All vector indexes of one store, keyed by (modality, dim)."""

    def __init__(self, cfg: IndexConfig) -> None:
        self.cfg = cfg
        if cfg.threads > 0:
            faiss.omp_set_num_threads(cfg.threads)
        self._lock = threading.Lock()
        self._indexes: dict[IndexKey, VectorIndex] = {}

    def keys(self) -> list[IndexKey]:
        """(modality, dim) of every index."""
        with self._lock:
            return sorted(self._indexes)

    def get(self, key: IndexKey) -> VectorIndex | None:
        """The index for (modality, dim), if any."""
        with self._lock:
            return self._indexes.get(key)

    def ensure(self, key: IndexKey) -> VectorIndex:
        """The index for (modality, dim), created when missing."""
        with self._lock:
            vi = self._indexes.get(key)
            if vi is None:
                vi = VectorIndex(key[0], key[1], self.cfg)
                self._indexes[key] = vi
            return vi

    def replace(self, vi: VectorIndex) -> None:
        """Put vi in place of the index with the same key (after a rebuild)."""
        with self._lock:
            self._indexes[vi.key] = vi

    def drop(self, key: IndexKey) -> None:
        """Forget one index."""
        with self._lock:
            self._indexes.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._indexes.values())

    def sizes(self) -> dict[str, int]:
        """Live rows per index, keyed 'modality/dim'."""
        with self._lock:
            return {f'{m}/{d}': len(v) for (m, d), v in sorted(self._indexes.items())}

    def bulk(self, on: bool) -> None:
        """Use bulk_threads (on) or threads (off) for FAISS adds."""
        n = (self.cfg.bulk_threads or os.cpu_count() or 1) if on else self.cfg.threads
        if n > 0:
            faiss.omp_set_num_threads(n)

    def add_rows(self, rows: Iterable[Any]) -> int:
        """Add (id, modality, embedding_dim, embedding bytes, stamp, salience) rows."""
        groups: dict[IndexKey, list[Any]] = {}
        for r in rows:
            groups.setdefault((r[1], int(r[2])), []).append(r)
        added = 0
        for key, group in groups.items():
            vecs = decode_embeddings([bytes(g[3]) for g in group], key[1])
            added += self.ensure(key).add([g[0] for g in group], vecs,
                                          [g[4] for g in group], [g[5] for g in group])
        return added

    def remove(self, ids: Iterable[int]) -> int:
        """Mark row ids dead in whichever index holds them."""
        ids = list(ids)
        with self._lock:
            indexes = list(self._indexes.values())
        return sum(vi.remove(ids) for vi in indexes)

    def search(self, query: np.ndarray, k: int, keys: Sequence[IndexKey], start: float = 0.0,
               end: float = 0.0, min_salience: float = 0.0) -> list[Hit]:
        """Best k hits over the given indexes (cosine similarity, best first)."""
        hits: list[Hit] = []
        for key in keys:
            vi = self.get(key)
            if vi is not None:
                hits += vi.search(query, k, start, end, min_salience)
        hits.sort(key=lambda h: (-h.score, h.row_id))
        return hits[:k]

    # --------------------------------------------------------------- snapshots
    def save(self, directory: Path, vectors: bool = True) -> int:
        """Write every index to directory atomically; returns the number of rows saved.

        Args:
            directory: snapshot folder (created private).
            vectors: also write the vectors (False: the graph alone; `load` then needs a
                VectorSource to read them back).
        """
        private_dir(directory)  # 0700: snapshots hold what the robot remembers
        manifest_path = directory / 'manifest.json'
        gen = 0
        if manifest_path.exists():
            try:
                gen = int(json.loads(manifest_path.read_text()).get('generation', 0)) + 1
            except (OSError, ValueError):
                gen = 0
        entries = []
        total = 0
        with self._lock:
            indexes = list(self._indexes.values())
        for vi in indexes:
            stem = f'{vi.modality}-{vi.dim}.g{gen}'
            blob, meta = vi.serialize(vectors)
            _write_atomic(directory / f'{stem}.faiss', blob)
            del blob
            with os.fdopen(create_private(directory / f'{stem}.npz.tmp'), 'wb') as fh:
                np.savez_compressed(fh, ids=meta['ids'], stamp=meta['stamp'],
                                    salience=meta['salience'], alive=meta['alive'])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(directory / f'{stem}.npz.tmp', directory / f'{stem}.npz')
            entries.append({'modality': vi.modality, 'dim': vi.dim, 'index': f'{stem}.faiss',
                            'meta': f'{stem}.npz', 'labels': int(meta['ids'].size),
                            'vectors': vectors})
            total += int(meta['alive'].sum())
        manifest = {'version': SNAPSHOT_VERSION, 'generation': gen, 'indexes': entries}
        _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
        keep = {'manifest.json'} | {e['index'] for e in entries} | {e['meta'] for e in entries}
        for path in directory.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)
        return total

    def load(self, directory: Path, source: VectorSource | None = None) -> list[str]:
        """Load a snapshot written by save(); returns problems (indexes that were skipped).

        Args:
            directory: snapshot folder.
            source: reads the vectors of an index saved without them.
        """
        problems: list[str] = []
        manifest_path = directory / 'manifest.json'
        if not manifest_path.exists():
            return problems
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get('version') not in _READABLE_VERSIONS:
                return [f'index snapshot version {manifest.get("version")} ignored']
            entries = list(manifest['indexes'])
        except (OSError, ValueError, KeyError, TypeError) as err:
            return [f'unreadable index manifest: {err}']
        compressed = int(manifest['version']) >= _COMPRESSED_FROM
        for e in entries:
            try:
                with np.load(directory / e['meta']) as data:
                    meta = {k: data[k] for k in ('ids', 'stamp', 'salience', 'alive')}
                with_vectors = bool(e.get('vectors', True))
                if not with_vectors and source is None:
                    raise ValueError('its vectors are kept elsewhere and no source was given')
                index = _read_index(directory / e['index'], compressed, with_vectors)
                if not with_vectors:
                    _attach_vectors(index, (str(e['modality']), int(e['dim'])), meta['ids'],
                                    source)
                vi = VectorIndex.from_snapshot(str(e['modality']), int(e['dim']), self.cfg,
                                               index, meta)
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
                problems.append(f'index snapshot {e.get("index")} skipped: {err}')
                continue
            with self._lock:
                self._indexes[vi.key] = vi
        return problems


def _read_index(path: Path, compressed: bool, vectors: bool) -> Any:
    """A FAISS index from a snapshot file (zlib-compressed or not; graph alone or not)."""
    flags = 0 if vectors else faiss.IO_FLAG_SKIP_STORAGE
    if not compressed:
        return faiss.read_index(str(path), flags)
    # Decompressed as FAISS reads (blocks of at most 1 MiB): no whole copy of the index.
    inflate = zlib.decompressobj()
    with path.open('rb') as fh:
        def read(n: int) -> bytes:
            parts, have = [], 0
            while have < n:
                data = inflate.unconsumed_tail or fh.read(_READ_CHUNK)
                if not data:
                    break
                part = inflate.decompress(data, n - have)
                parts.append(part)
                have += len(part)
            return b''.join(parts)
        try:
            return faiss.read_index(faiss.PyCallbackIOReader(read), flags)
        except zlib.error as err:
            raise ValueError(f'corrupt compressed index: {err}') from err


def _attach_vectors(index: Any, key: IndexKey, ids: np.ndarray, source: VectorSource) -> None:
    """Give a graph-only HNSW index its vectors, read from source in label order."""
    if int(index.d) != key[1] or int(index.ntotal) != ids.size:
        raise ValueError('graph does not match its label arrays')
    vecs = np.asarray(source(key, ids), np.float32)
    if vecs.shape != (ids.size, key[1]):
        raise ValueError(f'vector source gave {vecs.shape}, expected {(ids.size, key[1])}')
    storage = faiss.IndexFlat(key[1], index.metric_type)
    storage.add(normalise(vecs))
    index.storage = storage
    storage.this.disown()  # the index owns and frees its storage, as after read_index
    index.own_fields = True


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with os.fdopen(create_private(tmp), 'wb') as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
