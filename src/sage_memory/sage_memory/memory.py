"""The memory facade the node, the benchmark and the tests use: store + index + recall + sleep.

Threads: the store's writer commits rows; the index thread (sage_memory.index.keeper) keeps
the vector indexes in step with them. Recall and sleep run in the caller's thread.
"""
from __future__ import annotations

import atexit
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import logging
from pathlib import Path
import time
from typing import Any

import numpy as np

from sage_memory.errors import QueryError, StoreBusyError, StoreUnavailableError
from sage_memory.sleep.consolidation import SleepConfig, SleepReport, consolidate
from sage_memory.index.index_set import IndexSet
from sage_memory.index.keeper import IndexKeeper, KeeperConfig
from sage_memory.index.structure import IndexConfig
from sage_memory.store.models import ExperienceRecord
from sage_memory.index.recall import Query, TextEmbedder, run_query, validate
from sage_memory.store.memory_store import MemoryStore, StoreConfig, StoreStatus
from sage_memory.store.training_inputs import TrainingInput

log = logging.getLogger(__name__)

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
        self._t_start = t0
        self.keeper = IndexKeeper(
            self.store, KeeperConfig(cfg.index, cfg.snapshot_period_s, cfg.refresh_period_s,
                                     cfg.heap_trim_rows),
            self.store.data_dir / 'index' / self.store.store_id, self.timings, t0)
        self.store.on_commit(self.keeper.add)
        self.store.on_evict(lambda victims: self.keeper.remove([v[0] for v in victims]))
        self.keeper.start()
        self.store.start()
        # A daemon thread inside FAISS at interpreter exit aborts the process: stop it first.
        atexit.register(self.keeper.stop)

    @property
    def index(self) -> IndexSet:
        """The vector indexes (read by recall; kept by the index thread)."""
        return self.keeper.index

    @property
    def snapshot_dir(self) -> Path:
        """Where the index snapshot is saved."""
        return self.keeper.snapshot_dir

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
                and not self.keeper.wait_ready(self.cfg.ready_wait_s):
            raise QueryError(f'the vector index is still being loaded (memory opened '
                             f'{time.perf_counter() - self._t_start:.1f} s ago): retry shortly')
        return run_query(q, self.store, self.index, self._embed_text)

    def sleep(self, max_duration_s: float,
              should_stop: Callable[[], bool] = lambda: False) -> SleepReport:
        """Consolidate for at most max_duration_s, or until should_stop(); new patterns
        reach the index.

        Raises:
            MemoryStoreError: the database cannot be read or written.
        """
        report = consolidate(self.store, self.cfg.sleep, max_duration_s, self.cfg.session,
                             should_stop=should_stop)
        self.keeper.add(list(report.patterns))
        return report

    # ------------------------------------------------------------------- index
    def index_rows(self, records: list[ExperienceRecord]) -> None:
        """Rows written into the database by another path (patterns taken back from the
        shared store, with their local row ids) join the vector index."""
        self.keeper.add(records)

    def wait_index_ready(self, timeout: float | None = None) -> bool:
        """Block until the index has been reconciled with the database at start."""
        return self.keeper.wait_ready(timeout)

    def wait_index_idle(self, timeout: float = 10.0) -> bool:
        """Block until every committed row so far has reached the index (tests, bench)."""
        return self.keeper.wait_idle(timeout)

    def reconcile(self) -> dict[str, int]:
        """Make the index hold exactly the database's indexable rows now; returns counts."""
        return self.keeper.reconcile()

    def save_index(self) -> int:
        """Write the index snapshot now; returns rows saved (none when read-only)."""
        return self.keeper.save()

    def status(self) -> MemoryStatus:
        """Writer state, index readiness and size, start-up problems."""
        return MemoryStatus(self.store.status(), self.keeper.ready, self.index.sizes(),
                            tuple(self.problems))

    @property
    def read_only(self) -> str:
        """Why the database is read-only ('' when it is writable)."""
        return self.store.read_only

    @property
    def problems(self) -> list[str]:
        """Problems found at start or by background checks (corrupt file, bad snapshot)."""
        return list(self.store.problems) + list(self.keeper.problems)

    # ------------------------------------------------------------------- close
    def close(self, timeout: float = 10.0) -> bool:
        """Flush the writer, bring the index up to date, save its snapshot, close.

        Returns:
            False when queued rows could not be written (they are lost with the process).
        """
        clean = self.store.close(timeout)
        self.keeper.stop()
        atexit.unregister(self.keeper.stop)
        try:
            self.save_index()
        except OSError as err:
            log.warning('index snapshot failed at close: %s', err)
        return clean


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
