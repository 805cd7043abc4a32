"""Synthetic experience records for tests, the crash test and the benchmark (light imports)."""
from __future__ import annotations

from pathlib import Path
import time
from typing import Any

import numpy as np

from sage_common.vocabulary import MetabolicState
from sage_memory.store.memory_store import MemoryStore, StoreConfig, new_uuid
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.retention import RetentionConfig


def synthetic_record(i: int, rng: np.random.Generator, dim: int = 64,
                     modality: str = 'vision', preview_bytes: int = 3000,
                     grid: int = 30, embedding: np.ndarray | None = None,
                     **kw: Any) -> ExperienceRecord:
    """A realistic full-fidelity record for tests and benchmarks.

    Args:
        i: index (sets stamp, input_seq, text).
        rng: random source.
        dim: embedding size.
        modality: modality.
        preview_bytes: size of the (random) preview.
        grid: code grid side (grid x grid uint16 codes).
        embedding: use this embedding instead of a random one.
        **kw: field overrides.
    """
    emb = embedding if embedding is not None else rng.standard_normal(dim).astype(np.float32)
    fields: dict[str, Any] = dict(
        uuid=new_uuid(), device_id='bench', session='bench', stamp=1_700_000_000.0 + i,
        modality=modality, input_seq=i, surprise=float(rng.random()),
        novelty=float(rng.random()), arousal=float(rng.random()), reward=float(rng.random()),
        conflict=float(rng.random()), salience=float(rng.random()), threshold=0.5,
        metabolic_state=MetabolicState.WAKE.value, fidelity='full',
        codes=rng.integers(0, 512, (grid, grid)).astype(np.uint16) if grid else None,
        codebook_size=512 if grid else 0, embedding=emb,
        preview_format='jpeg' if preview_bytes else '',
        preview=rng.integers(0, 256, preview_bytes, dtype=np.uint8).tobytes(),
        text=f'input {i}', pose=(0.5, 1.5, 0.0, 0.0, 0.0, 0.0, 1.0), tags=('bench',),
        extra={'features': {'motion': 0.1}}, created_at=time.time())
    fields.update(kw)
    return ExperienceRecord(**fields)


def synthetic_database(data_dir: str | Path, n: int, seed: int = 0, dim: int = 16) -> list[str]:
    """Write n synthetic records into `<data_dir>/sage_memory.db` through the store (tests).

    Returns:
        the uuids written, every one committed.
    """
    rng = np.random.default_rng(seed)
    records = [synthetic_record(i, rng, dim=dim, preview_bytes=64, grid=4) for i in range(n)]
    store = MemoryStore(StoreConfig(data_dir=str(data_dir), retention=RetentionConfig(max_rows=0)))
    store.start()
    store.submit_many(records)
    ok = store.flush(60.0)
    clean = store.close()
    if not (ok and clean):
        raise RuntimeError(f'synthetic database in {data_dir}: rows left unwritten')
    return [r.uuid for r in records]
