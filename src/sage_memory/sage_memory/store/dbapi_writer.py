"""The writer thread's DBAPI connection: one held connection, prepared SQL, fault sorting.

Plain DBAPI executemany on one held connection costs about half the CPU of SQLAlchemy Core per
batch, which matters at thousands of rows per second on a 2-core board.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import sqlite3
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from sage_memory.store.models import PORTABLE_COLUMNS, ExperienceRecord, rows_to_insert
from sage_memory.store.statements import SQL_CHUNK
from sage_memory.store.training_inputs import InputWriter, TrainingOutcome


# A record whose fields cannot be converted to column values (a caller's bug, not a fault).
BAD_RECORD = (TypeError, ValueError, AttributeError, OverflowError)


def _is_transient(err: BaseException) -> bool:
    """True for faults that a retry can cure (disk full, lost server), False for bad data."""
    if isinstance(err, (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError)):
        return False
    return isinstance(err, (sa_exc.DBAPIError, sqlite3.Error, OSError))


class RawWriter:
    """The writer thread's own DBAPI connection and prepared SQL (the hot path).

    Errors are the driver's own (sqlite3 / psycopg); `is_transient` sorts faults a retry can
    cure from bad data.
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
        self._inputs = InputWriter(engine)

    def is_db_error(self, err: BaseException) -> bool:
        """True for driver errors (and OS errors) the writer handles."""
        return isinstance(err, (self._error, OSError, sa_exc.SQLAlchemyError))

    def is_transient(self, err: BaseException) -> bool:
        """True when a retry can cure the error (disk full, lost server, locked file)."""
        if isinstance(err, BAD_RECORD) or isinstance(err, self._bad):
            return False
        if isinstance(err, sa_exc.SQLAlchemyError):
            return _is_transient(err)
        return isinstance(err, (self._error, OSError))

    def write(self, records: Sequence[ExperienceRecord],
              states: Sequence[tuple[str, str, float, str]],
              inputs: Sequence[Mapping[str, Any]] = ()) -> tuple[dict[str, int],
                                                                 TrainingOutcome]:
        """Insert records, upsert states and insert training inputs in one transaction.

        Known uuids are skipped. Inputs (column values) go after the records, so an input may
        come in the same batch as its experience.

        Returns:
            uuid -> local id of every record (new or already there), and what became of the
            inputs.
        """
        rows = rows_to_insert(records)
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
                outcome = self._inputs.write(cur, inputs) if inputs else TrainingOutcome()
            finally:
                cur.close()
            conn.commit()
        except BaseException as err:
            self._reset(broken=self.is_transient(err))
            raise
        return ids, outcome

    def _ids(self, cur: Any, uuids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(uuids), SQL_CHUNK):
            chunk = uuids[i:i + SQL_CHUNK]
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
