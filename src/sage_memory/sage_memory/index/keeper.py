"""The memory's index thread: its vector indexes kept in step with the store.

The thread loads the snapshot at start (its vectors read from the rows in one pass) and
reconciles the indexes with the database; then it applies the rows the writer commits and the
retention evicts, reconciles again every `refresh_period_s` (rows imported, synced or evicted
by other processes), saves a snapshot every `snapshot_period_s` and at close, and gives freed
heap back to the OS after a burst. Recall reads the indexes from the caller's thread.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import logging
from pathlib import Path
import queue
import sqlite3
import threading
import time
from typing import Any

import numpy as np
from sqlalchemy import exc as sa_exc

from sage_memory.heap import release_freed_heap
from sage_memory.index.index_set import IndexSet
from sage_memory.index.snapshot_load import SnapshotLoad
from sage_memory.index.structure import IndexConfig
from sage_memory.index.vector_index import VectorIndex
from sage_memory.index.vectors import IndexKey
from sage_memory.store.codec import as_stored, decode_embeddings
from sage_memory.store.index_feed import IndexTable, read_index_table
from sage_memory.store.memory_store import MemoryStore
from sage_memory.store.models import RECALL_KINDS, ExperienceRecord

log = logging.getLogger(__name__)

# An index whose labels are more than this share dead rows is rebuilt at the next refresh.
_REBUILD_DEAD_FRACTION = 0.3
# Adding more rows than this at once (start-up rebuild) uses every core.
_BULK_ROWS = 5000


@dataclass(frozen=True)
class KeeperConfig:
    """How the index is kept.

    Attributes:
        index: vector index settings.
        snapshot_period_s: how often a changed index is saved (0 = only at close).
        refresh_period_s: how often the index is reconciled with the database (0 = never).
        heap_trim_rows: once this many rows have reached the index since the last trim and
            nothing is queued, freed heap is given back to the OS (0 = never).
    """

    index: IndexConfig
    snapshot_period_s: float
    refresh_period_s: float
    heap_trim_rows: int


class IndexKeeper:
    """The index thread of one store (see the module docstring).

    Args:
        store: the store whose rows are indexed.
        cfg: settings.
        snapshot_dir: the store's snapshot folder.
        timings: where start timings are written (snapshot_load_s, reconcile_s,
            index_ready_s, measured from t_start).
        t_start: perf_counter when the memory began to open.
    """

    def __init__(self, store: MemoryStore, cfg: KeeperConfig, snapshot_dir: Path,
                 timings: dict[str, float], t_start: float) -> None:
        self.store = store
        self.cfg = cfg
        self.snapshot_dir = snapshot_dir
        self.timings = timings
        self._t_start = t_start
        self.index = IndexSet(cfg.index)
        self.problems: list[str] = []
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._dirty = False
        self._thread = threading.Thread(target=self._index_loop, name='sage-memory-index',
                                        daemon=True)

    def start(self) -> None:
        """Start the thread (loads the snapshot, then keeps the index in step)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread within one chunk of adds (the rows left out are in the database:
        the next start's reconcile indexes them)."""
        self._stop.set()
        self._events.put(('stop', None))
        self._thread.join(timeout=5.0)

    def add(self, records: list[ExperienceRecord]) -> None:
        """Committed rows (with their local ids) for the index."""
        if records:
            self._events.put(('add', list(records)))

    def remove(self, row_ids: list[int]) -> None:
        """Rows evicted from the store."""
        self._events.put(('remove', row_ids))

    @property
    def ready(self) -> bool:
        """True once the index has been loaded and reconciled at start."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the index has been reconciled with the database at start."""
        return self._ready.wait(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every row handed over so far has reached the index."""
        done = threading.Event()
        self._events.put(('mark', done))
        return done.wait(timeout)

    def _apply_add(self, records: list[ExperienceRecord]) -> None:
        groups: dict[IndexKey, list[ExperienceRecord]] = {}
        for r in records:
            if r.kind in RECALL_KINDS and r.embedding is not None and r.embedding.size:
                groups.setdefault((r.modality, int(r.embedding.size)), []).append(r)
        for key, recs in groups.items():
            # As stored (float16): the index holds the values a restart reads back.
            vecs = as_stored(np.stack([r.embedding for r in recs if r.embedding is not None]))
            self.index.ensure(key).add([r.row_id for r in recs], vecs,
                                       [r.stamp for r in recs], [r.salience for r in recs],
                                       chunk=self.cfg.index.add_chunk, stop=self._stop)
            self._dirty = True

    def reconcile(self, table: Mapping[IndexKey, IndexTable] | None = None) -> dict[str, int]:
        """Make the index hold exactly the database's indexable rows; returns counts.

        Args:
            table: the ids of the indexable rows as just read (start-up: one read serves the
                snapshot load and this); None = read them here.
        """
        keys = ({k: t.ids for k, t in table.items()} if table is not None
                else self.store.index_keys())
        added = removed = 0
        for key in self.index.keys():
            if key not in keys:
                vi = self.index.get(key)
                removed += len(vi) if vi is not None else 0
                self.index.drop(key)
        for key, db_ids in keys.items():
            vi = self.index.get(key)
            if vi is not None and vi.dead_fraction > _REBUILD_DEAD_FRACTION:
                fresh = VectorIndex(key[0], key[1], self.index.cfg)
                self.index.bulk(True)
                try:
                    for chunk in self.store.index_rows(ids=db_ids):
                        _add_chunk(fresh, chunk)
                    fresh.rebuild_if_due()
                finally:
                    self.index.bulk(False)
                self.index.replace(fresh)
                added += len(fresh)
                continue
            if vi is None:
                missing = db_ids
            else:
                have = vi.alive_ids()
                missing = np.setdiff1d(db_ids, have, assume_unique=True)
                extra = np.setdiff1d(have, db_ids, assume_unique=True)
                removed += vi.remove(extra.tolist())
            bulk = missing.size > _BULK_ROWS
            if bulk:
                self.index.bulk(True)
            try:
                # The inverted file is trained once, after the rows are in.
                for chunk in self.store.index_rows(ids=missing):
                    added += self.index.add_rows(chunk, rebuild=False)
                self.index.rebuild_if_due()
            finally:
                if bulk:
                    self.index.bulk(False)
        if added or removed:
            self._dirty = True
        return {'added': added, 'removed': removed}

    def save(self) -> int:
        """Write the index snapshot now; returns rows saved (none when read-only)."""
        if self.store.read_only:
            self._dirty = False
            return 0
        n = self.index.save(self.snapshot_dir, vectors=self.cfg.index.snapshot_vectors)
        self._dirty = False
        return n

    def _load_index(self) -> dict[IndexKey, IndexTable] | None:
        # A snapshot without vectors: the database rows hold them. One pass over the rows
        # files each chunk's vectors into the snapshot's indexes and keeps every id for the
        # reconcile after it (rows stored since the snapshot are read again there).
        loading = SnapshotLoad(self.snapshot_dir, self.cfg.index)
        try:
            table = read_index_table(self.store.engine, loading.consume)
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            # The snapshot is skipped; the reconcile (reading again) rebuilds the index.
            self.problems.append(f'index snapshot skipped: cannot read its vectors from the '
                                  f'database: {err}')
            return None
        for vi in loading.finish():
            self.index.replace(vi)
        self.problems += loading.problems
        return table

    def _index_loop(self) -> None:
        # The snapshot loads here, not in the constructor: a snapshot without vectors reads
        # them from the database, which must not delay the node's start.
        self.index.bulk(False)  # FAISS's thread count for this thread's adds
        t1 = time.perf_counter()
        table = self._load_index()
        self.timings['snapshot_load_s'] = time.perf_counter() - t1
        t0 = time.perf_counter()
        try:
            stats = self.reconcile(table)
            del table
            log.info('index ready: %s', stats)
        except Exception as err:  # noqa: BLE001 - keep serving; next refresh retries
            self.problems.append(f'index reconcile failed: {err}')
            log.error('index reconcile failed: %s', err)
        self.timings['reconcile_s'] = time.perf_counter() - t0
        self.timings['index_ready_s'] = time.perf_counter() - self._t_start
        self._ready.set()
        last_refresh = last_snapshot = time.monotonic()
        since_trim = 0
        while True:
            try:
                event = self._events.get(timeout=0.2)
            except queue.Empty:
                event = None
                since_trim = self._trim_when_idle(since_trim)
            batch: list[ExperienceRecord] = []
            marks: list[threading.Event] = []
            while event is not None:
                kind, payload = event
                if kind == 'add':
                    batch += payload
                    since_trim += len(payload)
                else:
                    if batch:
                        self._apply_add(batch)
                        batch = []
                    if kind == 'remove':
                        self.index.remove(payload)
                        self._dirty = True
                    elif kind == 'mark':
                        marks.append(payload)
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    event = None
            if batch:
                self._apply_add(batch)
            for m in marks:
                m.set()
            if self._stop.is_set():
                return
            now = time.monotonic()
            period = self.cfg.refresh_period_s
            if period > 0 and now - last_refresh >= period:
                last_refresh = now
                try:
                    self.reconcile()
                except Exception as err:  # noqa: BLE001 - database down: retry next period
                    log.warning('index refresh failed: %s', err)
            period = self.cfg.snapshot_period_s
            if self._dirty and period > 0 and now - last_snapshot >= period:
                last_snapshot = now
                try:
                    self.save()
                except OSError as err:
                    log.warning('index snapshot failed: %s', err)

    def _trim_when_idle(self, since_trim: int) -> int:
        # After a burst, once the writer's queue and this thread's are empty (the rows freed).
        limit = self.cfg.heap_trim_rows
        if limit <= 0 or since_trim < limit:
            return since_trim
        st = self.store.status()
        if st.queued or st.pending:
            return since_trim
        release_freed_heap()
        return 0


def _add_chunk(vi: VectorIndex, rows: list[Any]) -> None:
    vecs = decode_embeddings([bytes(r[3]) for r in rows], vi.dim)
    vi.add([r[0] for r in rows], vecs, [r[4] for r in rows], [r[5] for r in rows],
           rebuild=False)
