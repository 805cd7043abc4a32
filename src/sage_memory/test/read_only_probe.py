"""Opens the memory in DATA_DIR the way the memory node does and reports, as JSON, what it
could read and what it refused (run by the read-only tests without write permission).

Usage: python read_only_probe.py DATA_DIR
"""
from __future__ import annotations

import json
import sys

import numpy as np

from sage_common.errors import SageError
from sage_memory.memory import Memory, MemoryConfig
from sage_memory.index.recall import Query
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import StoreConfig
from sage_memory.store.synthetic import synthetic_record


def main() -> int:
    cfg = MemoryConfig(store=StoreConfig(data_dir=sys.argv[1],
                                         retention=RetentionConfig(max_rows=0)),
                       snapshot_period_s=0.0, refresh_period_s=0.0)
    try:
        mem = Memory(cfg)
    except SageError as err:
        print(json.dumps({'error': str(err)}))
        return 2
    mem.wait_index_ready(60)
    rng = np.random.default_rng(1)
    mem.submit_many([synthetic_record(10_000 + i, rng, dim=16, grid=4) for i in range(3)])
    mem.submit_state('snarc', {'w': 1})
    try:
        mem.save_state('snarc', {'w': 1})
        saved = 'saved'
    except SageError as err:
        saved = str(err)
    report = {'read_only': mem.read_only, 'count': mem.store.count(),
              'recalled': len(mem.query(Query(k=1000))), 'refused': mem.status().store.refused,
              'save_state': saved, 'problems': mem.problems, 'flushed': mem.flush(5.0),
              'closed': mem.close()}
    print(json.dumps(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
