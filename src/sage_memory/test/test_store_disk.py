"""What the store leaves on disk: the SQLite WAL stays bounded under a flood of inserts."""
from __future__ import annotations

import os
import sqlite3
import time
import uuid

import numpy as np

from sage_memory.index.structure import IndexConfig
from sage_memory.memory import Memory, MemoryConfig
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import MemoryStore, StoreConfig
from sage_memory.store.synthetic import synthetic_record

MIB = 2**20


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_a_flood_leaves_the_wal_within_its_bound_and_every_row_in_the_database(tmp_path):
    # The periodic checkpoint is pushed out of the way: only the size bound may act.
    store = MemoryStore(StoreConfig(data_dir=str(tmp_path), wal_max_mb=1.0,
                                    wal_checkpoint_period_s=3600.0,
                                    retention=RetentionConfig(max_rows=0)))
    store.start()
    try:
        rng = np.random.default_rng(0)
        rows = [synthetic_record(i, rng, dim=16, preview_bytes=4000, grid=0)
                for i in range(3000)]  # about 13 MB of rows, 13x the bound
        store.submit_many(rows)
        assert store.flush(60)
        assert wait_for(lambda: store.wal_bytes() <= 1 * MIB, 10.0), store.wal_bytes()
        assert store.count() == len(rows)
        assert store.path is not None and store.path.stat().st_size > 10 * MIB
    finally:
        assert store.close()


def test_each_vector_is_kept_once_on_disk_and_a_restart_recalls_the_same_rows(tmp_path):
    dim, n = 128, 2000  # vectors of 512 bytes, a graph of about 170 bytes per row
    cfg = MemoryConfig(store=StoreConfig(data_dir=str(tmp_path),
                                         retention=RetentionConfig(max_rows=0)),
                       index=IndexConfig(exact_work=0), snapshot_period_s=0.0,
                       refresh_period_s=0.0)
    rng = np.random.default_rng(1)
    rows = [synthetic_record(i, rng, dim=dim, preview_bytes=16, grid=0) for i in range(n)]
    queries = rng.standard_normal((20, dim)).astype(np.float32)
    mem = Memory(cfg)
    mem.submit_many(rows)
    assert mem.flush(60) and mem.wait_index_idle(60)
    before = [[h.row_id for h in mem.index.search(q, 10, [('vision', dim)])] for q in queries]
    mem.close()
    snapshot = sum(p.stat().st_size for p in mem.snapshot_dir.iterdir())
    # The vectors alone would take n * dim * 4 bytes: the snapshot holds the graph without them.
    assert snapshot < n * dim * 4
    again = Memory(cfg)
    try:
        assert again.wait_index_ready(60)
        assert again.problems == []
        assert len(again.index) == n
        after = [[h.row_id for h in again.index.search(q, 10, [('vision', dim)])]
                 for q in queries]
        assert after == before
    finally:
        again.close()


def rss_mb() -> float:
    pages = int(open('/proc/self/statm').read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / MIB


def test_rss_returns_after_a_burst_of_rows(tmp_path):
    cfg = MemoryConfig(store=StoreConfig(data_dir=str(tmp_path),
                                         retention=RetentionConfig(max_rows=0)),
                       snapshot_period_s=0.0, refresh_period_s=0.0, heap_trim_rows=1000)
    mem = Memory(cfg)
    try:
        assert mem.wait_index_ready(60)
        base = rss_mb()
        rng = np.random.default_rng(2)
        rows = [synthetic_record(i, rng, dim=16, preview_bytes=3000, grid=30)
                for i in range(20_000)]  # about 100 MB of rows held at once
        mem.submit_many(rows)
        del rows
        assert mem.flush(120) and mem.wait_index_idle(60)
        # The index keeps about 100 bytes a row; the burst's objects must be given back.
        assert wait_for(lambda: rss_mb() < base + 40, 10.0), (base, rss_mb())
    finally:
        mem.close()


def test_row_keys_are_uuid7_in_insert_order_so_the_uuid_index_only_appends(tmp_path):
    store = MemoryStore(StoreConfig(data_dir=str(tmp_path),
                                    retention=RetentionConfig(max_rows=0)))
    store.start()
    t0_ms = time.time_ns() // 1_000_000
    try:
        rng = np.random.default_rng(0)
        for k in range(20):  # twenty commits over some milliseconds
            store.submit_many([synthetic_record(i, rng, dim=8, preview_bytes=0, grid=0)
                               for i in range(k * 50, (k + 1) * 50)])
            assert store.flush(30)
    finally:
        assert store.close()
    t1_ms = time.time_ns() // 1_000_000
    with sqlite3.connect(tmp_path / 'sage_memory.db') as db:
        keys = [u for (u,) in db.execute('SELECT uuid FROM experiences ORDER BY id')]
    assert len(keys) == len(set(keys)) == 1000
    # A UUID4 key lands at a random place in the index: one random page per row per commit.
    assert keys == sorted(keys)
    parsed = [uuid.UUID(k) for k in keys]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert t0_ms <= parsed[0].int >> 80 <= parsed[-1].int >> 80 <= t1_ms


def test_a_new_file_takes_the_configured_page_size_and_an_old_one_keeps_its_own(tmp_path):

    def page_size() -> int:
        with sqlite3.connect(tmp_path / 'sage_memory.db') as db:
            return int(db.execute('PRAGMA page_size').fetchone()[0])
    rng = np.random.default_rng(0)
    for size, rows in ((16384, 30), (4096, 60)):
        store = MemoryStore(StoreConfig(data_dir=str(tmp_path), page_size=size,
                                        retention=RetentionConfig(max_rows=0)))
        store.start()
        try:
            store.submit_many([synthetic_record(i, rng, dim=8, preview_bytes=2000, grid=0)
                               for i in range(rows - 30, rows)])
            assert store.flush(30)
            assert store.count() == rows
        finally:
            assert store.close()
        assert page_size() == 16384  # set before the file turned to WAL; kept when reopened


def test_rows_arriving_one_by_one_share_a_commit_within_the_linger_and_each_is_acked(tmp_path):
    def run(linger: float, batch_max: int, wait_each: bool) -> tuple[int, list[int]]:
        store = MemoryStore(StoreConfig(data_dir=str(tmp_path / f'l{linger}-{batch_max}'),
                                        linger_s=linger, batch_max=batch_max,
                                        retention=RetentionConfig(max_rows=0)))
        acked: list[int] = []
        store.on_commit(lambda recs: acked.extend(r.input_seq for r in recs))
        store.start()
        try:
            rng = np.random.default_rng(0)
            for i in range(12):  # a robot's few rows a second, sped up: one every 20 ms
                store.submit(synthetic_record(i, rng, dim=8, preview_bytes=0, grid=0))
                if wait_each:
                    assert store.flush(30)
                else:
                    time.sleep(0.02)
            assert store.flush(30)
            return store.writer.counts['commits'], sorted(acked)
        finally:
            assert store.close()
    # Without a linger every row is its own commit; each commit rewrites the index pages it
    # touches, so on flash fewer commits are fewer bytes.
    assert run(0.0, 512, wait_each=True) == (12, list(range(12)))
    # Twelve rows over a quarter of a second are one commit within a 2 s linger ...
    assert run(2.0, 512, wait_each=False) == (1, list(range(12)))
    # ... unless the batch already holds batch_max / 8 rows (2 here): no waiting beyond that.
    commits, acked = run(5.0, 16, wait_each=False)
    assert commits >= 2 and acked == list(range(12))
