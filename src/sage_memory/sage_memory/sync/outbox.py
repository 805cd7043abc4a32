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

So that sleep can retrain the encoders on the other host, the training inputs of shipped
experiences follow them (`ship_inputs`), on a second cursor over the same local ids: an
experience's input reaches the store a moment after the experience (the memory node asks the
encoder for it), so an experience is passed over only once it is `settle_s` old.

The way back (`pull_patterns`): pattern rows that another host's sleep wrote into the shared
store are copied here, with their cursor (the shared store's id) in the same local
transaction, so a crash neither loses nor doubles one. Encoder versions the other host
promoted come back through sage_memory.sync.shared_models.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import hashlib
import json
import threading
import time
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy import exc as sa_exc

from sage_memory.store.database import make_engine, migrate, redact, resolve_url, sqlite_path
from sage_memory.errors import MemoryStoreError, TransferError
from sage_memory.store.models import (EXPERIENCES, PORTABLE_COLUMNS, STATE, TOMBSTONES,
                                TRAINING_INPUTS, ExperienceRecord, row_to_record)
from sage_memory.sync.shared_models import Adopter
from sage_memory.store.statements import INTERNAL_PREFIX, insert_ignore, read_state, write_state

KEY_PREFIX = f'{INTERNAL_PREFIX}outbox:'
PATTERNS_KEY_PREFIX = f'{INTERNAL_PREFIX}patterns-from:'


def cursor_key(remote_url: str) -> str:
    """The state key of the cursor towards one shared store (its URL without password)."""
    digest = hashlib.sha256(redact(resolve_url(remote_url)).encode()).hexdigest()[:16]
    return KEY_PREFIX + digest


class Outbox:
    """Ships the rows of `local` to the store at `remote_url`."""

    def __init__(self, local: Engine, remote_url: str, batch: int = 500,
                 device_id: str = '', link_timeout_s: float = 5.0,
                 settle_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        if resolve_url(remote_url) == str(local.url):
            raise TransferError('the outbox and the local store are the same database')
        self.local = local
        self.remote_url = remote_url
        self.batch = max(1, int(batch))
        self.device_id = device_id
        self.key = cursor_key(remote_url)
        self.patterns_key = PATTERNS_KEY_PREFIX + self.key[len(KEY_PREFIX):]
        self.settle_s = float(settle_s)
        self._clock = clock
        # A link that drops mid-transfer would otherwise hold the connection until TCP's own
        # retransmissions give up (tens of seconds after a 30 s cut): fail it sooner.
        self.link_timeout_ms = max(1, int(link_timeout_s * 1000))
        # The server side of such a connection may be left inside a transaction (the batch
        # inserted, its COMMIT lost), holding those rows' uuid locks: the batch sent again on
        # a new connection then waits for as long as the server does not learn the client is
        # gone, hours without keepalives (`sage bench twohost` once saw 234 rows not drain in
        # 300 s after a 10 s cut). So the server probes our sessions once they are quiet for
        # the link timeout and drops them after three unanswered probes (or once its own
        # data stays unacknowledged that long: tcp_user_timeout on its side too), and rolls
        # back a transaction of ours left idle that long (ours never wait on us).
        # Our side probes the same way: a query sent (and acknowledged) just before a cut waits
        # for a reply the server, having dropped the session, never sends; without probes the
        # outbox thread would wait there for the kernel's 2 h keepalive default (CI at 8eb167e:
        # no exchange for the rest of a `sage bench twohost` run after a 10 s cut).
        idle_s = max(1, round(link_timeout_s))
        self.pg_options = {
            'tcp_user_timeout': self.link_timeout_ms,
            'keepalives': 1, 'keepalives_idle': idle_s, 'keepalives_interval': 1,
            'keepalives_count': 3,
            'options': ' '.join(f'-c {k}={v}' for k, v in (
                ('tcp_keepalives_idle', idle_s), ('tcp_keepalives_interval', 1),
                ('tcp_keepalives_count', 3), ('tcp_user_timeout', self.link_timeout_ms),
                ('idle_in_transaction_session_timeout', self.link_timeout_ms)))}
        self._remote: Engine | None = None

    def _engine(self) -> Engine:
        if self._remote is None:
            engine = make_engine(resolve_url(self.remote_url), pg_options=self.pg_options)
            try:
                migrate(engine)
            except MemoryStoreError:
                engine.dispose()
                raise
            self._remote = engine
        return self._remote

    @contextmanager
    def remote_call(self, what: str) -> Iterator[Engine]:
        """The shared store's engine for one exchange: a fault drops the connection (the
        server may come back elsewhere) and is raised as TransferError naming `what`."""
        try:
            yield self._engine()
        except (sa_exc.SQLAlchemyError, MemoryStoreError, OSError) as err:
            self.close()
            raise TransferError(f'{what} {redact(self.remote_url)}: {err}') from err

    def close(self) -> None:
        if self._remote is not None:
            self._remote.dispose()
            self._remote = None

    def state(self) -> dict[str, Any]:
        """{'id': last acknowledged local id, 'at': wall time of the last exchange, ...}."""
        with self.local.connect() as conn:
            return read_state(conn, self.key) or {'id': 0, 'at': None, 'shipped': 0}

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
        with self.remote_call('outbox to') as remote, remote.begin() as rconn:
            dead = set(rconn.execute(select(TOMBSTONES.c.uuid).where(
                TOMBSTONES.c.uuid.in_([r['uuid'] for r in rows]))).scalars())
            fresh = [r for r in rows if r['uuid'] not in dead]
            if fresh:
                rconn.execute(insert_ignore(remote, EXPERIENCES), fresh)
        # Acknowledged by the shared store: only now does the cursor move.
        state.update(id=last, at=time.time(), shipped=int(state.get('shipped', 0)) + len(rows),
                     remote=redact(self.remote_url))
        self._save(self.key, state)
        return len(rows)

    def _save(self, key: str, state: dict[str, Any], conn: Any = None) -> None:
        if conn is None:
            with self.local.begin() as own:
                write_state(own, self.local, key, state, self.device_id, time.time())
        else:
            write_state(conn, self.local, key, state, self.device_id, time.time())

    def ship_inputs(self) -> int:
        """Send the training inputs of the next shipped, settled experiences; returns how
        many experiences were passed (0: none ready).

        Raises:
            TransferError: as ship (the inputs cursor stays).
        """
        state = self.state()
        after = int(state.get('inputs_id', 0))
        horizon = self._clock() - self.settle_s
        e = EXPERIENCES.c
        with self.local.connect() as conn:
            rows = conn.execute(
                select(e.id, e.uuid, e.created_at).where(e.id > after, e.id <= int(state['id']))
                .order_by(e.id).limit(self.batch)).all()
            # Up to the first row not yet settled: the ones after it wait for the next call.
            passed = []
            for r in rows:
                if r.created_at > horizon:
                    break
                passed.append(r)
            if not passed:
                return 0
            inputs = [dict(r._mapping) for r in conn.execute(select(TRAINING_INPUTS).where(
                TRAINING_INPUTS.c.uuid.in_([r.uuid for r in passed])))]
        sent = 0
        if inputs:
            with self.remote_call('outbox inputs to') as remote, remote.begin() as rconn:
                known = set(rconn.execute(select(EXPERIENCES.c.uuid).where(
                    EXPERIENCES.c.uuid.in_([i['uuid'] for i in inputs]))).scalars())
                fresh = [i for i in inputs if i['uuid'] in known]
                if fresh:
                    rconn.execute(insert_ignore(remote, TRAINING_INPUTS), fresh)
                sent = len(fresh)
        state.update(inputs_id=int(passed[-1].id),
                     inputs_shipped=int(state.get('inputs_shipped', 0)) + sent)
        self._save(self.key, state)
        return len(passed)

    def pull_patterns(self) -> list[ExperienceRecord]:
        """Copy the next pattern rows other hosts wrote into the shared store; returns the new
        ones as stored here (with local row ids, for the vector index). A row this store
        already held (merged by `sage memory sync`) is passed over, not returned again; [] means
        there is nothing more to take.

        Raises:
            TransferError: the shared store cannot be read (the cursor stays).
        """
        while True:
            rows, last = self._next_patterns()
            if not rows:
                return []
            # Rows and cursor in one transaction: a crash neither loses nor doubles a pattern.
            with self.local.begin() as conn:
                known = set(conn.execute(select(EXPERIENCES.c.uuid).where(
                    EXPERIENCES.c.uuid.in_([r['uuid'] for r in rows]))).scalars())
                fresh = [r for r in rows if r['uuid'] not in known]
                if fresh:
                    conn.execute(insert_ignore(self.local, EXPERIENCES), fresh)
                self._save(self.patterns_key, {'id': last, 'at': time.time()}, conn)
                if fresh:
                    return [row_to_record(r) for r in conn.execute(select(EXPERIENCES).where(
                        EXPERIENCES.c.uuid.in_([r['uuid'] for r in fresh])))]

    def _next_patterns(self) -> tuple[list[dict[str, Any]], int]:
        """The next batch of other hosts' pattern rows after the cursor, and the last id."""
        with self.local.connect() as conn:
            after = int((read_state(conn, self.patterns_key) or {'id': 0})['id'])
        e = EXPERIENCES.c
        cols = [e[name] for name in PORTABLE_COLUMNS]
        with self.remote_call('patterns from') as remote, remote.connect() as rconn:
            rows = [dict(r._mapping) for r in rconn.execute(
                select(e.id, *cols).where(e.id > after, e.kind == 'pattern',
                                          e.device_id != self.device_id)
                .order_by(e.id).limit(self.batch))]
        last = int(rows[-1]['id']) if rows else after
        for row in rows:
            row.pop('id')
        return rows, last

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
    that is down is retried at the next period, and nothing is lost meanwhile.

    Each period it ships experiences, then (when asked) their training inputs, and takes back
    the other hosts' patterns (handed to `on_patterns` once stored here) and model versions
    (`adopter`).
    """

    def __init__(self, outbox: Outbox, period_s: float, max_batches: int = 20,
                 inputs: bool = False, patterns: bool = False,
                 on_patterns: Callable[[list[ExperienceRecord]], None] | None = None,
                 adopter: Adopter | None = None) -> None:
        super().__init__(daemon=True, name='memory-outbox')
        self.outbox = outbox
        self.period_s = float(period_s)
        self.max_batches = int(max_batches)
        self.inputs = inputs
        self.patterns = patterns
        self.on_patterns = on_patterns
        self.adopter = adopter
        self.status: dict[str, Any] = {'backlog': -1, 'shipped': 0, 'errors': 0,
                                       'last_exchange': None, 'error': '',
                                       'inputs_shipped': 0, 'patterns_pulled': 0,
                                       'models_adopted': 0, 'adopted': '', 'not_adopted': '',
                                       'models_skipped': 0}
        self._halt = threading.Event()

    def exchange(self) -> None:
        """One period's work (raises TransferError / MemoryStoreError / SQLAlchemyError)."""
        self.outbox.drain(self.max_batches)
        if self.inputs:
            for _ in range(self.max_batches):
                if self.outbox.ship_inputs() == 0:
                    break
        if self.patterns:
            for _ in range(self.max_batches):
                got = self.outbox.pull_patterns()
                if not got:
                    break
                self.status['patterns_pulled'] += len(got)
                if self.on_patterns is not None:
                    self.on_patterns(got)
        if self.adopter is not None:
            with self.outbox.remote_call('model versions from') as remote:
                done = self.adopter.pull(remote)
            self.status['models_adopted'] += len(done.versions)
            if done.versions:
                self.status['adopted'] = '; '.join(done.versions)
            if done.skipped:
                self.status['models_skipped'] += len(done.skipped)
                self.status['not_adopted'] = '; '.join(done.skipped)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.exchange()
                st = self.outbox.state()
                self.status.update(backlog=self.outbox.backlog(), error='',
                                   shipped=int(st.get('shipped', 0)),
                                   inputs_shipped=int(st.get('inputs_shipped', 0)),
                                   last_exchange=st.get('at'))
            except (TransferError, MemoryStoreError, sa_exc.SQLAlchemyError, OSError) as err:
                # OSError: a version could not be unpacked here (a full disk); tried again.
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
        # The newest local id: once a cursor reaches it, every row stored so far was shipped
        # (a store that keeps writing may never show a backlog of exactly 0).
        last_id = int(conn.execute(select(func.coalesce(func.max(EXPERIENCES.c.id), 0)))
                      .scalar_one())
        out = []
        for key, value in rows:
            st = json.loads(value)
            backlog = int(conn.execute(select(func.count()).select_from(EXPERIENCES).where(
                EXPERIENCES.c.id > int(st['id']))).scalar_one())
            out.append({'remote': st.get('remote', key), 'backlog': backlog,
                        'last_exchange': st.get('at'), 'shipped': st.get('shipped', 0),
                        'cursor': st['id'], 'last_id': last_id,
                        'inputs_cursor': st.get('inputs_id', 0),
                        'inputs_shipped': st.get('inputs_shipped', 0)})
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
