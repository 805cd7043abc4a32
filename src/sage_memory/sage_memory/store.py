"""The memory store: engine, migrations, a writer thread that commits in batches, state table.

Callers never wait on the database: `submit()` puts a record on a queue and returns; one
writer thread drains the queue, inserts whatever has accumulated in one transaction (group
commit) and only then acknowledges the rows (commit listeners get them with their local ids).
When the database cannot be written (disk full, PostgreSQL gone) the rows stay queued in
memory, `status().alarm` says why, and the writer retries with exponential backoff until the
write succeeds; nothing that was acknowledged is ever lost, and nothing is acknowledged before
its commit.

SQLite runs in WAL mode with `synchronous=FULL` by default (a commit survives a power cut, not
only a process kill). Opening a SQLite file tells its faults apart (sage_memory.sqlite_file): a
file locked by another process raises StoreBusyError (the caller waits and retries); a file or
folder this process cannot write is opened read-only (`read_only` says why; rows and states are
refused and counted); only a file that fails `PRAGMA quick_check` is quarantined
(`<name>.corrupt-<time>`) and a fresh one created, the problem kept in `problems`.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
import concurrent.futures as cf
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
import queue
import socket
import sqlite3
import threading
import time
from typing import Any, TypeVar
import uuid as uuidlib

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from sage_memory.errors import MemoryStoreError, StoreBusyError, StoreUnavailableError
from sage_memory.lockdown import lock_down_store
from sage_memory.migrations import HEAD
from sage_memory.models import (EXPERIENCES, PORTABLE_COLUMNS, RECALL_KINDS, STATE,
                                ExperienceRecord, record_to_row, row_to_record)
from sage_memory.retention import RetentionConfig, evict
from sage_memory.sqlite_file import (Fault, access_problem, classify, examine, quarantine,
                                     quarantined_files, read_only_engine)

log = logging.getLogger(__name__)

T = TypeVar('T')
DB_FILENAME = 'sage_memory.db'
MIGRATIONS = Path(__file__).resolve().parent / 'migrations'
# Keys starting with this prefix are the store's own (not exported, not synced).
INTERNAL_PREFIX = '_'
_STORE_KEY = '_store'
# Statements for one insert batch: SQLite caps bound parameters at 32766 per statement.
_INSERT_CHUNK = 500


def new_uuid() -> str:
    """A globally unique row key (UUID4, 32 hex characters)."""
    return uuidlib.uuid4().hex


def default_device_id() -> str:
    """Device id used when none is configured: the host name."""
    return socket.gethostname() or 'unknown'


def resolve_url(database_url: str, data_dir: str | os.PathLike[str] = '') -> str:
    """SQLAlchemy URL for a `database_url` parameter.

    '' means the SQLite file `<data_dir>/sage_memory.db`; a bare path is a SQLite file;
    'postgresql://' gets the psycopg 3 driver.

    Raises:
        MemoryStoreError: the URL names an unsupported database.
    """
    if not database_url:
        base = Path(os.path.expanduser(str(data_dir or '~/.local/share/sage')))
        return f'sqlite:///{base / DB_FILENAME}'
    if '://' not in database_url:
        return f'sqlite:///{Path(os.path.expanduser(database_url)).resolve()}'
    for prefix in ('postgresql://', 'postgres://'):
        if database_url.startswith(prefix):
            return 'postgresql+psycopg://' + database_url[len(prefix):]
    if database_url.startswith(('sqlite:', 'postgresql+psycopg:')):
        return database_url
    raise MemoryStoreError(
        f'unsupported database_url {redact(database_url)!r}: use sqlite:///PATH or '
        'postgresql://USER@HOST:PORT/DB')


def redact(url: str) -> str:
    """URL with any password hidden (for logs and diagnostics)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return '<invalid url>'


def sqlite_path(url: str) -> Path | None:
    """File of a SQLite URL, or None for other databases and in-memory SQLite."""
    u = make_url(url)
    if u.get_backend_name() != 'sqlite' or not u.database or u.database == ':memory:':
        return None
    return Path(u.database)


def make_engine(url: str, synchronous: str = 'FULL',
                pragmas: Mapping[str, Any] | None = None) -> Engine:
    """Engine for a resolved URL, with SQLite set up for WAL and durable commits."""
    u = make_url(url)
    if u.get_backend_name() == 'sqlite':
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={'timeout': 30.0})
        # Read at every new connection (not copied), so a test can change a limit later.
        extra = pragmas if pragmas is not None else {}

        @event.listens_for(engine, 'connect')
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute('PRAGMA journal_mode=WAL')
            cur.execute(f'PRAGMA synchronous={synchronous}')
            cur.execute('PRAGMA busy_timeout=30000')
            for name, value in extra.items():
                cur.execute(f'PRAGMA {name}={value}')
            cur.close()
        return engine
    if u.get_backend_name() == 'postgresql':
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                             connect_args={'connect_timeout': 5})
    raise MemoryStoreError(f'unsupported database {u.get_backend_name()!r}')


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option('script_location', str(MIGRATIONS))
    cfg.attributes['connection'] = conn
    return cfg


def _read_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table('alembic_version'):
        return None
    return conn.execute(text('SELECT version_num FROM alembic_version')).scalar()


def migrate(engine: Engine) -> str:
    """Apply every pending migration; returns the schema revision now in force.

    Raises:
        StoreUnavailableError: a PostgreSQL server cannot be reached.
        MemoryStoreError: the database cannot be opened or migrated.
    """
    where = redact(str(engine.url))
    try:
        with engine.connect() as conn:
            if _read_revision(conn) == HEAD:
                return HEAD  # the usual start: no Alembic import, no lock
        # Alembic is imported only when there is something to do (it costs ~0.4 s).
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        with engine.begin() as conn:
            if engine.dialect.name == 'postgresql':
                # Several devices may start against one server: migrate one at a time.
                conn.execute(text('SELECT pg_advisory_xact_lock(5241467)'))
            if MigrationContext.configure(conn).get_current_revision() != HEAD:
                command.upgrade(_alembic_config(conn), 'head')
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as err:
        if engine.dialect.name == 'postgresql':
            raise StoreUnavailableError(f'cannot reach {where}: {_short(err)}') from err
        if classify(err) is Fault.BUSY:
            raise StoreBusyError(f'{where} is locked by another process: {_short(err)}') from err
        raise MemoryStoreError(f'cannot open {where}: {_short(err)}') from err
    except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
        raise MemoryStoreError(f'cannot migrate {where}: {err}') from err
    except Exception as err:  # noqa: BLE001 - alembic raises its own types (CommandError...)
        raise MemoryStoreError(f'cannot migrate {where}: {err}') from err
    return HEAD


def _insert_ignore(engine: Engine, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the engine's dialect."""
    if engine.dialect.name == 'postgresql':
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite_dialect.insert(table).on_conflict_do_nothing()


def _upsert_state(engine: Engine) -> Any:
    ins = (postgresql.insert(STATE) if engine.dialect.name == 'postgresql'
           else sqlite_dialect.insert(STATE))
    return ins.on_conflict_do_update(index_elements=['key'], set_={
        'value': ins.excluded.value, 'updated_at': ins.excluded.updated_at,
        'device_id': ins.excluded.device_id})


def insert_records(conn: Connection, engine: Engine,
                   records: Sequence[ExperienceRecord]) -> dict[str, int]:
    """Insert records, skipping uuids already present; returns uuid -> local id for all."""
    ids: dict[str, int] = {}
    stmt = _insert_ignore(engine, EXPERIENCES).returning(EXPERIENCES.c.id, EXPERIENCES.c.uuid)
    for i in range(0, len(records), _INSERT_CHUNK):
        rows = [record_to_row(r) for r in records[i:i + _INSERT_CHUNK]]
        for row in conn.execute(stmt, rows):
            ids[row.uuid] = int(row.id)
    missing = [r.uuid for r in records if r.uuid not in ids]
    for i in range(0, len(missing), _INSERT_CHUNK):
        # Already there: a retry after a commit whose reply was lost, or a duplicate submit.
        q = select(EXPERIENCES.c.id, EXPERIENCES.c.uuid).where(
            EXPERIENCES.c.uuid.in_(missing[i:i + _INSERT_CHUNK]))
        for row in conn.execute(q):
            ids[row.uuid] = int(row.id)
    return ids


# A record whose fields cannot be converted to column values (a caller's bug, not a fault).
_BAD_RECORD = (TypeError, ValueError, AttributeError, OverflowError)


def _is_transient(err: BaseException) -> bool:
    """True for faults that a retry can cure (disk full, lost server), False for bad data."""
    if isinstance(err, (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError)):
        return False
    return isinstance(err, (sa_exc.DBAPIError, sqlite3.Error, OSError))


class _RawWriter:
    """The writer thread's own DBAPI connection and prepared SQL (the hot path).

    Plain DBAPI executemany on one held connection costs about half the CPU of SQLAlchemy Core
    per batch, which matters at thousands of rows per second on a 2-core board. Errors are
    the driver's own (sqlite3 / psycopg); `is_transient` sorts faults a retry can cure from
    bad data.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == 'sqlite'
        ph = '?' if self.sqlite else '%s'
        cols = ', '.join(PORTABLE_COLUMNS)
        marks = ', '.join([ph] * len(PORTABLE_COLUMNS))
        self.insert_sql = (f'INSERT INTO experiences ({cols}) VALUES ({marks}) '
                           'ON CONFLICT (uuid) DO NOTHING')
        self.state_sql = (f'INSERT INTO state (key, value, updated_at, device_id) '
                          f'VALUES ({ph}, {ph}, {ph}, {ph}) ON CONFLICT (key) DO UPDATE SET '
                          'value = excluded.value, updated_at = excluded.updated_at, '
                          'device_id = excluded.device_id')
        dbapi: Any = engine.dialect.dbapi
        self._error = dbapi.Error
        bad = [dbapi.IntegrityError, dbapi.DataError, dbapi.ProgrammingError,
               dbapi.NotSupportedError]
        if self.sqlite:
            # sqlite3 before Python 3.11 raises InterfaceError for an unbindable value.
            bad.append(dbapi.InterfaceError)
        self._bad = tuple(bad)
        self._conn: Any = None

    def is_db_error(self, err: BaseException) -> bool:
        """True for driver errors (and OS errors) the writer handles."""
        return isinstance(err, (self._error, OSError, sa_exc.SQLAlchemyError))

    def is_transient(self, err: BaseException) -> bool:
        """True when a retry can cure the error (disk full, lost server, locked file)."""
        if isinstance(err, _BAD_RECORD) or isinstance(err, self._bad):
            return False
        if isinstance(err, sa_exc.SQLAlchemyError):
            return _is_transient(err)
        return isinstance(err, (self._error, OSError))

    def write(self, records: Sequence[ExperienceRecord],
              states: Sequence[tuple[str, str, float, str]]) -> dict[str, int]:
        """Insert records (skipping known uuids) and upsert states in one transaction.

        Returns:
            uuid -> local id of every record (new or already there).
        """
        rows = [tuple(m[c] for c in PORTABLE_COLUMNS) for m in map(record_to_row, records)]
        if self._conn is None:
            self._conn = self.engine.raw_connection()
        conn = self._conn
        try:
            cur = conn.cursor()
            try:
                if rows:
                    cur.executemany(self.insert_sql, rows)
                if states:
                    cur.executemany(self.state_sql, list(states))
                ids = self._ids(cur, [r.uuid for r in records]) if records else {}
            finally:
                cur.close()
            conn.commit()
        except BaseException as err:
            self._reset(broken=self.is_transient(err))
            raise
        return ids

    def _ids(self, cur: Any, uuids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(uuids), _INSERT_CHUNK):
            chunk = uuids[i:i + _INSERT_CHUNK]
            if self.sqlite:
                cur.execute('SELECT id, uuid FROM experiences WHERE uuid IN (%s)'
                            % ', '.join('?' * len(chunk)), chunk)
            else:
                cur.execute('SELECT id, uuid FROM experiences WHERE uuid = ANY(%s)', (chunk,))
            out.update((u, int(i_)) for i_, u in cur.fetchall())
        return out

    def _reset(self, broken: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if broken:
                conn.invalidate()
            else:
                conn.rollback()
                self._conn = conn
        except Exception:  # noqa: BLE001 - a dead connection may fail any call: drop it
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        """Return the connection to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
                conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass


@dataclass(frozen=True)
class StoreConfig:
    """How the store connects and writes.

    Attributes:
        database_url: '' (SQLite under data_dir), a path, sqlite:/// or postgresql:// URL.
        data_dir: directory of the default SQLite file and of index snapshots.
        device_id: id written on every row ('' = host name).
        batch_max: most rows per commit.
        max_pending: most rows held in memory while the database cannot be written.
        backoff_initial_s: first retry delay after a failed write.
        backoff_max_s: longest retry delay.
        synchronous: SQLite synchronous mode ('FULL' survives power loss, 'NORMAL' only
            process crashes).
        retention: row cap and eviction settings.
        sqlite_pragmas: extra PRAGMAs on each SQLite connection (tests use max_page_count).
        wal_checkpoint_period_s: SQLite WAL checkpoints run in the maintenance thread at this
            period, off the commit path (0 = SQLite's automatic checkpoints in the committer).
        sync_check_max_mb: after an unclean stop, a SQLite file up to this size is fully
            checked before use; a larger one in the background (flagged for the next start).
        read_only: open a SQLite file for reading only, even where it could be written
            (tools that only read, such as `sage memory query`).
    """

    database_url: str = ''
    data_dir: str = '~/.local/share/sage'
    device_id: str = ''
    batch_max: int = 512
    max_pending: int = 100_000
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 5.0
    synchronous: str = 'FULL'
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    sqlite_pragmas: Mapping[str, Any] = field(default_factory=dict)
    wal_checkpoint_period_s: float = 1.0
    sync_check_max_mb: float = 64.0
    read_only: bool = False


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


@dataclass
class _Job:
    fn: Callable[[Connection], Any]
    future: cf.Future[Any]


@dataclass
class _StateItem:
    key: str
    value: str
    t_submit: float


CommitListener = Callable[[list[ExperienceRecord]], None]
EvictListener = Callable[[list[tuple[int, str]]], None]


class MemoryStore:
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
        except MemoryStoreError:
            self.engine.dispose()
            raise
        self._raw = _RawWriter(self.engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[tuple[float, ExperienceRecord]] = deque()
        self._pending_states: dict[str, _StateItem] = {}
        self._commit_listeners: list[CommitListener] = []
        self._evict_listeners: list[EvictListener] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stop = threading.Event()
        self._reconnect = threading.Event()
        self._retain_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ckpt_thread: threading.Thread | None = None
        self._alarm = ''
        self._counts = {'committed': 0, 'rejected': 0, 'dropped': 0, 'evicted': 0,
                        'commits': 0, 'refused': 0}
        # Wall time of each batch's insert + commit, its CPU time in the writer thread, and
        # each row's submit -> commit time (benchmarks and diagnostics read these).
        self.commit_ms: deque[float] = deque(maxlen=4096)
        self.commit_cpu_ms: deque[float] = deque(maxlen=4096)
        self.ack_ms: deque[float] = deque(maxlen=16384)

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
            return self._at_head(make_engine(self.url), redact(self.url))
        for warning in lock_down_store(self._path, self.data_dir):  # 0700 folder, 0600 files
            log.warning(warning)
        pragmas = self.cfg.sqlite_pragmas
        if self._path is not None and self.cfg.wal_checkpoint_period_s > 0:
            pragmas = _Overlay(pragmas, {'wal_autocheckpoint': 0})
        engine = make_engine(self.url, self.cfg.synchronous, pragmas)
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
        engine = self._at_head(read_only_engine(path), str(path))
        self.quarantined = [str(p) for p in quarantined_files(path)]
        if not self.cfg.read_only:
            log.error('memory database %s is read-only (%s): serving the experiences it holds, '
                      'storing nothing new', path, self.read_only)
        return engine

    def _at_head(self, engine: Engine, where: str) -> Engine:
        # A database that is only read must already have this version's schema.
        try:
            with engine.connect() as conn:
                revision = _read_revision(conn)
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            engine.dispose()
            raise MemoryStoreError(f'cannot read {where}: {_short(err)}') from err
        if revision != HEAD:
            engine.dispose()
            raise MemoryStoreError(f'{where} has schema {revision}, this version needs {HEAD}, '
                                   f'and it cannot be migrated: {self.read_only}')
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
        self._commit_listeners.append(listener)

    def on_evict(self, listener: EvictListener) -> None:
        """Call listener([(id, uuid), ...]) in the writer thread after an eviction."""
        self._evict_listeners.append(listener)

    # ------------------------------------------------------------------ writer
    def start(self) -> None:
        """Start the writer thread (and the SQLite checkpointer) (idempotent).

        A read-only store starts nothing: it has nothing to write.
        """
        if self._thread is None and not self.read_only:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name='sage-memory-writer',
                                            daemon=True)
            self._thread.start()
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
        while not self._stop.wait(0.1):
            now = time.monotonic()
            if ckpt > 0 and now >= next_ckpt:
                next_ckpt = now + ckpt
                self.checkpoint('PASSIVE')
            if ret > 0 and now >= next_ret and not self._alarm:
                next_ret = now + ret
                self.retain_now()

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
        if self._refuse(1):
            return
        with self._lock:
            self._in_flight += 1
        self._queue.put((time.perf_counter(), record))

    def submit_many(self, records: Sequence[ExperienceRecord]) -> None:
        """Queue several records (refused when read-only)."""
        if self._refuse(len(records)):
            return
        now = time.perf_counter()
        with self._lock:
            self._in_flight += len(records)
        for r in records:
            self._queue.put((now, r))

    def submit_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Queue a state checkpoint (the latest value per key wins).

        Raises:
            MemoryStoreError: the value is not JSON-serialisable.
        """
        doc = _dump_state(key, value)
        if self._refuse(1):
            return
        with self._lock:
            self._in_flight += 1
        self._queue.put(_StateItem(key, doc, time.perf_counter()))

    def call(self, fn: Callable[[Connection], T], timeout: float | None = 60.0) -> T:
        """Run fn(conn) in the writer thread inside one transaction and return its result.

        Raises:
            MemoryStoreError: the job failed or timed out.
        """
        if self._thread is None:
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except sa_exc.SQLAlchemyError as err:
                raise MemoryStoreError(f'database job failed: {err}') from err
        fut: cf.Future[T] = cf.Future()
        with self._lock:
            self._in_flight += 1
        self._queue.put(_Job(fn, fut))
        try:
            return fut.result(timeout)
        except cf.TimeoutError as err:
            raise MemoryStoreError('database job timed out') from err

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued item is committed (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._idle.wait(min(left, 0.1))
        return True

    def status(self) -> StoreStatus:
        """Queue depth, pending rows, the current alarm and counters."""
        with self._lock:
            return StoreStatus(queued=self._queue.qsize(), pending=len(self._pending),
                               alarm=self._alarm, read_only=self.read_only, **self._counts)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, stop the writer and release the database; False if rows were left unsaved."""
        if self.read_only:
            self.engine.dispose()
            return True
        clean = True
        if self._thread is not None:
            clean = self.flush(timeout)
            self._stop.set()
            self._queue.put(None)
            self._thread.join(timeout=max(1.0, timeout))
            self._thread = None
            self._raw.close()
            if self._ckpt_thread is not None:
                self._ckpt_thread.join(timeout=max(1.0, timeout))
                self._ckpt_thread = None
        self.checkpoint('TRUNCATE')
        with self._lock:
            if self._pending or self._pending_states:
                clean = False
                log.error('memory store closed with %d unsaved rows', len(self._pending))
        self.engine.dispose()
        if clean and self._marker is not None and self._marker.exists():
            self._marker.unlink()
        return clean

    def _done(self, n: int) -> None:
        with self._idle:
            self._in_flight -= n
            self._idle.notify_all()

    def _take(self, item: Any) -> list[_Job]:
        jobs: list[_Job] = []
        if isinstance(item, _Job):
            jobs.append(item)
        elif isinstance(item, _StateItem):
            old = self._pending_states.get(item.key)
            self._pending_states[item.key] = item
            if old is not None:
                self._done(1)
        elif item is not None:
            self._pending.append(item)
        return jobs

    def _collect(self, wait_s: float | None) -> list[_Job]:
        jobs: list[_Job] = []
        try:
            item = self._queue.get(timeout=wait_s) if wait_s != 0 else self._queue.get_nowait()
        except queue.Empty:
            return jobs
        jobs += self._take(item)
        # Group commit: take what accumulated while the last commit ran.
        while len(self._pending) < self.cfg.batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            jobs += self._take(item)
        return jobs

    def _run(self) -> None:
        backoff = self.cfg.backoff_initial_s
        retry_at = 0.0
        while True:
            failing = bool(self._alarm)
            wait = max(0.0, retry_at - time.monotonic()) if failing else 0.25
            if self._stop.is_set():
                wait = 0 if not failing else min(wait, 0.05)
            jobs = self._collect(wait)
            self._bound_pending()
            if failing and time.monotonic() < retry_at:
                for job in jobs:
                    job.future.set_exception(MemoryStoreError(self._alarm))
                    self._done(1)
                if self._stop.is_set():
                    break
                continue
            if self._pending or self._pending_states or failing:
                ok = (self._write_pending() if self._pending or self._pending_states
                      else self._probe())
                if ok:
                    backoff = self.cfg.backoff_initial_s
                else:
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2.0, self.cfg.backoff_max_s)
            for job in jobs:
                self._run_job(job)
            if (self._stop.is_set() and self._queue.empty() and not self._pending
                    and not self._pending_states):
                break
            if self._stop.is_set() and self._alarm:
                break

    def _probe(self) -> bool:
        # Nothing left to write (rows dropped) but the alarm is up: is the database back?
        try:
            with self.engine.connect() as conn:
                conn.execute(text('SELECT 1'))
        except (sa_exc.SQLAlchemyError, sqlite3.Error, OSError) as err:
            self._set_alarm(f'cannot reach {redact(self.url)}: {_short(err)}')
            return False
        with self._lock:
            self._alarm = ''
        return True

    def _bound_pending(self) -> None:
        over = len(self._pending) - self.cfg.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            with self._lock:
                self._counts['dropped'] += over
                self._alarm = (f'{self._alarm or "write failing"}; dropped {over} oldest '
                               f'unsaved rows (max_pending {self.cfg.max_pending})')
            log.error('memory store dropped %d unsaved rows', over)
            self._done(over)

    def reconnect(self) -> None:
        """Drop every pooled connection (the writer's too) so new connections are made."""
        self._reconnect.set()
        self.engine.dispose()

    def _write_pending(self) -> bool:
        if self._reconnect.is_set():
            self._reconnect.clear()
            self._raw.close()
        batch = list(self._pending)[:self.cfg.batch_max]
        states = list(self._pending_states.values())
        records = [r for _, r in batch]
        t0 = time.perf_counter()
        c0 = time.thread_time()
        try:
            ids = self._raw.write(records, [(st.key, st.value, self._clock(), self.device_id)
                                            for st in states])
        except Exception as err:  # noqa: BLE001 - classified just below, others re-raised
            if not self._raw.is_db_error(err) and not isinstance(err, _BAD_RECORD):
                raise
            if self._raw.is_transient(err):
                self._set_alarm(f'cannot write to {redact(self.url)}: '
                                f'{_short(err)} ({len(self._pending)} rows queued)')
                return False
            self._isolate_bad_rows(batch, err)
            return True
        t1 = time.perf_counter()
        for _ in batch:
            self._pending.popleft()
        for st in states:
            if self._pending_states.get(st.key) is st:
                del self._pending_states[st.key]
        self.commit_ms.append((t1 - t0) * 1e3)
        self.commit_cpu_ms.append((time.thread_time() - c0) * 1e3)
        acked = [r.with_ids(ids[r.uuid]) for r in records if r.uuid in ids]
        self.ack_ms.extend((t1 - ts) * 1e3 for ts, _ in batch)
        with self._lock:
            self._alarm = ''
            self._counts['committed'] += len(acked)
            self._counts['commits'] += 1
        if acked:
            for listener in self._commit_listeners:
                listener(acked)
        self._done(len(batch) + len(states))
        return True

    def _isolate_bad_rows(self, batch: list[tuple[float, ExperienceRecord]],
                          err: BaseException) -> None:
        # One bad row must not block the queue: write the batch row by row, reject the bad.
        log.error('batch rejected (%s); writing row by row', _short(err))
        good: list[ExperienceRecord] = []
        rejected = 0
        for _ in batch:
            self._pending.popleft()
        for ts, rec in batch:
            try:
                ids = self._raw.write([rec], [])
                good.append(rec.with_ids(ids[rec.uuid]))
                self.ack_ms.append((time.perf_counter() - ts) * 1e3)
            except Exception as row_err:  # noqa: BLE001 - classified just below
                if not self._raw.is_db_error(row_err) and not isinstance(row_err, _BAD_RECORD):
                    raise
                if self._raw.is_transient(row_err):
                    self._pending.appendleft((ts, rec))
                    continue
                rejected += 1
                log.error('rejected row %s: %s', getattr(rec, 'uuid', '?'), _short(row_err))
        with self._lock:
            self._counts['rejected'] += rejected
            self._counts['committed'] += len(good)
        if good:
            for listener in self._commit_listeners:
                listener(good)
        self._done(rejected + len(good))
        if self._pending_states:
            # A bad state document is dropped (states are re-sent every checkpoint period).
            n = len(self._pending_states)
            self._pending_states.clear()
            self._done(n)

    def _run_job(self, job: _Job) -> None:
        try:
            with self.engine.begin() as conn:
                result = job.fn(conn)
            job.future.set_result(result)
        except (sa_exc.SQLAlchemyError, sqlite3.Error, OSError, MemoryStoreError) as err:
            job.future.set_exception(MemoryStoreError(f'database job failed: {_short(err)}'))
        except Exception as err:  # noqa: BLE001 - a job's own bug goes back to its caller
            job.future.set_exception(err)
        finally:
            self._done(1)

    def _set_alarm(self, text_: str) -> None:
        with self._lock:
            first = not self._alarm
            self._alarm = text_
        if first:
            log.error('%s', text_)

    def retain_now(self) -> list[tuple[int, str]]:
        """Evict rows above the cap now (in the calling thread); returns (id, uuid) evicted.

        Runs every retention.period_s in the maintenance thread; concurrent calls are
        serialised.
        """
        try:
            with self._retain_lock:
                victims = evict(self.engine, self.cfg.retention, self._clock())
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            log.warning('retention skipped: %s', _short(err))
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
        doc = _dump_state(key, value)
        if self.read_only:
            raise MemoryStoreError(f'cannot save state {key!r}: {self.read_only}')
        try:
            with self.engine.begin() as conn:
                conn.execute(_upsert_state(self.engine), [{
                    'key': key, 'value': doc, 'updated_at': self._clock(),
                    'device_id': self.device_id}])
        except sa_exc.SQLAlchemyError as err:
            if classify(err) is Fault.BUSY:
                raise StoreBusyError(f'cannot save state {key!r}: {_short(err)}') from err
            raise MemoryStoreError(f'cannot save state {key!r}: {_short(err)}') from err

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The state document saved under key, or None."""
        with self.engine.connect() as conn:
            value = conn.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()
        return json.loads(value) if value is not None else None

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Every non-internal state document by key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(STATE.c.key, STATE.c.value)).all()
        return {k: json.loads(v) for k, v in rows if not k.startswith(INTERNAL_PREFIX)}

    # ------------------------------------------------------------------- reads
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
            for i in range(0, len(ids), _INSERT_CHUNK):
                chunk = [int(x) for x in ids[i:i + _INSERT_CHUNK]]
                for row in conn.execute(select(EXPERIENCES).where(EXPERIENCES.c.id.in_(chunk))):
                    out[int(row.id)] = row_to_record(row)
        return out

    def fetch_uuids(self, uuids: Sequence[str]) -> dict[str, ExperienceRecord]:
        """Records by uuid."""
        out: dict[str, ExperienceRecord] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(uuids), _INSERT_CHUNK):
                q = select(EXPERIENCES).where(EXPERIENCES.c.uuid.in_(uuids[i:i + _INSERT_CHUNK]))
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
                for i in range(0, len(id_list), _INSERT_CHUNK):
                    yield list(conn.execute(base.where(e.id.in_(id_list[i:i + _INSERT_CHUNK]))))
                return
            last = min_id
            while True:
                rows = list(conn.execute(base.where(e.id > last).order_by(e.id).limit(chunk)))
                if not rows:
                    return
                yield rows
                last = int(rows[-1].id)


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


def _dump_state(key: str, value: Mapping[str, Any]) -> str:
    if not isinstance(key, str) or not key or len(key) > 128:
        raise MemoryStoreError(f'state key must be a string of 1..128 characters, got {key!r}')
    if not isinstance(value, Mapping):
        raise MemoryStoreError(f'state {key!r} must be a mapping, got {type(value).__name__}')
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise MemoryStoreError(f'state {key!r} is not JSON-serialisable: {err}') from err


def _short(err: BaseException) -> str:
    msg = str(getattr(err, 'orig', None) or err).strip().splitlines()
    return msg[0][:200] if msg else type(err).__name__


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
    except sa_exc.SQLAlchemyError as err:
        raise MemoryStoreError(f'cannot read {redact(resolved)}: {_short(err)}') from err
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
        'read_only': denied or '',
        'quarantined': [str(p) for p in quarantined_files(path)] if path is not None else [],
    }
