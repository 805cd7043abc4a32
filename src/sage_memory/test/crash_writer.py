"""Writer process for the crash test: writes rows flat out through the memory store (the
writer thread the memory node uses) and prints each uuid on stdout only after its commit (the
definition of 'acknowledged').

Usage: python crash_writer.py DATABASE_URL DATA_DIR SEED
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from sage_memory.store.synthetic import synthetic_record
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import MemoryStore, StoreConfig

_out = threading.Lock()


def ack(records: list[ExperienceRecord]) -> None:
    with _out:
        sys.stdout.write(''.join(f'{r.uuid}\n' for r in records))
        sys.stdout.flush()


def main() -> None:
    url, data_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mem = MemoryStore(StoreConfig(database_url=url, data_dir=data_dir,
                                  device_id=f'crash{seed}', retention=RetentionConfig(max_rows=0)))
    mem.on_commit(ack)
    mem.start()
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        batch = [synthetic_record(seed * 10_000_000 + i + j, rng, dim=32, preview_bytes=2000,
                                  grid=10) for j in range(50)]
        mem.submit_many(batch)
        i += len(batch)
        if seed % 2 and i % 500 == 0:
            mem.submit_state('crash', {'seed': seed, 'i': i})
        while mem.status().queued > 2000:
            threading.Event().wait(0.001)


if __name__ == '__main__':
    main()
