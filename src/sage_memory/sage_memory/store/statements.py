"""Write statements shared by the store, consolidation, transfer and the benchmark.

Rows are keyed by a globally unique uuid, so every insert skips uuids already present (a retry
after a lost commit reply, a duplicate submit, a merge from another device). State documents
are JSON, one per key, the latest write winning.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite as sqlite_dialect

from sage_memory.errors import MemoryStoreError
from sage_memory.store.models import (EXPERIENCES, STATE, TRAINING_INPUTS, ExperienceRecord,
                                record_to_row)

# Keys starting with this prefix are the store's own (not exported, not synced).
INTERNAL_PREFIX = '_'
# Rows or ids per statement: SQLite caps bound parameters at 32766 per statement.
SQL_CHUNK = 500


def insert_ignore(engine: Engine, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the engine's dialect."""
    if engine.dialect.name == 'postgresql':
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite_dialect.insert(table).on_conflict_do_nothing()


def upsert_state(engine: Engine) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE for state documents (the latest value wins)."""
    ins = (postgresql.insert(STATE) if engine.dialect.name == 'postgresql'
           else sqlite_dialect.insert(STATE))
    return ins.on_conflict_do_update(index_elements=['key'], set_={
        'value': ins.excluded.value, 'updated_at': ins.excluded.updated_at,
        'device_id': ins.excluded.device_id})


def insert_records(conn: Connection, engine: Engine,
                   records: Sequence[ExperienceRecord]) -> dict[str, int]:
    """Insert records, skipping uuids already present; returns uuid -> local id for all."""
    ids: dict[str, int] = {}
    stmt = insert_ignore(engine, EXPERIENCES).returning(EXPERIENCES.c.id, EXPERIENCES.c.uuid)
    for i in range(0, len(records), SQL_CHUNK):
        rows = [record_to_row(r) for r in records[i:i + SQL_CHUNK]]
        for row in conn.execute(stmt, rows):
            ids[row.uuid] = int(row.id)
    missing = [r.uuid for r in records if r.uuid not in ids]
    for i in range(0, len(missing), SQL_CHUNK):
        # Already there: a retry after a commit whose reply was lost, or a duplicate submit.
        q = select(EXPERIENCES.c.id, EXPERIENCES.c.uuid).where(
            EXPERIENCES.c.uuid.in_(missing[i:i + SQL_CHUNK]))
        for row in conn.execute(q):
            ids[row.uuid] = int(row.id)
    return ids


def delete_training_inputs(conn: Connection, uuids: Sequence[str]) -> tuple[int, int]:
    """Delete the training inputs of these uuids; returns (rows, bytes) really deleted.

    RETURNING counts only what this statement removed, so a row deleted at the same time by
    retention and by the budget is subtracted from the running total once.
    """
    rows = freed = 0
    t = TRAINING_INPUTS.c
    for i in range(0, len(uuids), SQL_CHUNK):
        stmt = (delete(TRAINING_INPUTS).where(t.uuid.in_(list(uuids[i:i + SQL_CHUNK])))
                .returning(t.nbytes))
        for nbytes in conn.execute(stmt).scalars():
            rows += 1
            freed += int(nbytes)
    return rows, freed


def read_state(conn: Connection, key: str) -> dict[str, Any] | None:
    """The state document saved under key, or None."""
    value = conn.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()
    return json.loads(value) if value is not None else None


def write_state(conn: Connection, engine: Engine, key: str, value: Mapping[str, Any],
                device_id: str, now: float) -> None:
    """Upsert a state document in the caller's transaction (the latest value wins)."""
    conn.execute(upsert_state(engine), [{'key': key, 'value': json.dumps(value),
                                         'updated_at': now, 'device_id': device_id}])


def dump_state(key: str, value: Mapping[str, Any]) -> str:
    """A state document as JSON.

    Raises:
        MemoryStoreError: bad key, or a value that is not a JSON-serialisable mapping.
    """
    if not isinstance(key, str) or not key or len(key) > 128:
        raise MemoryStoreError(f'state key must be a string of 1..128 characters, got {key!r}')
    if not isinstance(value, Mapping):
        raise MemoryStoreError(f'state {key!r} must be a mapping, got {type(value).__name__}')
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise MemoryStoreError(f'state {key!r} is not JSON-serialisable: {err}') from err
