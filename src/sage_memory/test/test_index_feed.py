"""A start's one pass over the rows (sage_memory.store.index_feed): the packed chunks give back
every indexable row's id and embedding as stored, whatever the mix of modalities, sizes and
encodings (chunks of one kind first, then mixed ones), on both backends."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sage_memory.store import index_feed
from sage_memory.store.codec import decode_embedding
from sage_memory.store.memory_store import MemoryStore, StoreConfig
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.synthetic import synthetic_record


def test_the_packed_pass_gives_every_indexable_row_as_stored(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(index_feed, 'CHUNK_ROWS', 64)  # several chunks, one of them partial
    rng = np.random.default_rng(3)
    records = []
    for i in range(300):
        # Two chunks of one kind (the short path), then three kinds interleaved.
        modality, dim = ('vision', 32) if i < 128 else (
            ('vision', 32), ('audio', 16), ('language', 24))[i % 3]
        rec = synthetic_record(i, rng, dim=dim, modality=modality, preview_bytes=8, grid=2)
        if i == 202:  # a value beyond float16: stored as float32
            rec = replace(rec, embedding=np.full(dim, 7e4, np.float32))
        if i % 10 == 5:  # context rows are not indexed
            rec = replace(rec, kind='context')
        if i == 11:
            rec = replace(rec, embedding=None)
        records.append(rec)
    store = MemoryStore(StoreConfig(database_url=db_url, data_dir=str(tmp_path),
                                    retention=RetentionConfig(max_rows=0)))
    store.start()
    store.submit_many(records)
    assert store.flush(30)
    offered: dict[tuple[str, int], list] = {}

    def consume(key, ids, vectors):
        offered.setdefault(key, []).append((ids.copy(), vectors.copy()))
        return np.ones(ids.size, bool)
    tables = index_feed.read_index_table(store.engine, consume)
    expect: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    for chunk in store.index_rows():
        for rid, modality, dim, blob, _, _ in chunk:
            expect.setdefault((modality, dim), {})[int(rid)] = decode_embedding(blob, dim)
    store.close()
    assert set(tables) == set(offered) == set(expect)
    for key, rows in expect.items():
        assert tables[key].ids.tolist() == sorted(rows)
        got_ids = np.concatenate([ids for ids, _ in offered[key]])
        got = np.concatenate([v for _, v in offered[key]])
        assert got_ids.tolist() == sorted(rows)  # id order, chunk after chunk
        assert np.array_equal(got, np.stack([rows[i] for i in got_ids.tolist()]))
    assert any((v == 7e4).all(axis=1).any() for _, v in offered[('audio', 16)])  # float32
