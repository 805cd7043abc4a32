"""The memory store: opens the database, runs its writer and maintenance, serves reads.

`MemoryStore` puts the parts together (modules of sage_memory.store): the database and its
migrations (database), the writer thread that commits in batches and acknowledges rows only
after their commit (writer), the reads (queries), SQLite file faults (sqlite_file), and the
training inputs kept for sleep under their own disk budget (training_inputs).

SQLite runs in WAL mode with `synchronous=FULL` by default (a commit survives a power cut, not
only a process kill). Opening a SQLite file tells its faults apart: a file locked by another
process raises StoreBusyError (the caller waits and retries); a file or folder this process
cannot write is opened read-only (`read_only` says why; rows and states are refused and
counted); only a file that fails `PRAGMA quick_check` is quarantined (`<name>.corrupt-<time>`)
and a fresh one created, the problem kept in `problems`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
import logging
import math
import os
from pathlib import Path
import socket
import sqlite3
import threading
import time
from typing import Any, TypeVar
import uuid as uuidlib

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from sage_memory.store.database import (DB_FILENAME, MIGRATIONS, make_engine, migrate, redact,
                                  require_head, resolve_url, short_error, sqlite_path)
from sage_memory.errors import MemoryStoreError, StoreBusyError
from sage_memory.store.lockdown import lock_down_store
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.queries import StoreQueries, summarize
from sage_memory.store.retention import RetentionConfig, evict
from sage_memory.store.sqlite_file import (Fault, access_problem, classify, examine, quarantine,
                                     quarantined_files, read_only_engine)
from sage_memory.store.statements import INTERNAL_PREFIX, dump_state, insert_records, upsert_state
from sage_memory.store.training_inputs import TrainingInput, TrainingInputs
from sage_memory.store.writer import BatchWriter, CommitListener

# Names other modules import from here (kept where they were before the store was split).
__all__ = ['DB_FILENAME', 'INTERNAL_PREFIX', 'MIGRATIONS', 'CommitListener', 'EvictListener',
           'MemoryStore', 'StoreConfig', 'StoreStatus', 'default_device_id', 'insert_records',
           'make_engine', 'migrate', 'new_uuid', 'redact', 'resolve_url', 'sqlite_path',
           'summarize']

log = logging.getLogger(__name__)

T = TypeVar('T')
_STORE_KEY = '_store'
# The maintenance thread looks at the WAL's size this often (a stat call): under a flood the WAL
# grows by at most this long's writes past wal_max_mb.
_MAINTENANCE_TICK_S = 0.1


_uuid_lock = threading.Lock()
_uuid_last = (0, 0, 0)  # (pid, ms, 74 random bits) of this process's last key


def new_uuid() -> str:
    """A globally unique row key: a UUIDv7 (RFC 9562) as 32 hex characters.

    48 bits of Unix time in ms and 74 random bits, so keys stay unique across devices while a
    new key sorts after every older one: each commit appends to the end of the uuid index
    instead of touching a random page per row (with UUID4 keys that index was a large part of
    what a commit wrote). Within one millisecond this process counts up from its last key
    (RFC 9562's monotonic random), so its keys sort in the order they were made.
    """
    global _uuid_last
    now = time.time_ns() // 1_000_000
    with _uuid_lock:
        pid, ms, rand = _uuid_last
        if now > ms or pid != os.getpid():  # a forked child must not count on from its parent
            ms, rand = now, int.from_bytes(os.urandom(10), 'big') >> 6
        else:
            rand += 1
            if rand >> 74:  # the counter ran out within one ms: borrow the next ms
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), 'big') >> 6
        _uuid_last = (os.getpid(), ms, rand)
    value = ((ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64
             | 0b10 << 62 | rand & (2**62 - 1))
    return f'{value:032x}'


def default_device_id() -> str:
    """Device id used when none is configured: the host name."""
    return socket.gethostname() or 'unknown'


@dataclass(frozen=True)
class StoreConfig:
    """How the store connects and writes.

    Attributes:
        database_url: '' (SQLite under data_dir), a path, sqlite:/// or postgresql:// URL.
        data_dir: directory of the default SQLite file and of index snapshots.
        device_id: id written on every row ('' = host name).
        batch_max: most rows per commit.
        linger_s: how long a commit waits for more rows after the first (fewer, fuller
            commits: each rewrites the pages it touches, so one row a commit multiplies the
            bytes written to flash; rows are still acknowledged only after their commit).
        max_pending: most rows held in memory while the database cannot be written.
        backoff_initial_s: first retry delay after a failed write.
        backoff_max_s: longest retry delay.
        synchronous: SQLite synchronous mode ('FULL' survives power loss, 'NORMAL' only
            process crashes).
        retention: row cap and eviction settings.
        sqlite_pragmas: extra PRAGMAs on each SQLite connection (tests use max_page_count).
        wal_checkpoint_period_s: SQLite WAL checkpoints run in the maintenance thread at this
            period, off the commit path (0 = SQLite's automatic checkpoints in the committer).
        wal_max_mb: a SQLite WAL larger than this is checkpointed at once and truncated (a
            PASSIVE checkpoint never shrinks the file, and under a flood it never catches up
            with the writer, so the WAL would grow without bound; 0 = no bound).
        page_size: page size of a SQLite file the store creates (an existing file keeps its
            own). A stored experience is 1-3 kB, so 4 kB pages often hold one row and leave the
            rest empty; 16 kB pages take 21 % less disk, but every commit rewrites whole pages,
            so at a robot's few rows a second they write 2-3x the bytes to flash.
        sync_check_max_mb: after an unclean stop, a SQLite file up to this size is fully
            checked before use; a larger one in the background (flagged for the next start).
        read_only: open a SQLite file for reading only, even where it could be written
            (tools that only read, such as `sage memory query`).
        training_budget_mb: disk budget of the training inputs (encoder inputs kept for
            sleep); the least valuable go first beyond it (0 = keep none).
        training_max_pending_mb: most training input bytes held in memory while the database
            cannot be written (the oldest are dropped beyond it).
    """

    database_url: str = ''
    data_dir: str = '~/.local/share/sage'
    device_id: str = ''
    batch_max: int = 512
    linger_s: float = 0.0
    max_pending: int = 100_000
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 5.0
    synchronous: str = 'FULL'
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    sqlite_pragmas: Mapping[str, Any] = field(default_factory=dict)
    wal_checkpoint_period_s: float = 1.0
    wal_max_mb: float = 64.0
    page_size: int = 4096
    sync_check_max_mb: float = 64.0
    read_only: bool = False
    training_budget_mb: float = 256.0
    training_max_pending_mb: float = 64.0


@dataclass(frozen=True)
class StoreStatus:
    """What the writer is doing, for diagnostics."""

    queued: int
    pending: int
    alarm: str
    committed: int
    rejected: int
    dropped: int
    evicted: int
    commits: int
    refused: int = 0
    read_only: str = ''


EvictListener = Callable[[list[tuple[int, str]]], None]


class MemoryStore(StoreQueries):
    """Database access for the memory node: a writer thread plus direct reads.

    Args:
        cfg: connection and writer settings.
        clock: wall clock for stamps of state and eviction (tests pass a fake).

    Raises:
        MemoryStoreError: the database cannot be opened or migrated.
    """

    def __init__(self, cfg: StoreConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.device_id = cfg.device_id or default_device_id()
        self.url = resolve_url(cfg.database_url, cfg.data_dir)
        self.data_dir = Path(os.path.expanduser(cfg.data_dir))
        self.problems: list[str] = []
        # Why the database is read-only ('' = writable); quarantined copies beside it.
        self.read_only = 'opened read-only' if cfg.read_only else ''
        self.quarantined: list[str] = []
        self._clock = clock
        self._path = sqlite_path(self.url)
        self._marker = Path(str(self._path) + '.open') if self._path is not None else None
        # Written when a background integrity check fails: the next start checks it again.
        self._flag = Path(str(self._path) + '.check-failed')
        self._full_check_due = False
        self.engine = self._open()
        try:
            self.store_id = self._store_id()
            self.training = self._open_training()
        except MemoryStoreError:
            self.engine.dispose()
            raise
        self.writer = BatchWriter(self.engine, self.url, cfg.batch_max, cfg.max_pending,
                                  cfg.backoff_initial_s, cfg.backoff_max_s,
                                  (self._clock, self.device_id),
                                  int(cfg.training_max_pending_mb * 2**20), cfg.linger_s)
        self.writer.on_inputs(self.training.committed)
        # The writer's timings (benchmarks and diagnostics read and clear them here).
        self.commit_ms = self.writer.commit_ms
        self.commit_cpu_ms = self.writer.commit_cpu_ms
        self.ack_ms = self.writer.ack_ms
        self._evict_listeners: list[EvictListener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._retain_lock = threading.Lock()
        self._ckpt_thread: threading.Thread | None = None
        self._counts = {'evicted': 0, 'refused': 0}

    # ----------------------------------------------------------------- opening
    def _open(self) -> Engine:
        if self._path is not None:
            if not self.read_only:
                self.read_only = access_problem(self._path) or ''
            if not self.read_only and self._path.exists():
                self._examine_at_start(self._path)
            if self.read_only:
                return self._open_read_only(self._path)
        elif self.read_only:  # a reading tool on a database server: change nothing there
            return require_head(make_engine(self.url), redact(self.url), self.read_only)
        for warning in lock_down_store(self._path, self.data_dir):  # 0700 folder, 0600 files
            log.warning(warning)
        pragmas = self.cfg.sqlite_pragmas
        if self._path is not None and self.cfg.wal_checkpoint_period_s > 0:
            pragmas = _Overlay(pragmas, {'wal_autocheckpoint': 0})
        engine = make_engine(self.url, self.cfg.synchronous, pragmas,
                             page_size=self.cfg.page_size)
        try:
            migrate(engine)
        except MemoryStoreError:
            engine.dispose()
            raise
        if self._path is not None and self._marker is not None:
            self._marker.touch(mode=0o600)  # private like the database (umask only narrows)
            self.quarantined = [str(p) for p in quarantined_files(self._path)]
        return engine

    def _examine_at_start(self, path: Path) -> None:
        # Always: the file opens and its schema reads. After an unclean stop, or when an
        # earlier background check failed, also every page (quick_check) - at once for a small
        # file, in the maintenance thread for a large one (about 8 s per 500 MB from a cold
        # cache), whose failure flags the file for a check at the next start.
        full = self._flag.exists()
        if not full and self._marker is not None and self._marker.exists():
            full = path.stat().st_size <= self.cfg.sync_check_max_mb * 1e6
            self._full_check_due = not full
        problem = examine(path, full=full)
        if problem is None:
            if self._flag.exists():
                log.warning('%s passes its integrity check now (an earlier check failed: %s); '
                            'kept', path, self._flag.read_text().strip())
                self._flag.unlink()
            return
        if problem.fault is Fault.BUSY:
            raise StoreBusyError(f'{path} is locked by another process ({problem.detail})')
        if problem.fault is Fault.DENIED:
            self.read_only = problem.detail
            return
        if problem.fault is not Fault.CORRUPT:
            raise MemoryStoreError(f'{problem.detail}; the file was left as it is')
        moved = quarantine(path)
        self._flag.unlink(missing_ok=True)
        msg = (f'corrupt database quarantined to {moved} ({problem.detail}); started with an '
               'empty database')
        log.error(msg)
        self.problems.append(msg)

    def _open_read_only(self, path: Path) -> Engine:
        # Serve what is there; never create, migrate, lock down or move anything.
        if not path.exists():
            raise MemoryStoreError(f'cannot create the memory database {path}: '
                                   f'{self.read_only}')
        engine = require_head(read_only_engine(path), str(path), self.read_only)
        self.quarantined = [str(p) for p in quarantined_files(path)]
        if not self.cfg.read_only:
            log.error('memory database %s is read-only (%s): serving the experiences it holds, '
                      'storing nothing new', path, self.read_only)
        return engine

    def _background_check(self) -> None:
        self._full_check_due = False
        if self._path is None:
            return
        problem = examine(self._path, full=True)
        if problem is None:
            return
        if problem.fault is not Fault.CORRUPT:
            log.warning('background integrity check not done: %s', problem.detail)
            return
        msg = (f'database failed its integrity check ({problem.detail}); it will be checked '
               'again and quarantined at the next start')
        log.error(msg)
        self._flag.write_text(problem.detail)
        self.problems.append(msg)

    def _store_id(self) -> str:
        doc = self.load_state(_STORE_KEY)
        if doc and isinstance(doc.get('store_id'), str):
            return str(doc['store_id'])
        if self.read_only:
            # Nothing can be saved: an id derived from the file names its index snapshots.
            return uuidlib.uuid5(uuidlib.NAMESPACE_URL, str(self._path)).hex
        sid = new_uuid()
        self.save_state(_STORE_KEY, {'store_id': sid, 'created_at': self._clock()})
        # Another process may have won the race: read back what is stored.
        doc = self.load_state(_STORE_KEY) or {}
        return str(doc.get('store_id', sid))

    def _open_training(self) -> TrainingInputs:
        try:
            training = TrainingInputs(self.engine, self.cfg.training_budget_mb,
                                      self.cfg.retention, self._clock)
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            raise MemoryStoreError(f'cannot read the training inputs: {short_error(err)}') from err
        if not self.read_only:
            training.keep_budget()  # the budget may have been lowered since the last run
        return training

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @property
    def path(self) -> Path | None:
        """SQLite file, or None for PostgreSQL."""
        return self._path

    # --------------------------------------------------------------- listeners
    def on_commit(self, listener: CommitListener) -> None:
        """Call listener(records) in the writer thread after each commit (rows have ids)."""
        self.writer.on_commit(listener)

    def on_evict(self, listener: EvictListener) -> None:
        """Call listener([(id, uuid), ...]) in the maintenance thread after an eviction."""
        self._evict_listeners.append(listener)

    # ------------------------------------------------------------------ writer
    def start(self) -> None:
        """Start the writer thread (and the SQLite checkpointer) (idempotent).

        A read-only store starts nothing: it has nothing to write.
        """
        if not self.writer.running and not self.read_only:
            self._stop.clear()
            self.writer.start()
            self._ckpt_thread = threading.Thread(
                target=self._maintenance, name='sage-memory-maintenance', daemon=True)
            self._ckpt_thread.start()

    def _maintenance(self) -> None:
        # Off the commit path: WAL checkpoints (PASSIVE never waits for the writer; it copies
        # what it can from the WAL into the file) and retention.
        ckpt = self.cfg.wal_checkpoint_period_s if self._path is not None else 0.0
        ret = self.cfg.retention.period_s if self.cfg.retention.max_rows > 0 else 0.0
        now = time.monotonic()
        next_ckpt, next_ret = now + ckpt, now + ret
        if self._full_check_due:
            self._background_check()
        while not self._stop.wait(_MAINTENANCE_TICK_S):
            now = time.monotonic()
            if self._wal_over_bound():
                # TRUNCATE waits for the writer's current commit, then empties the file.
                next_ckpt = now + ckpt
                self.checkpoint('TRUNCATE')
            elif ckpt > 0 and now >= next_ckpt:
                next_ckpt = now + ckpt
                self.checkpoint('PASSIVE')
            if ret > 0 and now >= next_ret and not self.writer.alarm:
                next_ret = now + ret
                self.retain_now()

    def wal_bytes(self) -> int:
        """Size of the SQLite WAL file (0 for PostgreSQL or when there is none)."""
        if self._path is None:
            return 0
        try:
            return Path(str(self._path) + '-wal').stat().st_size
        except OSError:
            return 0

    def _wal_over_bound(self) -> bool:
        limit = self.cfg.wal_max_mb
        return limit > 0 and self.wal_bytes() > limit * 2**20

    def checkpoint(self, mode: str = 'PASSIVE') -> None:
        """Run a SQLite WAL checkpoint (no-op for PostgreSQL)."""
        if self._path is None:
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(f'PRAGMA wal_checkpoint({mode})')
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            log.debug('wal checkpoint skipped: %s', err)

    def _refuse(self, n: int) -> bool:
        # A read-only store counts what it could not take (status().refused).
        if not self.read_only:
            return False
        with self._lock:
            self._counts['refused'] += n
        return True

    def submit(self, record: ExperienceRecord) -> None:
        """Queue a record for the next commit (never blocks; refused when read-only)."""
        self.submit_many([record])

    def submit_many(self, records: Sequence[ExperienceRecord]) -> None:
        """Queue several records (refused when read-only)."""
        if not self._refuse(len(records)):
            self.writer.submit_many(records)

    def submit_training_input(self, item: TrainingInput) -> None:
        """Queue the encoder input of a stored experience for the next commit (never blocks).

        Kept once per uuid; dropped (counted in training_stats) when its experience is not
        stored, when the budget is 0, or when the store is read-only (status().refused).

        Raises:
            ValueError: a malformed input (unknown modality or format, no data, bad uuid).
        """
        if self._refuse(1):
            return
        row = self.training.admit(item)
        if row is not None:
            self.writer.submit_inputs([row])

    def training_stats(self) -> dict[str, Any]:
        """Training inputs: count and bytes per modality and in all, budget, counters.

        See TrainingInputs.stats for the keys (dropped and evicted are counted since open).
        """
        return self.training.stats()

    def training_inputs(self, modality: str | None = None, since: float = 0.0,
                        limit: int | None = None) -> list[TrainingInput]:
        """Stored training inputs with stamp >= since, oldest first (what sleep reads)."""
        return self.training.select(modality, since, limit)

    def iter_training_inputs(self, modality: str, since: float = 0.0,
                             until: float = math.inf) -> Iterator[TrainingInput]:
        """Stored training inputs of one modality with since <= stamp <= until, oldest
        first, read a page at a time (TrainingInputs.iterate)."""
        return self.training.iterate(modality, since, until)

    def submit_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Queue a state checkpoint (the latest value per key wins).

        Raises:
            MemoryStoreError: the value is not JSON-serialisable.
        """
        doc = dump_state(key, value)
        if not self._refuse(1):
            self.writer.submit_state(key, doc)

    def call(self, fn: Callable[[Connection], T], timeout: float | None = 60.0) -> T:
        """Run fn(conn) in the writer thread inside one transaction and return its result.

        Raises:
            MemoryStoreError: the job failed or timed out.
        """
        return self.writer.call(fn, timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued item is committed (or failed); False on timeout."""
        return self.writer.flush(timeout)

    def reconnect(self) -> None:
        """Drop every pooled connection (the writer's too) so new connections are made."""
        self.writer.reconnect()
        self.engine.dispose()

    def status(self) -> StoreStatus:
        """Queue depth, pending rows, the current alarm and counters."""
        queued, pending, alarm, counts = self.writer.snapshot()
        with self._lock:
            return StoreStatus(queued=queued, pending=pending, alarm=alarm,
                               read_only=self.read_only, **counts, **self._counts)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, stop the writer and release the database; False if rows were left unsaved."""
        if self.read_only:
            self.engine.dispose()
            return True
        clean = True
        if self.writer.running:
            clean = self.writer.flush(timeout)
            self._stop.set()
            self.writer.stop(timeout)
            if self._ckpt_thread is not None:
                self._ckpt_thread.join(timeout=max(1.0, timeout))
                self._ckpt_thread = None
        self.checkpoint('TRUNCATE')
        unsaved = self.writer.unsaved()
        if unsaved:
            clean = False
            log.error('memory store closed with %d unsaved rows', unsaved)
        self.engine.dispose()
        if clean and self._marker is not None and self._marker.exists():
            self._marker.unlink()
        return clean

    def retain_now(self) -> list[tuple[int, str]]:
        """Evict rows above the cap now (in the calling thread); returns (id, uuid) evicted.

        Runs every retention.period_s in the maintenance thread; concurrent calls are
        serialised.
        """
        try:
            with self._retain_lock:
                victims = evict(self.engine, self.cfg.retention, self._clock(),
                                self.training.evicted)
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            log.warning('retention skipped: %s', short_error(err))
            return []
        if victims:
            with self._lock:
                self._counts['evicted'] += len(victims)
            for listener in self._evict_listeners:
                listener(victims)
        return victims

    # ------------------------------------------------------------------- state
    def save_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Write a state document now, in the calling thread.

        Raises:
            MemoryStoreError: bad key/value or the database cannot be written.
        """
        doc = dump_state(key, value)
        if self.read_only:
            raise MemoryStoreError(f'cannot save state {key!r}: {self.read_only}')
        try:
            with self.engine.begin() as conn:
                conn.execute(upsert_state(self.engine), [{
                    'key': key, 'value': doc, 'updated_at': self._clock(),
                    'device_id': self.device_id}])
        except sa_exc.SQLAlchemyError as err:
            if classify(err) is Fault.BUSY:
                raise StoreBusyError(f'cannot save state {key!r}: {short_error(err)}') from err
            raise MemoryStoreError(f'cannot save state {key!r}: {short_error(err)}') from err


class _Overlay(Mapping[str, Any]):
    """Read-through union of two mappings (the first one may change later)."""

    def __init__(self, base: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
        self._base, self._extra = base, extra

    def __getitem__(self, key: str) -> Any:
        return self._base[key] if key in self._base else self._extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._extra, **self._base))

    def __len__(self) -> int:
        return len(dict(self._extra, **self._base))
