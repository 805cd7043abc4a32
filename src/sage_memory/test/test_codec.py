"""Compact rows: float16 embeddings and bit-packed code grids, with older rows read unchanged."""
from __future__ import annotations

from dataclasses import replace
import sqlite3

import numpy as np

from sage_memory.index.structure import IndexConfig
from sage_memory.index.vector_index import VectorIndex
from sage_memory.store.models import PORTABLE_COLUMNS, record_to_row, rows_to_insert
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import MemoryStore, StoreConfig
from sage_memory.store.synthetic import synthetic_record

DIM, GRID, CODEBOOK, PREVIEW = 384, 30, 512, 3000


def open_store(tmp_path) -> MemoryStore:
    store = MemoryStore(StoreConfig(data_dir=str(tmp_path),
                                    retention=RetentionConfig(max_rows=0)))
    store.start()
    return store


def test_a_row_takes_the_bytes_of_its_compact_fields_not_float32_and_uint16(tmp_path):
    # The bench's row: 384-d embedding, 30x30 codes of a 512-entry codebook, 3 KB preview.
    rng = np.random.default_rng(0)
    n = 2000
    store = open_store(tmp_path)
    store.submit_many([synthetic_record(i, rng, dim=DIM, preview_bytes=PREVIEW, grid=GRID)
                       for i in range(n)])
    assert store.flush(60) and store.close()
    # float16 embedding + 9-bit codes + preview, plus 700 bytes for the other columns, the four
    # indexes and page slack. float32 and uint16 alone would be 1,536 + 1,800 bytes (8.3 KB/row
    # was measured before: rows past a page's local limit each left most of a leaf page empty).
    fields = DIM * 2 + (GRID * GRID * 9 + 7) // 8 + PREVIEW
    assert store.path is not None
    per_row = store.path.stat().st_size / n
    assert per_row <= fields + 700, per_row


def test_a_database_written_with_float32_and_uint16_reads_back_the_same(tmp_path):
    # Rows as the store wrote them before the compact encoding (float32 embedding, uint16 codes).
    rng = np.random.default_rng(1)
    old = [synthetic_record(i, rng, dim=DIM, preview_bytes=64, grid=GRID) for i in range(20)]
    store = open_store(tmp_path)
    assert store.close()
    conn = sqlite3.connect(tmp_path / 'sage_memory.db')
    rows = []
    for rec in old:
        row = record_to_row(rec)
        row['embedding'] = np.asarray(rec.embedding, '<f4').tobytes()
        row['codes'] = np.asarray(rec.codes, '<u2').tobytes()
        rows.append(tuple(row[c] for c in PORTABLE_COLUMNS))
    conn.executemany(f'INSERT INTO experiences ({", ".join(PORTABLE_COLUMNS)}) VALUES '
                     f'({", ".join("?" * len(PORTABLE_COLUMNS))})', rows)
    conn.commit()
    conn.close()
    store = open_store(tmp_path)
    try:
        got = store.fetch_uuids([r.uuid for r in old])
        assert len(got) == len(old)
        for rec in old:
            back = got[rec.uuid]
            assert back.embedding is not None and back.embedding.dtype == np.float32
            assert np.array_equal(back.embedding, rec.embedding)  # bit-exact, not rounded
            assert back.codes is not None and np.array_equal(back.codes, rec.codes)
            assert back.codes.shape == (GRID, GRID)
            assert (back.preview, back.text, back.pose, back.extra) == (
                rec.preview, rec.text, rec.pose, rec.extra)
    finally:
        store.close()


def test_new_rows_read_back_exact_codes_and_float16_embeddings(tmp_path):
    rng = np.random.default_rng(2)
    recs = [synthetic_record(0, rng, dim=DIM, preview_bytes=0, grid=GRID),
            # A code past its codebook is kept whole (plain uint16), not truncated to 9 bits.
            synthetic_record(1, rng, dim=8, preview_bytes=0, grid=0,
                             codes=np.array([[3, 700]], np.uint16), codebook_size=512),
            # A value float16 cannot hold keeps the embedding in float32.
            synthetic_record(2, rng, dim=4, preview_bytes=0, grid=0,
                             embedding=np.array([1e6, -2.5, 0.1, 3.0], np.float32))]
    store = open_store(tmp_path)
    try:
        store.submit_many(recs)
        assert store.flush(60)
        got = store.fetch_uuids([r.uuid for r in recs])
        assert np.array_equal(got[recs[0].uuid].codes, recs[0].codes)
        assert np.array_equal(got[recs[1].uuid].codes, recs[1].codes)
        assert np.array_equal(got[recs[2].uuid].embedding, recs[2].embedding)
        emb = got[recs[0].uuid].embedding
        assert np.allclose(emb, recs[0].embedding, rtol=1e-3, atol=1e-4)
    finally:
        store.close()


def test_float16_vectors_from_the_database_recall_99_percent_of_the_float32_top_10(tmp_path):
    # Clustered 384-d embeddings (as in the index test): the exact top 10 over the vectors the
    # database gives back must be the float32 top 10.
    rng = np.random.default_rng(3)
    n = 3000
    centres = rng.standard_normal((600, DIM)).astype(np.float32)
    x = (centres[rng.integers(0, 600, n)] + 0.3 * rng.standard_normal((n, DIM))).astype(
        np.float32)
    recs = [synthetic_record(i, rng, dim=DIM, preview_bytes=0, grid=0, embedding=x[i])
            for i in range(n)]
    store = open_store(tmp_path)
    try:
        store.submit_many(recs)
        assert store.flush(60)
        by_uuid = store.fetch_uuids([r.uuid for r in recs])
    finally:
        store.close()
    stored = np.stack([by_uuid[r.uuid].embedding for r in recs])
    assert not np.array_equal(stored, x)  # rounded: the rows hold float16
    full = VectorIndex('vision', DIM, IndexConfig(exact_work=0))
    full.add(np.arange(n), x, np.ones(n), np.ones(n))
    half = VectorIndex('vision', DIM, IndexConfig(exact_work=0))
    half.add(np.arange(n), stored, np.ones(n), np.ones(n))
    queries = (centres[rng.integers(0, 600, 100)]
               + 0.3 * rng.standard_normal((100, DIM))).astype(np.float32)
    hits = sum(len({h.row_id for h in full.search(q, 10, exact=True)}
                   & {h.row_id for h in half.search(q, 10, exact=True)}) for q in queries)
    assert hits / (10 * len(queries)) >= 0.99


def test_the_writers_batch_rows_are_the_bytes_record_to_row_gives():
    # rows_to_insert encodes a batch's embeddings together: each row must still be the row
    # record_to_row writes alone (float16 where it fits, float32 where not, none without).
    rng = np.random.default_rng(9)
    records = [synthetic_record(i, rng, dim=16, preview_bytes=10, grid=3) for i in range(6)]
    records[1] = replace(records[1], embedding=np.full(16, 7e4, np.float32))  # beyond float16
    records[2] = replace(records[2], embedding=None)
    records[3] = replace(records[3], embedding=rng.standard_normal(8).astype(np.float32))
    records[4] = replace(records[4], embedding=np.array([np.nan] * 16, np.float32))
    records[5] = replace(records[5], extra={'b': [1, 2.5], 'a': {'z': 'é', 'y': None}})
    rows = rows_to_insert(records)
    assert rows == [tuple(record_to_row(r)[c] for c in PORTABLE_COLUMNS) for r in records]
    assert len(rows[0][PORTABLE_COLUMNS.index('embedding')]) == 32
    assert len(rows[1][PORTABLE_COLUMNS.index('embedding')]) == 64
    assert rows[2][PORTABLE_COLUMNS.index('embedding')] is None
