"""The indexable rows as a start reads them: one pass over the table in id order.

At start the memory loads its index snapshot, whose vectors (when it was saved without them)
are in the database rows, and reconciles the index with the rows. One streamed read serves
both: each chunk of rows is offered to a consumer (the snapshot being loaded) as float16
embeddings straight from their bytes, and what is kept afterwards is small: ids, stamps and
saliences of every indexable row, and the embeddings of the rows nobody took (rows stored
since the snapshot, which the reconcile adds).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from sage_memory.store.codec import decode_embeddings
from sage_memory.store.models import EXPERIENCES, RECALL_KINDS

IndexKey = tuple[str, int]
# (key, (N,) ids, (N, dim) float32 embeddings as stored) -> (N,) mask of the rows it took.
Consumer = Callable[[IndexKey, np.ndarray, np.ndarray], np.ndarray]
# Rows fetched from the database at a time.
_CHUNK = 8192


@dataclass
class IndexTable:
    """The indexable rows of one (modality, dim), ids ascending.

    Attributes:
        dim: embedding dimension.
        ids: (N,) row ids, ascending.
        stamps: (N,) stamps.
        saliences: (N,) saliences.
        kept: row id -> float32 embedding as stored, for the rows no consumer took.
    """

    dim: int
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    saliences: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    kept: dict[int, np.ndarray] = field(default_factory=dict)

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, row of each id in this table)."""
        ids = np.asarray(ids, np.int64)
        if not self.ids.size:
            return np.zeros(ids.shape, bool), np.zeros(ids.shape, np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids), self.ids.size - 1)
        return self.ids[pos] == ids, pos

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """(len(ids), dim) float32 embeddings of kept rows, or None when one was not kept
        (a consumer took it)."""
        rows = [self.kept.get(int(i)) for i in ids]
        if any(r is None for r in rows):
            return None
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


def read_index_table(engine: Engine, consume: Consumer | None = None
                     ) -> dict[IndexKey, IndexTable]:
    """Every indexable row (recall kinds with an embedding) by (modality, dim), in id order.

    Args:
        engine: the database.
        consume: offered each chunk's embeddings; the rows it takes are not kept.
    """
    e = EXPERIENCES.c
    # No modality filter: the scan follows the table in id order; filtering on modality
    # would take its index and sort every row again.
    q = (select(e.id, e.modality, e.embedding_dim, e.embedding, e.stamp, e.salience)
         .where(e.kind.in_(list(RECALL_KINDS)), e.embedding_dim > 0).order_by(e.id))
    sql = str(q.compile(engine, compile_kwargs={'literal_binds': True}))
    tables: dict[IndexKey, IndexTable] = {}
    cols: dict[IndexKey, tuple[list[Any], list[Any], list[Any]]] = {}
    groups: dict[Any, list[int] | None]
    raw = engine.raw_connection()  # the driver's own rows: no wrapper object per row
    try:
        cur = raw.cursor()
        cur.execute(sql)
        while True:
            chunk = cur.fetchmany(_CHUNK)
            if not chunk:
                break
            ids, modalities, dims, blobs, stamps, saliences = zip(*chunk, strict=True)
            del chunk
            if len(set(modalities)) == 1 and len(set(dims)) == 1:  # the usual chunk
                groups = {(modalities[0], dims[0]): None}
            else:
                groups = {}
                for i, key in enumerate(zip(modalities, dims, strict=True)):
                    groups.setdefault(key, []).append(i)  # type: ignore[union-attr]
            for key, pick in groups.items():
                name = (str(key[0]), int(key[1]))
                table = tables.setdefault(name, IndexTable(name[1]))
                c = cols.setdefault(name, ([], [], []))
                cols_of = (ids, stamps, saliences, blobs) if pick is None else tuple(
                    [col[i] for i in pick] for col in (ids, stamps, saliences, blobs))
                p_ids, p_stamps, p_sal, p_blobs = cols_of
                c[0].extend(p_ids)
                c[1].extend(p_stamps)
                c[2].extend(p_sal)
                _offer(table, name, np.asarray(p_ids, np.int64), p_blobs, consume)
        cur.close()
    finally:
        raw.close()
    for name, table in tables.items():
        table.ids = np.asarray(cols[name][0], np.int64)
        table.stamps = np.asarray(cols[name][1], np.float64)
        table.saliences = np.asarray(cols[name][2], np.float32)
    return tables


def _offer(table: IndexTable, key: IndexKey, ids: np.ndarray, blobs: Sequence[bytes],
           consume: Consumer | None) -> None:
    # One chunk's embeddings to the consumer; the rows it does not take are kept.
    vectors = decode_embeddings(blobs, key[1])
    taken = consume(key, ids, vectors) if consume is not None else np.zeros(ids.size, bool)
    for i in np.flatnonzero(~taken).tolist():
        table.kept[int(ids[i])] = vectors[i].copy()
