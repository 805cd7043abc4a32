"""What the store leaves on disk: the SQLite WAL stays bounded under a flood of inserts."""
from __future__ import annotations

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
