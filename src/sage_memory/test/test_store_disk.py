"""What the store leaves on disk: the SQLite WAL stays bounded under a flood of inserts."""
from __future__ import annotations

import os
import time

import numpy as np

from sage_memory.retention import RetentionConfig
from sage_memory.store import MemoryStore, StoreConfig
from sage_memory.synthetic import synthetic_record

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
    from sage_memory.index import IndexConfig
    from sage_memory.memory import Memory, MemoryConfig
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
    from sage_memory.memory import Memory, MemoryConfig
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
