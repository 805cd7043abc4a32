"""Retention: keep the store under a row cap by evicting the least valuable rows.

Value of a row = salience + recency_weight * (stamp - now) / recency_scale_s, so an old row
needs a higher salience to stay. Only unconsolidated rows are candidates: consolidated patterns
are never evicted. Evicted uuids are written to `tombstones` in the same transaction, so an
import or sync does not bring them back here, and their training inputs are deleted with them.
Eviction goes down to `low_water * max_rows` so it does not run on every insert.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, func, insert, literal, select

from sage_memory.store.models import EXPERIENCES, TOMBSTONES
from sage_memory.store.statements import delete_training_inputs

# Rows deleted per transaction: short write locks, moderate IN lists.
_CHUNK = 200


@dataclass(frozen=True)
class RetentionConfig:
    """Retention settings.

    Attributes:
        max_rows: cap on unconsolidated rows (0 = no cap).
        low_water: eviction brings the count down to low_water * max_rows.
        recency_weight: salience points lost per recency_scale_s of age.
        recency_scale_s: age scale in seconds.
        period_s: how often the writer checks the cap.
    """

    max_rows: int = 200_000
    low_water: float = 0.95
    recency_weight: float = 0.5
    recency_scale_s: float = 86_400.0
    period_s: float = 10.0


def row_value(salience: float, stamp: float, now: float, cfg: RetentionConfig) -> float:
    """Value of a row for retention (higher = kept longer)."""
    return salience + cfg.recency_weight * (stamp - now) / cfg.recency_scale_s


def eviction_count(count: int, cfg: RetentionConfig) -> int:
    """How many rows to evict when `count` unconsolidated rows are stored."""
    if cfg.max_rows <= 0 or count <= cfg.max_rows:
        return 0
    target = int(cfg.max_rows * cfg.low_water)
    return count - target


def count_unconsolidated(conn: Connection) -> int:
    """Number of rows that retention may evict."""
    q = select(func.count()).select_from(EXPERIENCES).where(
        EXPERIENCES.c.consolidated.is_(False))
    return int(conn.execute(q).scalar_one())


def evict(engine: Engine, cfg: RetentionConfig, now: float,
          on_freed: Callable[[int, int], None] | None = None) -> list[tuple[int, str]]:
    """Evict the least valuable unconsolidated rows above the cap.

    Victims are chosen by a read (no write lock), then deleted in small transactions so the
    writer thread never waits long for the database lock. The training inputs of the rows
    deleted go in the same transaction; on_freed(rows, bytes) is told after each commit that
    deleted some (the store keeps a running total of their bytes).

    Returns:
        (id, uuid) of every evicted row.
    """
    with engine.connect() as conn:
        n = eviction_count(count_unconsolidated(conn), cfg)
        if n <= 0:
            return []
        e = EXPERIENCES.c
        value = e.salience + literal(cfg.recency_weight / cfg.recency_scale_s) * (e.stamp - now)
        q = (select(e.id, e.uuid).where(e.consolidated.is_(False))
             .order_by(value.asc(), e.id.asc()).limit(n))
        victims = [(int(r.id), str(r.uuid)) for r in conn.execute(q)]
    for i in range(0, len(victims), _CHUNK):
        chunk = victims[i:i + _CHUNK]
        with engine.begin() as conn:
            # consolidated is checked again: sleep may have changed a row since the read.
            gone = conn.execute(delete(EXPERIENCES).where(
                e.id.in_([v[0] for v in chunk]), e.consolidated.is_(False)).returning(e.uuid))
            inputs, freed = delete_training_inputs(conn, list(gone.scalars()))
            existing = set(conn.execute(select(TOMBSTONES.c.uuid).where(
                TOMBSTONES.c.uuid.in_([v[1] for v in chunk]))).scalars())
            rows = [{'uuid': u, 'evicted_at': now} for _, u in chunk if u not in existing]
            if rows:
                conn.execute(insert(TOMBSTONES), rows)
        if inputs and on_freed is not None:
            on_freed(inputs, freed)
    return victims
