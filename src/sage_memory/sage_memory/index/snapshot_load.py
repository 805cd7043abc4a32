"""Loading an index snapshot, with its vectors read from elsewhere as they come.

A snapshot saved without vectors names, per index, the row id of each label; the vectors are
in the database rows. `SnapshotLoad` opens the snapshot and then takes the vectors in whatever
batches they are read (`consume`: a chunk of rows at a time, as the start's one pass over the
table offers them), each filed at its labels; `finish` hands over the indexes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sage_memory.index import hnsw
from sage_memory.index.structure import Filler, IndexConfig, Structure
from sage_memory.index.vector_index import STRUCTURES, VectorIndex
from sage_memory.index.vectors import IndexKey, normalise

# 4: an entry names its structure ('kind'), with that structure's fields. Versions 1-3 hold
# HNSW graphs (3: zlib-compressed), still read by the 'hnsw' kind; another kind rebuilds its
# index from the database once.
SNAPSHOT_VERSION = 4
_HNSW_VERSIONS = (1, 2, 3)
_META = ('ids', 'stamp', 'salience', 'alive')


class _Pending:
    """One index waiting for its vectors: its labels by row id, and where they go."""

    def __init__(self, key: IndexKey, meta: dict[str, np.ndarray], filler: Filler) -> None:
        self.key = key
        self.meta = meta
        self.filler = filler
        # Live labels by row id (a dead label keeps a zero vector: it is never returned).
        alive = np.flatnonzero(meta['alive'])
        order = np.argsort(meta['ids'][alive], kind='stable')
        self.labels = alive[order]
        self.sorted_ids = meta['ids'][self.labels]

    def take(self, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        if not self.sorted_ids.size:
            return np.zeros(ids.size, bool)
        pos = np.minimum(np.searchsorted(self.sorted_ids, ids), self.sorted_ids.size - 1)
        found = self.sorted_ids[pos] == ids
        if found.any():
            # vectors[found] is a fresh array (or, all found, the caller's own): scaled in
            # place.
            mine = vectors[found] if not found.all() else vectors
            self.filler.put(self.labels[pos[found]], normalise(mine, in_place=True))
        return found


class SnapshotLoad:
    """A snapshot being loaded (see the module docstring).

    Args:
        directory: snapshot folder.
        cfg: index settings (the kind a snapshot must hold).
    """

    def __init__(self, directory: Path, cfg: IndexConfig) -> None:
        self.cfg = cfg
        self.problems: list[str] = []
        self._ready: list[VectorIndex] = []
        self._pending: dict[IndexKey, _Pending] = {}
        manifest_path = directory / 'manifest.json'
        if not manifest_path.exists():
            return
        try:
            manifest = json.loads(manifest_path.read_text())
            version = manifest.get('version')
            if version != SNAPSHOT_VERSION and version not in _HNSW_VERSIONS:
                self.problems.append(f'index snapshot version {version} ignored: the index '
                                     'is rebuilt from the database')
                return
            entries = list(manifest['indexes'])
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.problems.append(f'unreadable index manifest: {err}')
            return
        for e in entries:
            try:
                self._open(directory, e, int(version))
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
                self.problems.append(f'index snapshot {e.get("index")} skipped: {err}')

    def _open(self, directory: Path, e: dict[str, Any], version: int) -> None:
        key = (str(e['modality']), int(e['dim']))
        kind = 'hnsw' if version in _HNSW_VERSIONS else str(e['kind'])
        if kind != self.cfg.kind:
            raise ValueError(f'it holds a {kind} index and {self.cfg.kind} is configured: '
                             'the index is rebuilt from the database')
        with np.load(directory / e['meta']) as data:
            meta = {k: data[k] for k in data.files}
        missing = [k for k in _META if k not in meta]
        if missing:
            raise ValueError(f'label arrays missing: {", ".join(missing)}')
        with_vectors = bool(e.get('vectors', True))
        path = directory / e['index']
        if version in _HNSW_VERSIONS:
            got = hnsw.restore(path, key[1], self.cfg, e, meta, with_vectors,
                               compressed=version >= 3)
        else:
            got = STRUCTURES[kind][1](path, key[1], self.cfg, e, meta, with_vectors)
        if with_vectors:
            self._ready.append(self._index(key, got, meta))
        else:
            self._pending[key] = _Pending(key, meta, got)  # type: ignore[arg-type]

    def _index(self, key: IndexKey, structure: Structure, meta: dict[str, np.ndarray]
               ) -> VectorIndex:
        return VectorIndex.from_snapshot(key[0], key[1], self.cfg, structure, meta)

    def wanted(self) -> dict[IndexKey, np.ndarray]:
        """Row ids whose vectors each waiting index needs, ascending."""
        return {key: p.sorted_ids for key, p in self._pending.items()}

    def consume(self, key: IndexKey, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """File the vectors of the rows this snapshot names; returns the (N,) mask of the
        rows it took.

        Args:
            key: (modality, dim) of the rows.
            ids: (N,) row ids.
            vectors: (N, dim) embeddings as stored (normalised here, in place when every row
                is taken: the caller hands its array over).
        """
        pending = self._pending.get(key)
        if pending is None:
            return np.zeros(len(ids), bool)
        try:
            return pending.take(np.asarray(ids, np.int64), vectors)
        except (RuntimeError, ValueError) as err:
            self.problems.append(f'index snapshot of {key[0]}/{key[1]} skipped: {err}')
            del self._pending[key]
            return np.zeros(len(ids), bool)

    def finish(self) -> list[VectorIndex]:
        """Every index loaded (rows never offered keep zero vectors, dead or not: the
        reconcile that follows a load removes rows gone from the database)."""
        out = list(self._ready)
        for key, pending in self._pending.items():
            try:
                out.append(self._index(key, pending.filler.done(), pending.meta))
            except (RuntimeError, ValueError) as err:
                self.problems.append(f'index snapshot of {key[0]}/{key[1]} skipped: {err}')
        self._pending.clear()
        return out
