"""The database behind the store: URLs, engines and schema migrations.

`resolve_url` turns a `database_url` parameter into a SQLAlchemy URL (SQLite by default,
PostgreSQL through psycopg 3), `make_engine` sets SQLite up for WAL and durable commits, and
`migrate` brings the schema to this version's head with Alembic (imported only when needed).
"""
from __future__ import annotations

from collections.abc import Mapping
import os
from pathlib import Path
import sqlite3
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from sage_memory.errors import MemoryStoreError, StoreBusyError, StoreUnavailableError
from sage_memory.store.migrations import HEAD, READABLE
from sage_memory.store.sqlite_file import Fault, classify

# The memory node's data folder when its data_dir parameter is ''.
DEFAULT_DATA_DIR = '~/.local/share/sage'

DB_FILENAME = 'sage_memory.db'
MIGRATIONS = Path(__file__).resolve().parent / 'migrations'


def resolve_url(database_url: str, data_dir: str | os.PathLike[str] = '') -> str:
    """SQLAlchemy URL for a `database_url` parameter.

    '' means the SQLite file `<data_dir>/sage_memory.db`; a bare path is a SQLite file;
    'postgresql://' gets the psycopg 3 driver.

    Raises:
        MemoryStoreError: the URL names an unsupported database.
    """
    if not database_url:
        base = Path(os.path.expanduser(str(data_dir or DEFAULT_DATA_DIR)))
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
                pragmas: Mapping[str, Any] | None = None,
                pg_options: Mapping[str, Any] | None = None, page_size: int = 0) -> Engine:
    """Engine for a resolved URL, with SQLite set up for WAL and durable commits.

    pg_options: extra libpq connection parameters for PostgreSQL (e.g. tcp_user_timeout).
    page_size: SQLite page size of a file this engine creates (0 = SQLite's 4096). It must be
        set before the file turns to WAL, and an existing file keeps the size it has.
    """
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
            if page_size:
                cur.execute(f'PRAGMA page_size={int(page_size)}')
            cur.execute('PRAGMA journal_mode=WAL')
            cur.execute(f'PRAGMA synchronous={synchronous}')
            cur.execute('PRAGMA busy_timeout=30000')
            for name, value in extra.items():
                cur.execute(f'PRAGMA {name}={value}')
            cur.close()
        return engine
    if u.get_backend_name() == 'postgresql':
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                             connect_args={'connect_timeout': 5, **(pg_options or {})})
    raise MemoryStoreError(f'unsupported database {u.get_backend_name()!r}')


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config  # lazy: Alembic only when there is a migration to run
    cfg = Config()
    cfg.set_main_option('script_location', str(MIGRATIONS))
    cfg.attributes['connection'] = conn
    return cfg


def read_revision(conn: Connection) -> str | None:
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
            if read_revision(conn) == HEAD:
                return HEAD  # the usual start: no Alembic import, no lock
        # lazy: Alembic is imported only when there is something to do (it costs ~0.4 s).
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
            raise StoreUnavailableError(f'cannot reach {where}: {short_error(err)}') from err
        if classify(err) is Fault.BUSY:
            raise StoreBusyError(
                f'{where} is locked by another process: {short_error(err)}') from err
        raise MemoryStoreError(f'cannot open {where}: {short_error(err)}') from err
    except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
        raise MemoryStoreError(f'cannot migrate {where}: {err}') from err
    except Exception as err:  # noqa: BLE001 - alembic raises its own types (CommandError...)
        raise MemoryStoreError(f'cannot migrate {where}: {err}') from err
    return HEAD


def require_head(engine: Engine, where: str, why: str) -> Engine:
    """The engine, once its database is known to hold this version's schema.

    A database that is only read cannot be migrated: it must be at the head, or at an older
    revision whose schema this version still reads (migrations.READABLE).

    Args:
        engine: engine of the database to read.
        where: how to name the database in errors.
        why: why it cannot be migrated (quoted in the error).

    Raises:
        MemoryStoreError: the database cannot be read or has another schema (engine disposed).
    """
    try:
        with engine.connect() as conn:
            revision = read_revision(conn)
    except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
        engine.dispose()
        raise MemoryStoreError(f'cannot read {where}: {short_error(err)}') from err
    if revision not in READABLE:
        engine.dispose()
        raise MemoryStoreError(f'{where} has schema {revision}, this version needs {HEAD}, '
                               f'and it cannot be migrated: {why}')
    return engine


def short_error(err: BaseException) -> str:
    """First line of a database error (the driver's own message), at most 200 characters."""
    msg = str(getattr(err, 'orig', None) or err).strip().splitlines()
    return msg[0][:200] if msg else type(err).__name__
