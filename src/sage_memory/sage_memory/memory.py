"""The memory facade the node, the benchmark and the tests use: store + index + recall + sleep.

Threads: the store's writer commits rows; an index thread applies committed and evicted rows
to the vector index, reconciles it with the database at start (after loading the snapshot) and
every `refresh_period_s` (rows imported, synced or evicted by other processes), and saves a
snapshot every `snapshot_period_s` and at close. Recall and sleep run in the caller's thread.
"""
from __future__ import annotations

import atexit
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import logging
from pathlib import Path
import queue
import sqlite3
import threading
import time
from typing import Any

import numpy as np
from sqlalchemy import exc as sa_exc

from sage_memory.store.codec import as_stored, decode_embeddings
from sage_memory.errors import QueryError, StoreBusyError, StoreUnavailableError
from sage_memory.sleep.consolidation import SleepConfig, SleepReport, consolidate
from sage_memory.heap import release_freed_heap
from sage_memory.index.index_set import IndexSet
from sage_memory.index.snapshot_load import SnapshotLoad
from sage_memory.index.structure import IndexConfig
from sage_memory.index.vector_index import VectorIndex
from sage_memory.index.vectors import IndexKey
from sage_memory.store.models import RECALL_KINDS, ExperienceRecord
from sage_memory.store.index_feed import IndexTable, read_index_table
from sage_memory.index.recall import Query, TextEmbedder, run_query, validate
from sage_memory.store.memory_store import MemoryStore, StoreConfig, StoreStatus
from sage_memory.store.training_inputs import TrainingInput

log = logging.getLogger(__name__)

# An index whose graph is more than this share dead rows is rebuilt at the next refresh.
_REBUILD_DEAD_FRACTION = 0.3
# Adding more rows than this at once (start-up rebuild) uses every core.
_BULK_ROWS = 5000
# open_memory: first pause before another attempt (doubled up to OpenWait.backoff_max_s), and
# how often a waiting caller is asked whether to keep waiting.
_FIRST_RETRY_S = 0.5
_WAIT_POLL_S = 0.1


@dataclass(frozen=True)
class MemoryConfig:
    """Everything the memory needs.

    Attributes:
        store: database and writer settings.
        index: vector index settings.
        sleep: consolidation settings.
        session: session id written on pattern rows.
        snapshot_period_s: how often a changed index is saved (0 = only at close).
        refresh_period_s: how often the index is reconciled with the database (0 = never).
        heap_trim_rows: once this many rows have reached the index since the last trim and
            nothing is queued, freed heap is given back to the OS (0 = never).
        ready_wait_s: how long a recall by example or text waits for the index being loaded
            at start before it fails with 'still loading' (an empty answer would read as
            'nothing similar').
    """

    store: StoreConfig = field(default_factory=StoreConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    sleep: SleepConfig = field(default_factory=SleepConfig)
    session: str = ''
    snapshot_period_s: float = 300.0
    refresh_period_s: float = 60.0
    heap_trim_rows: int = 10_000
    ready_wait_s: float = 5.0


@dataclass(frozen=True)
class MemoryStatus:
    """Store status plus index state, for diagnostics."""

    store: StoreStatus
    index_ready: bool
    index_rows: dict[str, int]
    problems: tuple[str, ...]


class Memory:
    """Opens the store, restores the index and serves recall and sleep.

    Args:
        cfg: settings.
        embed_text: text -> (N, 384) embeddings for text recall (loaded lazily by the caller).

    Raises:
        MemoryStoreError: the database cannot be opened or migrated.
    """

    def __init__(self, cfg: MemoryConfig, embed_text: TextEmbedder | None = None) -> None:
        self.cfg = cfg
        self._embed_text = embed_text
        t0 = time.perf_counter()
        self.store = MemoryStore(cfg.store)
        self.timings: dict[str, float] = {'open_s': time.perf_counter() - t0}
        self._problems: list[str] = []
        self.snapshot_dir: Path = self.store.data_dir / 'index' / self.store.store_id
        self.index = IndexSet(cfg.index)
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._dirty = False
        self._t_start = t0
        self.store.on_commit(lambda recs: self._events.put(('add', recs)))
        self.store.on_evict(lambda victims: self._events.put(('remove', [v[0] for v in victims])))
        self._thread = threading.Thread(target=self._index_loop, name='sage-memory-index',
                                        daemon=True)
        self._thread.start()
        self.store.start()
        # A daemon thread inside FAISS at interpreter exit aborts the process: stop it first.
        atexit.register(self._stop_index_thread)

    def _stop_index_thread(self) -> None:
        self._stop.set()
        self._events.put(('stop', None))
        self._thread.join(timeout=5.0)

    # ----------------------------------------------------------------- writing
    def submit(self, record: ExperienceRecord) -> None:
        """Queue one record; it is acknowledged (on_stored) after its commit."""
        self.store.submit(record)

    def submit_many(self, records: list[ExperienceRecord]) -> None:
        """Queue several records."""
        self.store.submit_many(records)

    def on_stored(self, listener: Callable[[list[ExperienceRecord]], None]) -> None:
        """Call listener(records) in the writer thread after each commit."""
        self.store.on_commit(listener)

    def save_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Write a state document now (blocking)."""
        self.store.save_state(key, value)

    def submit_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Queue a state document for the writer (never blocks)."""
        self.store.submit_state(key, value)

    def submit_training_input(self, item: TrainingInput) -> None:
        """Queue the encoder input of a stored experience (see MemoryStore)."""
        self.store.submit_training_input(item)

    def training_stats(self) -> dict[str, Any]:
        """Training inputs stored, their bytes and budget (see MemoryStore)."""
        return self.store.training_stats()

    def training_inputs(self, modality: str | None = None, since: float = 0.0,
                        limit: int | None = None) -> list[TrainingInput]:
        """Stored training inputs, oldest first (what sleep reads)."""
        return self.store.training_inputs(modality, since, limit)

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The state document under key, or None."""
        return self.store.load_state(key)

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Every state document by key."""
        return self.store.load_states()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued is committed."""
        return self.store.flush(timeout)

    # ------------------------------------------------------------------ recall
    def query(self, q: Query) -> list[ExperienceRecord]:
        """Answer a recall query.

        Raises:
            QueryError: the query is malformed or cannot be answered, or it ranks by
                similarity while the index is still being loaded (after ready_wait_s).
        """
        validate(q)
        if (q.text or (q.embedding is not None and np.size(q.embedding) > 0)) \
                and not self._ready.wait(self.cfg.ready_wait_s):
            raise QueryError(f'the vector index is still being loaded (memory opened '
                             f'{time.perf_counter() - self._t_start:.1f} s ago): retry shortly')
        return run_query(q, self.store, self.index, self._embed_text)

    def sleep(self, max_duration_s: float) -> SleepReport:
        """Consolidate for at most max_duration_s; new patterns reach the index.

        Raises:
            MemoryStoreError: the database cannot be read or written.
        """
        report = consolidate(self.store, self.cfg.sleep, max_duration_s, self.cfg.session)
        if report.patterns:
            self._events.put(('add', list(report.patterns)))
        return report

    # ------------------------------------------------------------------- index
    def index_rows(self, records: list[ExperienceRecord]) -> None:
        """Rows written into the database by another path (patterns taken back from the
        shared store, with their local row ids) join the vector index."""
        if records:
            self._events.put(('add', list(records)))

    def wait_index_ready(self, timeout: float | None = None) -> bool:
        """Block until the index has been reconciled with the database at start."""
        return self._ready.wait(timeout)

    def wait_index_idle(self, timeout: float = 10.0) -> bool:
        """Block until every committed row so far has reached the index (tests, bench)."""
        done = threading.Event()
        self._events.put(('mark', done))
        return done.wait(timeout)

    def status(self) -> MemoryStatus:
        """Writer state, index readiness and size, start-up problems."""
        return MemoryStatus(self.store.status(), self._ready.is_set(), self.index.sizes(),
                            tuple(self.problems))

    @property
    def read_only(self) -> str:
        """Why the database is read-only ('' when it is writable)."""
        return self.store.read_only

    @property
    def problems(self) -> list[str]:
        """Problems found at start or by background checks (corrupt file, bad snapshot)."""
        return list(self.store.problems) + list(self._problems)

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

    def save_index(self) -> int:
        """Write the index snapshot now; returns rows saved (none when read-only)."""
        if self.read_only:
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
            self._problems.append(f'index snapshot skipped: cannot read its vectors from the '
                                  f'database: {err}')
            return None
        for vi in loading.finish():
            self.index.replace(vi)
        self._problems += loading.problems
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
            self._problems.append(f'index reconcile failed: {err}')
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
                    self.save_index()
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

    # ------------------------------------------------------------------- close
    def close(self, timeout: float = 10.0) -> bool:
        """Flush the writer, bring the index up to date, save its snapshot, close.

        Returns:
            False when queued rows could not be written (they are lost with the process).
        """
        clean = self.store.close(timeout)
        self._stop_index_thread()
        atexit.unregister(self._stop_index_thread)
        try:
            self.save_index()
        except OSError as err:
            log.warning('index snapshot failed at close: %s', err)
        return clean


def _add_chunk(vi: VectorIndex, rows: list[Any]) -> None:
    vecs = decode_embeddings([bytes(r[3]) for r in rows], vi.dim)
    vi.add([r[0] for r in rows], vecs, [r[4] for r in rows], [r[5] for r in rows],
           rebuild=False)


@dataclass(frozen=True)
class OpenWait:
    """How long open_memory waits for a database that cannot be opened yet.

    Attributes:
        server_s: an unreachable database server (0 = do not wait).
        lock_s: a SQLite file locked by another process (0 = until it is released).
        backoff_max_s: longest pause between two attempts.
    """

    server_s: float = 0.0
    lock_s: float = 0.0
    backoff_max_s: float = 5.0


def open_memory(cfg: MemoryConfig, embed_text: TextEmbedder | None = None,
                wait: OpenWait = OpenWait(), warn: Callable[[str], None] = log.warning,
                keep_waiting: Callable[[], bool] = lambda: True) -> Memory:
    """Open a Memory, waiting (with backoff) for a database locked or out of reach.

    Args:
        cfg: settings.
        embed_text: text embedder for text recall.
        wait: how long to wait, by cause.
        warn: called with a message at each retry.
        keep_waiting: polled while waiting (a node publishes its diagnostics from it);
            False ends the wait with the last error.

    Raises:
        StoreBusyError: the file is still locked after wait.lock_s, or the wait was ended.
        StoreUnavailableError: the server is still unreachable after wait.server_s.
        MemoryStoreError: the database cannot be opened or migrated.
    """
    started = time.monotonic()
    delay = _FIRST_RETRY_S
    while True:
        try:
            return Memory(cfg, embed_text)
        except StoreUnavailableError as err:
            busy = isinstance(err, StoreBusyError)
            limit = wait.lock_s if busy else wait.server_s
            waited = time.monotonic() - started
            if (limit > 0 or not busy) and waited + delay > limit:
                raise
            warn(f'{err}; waited {waited:.0f} s, next try in {delay:.1f} s')
            end = time.monotonic() + delay
            while time.monotonic() < end:
                if not keep_waiting():
                    raise
                time.sleep(min(_WAIT_POLL_S, max(0.0, end - time.monotonic())))
            delay = min(delay * 2.0, wait.backoff_max_s)
