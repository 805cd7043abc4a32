"""The store's writer thread: a queue, group commits, backoff, and acknowledgements.

Callers never wait on the database: `submit()` puts a record on a queue and returns; the writer
thread drains the queue, inserts whatever has accumulated in one transaction (group commit) and
only then acknowledges the rows (commit listeners get them with their local ids). When the
database cannot be written (disk full, PostgreSQL gone) the rows stay queued in memory, `alarm`
says why, and the writer retries with exponential backoff until the write succeeds; nothing that
was acknowledged is ever lost, and nothing is acknowledged before its commit. Training inputs
(sage_memory.store.training_inputs) ride in the same batches; input listeners hear what became
of them.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
import concurrent.futures as cf
from dataclasses import dataclass
import logging
import queue
import sqlite3
import threading
import time
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

from sage_memory.store.database import redact, short_error
from sage_memory.store.dbapi_writer import BAD_RECORD, RawWriter
from sage_memory.errors import MemoryStoreError
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.training_inputs import TrainingOutcome

log = logging.getLogger(__name__)

T = TypeVar('T')
CommitListener = Callable[[list[ExperienceRecord]], None]
InputListener = Callable[[TrainingOutcome], None]


@dataclass
class _Job:
    fn: Callable[[Connection], Any]
    future: cf.Future[Any]


@dataclass
class _StateItem:
    key: str
    value: str
    t_submit: float


@dataclass
class _InputItem:
    row: Mapping[str, Any]


class BatchWriter:
    """One thread that commits queued rows and state documents in batches.

    Args:
        engine: database to write.
        url: its URL (named, password hidden, in alarms).
        batch_max: most rows per commit.
        max_pending: most rows held in memory while the database cannot be written.
        backoff_initial_s: first retry delay after a failed write.
        backoff_max_s: longest retry delay.
        stamp: (clock, device_id) written on every state document.
        inputs_max_pending_bytes: most training input bytes held in memory while the database
            cannot be written (they are large: the oldest are dropped first).
        linger_s: how long a commit waits for more rows after the first (0 = commit at once).
    """

    def __init__(self, engine: Engine, url: str, batch_max: int, max_pending: int,
                 backoff_initial_s: float, backoff_max_s: float,
                 stamp: tuple[Callable[[], float], str], inputs_max_pending_bytes: int,
                 linger_s: float = 0.0) -> None:
        self.engine = engine
        self.linger_s = linger_s
        self.url = url
        self.batch_max = batch_max
        self.max_pending = max_pending
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._clock, self._device_id = stamp
        self._raw = RawWriter(engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[tuple[float, ExperienceRecord]] = deque()
        self._pending_states: dict[str, _StateItem] = {}
        self._pending_inputs: deque[_InputItem] = deque()
        self._inputs_bytes = 0
        self.inputs_max_pending_bytes = inputs_max_pending_bytes
        self._commit_listeners: list[CommitListener] = []
        self._input_listeners: list[InputListener] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stop = threading.Event()
        self._reconnect = threading.Event()
        self._thread: threading.Thread | None = None
        self._alarm = ''
        self.counts = {'committed': 0, 'rejected': 0, 'dropped': 0, 'commits': 0}
        # Wall time of each batch's insert + commit, its CPU time in the writer thread, and
        # each row's submit -> commit time (benchmarks and diagnostics read these).
        self.commit_ms: deque[float] = deque(maxlen=4096)
        self.commit_cpu_ms: deque[float] = deque(maxlen=4096)
        self.ack_ms: deque[float] = deque(maxlen=16384)

    @property
    def alarm(self) -> str:
        """Why the last write failed ('' = writing)."""
        return self._alarm

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None

    def on_commit(self, listener: CommitListener) -> None:
        """Call listener(records) in the writer thread after each commit (rows have ids)."""
        self._commit_listeners.append(listener)

    def on_inputs(self, listener: InputListener) -> None:
        """Call listener(outcome) in the writer thread after a commit with training inputs.

        Also when inputs are dropped from the queue while the database cannot be written.
        """
        self._input_listeners.append(listener)

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name='sage-memory-writer',
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the thread once the queue is written (or failing) and release its connection."""
        if self._thread is None:
            return
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=max(1.0, timeout))
        self._thread = None
        self._raw.close()

    def unsaved(self) -> int:
        """Rows, state documents and training inputs still held in memory (not committed)."""
        with self._lock:
            return len(self._pending) + len(self._pending_states) + len(self._pending_inputs)

    def snapshot(self) -> tuple[int, int, str, dict[str, int]]:
        """(queued, pending, alarm, counts) for the store's status."""
        with self._lock:
            return self._queue.qsize(), len(self._pending), self._alarm, dict(self.counts)

    # ---------------------------------------------------------------- callers
    def submit_many(self, records: Sequence[ExperienceRecord]) -> None:
        """Queue records for the next commit (never blocks)."""
        now = time.perf_counter()
        with self._lock:
            self._in_flight += len(records)
        for r in records:
            self._queue.put((now, r))

    def submit_inputs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue training inputs (column values) for the next commit (never blocks)."""
        with self._lock:
            self._in_flight += len(rows)
        for row in rows:
            self._queue.put(_InputItem(row))

    def submit_state(self, key: str, doc: str) -> None:
        """Queue a state document (JSON; the latest value per key wins)."""
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

    def reconnect(self) -> None:
        """Open a new connection before the next write (the engine's pool was disposed)."""
        self._reconnect.set()

    # ----------------------------------------------------------------- thread
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
        elif isinstance(item, _InputItem):
            self._pending_inputs.append(item)
            self._inputs_bytes += int(item.row['nbytes'])
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
        # Group commit: take what accumulated while the last commit ran and, while the batch
        # is small, what arrives within linger_s (nobody waits on a row: one commit for a few
        # rows writes their shared pages once, which matters on flash at a robot's few rows a
        # second; a batch of batch_max / 8 rows shares them already, and under a flood waiting
        # would only delay the acknowledgements).
        deadline = time.monotonic() + (self.linger_s if self._pending else 0.0)
        enough = max(1, self.batch_max // 8)
        while len(self._pending) < self.batch_max and len(self._pending_inputs) < self.batch_max:
            left = deadline - time.monotonic()
            try:
                if (left > 0 and len(self._pending) < enough and not jobs
                        and not self._stop.is_set()):
                    item = self._queue.get(timeout=left)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            jobs += self._take(item)
        return jobs

    def _run(self) -> None:
        backoff = self.backoff_initial_s
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
            queued = bool(self._pending or self._pending_states or self._pending_inputs)
            if queued or failing:
                ok = self._write_pending() if queued else self._probe()
                if ok:
                    backoff = self.backoff_initial_s
                else:
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2.0, self.backoff_max_s)
            for job in jobs:
                self._run_job(job)
            if (self._stop.is_set() and self._queue.empty() and not self._pending
                    and not self._pending_states and not self._pending_inputs):
                break
            if self._stop.is_set() and self._alarm:
                break

    def _probe(self) -> bool:
        # Nothing left to write (rows dropped) but the alarm is up: is the database back?
        try:
            with self.engine.connect() as conn:
                conn.execute(text('SELECT 1'))
        except (sa_exc.SQLAlchemyError, sqlite3.Error, OSError) as err:
            self._set_alarm(f'cannot reach {redact(self.url)}: {short_error(err)}')
            return False
        with self._lock:
            self._alarm = ''
        return True

    def _bound_pending(self) -> None:
        over = len(self._pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            with self._lock:
                self.counts['dropped'] += over
                self._alarm = (f'{self._alarm or "write failing"}; dropped {over} oldest '
                               f'unsaved rows (max_pending {self.max_pending})')
            log.error('memory store dropped %d unsaved rows', over)
            self._done(over)
        # Only while failing: a healthy burst of inputs is written, not dropped.
        dropped = 0
        while (self._alarm and self._inputs_bytes > self.inputs_max_pending_bytes
               and self._pending_inputs):
            self._inputs_bytes -= int(self._pending_inputs.popleft().row['nbytes'])
            dropped += 1
        if dropped:
            log.error('memory store dropped %d unsaved training inputs', dropped)
            self._tell_inputs(TrainingOutcome(overflow=dropped))
            self._done(dropped)

    def _tell_inputs(self, outcome: TrainingOutcome) -> None:
        for listener in self._input_listeners:
            listener(outcome)

    def _write_pending(self) -> bool:
        if self._reconnect.is_set():
            self._reconnect.clear()
            self._raw.close()
        batch = list(self._pending)[:self.batch_max]
        states = list(self._pending_states.values())
        inputs = list(self._pending_inputs)[:self.batch_max]
        records = [r for _, r in batch]
        t0 = time.perf_counter()
        c0 = time.thread_time()
        try:
            ids, outcome = self._raw.write(
                records, [(st.key, st.value, self._clock(), self._device_id) for st in states],
                [it.row for it in inputs])
        except Exception as err:  # noqa: BLE001 - classified just below, others re-raised
            if not self._raw.is_db_error(err) and not isinstance(err, BAD_RECORD):
                raise
            if self._raw.is_transient(err):
                self._set_alarm(f'cannot write to {redact(self.url)}: '
                                f'{short_error(err)} ({len(self._pending)} rows queued)')
                return False
            self._isolate_bad_rows(batch, err)
            self._isolate_bad_inputs(inputs)
            return True
        t1 = time.perf_counter()
        for _ in batch:
            self._pending.popleft()
        self._pop_inputs(len(inputs))
        for st in states:
            if self._pending_states.get(st.key) is st:
                del self._pending_states[st.key]
        self.commit_ms.append((t1 - t0) * 1e3)
        self.commit_cpu_ms.append((time.thread_time() - c0) * 1e3)
        acked = [r.with_ids(ids[r.uuid]) for r in records if r.uuid in ids]
        self.ack_ms.extend((t1 - ts) * 1e3 for ts, _ in batch)
        with self._lock:
            self._alarm = ''
            self.counts['committed'] += len(acked)
            self.counts['commits'] += 1
        if acked:
            for listener in self._commit_listeners:
                listener(acked)
        if inputs:
            self._tell_inputs(outcome)
        self._done(len(batch) + len(states) + len(inputs))
        return True

    def _pop_inputs(self, n: int) -> None:
        for _ in range(n):
            self._inputs_bytes -= int(self._pending_inputs.popleft().row['nbytes'])

    def _isolate_bad_inputs(self, inputs: list[_InputItem]) -> None:
        # As rows: one bad input must not block the queue (after the rows, which it may need).
        outcome = TrainingOutcome()
        done = 0
        for item in inputs:
            try:
                _, one = self._raw.write([], [], [item.row])
            except Exception as err:  # noqa: BLE001 - classified just below
                if not self._raw.is_db_error(err) and not isinstance(err, BAD_RECORD):
                    raise
                if self._raw.is_transient(err):
                    break  # the rest stays queued for the next attempt
                log.error('rejected training input %s: %s', item.row['uuid'], short_error(err))
                outcome.rejected += 1
            else:
                outcome.stored += one.stored
                outcome.duplicates += one.duplicates
                outcome.orphans += one.orphans
            done += 1
        self._pop_inputs(done)
        if done:
            self._tell_inputs(outcome)
            self._done(done)

    def _isolate_bad_rows(self, batch: list[tuple[float, ExperienceRecord]],
                          err: BaseException) -> None:
        # One bad row must not block the queue: write the batch row by row, reject the bad.
        log.error('batch rejected (%s); writing row by row', short_error(err))
        good: list[ExperienceRecord] = []
        rejected = 0
        for _ in batch:
            self._pending.popleft()
        for ts, rec in batch:
            try:
                ids, _ = self._raw.write([rec], [])
                good.append(rec.with_ids(ids[rec.uuid]))
                self.ack_ms.append((time.perf_counter() - ts) * 1e3)
            except Exception as row_err:  # noqa: BLE001 - classified just below
                if not self._raw.is_db_error(row_err) and not isinstance(row_err, BAD_RECORD):
                    raise
                if self._raw.is_transient(row_err):
                    self._pending.appendleft((ts, rec))
                    continue
                rejected += 1
                log.error('rejected row %s: %s', getattr(rec, 'uuid', '?'), short_error(row_err))
        with self._lock:
            self.counts['rejected'] += rejected
            self.counts['committed'] += len(good)
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
            job.future.set_exception(MemoryStoreError(f'database job failed: {short_error(err)}'))
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
