"""All vector indexes of one store, keyed by (modality, dim), and their snapshots.

Snapshots (`save`/`load`) make restart fast: each index's structure and its label arrays are
written to `<dir>/manifest.json` + files atomically; at start they are loaded and reconciled
with the database (rows added or evicted since the snapshot), instead of rebuilt. A snapshot
may leave the vectors out (`save(..., vectors=False)`): they are then read back from where they
already are (the database rows) at load, so each vector is kept on disk once. Files are
zlib-compressed (sage_memory.index.snapshot_files).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
import json
import os
from pathlib import Path
import threading
from typing import Any

import faiss
import numpy as np

from sage_common.private_files import create_private, private_dir
from sage_memory.index.snapshot_files import write_atomic
from sage_memory.index.snapshot_load import SNAPSHOT_VERSION, SnapshotLoad
from sage_memory.index.structure import IndexConfig
from sage_memory.index.vector_index import STRUCTURES, VectorIndex
from sage_memory.index.vectors import Hit, IndexKey, VectorSource
from sage_memory.store.codec import decode_embeddings




class IndexSet:
    """All vector indexes of one store, keyed by (modality, dim)."""

    def __init__(self, cfg: IndexConfig) -> None:
        if cfg.kind not in STRUCTURES:
            raise ValueError(f"index kind {cfg.kind!r}: one of {', '.join(STRUCTURES)}")
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
        """Use bulk_threads (on) or threads (off) for the FAISS calls of the calling thread.

        OpenMP keeps its thread count per thread: the thread that adds must set it (set in
        another, the adds ran on every core, a few rows at a time: 81 us of CPU a row
        against 29 at 100 k rows).
        """
        n = (self.cfg.bulk_threads or os.cpu_count() or 1) if on else self.cfg.threads
        if n > 0:
            faiss.omp_set_num_threads(n)

    def add_rows(self, rows: Iterable[Any], rebuild: bool = True) -> int:
        """Add (id, modality, embedding_dim, embedding bytes, stamp, salience) rows.

        Args:
            rows: the rows.
            rebuild: let structures rebuild themselves when due (False: a bulk load, which
                calls rebuild_if_due at its end).
        """
        groups: dict[IndexKey, list[Any]] = {}
        for r in rows:
            groups.setdefault((r[1], int(r[2])), []).append(r)
        added = 0
        for key, group in groups.items():
            vecs = decode_embeddings([bytes(g[3]) for g in group], key[1])
            added += self.ensure(key).add([g[0] for g in group], vecs,
                                          [g[4] for g in group], [g[5] for g in group],
                                          rebuild=rebuild)
        return added

    def rebuild_if_due(self) -> int:
        """Rebuild the structures that became due (after a bulk load); returns how many."""
        with self._lock:
            indexes = list(self._indexes.values())
        return sum(vi.rebuild_if_due() for vi in indexes)

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
            vectors: also write the vectors (False: `load` then needs a VectorSource to read
                them back).
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
            blob, meta, fields = vi.snapshot(vectors)
            write_atomic(directory / f'{stem}.faiss', blob)
            del blob
            with os.fdopen(create_private(directory / f'{stem}.npz.tmp'), 'wb') as fh:
                np.savez_compressed(fh, **meta)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(directory / f'{stem}.npz.tmp', directory / f'{stem}.npz')
            entries.append({'modality': vi.modality, 'dim': vi.dim, 'index': f'{stem}.faiss',
                            'meta': f'{stem}.npz', 'labels': int(meta['ids'].size),
                            'vectors': vectors, **fields})
            total += int(meta['alive'].sum())
        manifest = {'version': SNAPSHOT_VERSION, 'generation': gen, 'indexes': entries}
        write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
        keep = {'manifest.json'} | {e['index'] for e in entries} | {e['meta'] for e in entries}
        for path in directory.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)
        return total

    def load(self, directory: Path, source: VectorSource | None = None) -> list[str]:
        """Load a snapshot written by save(); returns problems (indexes that were skipped).

        Args:
            directory: snapshot folder.
            source: reads the vectors of an index saved without them (all at once; a start
                streams them instead: sage_memory.index.snapshot_load).
        """
        loading = SnapshotLoad(directory, self.cfg)
        for key, ids in loading.wanted().items():
            if source is None:
                loading.problems.append(f'index snapshot of {key[0]}/{key[1]} skipped: its '
                                        'vectors are kept elsewhere and no source was given')
                continue
            vectors = np.asarray(source(key, ids), np.float32)
            if vectors.shape != (ids.size, key[1]):
                loading.problems.append(f'index snapshot of {key[0]}/{key[1]} skipped: vector '
                                        f'source gave {vectors.shape}, expected '
                                        f'{(ids.size, key[1])}')
                continue
            loading.consume(key, ids, vectors)
        for vi in loading.finish():
            self.replace(vi)
        return loading.problems
