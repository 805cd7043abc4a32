"""The indexable rows as a start reads them: one pass over the table, a chunk of ids at a time.

At start the memory loads its index snapshot, whose vectors (when it was saved without them)
are in the database rows, and reconciles the index with the rows. One pass serves both: each
chunk's embeddings are offered to a consumer (the snapshot being loaded) as they are read, and
the ids of every indexable row are kept for the reconcile.

The database packs each chunk's columns into a few long values, so no Python object is made
per row (reading 100 k rows row by row took about half of a start's load, most of it in making
one object per column per row): a chunk of one kind of embedding comes as its ids and the
embeddings' bytes end to end, with the smallest and largest modality, size and length to show
it is one kind; a mixed chunk also has each row's size, length and modality (fixed-width hex
and padded names), which costs the database more. A store whose chunks come mixed is read the
second way from then on.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from sage_memory.store.codec import decode_embeddings
from sage_memory.store.models import RECALL_KINDS

IndexKey = tuple[str, int]
# (key, (N,) ids, (N, dim) float32 embeddings as stored) -> (N,) mask of the rows it took.
Consumer = Callable[[IndexKey, np.ndarray, np.ndarray], np.ndarray]
# Ids per chunk read.
CHUNK_ROWS = 8192
_MODALITY_WIDTH = 16  # the column's width (models.ExperienceRow.modality)
_HEAD = np.dtype([('id', '>i8'), ('dim', '>u4'), ('len', '>u4')])
_KINDS = ', '.join(f"'{k}'" for k in RECALL_KINDS)
_WHERE = f'id > :lo AND id <= :hi AND kind IN ({_KINDS}) AND embedding_dim > 0'
# One kind of embedding per chunk (the check is in the min/max columns).
_UNIFORM = {
    'sqlite': (
        "SELECT count(*), group_concat(id), min(modality), max(modality), "
        "min(embedding_dim), max(embedding_dim), min(length(embedding)), "
        "max(length(embedding)), CAST(group_concat(embedding, '') AS BLOB) "
        f'FROM experiences WHERE {_WHERE}'),
    'postgresql': (
        "SELECT count(*), string_agg(id::text, ','), min(modality), max(modality), "
        "min(embedding_dim), max(embedding_dim), min(length(embedding)), "
        "max(length(embedding)), string_agg(embedding, ''::bytea) "
        f'FROM experiences WHERE {_WHERE}'),
}
# Any mix: each row's id, size and length as fixed-width hex and its padded modality.
_PACKED = {
    'sqlite': (
        "SELECT count(*), "
        "group_concat(printf('%016x%08x%08x', id, embedding_dim, length(embedding)), ''), "
        f"group_concat(printf('%-{_MODALITY_WIDTH}s', modality), ''), "
        "CAST(group_concat(embedding, '') AS BLOB) "
        f'FROM experiences WHERE {_WHERE}'),
    'postgresql': (
        "SELECT count(*), "
        "string_agg(lpad(to_hex(id), 16, '0') || lpad(to_hex(embedding_dim), 8, '0') "
        "|| lpad(to_hex(length(embedding)), 8, '0'), ''), "
        f"string_agg(rpad(modality, {_MODALITY_WIDTH}), ''), "
        "string_agg(embedding, ''::bytea) "
        f'FROM experiences WHERE {_WHERE}'),
}


@dataclass
class IndexTable:
    """The indexable rows of one (modality, dim): their ids, ascending."""

    dim: int
    ids: np.ndarray


def read_index_table(engine: Engine, consume: Consumer | None = None
                     ) -> dict[IndexKey, IndexTable]:
    """Every indexable row's id (recall kinds with an embedding) by (modality, dim).

    Args:
        engine: the database (SQLite or PostgreSQL).
        consume: offered each chunk's embeddings, in id order, by (modality, dim).
    """
    ids: dict[IndexKey, list[np.ndarray]] = {}
    uniform = text(_UNIFORM[engine.dialect.name])
    mixed = text(_PACKED[engine.dialect.name])
    seen_mixed = False
    with engine.connect() as conn:
        top = int(conn.execute(text('SELECT max(id) FROM experiences')).scalar() or 0)
        for lo in range(0, top, CHUNK_ROWS):
            got = None if seen_mixed else _uniform_chunk(conn, uniform, lo, lo + CHUNK_ROWS)
            if got is None:
                seen_mixed = True
                got = _chunk(conn, mixed, lo, lo + CHUNK_ROWS)
            for key, key_ids, vectors in got:
                ids.setdefault(key, []).append(key_ids)
                if consume is not None:
                    consume(key, key_ids, vectors)
    return {key: IndexTable(key[1], np.concatenate(parts)) for key, parts in ids.items()}


def _uniform_chunk(conn: Connection, sql: Any, lo: int, hi: int
                   ) -> list[tuple[IndexKey, np.ndarray, np.ndarray]] | None:
    # The chunk (lo < id <= hi) when it holds one kind of embedding, all float16; else None.
    count, ids, name, last, dim, top_dim, short, long_, blob = conn.execute(
        sql, {'lo': lo, 'hi': hi}).one()
    if not count:
        return []
    if name != last or dim != top_dim or not short == long_ == 2 * dim:
        return None
    key = (str(name), int(dim))
    rows = np.fromstring(ids, dtype=np.int64, sep=',')  # text mode: a C parser
    if rows.size != count:
        raise ValueError(f'rows {lo}-{hi}: the packed ids do not add up')
    vectors = np.frombuffer(memoryview(blob), '<f2').reshape(count, key[1])
    return [(key, rows, vectors.astype(np.float32))]


def _chunk(conn: Connection, sql: Any, lo: int, hi: int
           ) -> list[tuple[IndexKey, np.ndarray, np.ndarray]]:
    # (key, ids, float32 embeddings) of the indexable rows with lo < id <= hi, by key.
    count, head, modalities, blob = conn.execute(sql, {'lo': lo, 'hi': hi}).one()
    if not count:
        return []
    rows = np.frombuffer(bytes.fromhex(head), _HEAD)
    names = np.frombuffer(modalities.encode('ascii'), f'S{_MODALITY_WIDTH}')
    if rows.size != count or names.size != count:
        raise ValueError(f'rows {lo}-{hi}: the packed columns do not add up')
    view = memoryview(blob)
    lengths = rows['len'].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out = []
    for name, dim in sorted(set(zip(names.tolist(), rows['dim'].tolist(), strict=True))):
        pick = np.flatnonzero((names == name) & (rows['dim'] == dim))
        key = (name.decode('ascii').rstrip(), int(dim))
        if pick.size == count and (lengths == 2 * key[1]).all():
            # The usual chunk: one kind of embedding, all float16, end to end.
            vectors = np.frombuffer(view, '<f2').reshape(count, key[1]).astype(np.float32)
        else:
            vectors = decode_embeddings([view[s:s + n] for s, n in
                                         zip(starts[pick].tolist(), lengths[pick].tolist(),
                                             strict=True)], key[1])
        out.append((key, rows['id'][pick].astype(np.int64), vectors))
    return out
