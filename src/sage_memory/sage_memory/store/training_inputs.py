"""Training inputs: what a later sleep retrains the encoders on, kept under a disk budget.

For each stored experience (and, with training_inputs.context, each context row stored around
one: `wants_input`) the memory node asks its encoder for the input it encoded (a vision
frame at encoder resolution as JPEG, or an audio window as zlib-compressed s16le) and the code
grid before refinement, and submits them here keyed by the row's uuid. They go through
the store's writer thread in the same batches as experiences (durable on commit like them);
an input whose experience is not (or no longer) stored is dropped and counted, a second one for
the same uuid is a no-op.

Inputs are large next to experience rows, so they have a budget of their own: after a commit
that added inputs, while their bytes exceed it, the inputs of least retention value go first
(`retention.row_value`: salience weighed against age, so old low-salience ones first), down to
`retention.low_water` of the budget so the ranking scan does not run on every commit. The
running total is read once at open and kept from then on. The budget never deletes experiences;
retention deletes an experience's input with it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
import logging
import math
import sqlite3
import threading
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, func, inspect, or_, select
from sqlalchemy import exc as sa_exc

from sage_memory.store.codec import decode_codes, encode_codes
from sage_memory.store.database import short_error
from sage_memory.errors import MemoryStoreError
from sage_memory.memory_params import TRAINING_MODALITIES
from sage_memory.store.models import TRAINING_INPUTS
from sage_memory.store.retention import RetentionConfig, row_value
from sage_memory.store.statements import SQL_CHUNK, delete_training_inputs

log = logging.getLogger(__name__)

MODALITIES = TRAINING_MODALITIES
FORMATS = ('jpeg', 's16le-zlib')
# Column order of the writer's insert (the table's own order).
COLUMNS = tuple(c.name for c in TRAINING_INPUTS.columns)
_MB = 2**20
# Inputs read per query by `iterate`: a page of vision JPEGs is a few MB.
PAGE_SIZE = 128


def wants_input(kind: str, context: bool) -> bool:
    """Whether the encoder input of a stored row of this kind is kept: an experience's
    always, a context row's when `context` (parameter training_inputs.context)."""
    return kind == 'experience' or (context and kind == 'context')


@dataclass(frozen=True)
class TrainingInput:
    """The encoder input of one stored experience, for sleep to retrain the encoder on.

    Attributes:
        uuid: the stored experience's uuid (one input per experience).
        modality: 'vision' or 'audio'.
        stamp: capture stamp of the input (the experience's), float seconds.
        salience: the experience's salience (ranks inputs against the budget).
        format: 'jpeg' (vision frame) or 's16le-zlib' (zlib-compressed s16le samples).
        data: the encoded input.
        width, height: frame size in pixels (vision).
        sample_rate, samples: sample rate and sample count of the window (audio).
        codes_initial: (h, w) uint16 code grid before refinement, or None.
        codebook_size: size of the codebook codes_initial indexes.
        created_at: wall time of storage (0 = when submitted).
    """

    uuid: str
    modality: str
    stamp: float
    salience: float
    format: str
    data: bytes
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    samples: int = 0
    codes_initial: np.ndarray | None = None
    codebook_size: int = 0
    created_at: float = 0.0


@dataclass
class TrainingOutcome:
    """What the writer did with a batch of inputs (or with its queue).

    Attributes:
        stored: (modality, nbytes) of each new row, committed.
        duplicates: inputs whose uuid already had one (no-op).
        orphans: inputs whose experience is not stored (dropped).
        overflow: inputs dropped from the queue while the database could not be written.
        rejected: inputs the database refused (bad values).
    """

    stored: list[tuple[str, int]] = field(default_factory=list)
    duplicates: int = 0
    orphans: int = 0
    overflow: int = 0
    rejected: int = 0


def input_to_row(item: TrainingInput, now: float) -> dict[str, Any]:
    """Column values of an input (codes bit-packed as experiences' codes are).

    Raises:
        ValueError: unknown modality or format, empty data, or a bad uuid.
    """
    if not isinstance(item.uuid, str) or not 0 < len(item.uuid) <= 32:
        raise ValueError(f'training input uuid must be 1..32 characters, got {item.uuid!r}')
    if item.modality not in MODALITIES:
        raise ValueError(f'training input modality {item.modality!r} not in {MODALITIES}')
    if item.format not in FORMATS:
        raise ValueError(f'training input format {item.format!r} not in {FORMATS}')
    data = bytes(item.data)
    if not data:
        raise ValueError(f'training input {item.uuid} has no data')
    grid_h = grid_w = 0
    code_bytes = None
    if item.codes_initial is not None and np.size(item.codes_initial):
        arr = np.asarray(item.codes_initial)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        grid_h, grid_w = int(arr.shape[0]), int(arr.shape[1])
        code_bytes = encode_codes(arr, int(item.codebook_size))
    return {
        'uuid': item.uuid, 'modality': item.modality, 'stamp': float(item.stamp),
        'salience': float(item.salience), 'format': item.format,
        'width': int(item.width), 'height': int(item.height),
        'sample_rate': int(item.sample_rate), 'samples': int(item.samples),
        'grid_h': grid_h, 'grid_w': grid_w, 'codebook_size': int(item.codebook_size),
        'nbytes': len(data) + len(code_bytes or b''),
        'created_at': float(item.created_at or now),
        'codes_initial': code_bytes, 'data': data,
    }


def row_to_input(row: Any) -> TrainingInput:
    """Input from a result row with the table's columns."""
    m = row._mapping if hasattr(row, '_mapping') else row
    codes = None
    if m['codes_initial'] is not None and m['grid_h'] and m['grid_w']:
        codes = decode_codes(bytes(m['codes_initial']), int(m['grid_h']), int(m['grid_w']),
                             int(m['codebook_size']))
    return TrainingInput(
        uuid=m['uuid'], modality=m['modality'], stamp=float(m['stamp']),
        salience=float(m['salience']), format=m['format'], data=bytes(m['data']),
        width=int(m['width']), height=int(m['height']), sample_rate=int(m['sample_rate']),
        samples=int(m['samples']), codes_initial=codes, codebook_size=int(m['codebook_size']),
        created_at=float(m['created_at']))


def input_totals(conn: Connection | None) -> dict[str, Any]:
    """Count and bytes of the stored inputs per modality and in all (None: no table)."""
    by_mod = {m: {'count': 0, 'bytes': 0} for m in MODALITIES}
    if conn is not None and inspect(conn).has_table(TRAINING_INPUTS.name):
        t = TRAINING_INPUTS.c
        q = select(t.modality, func.count(), func.coalesce(func.sum(t.nbytes), 0)).group_by(
            t.modality)
        by_mod.update({str(m): {'count': int(n), 'bytes': int(b)}
                       for m, n, b in conn.execute(q)})
    count = sum(v['count'] for v in by_mod.values())
    nbytes = sum(v['bytes'] for v in by_mod.values())
    return {'by_modality': dict(sorted(by_mod.items())), 'count': count, 'bytes': nbytes,
            'bytes_per_input': nbytes / count if count else 0.0}


class InputWriter:
    """The writer thread's DBAPI statements for inputs (run inside its batch transaction).

    Args:
        engine: the store's engine (its dialect picks placeholders and casts).
    """

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        cols = ', '.join(COLUMNS)
        if dialect.name == 'postgresql':
            # Typed: a bare parameter in a select list (a None above all) would be text there.
            values = ', '.join(f'CAST(%s AS {c.type.compile(dialect=dialect)})'
                               for c in TRAINING_INPUTS.columns)
            # KEY SHARE waits for a retention that is deleting the experience, then sees it
            # gone: no input outlives its experience.
            exists = 'SELECT 1 FROM experiences WHERE uuid = %s FOR KEY SHARE'
            self.find_sql = 'SELECT 1 FROM training_inputs WHERE uuid = %s'
        else:
            values = ', '.join('?' * len(COLUMNS))
            exists = 'SELECT 1 FROM experiences WHERE uuid = ?'
            self.find_sql = 'SELECT 1 FROM training_inputs WHERE uuid = ?'
        # (The WHERE also keeps SQLite from reading ON CONFLICT as a join constraint.)
        self.insert_sql = (f'INSERT INTO training_inputs ({cols}) SELECT {values} '
                           f'WHERE EXISTS ({exists}) ON CONFLICT (uuid) DO NOTHING')

    def write(self, cur: Any, rows: Sequence[Mapping[str, Any]]) -> TrainingOutcome:
        """Insert the rows whose experience is stored; sort out the others."""
        out = TrainingOutcome()
        for row in rows:
            cur.execute(self.insert_sql, (*(row[c] for c in COLUMNS), row['uuid']))
            if cur.rowcount == 1:
                out.stored.append((row['modality'], row['nbytes']))
                continue
            # Rare: tell a repeated uuid from an input whose experience is not stored.
            cur.execute(self.find_sql, (row['uuid'],))
            if cur.fetchone() is not None:
                out.duplicates += 1
            else:
                out.orphans += 1
        return out


class TrainingInputs:
    """The store's side of training inputs: running total, budget, counters and reads.

    Args:
        engine: the store's engine (schema at head).
        budget_mb: disk budget of all inputs in MiB (0 = keep none).
        retention: the retention settings (value of an input, low water).
        clock: wall clock (created_at, age of inputs).
    """

    def __init__(self, engine: Engine, budget_mb: float, retention: RetentionConfig,
                 clock: Callable[[], float]) -> None:
        self.engine = engine
        self.budget_bytes = max(0, int(budget_mb * _MB))
        self.retention = retention
        self._clock = clock
        self._lock = threading.Lock()
        # A read-only database left at an older revision has no table: nothing to read.
        self.present = inspect(engine).has_table(TRAINING_INPUTS.name)
        self._total = 0
        if self.present:
            with engine.connect() as conn:
                self._total = int(conn.execute(
                    select(func.coalesce(func.sum(TRAINING_INPUTS.c.nbytes), 0))).scalar_one())
        self.counts = {'stored': 0, 'duplicates': 0, 'dropped': 0, 'evicted_by_budget': 0,
                       'evicted_with_experiences': 0}

    @property
    def total_bytes(self) -> int:
        """Running total of the stored inputs' bytes (what the budget is checked against)."""
        with self._lock:
            return self._total

    def admit(self, item: TrainingInput) -> dict[str, Any] | None:
        """Column values to queue, or None when the budget keeps no inputs (counted dropped).

        Raises:
            ValueError: a malformed input (see input_to_row).
        """
        row = input_to_row(item, self._clock())
        if self.budget_bytes <= 0:
            self._count('dropped', 1)
            return None
        return row

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.counts[key] += n

    def committed(self, outcome: TrainingOutcome) -> None:
        """After the writer's commit (in its thread): count, then keep the budget."""
        added = sum(n for _, n in outcome.stored)
        with self._lock:
            self._total += added
            self.counts['stored'] += len(outcome.stored)
            self.counts['duplicates'] += outcome.duplicates
            self.counts['dropped'] += outcome.orphans + outcome.overflow + outcome.rejected
        if outcome.stored:
            self.keep_budget()

    def evicted(self, rows: int, freed: int) -> None:
        """Retention deleted rows inputs of freed bytes with their experiences."""
        with self._lock:
            self._total -= freed
            self.counts['evicted_with_experiences'] += rows

    def keep_budget(self) -> int:
        """Delete the least valuable inputs while over budget; returns how many went.

        Database faults are logged, not raised (the next commit tries again).
        """
        total = self.total_bytes
        if total <= self.budget_bytes:
            return 0
        # Down to the low water mark, so the ranking scan runs once per slice of the budget.
        excess = total - int(self.budget_bytes * self.retention.low_water)
        t = TRAINING_INPUTS.c
        value = row_value(t.salience, t.stamp, self._clock(), self.retention)
        q = select(t.uuid, t.nbytes).order_by(value.asc(), t.stamp.asc(), t.uuid.asc())
        victims: list[str] = []
        try:
            with self.engine.connect() as conn:
                chosen = 0
                for row in conn.execute(q):
                    victims.append(row.uuid)
                    chosen += int(row.nbytes)
                    if chosen >= excess:
                        break
            deleted = 0
            for i in range(0, len(victims), SQL_CHUNK):
                with self.engine.begin() as conn:
                    rows, freed = delete_training_inputs(conn, victims[i:i + SQL_CHUNK])
                with self._lock:
                    self._total -= freed
                    self.counts['evicted_by_budget'] += rows
                deleted += rows
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            log.warning('training input budget not kept this time: %s', short_error(err))
            return 0
        return deleted

    def stats(self) -> dict[str, Any]:
        """Counts and bytes per modality and in all, the budget, and counters since open.

        Raises MemoryStoreError when the database cannot be read.

        Keys: by_modality {modality: {count, bytes}}, count, bytes, bytes_per_input,
        budget_bytes, tracked_bytes (the running total the budget checks), stored,
        duplicates, dropped (no experience, budget 0, queue overflow or refused),
        evicted_by_budget,
        evicted_with_experiences.
        """
        try:
            if self.present:
                with self.engine.connect() as conn:
                    totals = input_totals(conn)
            else:
                totals = input_totals(None)
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
            raise MemoryStoreError(f'cannot count the training inputs: {short_error(err)}'
                                   ) from err
        with self._lock:
            counts = dict(self.counts)
            tracked = self._total
        return {**totals, 'budget_bytes': self.budget_bytes, 'tracked_bytes': tracked,
                **counts}

    def select(self, modality: str | None = None, since: float = 0.0,
               limit: int | None = None) -> list[TrainingInput]:
        """Stored inputs with stamp >= since (optionally of one modality), oldest first."""
        if not self.present:
            return []
        t = TRAINING_INPUTS.c
        q = select(TRAINING_INPUTS)
        if modality:
            q = q.where(t.modality == modality)
        if since > 0:
            q = q.where(t.stamp >= since)
        q = q.order_by(t.stamp.asc(), t.uuid.asc())
        if limit is not None:
            q = q.limit(max(0, int(limit)))
        with self.engine.connect() as conn:
            return [row_to_input(r) for r in conn.execute(q)]

    def iterate(self, modality: str, since: float = 0.0, until: float = math.inf,
                page: int = PAGE_SIZE) -> Iterator[TrainingInput]:
        """The inputs of one modality with since <= stamp <= until, oldest first as
        `select` orders them, read `page` at a time: a reader that takes one input at a time
        never holds them all. Each page is its own query (keyset on stamp, uuid), so inputs
        written or deleted meanwhile are seen or missed, never repeated."""
        if not self.present:
            return
        t = TRAINING_INPUTS.c
        after: tuple[float, str] | None = None
        while True:
            q = select(TRAINING_INPUTS).where(t.modality == modality)
            if since > 0:  # as `select`: 0 = from the first
                q = q.where(t.stamp >= since)
            if math.isfinite(until):
                q = q.where(t.stamp <= until)
            if after is not None:
                q = q.where(or_(t.stamp > after[0], and_(t.stamp == after[0],
                                                         t.uuid > after[1])))
            q = q.order_by(t.stamp.asc(), t.uuid.asc()).limit(max(1, int(page)))
            with self.engine.connect() as conn:
                rows = [row_to_input(r) for r in conn.execute(q)]
            yield from rows
            if len(rows) < page:
                return
            after = (rows[-1].stamp, rows[-1].uuid)
