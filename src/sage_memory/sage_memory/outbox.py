"""The edge's outbox: experiences stored here are shipped to a shared store, in order, once.

The edge writes locally first (its own SQLite store keeps working when the link or the shared
PostgreSQL is down). The outbox then copies rows to the shared store in local insert order
(the local id, so clocks that disagree between hosts do not matter), `batch` rows per remote
transaction with INSERT ... ON CONFLICT (uuid) DO NOTHING. The cursor (the last local id the
shared store has acknowledged) is kept in this store's state table and advanced only after the
remote commit: a crash in between sends the batch again, which the uuid conflict rule turns
into a no-op. So shipping is ordered, idempotent and resumes after either side restarts.

Rows the shared store evicted itself (its tombstones) are not sent back. Which pattern a row
belongs to (set by sleep on either side) is not shipped here: `sage memory sync` merges it
both ways with its rule (the smaller pattern uuid wins).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy import exc as sa_exc

from sage_memory.database import make_engine, migrate, redact, resolve_url, sqlite_path
from sage_memory.errors import MemoryStoreError, TransferError
from sage_memory.models import EXPERIENCES, PORTABLE_COLUMNS, STATE, TOMBSTONES
from sage_memory.statements import INTERNAL_PREFIX, insert_ignore, upsert_state

KEY_PREFIX = f'{INTERNAL_PREFIX}outbox:'


def cursor_key(remote_url: str) -> str:
    """The state key of the cursor towards one shared store (its URL without password)."""
    digest = hashlib.sha256(redact(resolve_url(remote_url)).encode()).hexdigest()[:16]
    return KEY_PREFIX + digest


class Outbox:
    """Ships the rows of `local` to the store at `remote_url`."""

    def __init__(self, local: Engine, remote_url: str, batch: int = 500,
                 device_id: str = '', link_timeout_s: float = 5.0) -> None:
        if resolve_url(remote_url) == str(local.url):
            raise TransferError('the outbox and the local store are the same database')
        self.local = local
        self.remote_url = remote_url
        self.batch = max(1, int(batch))
        self.device_id = device_id
        self.key = cursor_key(remote_url)
        # A link that drops mid-transfer would otherwise hold the connection until TCP's own
        # retransmissions give up (tens of seconds after a 30 s cut): fail it sooner.
        self.link_timeout_ms = max(1, int(link_timeout_s * 1000))
        self._remote: Engine | None = None

    def _engine(self) -> Engine:
        if self._remote is None:
            engine = make_engine(resolve_url(self.remote_url),
                                 pg_options={'tcp_user_timeout': self.link_timeout_ms})
            try:
                migrate(engine)
            except MemoryStoreError:
                engine.dispose()
                raise
            self._remote = engine
        return self._remote

    def close(self) -> None:
        if self._remote is not None:
            self._remote.dispose()
            self._remote = None

    def state(self) -> dict[str, Any]:
        """{'id': last acknowledged local id, 'at': wall time of the last exchange, ...}."""
        with self.local.connect() as conn:
            value = conn.execute(select(STATE.c.value).where(STATE.c.key == self.key)).scalar()
        return json.loads(value) if value else {'id': 0, 'at': None, 'shipped': 0}

    def backlog(self) -> int:
        """Rows stored here that the shared store has not acknowledged yet."""
        cursor = int(self.state()['id'])
        with self.local.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(EXPERIENCES)
                                    .where(EXPERIENCES.c.id > cursor)).scalar_one())

    def ship(self) -> int:
        """Send the next batch; returns how many rows it held (0: nothing to send).

        Raises:
            TransferError: the shared store cannot be reached or written (nothing is lost:
                the cursor stays, and the next call sends the same rows).
        """
        state = self.state()
        cols = [EXPERIENCES.c[name] for name in PORTABLE_COLUMNS]
        with self.local.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(EXPERIENCES.c.id, *cols).where(EXPERIENCES.c.id > int(state['id']))
                .order_by(EXPERIENCES.c.id).limit(self.batch))]
        if not rows:
            return 0
        last = int(rows[-1].pop('id'))
        for row in rows[:-1]:
            row.pop('id')
        try:
            remote = self._engine()
            with remote.begin() as rconn:
                dead = set(rconn.execute(select(TOMBSTONES.c.uuid).where(
                    TOMBSTONES.c.uuid.in_([r['uuid'] for r in rows]))).scalars())
                fresh = [r for r in rows if r['uuid'] not in dead]
                if fresh:
                    rconn.execute(insert_ignore(remote, EXPERIENCES), fresh)
        except (sa_exc.SQLAlchemyError, MemoryStoreError, OSError) as err:
            self.close()  # reconnect next time (the server may come back elsewhere)
            raise TransferError(f'outbox to {redact(self.remote_url)}: {err}') from err
        # Acknowledged by the shared store: only now does the cursor move.
        state = {'id': last, 'at': time.time(), 'shipped': int(state.get('shipped', 0)) +
                 len(rows), 'remote': redact(self.remote_url)}
        with self.local.begin() as conn:
            conn.execute(upsert_state(self.local), [{
                'key': self.key, 'value': json.dumps(state), 'updated_at': state['at'],
                'device_id': self.device_id}])
        return len(rows)

    def drain(self, max_batches: int = 1_000_000) -> int:
        """Ship until the backlog is empty; returns rows sent."""
        total = 0
        for _ in range(max_batches):
            n = self.ship()
            if n == 0:
                break
            total += n
        return total


class OutboxWorker(threading.Thread):
    """Drains an outbox every `period_s` in the background (the memory node's): a shared store
    that is down is retried at the next period, and nothing is lost meanwhile."""

    def __init__(self, outbox: Outbox, period_s: float, max_batches: int = 20) -> None:
        super().__init__(daemon=True, name='memory-outbox')
        self.outbox = outbox
        self.period_s = float(period_s)
        self.max_batches = int(max_batches)
        self.status: dict[str, Any] = {'backlog': -1, 'shipped': 0, 'errors': 0,
                                       'last_exchange': None, 'error': ''}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.outbox.drain(self.max_batches)
                st = self.outbox.state()
                self.status.update(backlog=self.outbox.backlog(), error='',
                                   shipped=int(st.get('shipped', 0)),
                                   last_exchange=st.get('at'))
            except (TransferError, MemoryStoreError, sa_exc.SQLAlchemyError) as err:
                self.status['errors'] += 1
                self.status['error'] = str(err)[:300]
            self._halt.wait(self.period_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self.join(timeout)
        self.outbox.close()


def outbox_status(local: Engine) -> list[dict[str, Any]]:
    """Every outbox of a store: its shared store, backlog and last exchange."""
    with local.connect() as conn:
        rows = conn.execute(select(STATE.c.key, STATE.c.value)
                            .where(STATE.c.key.like(KEY_PREFIX + '%'))).all()
        out = []
        for key, value in rows:
            st = json.loads(value)
            backlog = int(conn.execute(select(func.count()).select_from(EXPERIENCES).where(
                EXPERIENCES.c.id > int(st['id']))).scalar_one())
            out.append({'remote': st.get('remote', key), 'backlog': backlog,
                        'last_exchange': st.get('at'), 'shipped': st.get('shipped', 0),
                        'cursor': st['id']})
    return out


def status_of(url: str) -> list[dict[str, Any]]:
    """`sage memory sync status`: the outboxes of the store at `url` ('' = default file).

    Raises:
        MemoryStoreError: no such database, or it cannot be read.
    """
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None and not path.exists():
        raise MemoryStoreError(f'no memory database at {path}')
    engine = make_engine(resolved)
    try:
        return outbox_status(engine)
    except sa_exc.SQLAlchemyError as err:
        raise MemoryStoreError(f'cannot read {redact(resolved)}: {err}') from err
    finally:
        engine.dispose()


def stored_uuids(url: str) -> list[str]:
    """Every row's uuid in the store at `url`, duplicates included (an exactly-once check)."""
    engine = make_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(EXPERIENCES.c.uuid)).scalars())
    finally:
        engine.dispose()
