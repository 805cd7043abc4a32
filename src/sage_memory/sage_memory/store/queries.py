"""Reads of the memory database: rows by id or uuid, ranked selections, index feeds, states,
and the counts `sage memory summary` prints.

Reads go straight to the engine's pool, never through the writer thread, so a query is not
queued behind a batch of inserts (SQLite in WAL mode lets readers run beside the writer).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
import json
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy import exc as sa_exc

from sage_memory.store.database import (make_engine, migrate, redact, resolve_url, short_error,
                                  sqlite_path)
from sage_memory.errors import MemoryStoreError
from sage_memory.store.models import (EXPERIENCES, RECALL_KINDS, STATE, ExperienceRecord,
                                      row_to_record)
from sage_memory.store.sqlite_file import access_problem, quarantined_files, read_only_engine
from sage_memory.store.statements import SQL_CHUNK, INTERNAL_PREFIX, read_state
from sage_memory.store.training_inputs import input_totals


# Rows by id, built once: every recall by example reads its hits through it (building the
# statement per call cost about as much as running it).
_BY_IDS = select(EXPERIENCES).where(EXPERIENCES.c.id.in_(bindparam('ids', expanding=True)))


class StoreQueries:
    """Read methods of the memory store (mixed into MemoryStore; they use `self.engine`)."""

    engine: Engine

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The state document saved under key, or None."""
        with self.engine.connect() as conn:
            return read_state(conn, key)

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Every non-internal state document by key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(STATE.c.key, STATE.c.value)).all()
        return {k: json.loads(v) for k, v in rows if not k.startswith(INTERNAL_PREFIX)}

    def count(self, kinds: Sequence[str] | None = None) -> int:
        """Number of experience rows (optionally of some kinds)."""
        q = select(func.count()).select_from(EXPERIENCES)
        if kinds:
            q = q.where(EXPERIENCES.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def fetch_ids(self, ids: Sequence[int]) -> dict[int, ExperienceRecord]:
        """Records by local id (missing ids are absent from the result)."""
        out: dict[int, ExperienceRecord] = {}
        if not len(ids):
            return out
        with self.engine.connect() as conn:
            for i in range(0, len(ids), SQL_CHUNK):
                chunk = [int(x) for x in ids[i:i + SQL_CHUNK]]
                for row in conn.execute(_BY_IDS, {'ids': chunk}):
                    out[int(row.id)] = row_to_record(row)
        return out

    def fetch_uuids(self, uuids: Sequence[str]) -> dict[str, ExperienceRecord]:
        """Records by uuid."""
        out: dict[str, ExperienceRecord] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(uuids), SQL_CHUNK):
                q = select(EXPERIENCES).where(EXPERIENCES.c.uuid.in_(uuids[i:i + SQL_CHUNK]))
                for row in conn.execute(q):
                    out[row.uuid] = row_to_record(row)
        return out

    def select_ranked(self, k: int, modality: str = '', min_salience: float = 0.0,
                      start: float = 0.0, end: float = 0.0,
                      kinds: Sequence[str] = RECALL_KINDS) -> list[ExperienceRecord]:
        """The k most salient rows matching the filters (newest first among equals)."""
        e = EXPERIENCES.c
        q = select(EXPERIENCES).where(e.kind.in_(list(kinds)))
        if modality:
            q = q.where(e.modality == modality)
        if min_salience > 0:
            q = q.where(e.salience >= min_salience)
        if start > 0:
            q = q.where(e.stamp >= start)
        if end > 0:
            q = q.where(e.stamp <= end)
        q = q.order_by(e.salience.desc(), e.stamp.desc(), e.id.desc()).limit(k)
        with self.engine.connect() as conn:
            return [row_to_record(r) for r in conn.execute(q)]

    def index_keys(self) -> dict[tuple[str, int], np.ndarray]:
        """Ids of every indexable row (recall kinds with an embedding) by (modality, dim)."""
        e = EXPERIENCES.c
        q = (select(e.id, e.modality, e.embedding_dim)
             .where(e.kind.in_(list(RECALL_KINDS)), e.embedding_dim > 0))
        groups: dict[tuple[str, int], list[int]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                groups.setdefault((row.modality, int(row.embedding_dim)), []).append(row.id)
        return {k: np.asarray(sorted(v), dtype=np.int64) for k, v in groups.items()}

    def index_rows(self, ids: Sequence[int] | np.ndarray | None = None, min_id: int = 0,
                   chunk: int = 5000) -> Iterator[list[Any]]:
        """Chunks of (id, modality, embedding_dim, embedding, stamp, salience) rows to index.

        Args:
            ids: only these ids (None = every indexable row with id > min_id).
            min_id: lower id bound (exclusive) when ids is None.
            chunk: rows per yielded list.
        """
        e = EXPERIENCES.c
        cols = (e.id, e.modality, e.embedding_dim, e.embedding, e.stamp, e.salience)
        base = select(*cols).where(e.kind.in_(list(RECALL_KINDS)), e.embedding_dim > 0)
        with self.engine.connect() as conn:
            if ids is not None:
                id_list = [int(x) for x in ids]
                for i in range(0, len(id_list), SQL_CHUNK):
                    yield list(conn.execute(base.where(e.id.in_(id_list[i:i + SQL_CHUNK]))))
                return
            last = min_id
            while True:
                rows = list(conn.execute(base.where(e.id > last).order_by(e.id).limit(chunk)))
                if not rows:
                    return
                yield rows
                last = int(rows[-1].id)


def summarize(url: str) -> dict[str, Any]:
    """Counts for `sage memory` summaries: rows per modality and kind, devices, span, path.

    Args:
        url: database_url ('' = default SQLite file), path, or SQLAlchemy URL.

    Raises:
        MemoryStoreError: the database cannot be opened.
    """
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None and not path.exists():
        raise MemoryStoreError(f'no memory database at {path}')
    # A file this process cannot write is read as it is (no WAL set-up, no migration).
    denied = access_problem(path) if path is not None else None
    engine = read_only_engine(path) if path is not None and denied else make_engine(resolved)
    try:
        if not denied:
            migrate(engine)
        e = EXPERIENCES.c
        with engine.connect() as conn:
            by_mod = {r[0]: r[1] for r in conn.execute(
                select(e.modality, func.count()).group_by(e.modality))}
            by_kind = {r[0]: r[1] for r in conn.execute(
                select(e.kind, func.count()).group_by(e.kind))}
            by_dev = {r[0]: r[1] for r in conn.execute(
                select(e.device_id, func.count()).group_by(e.device_id))}
            span = conn.execute(select(func.min(e.stamp), func.max(e.stamp))).one()
            keys = [k for k in conn.execute(select(STATE.c.key)).scalars()
                    if not k.startswith(INTERNAL_PREFIX)]
            training = input_totals(conn)
    except sa_exc.SQLAlchemyError as err:
        raise MemoryStoreError(f'cannot read {redact(resolved)}: {short_error(err)}') from err
    finally:
        engine.dispose()
    return {
        'url': redact(resolved), 'path': str(path) if path is not None else '',
        'total': int(sum(by_mod.values())),
        'by_modality': {str(k): int(v) for k, v in sorted(by_mod.items())},
        'by_kind': {str(k): int(v) for k, v in sorted(by_kind.items())},
        'by_device': {str(k): int(v) for k, v in sorted(by_dev.items())},
        'oldest_stamp': float(span[0]) if span[0] is not None else None,
        'newest_stamp': float(span[1]) if span[1] is not None else None,
        'state_keys': sorted(keys),
        'training_inputs': training,
        'read_only': denied or '',
        'quarantined': [str(p) for p in quarantined_files(path)] if path is not None else [],
    }
