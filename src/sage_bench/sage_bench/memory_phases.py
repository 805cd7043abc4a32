"""Memory benchmark: sustained inserts, recall at scale, restart time (SQLite and PostgreSQL).

`run_bench(seconds, ...)` returns JSON-able figures; `sage bench memory` runs it on rows built
from real content as the nano graph stores them (`base_rows`, sage_bench.memory), without
them on synthetic rows (a 30x30 grid of 512 codes, a random `preview_bytes` preview). Phases
per backend, on a throwaway database:

1. sustained: a producer submits rows at `rate` rows/s for `seconds`; reports the achieved
   commit rate, commit latency per batch (insert + commit) and per-row ack latency (submit ->
   committed) percentiles;
2. flood: `flood_rows` rows submitted at once (the writer's ceiling, rows/s);
3. fill to `rows` experiences, then recall: `queries` embedding queries (k best, half of them
   with time/salience filters) and ranked queries without a vector, latency percentiles;
4. restart: close (index snapshot saved) and reopen; time to open + read state, and time until
   the index is reconciled and ready.

PostgreSQL runs when `pg_url` (or env SAGE_BENCH_PG_URL / SAGE_TEST_PG_URL) names a server; the
benchmark creates and drops its own database there.
"""
from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path
import tempfile
import threading
import time
from typing import Any
import uuid as uuidlib

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sage_common.params import resolve
from sage_memory.index.structure import IndexConfig
from sage_memory.memory import Memory, MemoryConfig
from sage_memory.memory_params import PARAMS
from sage_memory.store.models import ExperienceRecord
from sage_memory.index.recall import Query
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import StoreConfig, insert_records, new_uuid, resolve_url
from sage_memory.store.synthetic import synthetic_record


# Timed flood: rows submitted per step, the backlog kept queued, and how often the WAL is looked
# at while waiting for the writer.
_FLOOD_STEP = 1000
_FLOOD_BACKLOG = 4000
_FLOOD_POLL_S = 0.05
# How long after a flood the RSS is read again (longer than the index thread's idle wait).
_SETTLE_S = 1.0
# Embeddings drawn per random call.
_EMBED_BLOCK = 4096


def percentiles(values: Any) -> dict[str, float]:
    """Count, median, p95, p99 and max of values (rounded to 3 decimals)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return {'n': 0}
    return {'n': int(arr.size), 'p50': round(float(np.percentile(arr, 50)), 3),
            'p95': round(float(np.percentile(arr, 95)), 3),
            'p99': round(float(np.percentile(arr, 99)), 3),
            'max': round(float(arr.max()), 3)}


class RowPool:
    """Pre-generated row parts (codes, previews) reused with fresh uuids and embeddings."""

    def __init__(self, rng: np.random.Generator, dim: int, preview_bytes: int,
                 base: Sequence[ExperienceRecord] | None = None) -> None:
        self.rng = rng
        self.dim = dim
        self.base = list(base) if base else [
            synthetic_record(i, rng, dim, preview_bytes=preview_bytes) for i in range(256)]
        # Encoder embeddings cluster (scenes recur): 2000 centres plus noise, not i.i.d.
        # Gaussian vectors, which no real encoder produces and which HNSW finds hardest.
        self.centres = rng.standard_normal((2000, dim)).astype(np.float32)
        self._ready: list[np.ndarray] = []

    def embedding(self) -> np.ndarray:
        """A unique embedding near a random centre."""
        if not self._ready:  # drawn in blocks: per-row draws cost the store's cores
            picks = self.centres[self.rng.integers(0, len(self.centres), _EMBED_BLOCK)]
            block = picks + 0.3 * self.rng.standard_normal((_EMBED_BLOCK, self.dim))
            self._ready = list(block.astype(np.float32)[::-1])
        return self._ready.pop()

    def make(self, i: int) -> ExperienceRecord:
        b = self.base[i % len(self.base)]
        emb = self.embedding()
        # One modality for all rows: a single index of every vector, so recall is measured at
        # the full row count (the row's bytes do not depend on the label).
        return ExperienceRecord(**{**b.__dict__, 'uuid': new_uuid(),
                                   'stamp': 1_700_000_000.0 + i, 'input_seq': i,
                                   'modality': 'vision', 'embedding': emb,
                                   'salience': float(self.rng.random())})


def _sustained(mem: Memory, pool: RowPool, seconds: float, rate: float,
               knn_period_s: float = 0.0, k: int = 10) -> dict[str, Any]:
    """Rows at `rate` for `seconds`; with knn_period_s > 0, kNN queries meanwhile (own thread)."""
    store = mem.store
    store.commit_ms.clear()
    store.commit_cpu_ms.clear()
    store.ack_ms.clear()
    c0 = store.status().committed
    tick = 0.002
    sent = 0
    knn_ms: list[float] = []
    stop = threading.Event()
    queries = [pool.embedding() for _ in range(256)]

    def ask() -> None:
        i = 0
        while not stop.wait(knn_period_s):
            t = time.perf_counter()
            mem.query(Query(k=k, embedding=queries[i % len(queries)]))
            knn_ms.append((time.perf_counter() - t) * 1e3)
            i += 1
    asker = threading.Thread(target=ask, daemon=True) if knn_period_s > 0 else None
    t0 = time.perf_counter()
    if asker is not None:
        asker.start()
    while True:
        now = time.perf_counter() - t0
        if now >= seconds:
            break
        due = int(now * rate)
        while sent < due:
            store.submit(pool.make(sent))
            sent += 1
        time.sleep(tick)
    store.flush(120)
    elapsed = time.perf_counter() - t0
    stop.set()
    if asker is not None:
        asker.join()
    committed = store.status().committed - c0
    out = {'knn_ms_during_inserts': percentiles(knn_ms)} if asker is not None else {}
    return {**out, 'target_rows_per_s': rate, 'rows': committed,
            'rows_per_s': round(committed / elapsed, 1),
            'commit_ms_per_batch': percentiles(store.commit_ms),
            'commit_cpu_ms_per_batch': percentiles(store.commit_cpu_ms),
            'ack_ms_per_row': percentiles(store.ack_ms), 'batches': len(store.commit_ms),
            'rows_per_batch': round(committed / max(1, len(store.commit_ms)), 1)}


def _flood(mem: Memory, pool: RowPool, n: int, offset: int, seconds: float = 0.0
           ) -> dict[str, Any]:
    """n rows at once, or (seconds > 0) rows as fast as the writer takes them for that long."""
    store = mem.store
    store.commit_ms.clear()
    wal_peak = 0
    rss0 = rss_mb()
    t0 = time.perf_counter()
    if seconds > 0:
        n = 0
        while time.perf_counter() - t0 < seconds:
            st = store.status()
            if st.queued + st.pending < _FLOOD_BACKLOG:
                store.submit_many([pool.make(offset + n + i) for i in range(_FLOOD_STEP)])
                n += _FLOOD_STEP
            else:
                store.flush(_FLOOD_POLL_S)
            wal_peak = max(wal_peak, store.wal_bytes())
    else:
        store.submit_many([pool.make(offset + i) for i in range(n)])
    while not store.flush(_FLOOD_POLL_S):
        wal_peak = max(wal_peak, store.wal_bytes())
    dt = time.perf_counter() - t0
    out: dict[str, Any] = {
        'rows': n, 'seconds': round(dt, 2), 'rows_per_s': round(n / dt, 1),
        'commit_ms_per_batch': percentiles(store.commit_ms), 'batches': len(store.commit_ms),
        'rss_mb_before': rss0, 'rss_mb_after': rss_mb()}
    # Settled: the index has taken the rows and the memory's idle trim (if on) has run.
    mem.wait_index_idle(300)
    time.sleep(_SETTLE_S)
    out['rss_mb_settled'] = rss_mb()
    if store.path is not None:
        wal, db = store.wal_bytes(), store.path.stat().st_size
        out.update(wal_mb=round(wal / 2**20, 1), wal_peak_mb=round(wal_peak / 2**20, 1),
                   db_mb=round(db / 2**20, 1), wal_to_db=round(wal / max(1, db), 3))
    return out


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path('/proc/self/statm').read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf('SC_PAGE_SIZE') / 2**20, 1)


def disk_bytes(store_path: Path | None, data_dir: Path, rows: int) -> dict[str, Any]:
    """Bytes on disk after a clean close: database (+ WAL) and index snapshots, per row."""
    snap = sum(p.stat().st_size for p in (data_dir / 'index').rglob('*') if p.is_file())
    out: dict[str, Any] = {'snapshot_bytes': snap}
    if store_path is not None:
        db = store_path.stat().st_size
        wal_path = Path(str(store_path) + '-wal')
        wal = wal_path.stat().st_size if wal_path.exists() else 0
        out.update(db_bytes=db, wal_bytes=wal,
                   bytes_per_row=round((db + wal + snap) / max(1, rows), 1))
    out['snapshot_bytes_per_row'] = round(snap / max(1, rows), 1)
    return out


def _fill(mem: Memory, pool: RowPool, total: int, offset: int) -> float:
    """Bulk-load rows straight through the writer's insert path (not timed as a figure)."""
    have = mem.store.count()
    t0 = time.perf_counter()
    i = offset
    while have < total:
        batch = [pool.make(i + j) for j in range(min(2000, total - have))]

        def job(conn: Any, b: list[ExperienceRecord] = batch) -> dict[str, int]:
            return insert_records(conn, mem.store.engine, b)
        mem.store.call(job, 600)
        i += len(batch)
        have += len(batch)
    return time.perf_counter() - t0


def _recall(mem: Memory, pool: RowPool, rng: np.random.Generator, queries: int, k: int
            ) -> dict[str, Any]:
    lat_plain, lat_filt, lat_rank = [], [], []
    found = 0
    for i in range(queries):
        q = pool.embedding()
        t = time.perf_counter()
        res = mem.query(Query(k=k, embedding=q))
        lat_plain.append((time.perf_counter() - t) * 1e3)
        found += len(res)
        start = 1_700_000_000.0 + float(rng.integers(0, 50_000))
        t = time.perf_counter()
        mem.query(Query(k=k, embedding=q, start=start, end=start + 50_000.0, min_salience=0.3))
        lat_filt.append((time.perf_counter() - t) * 1e3)
        if i % 5 == 0:
            t = time.perf_counter()
            mem.query(Query(k=k, modality='vision', min_salience=0.9))
            lat_rank.append((time.perf_counter() - t) * 1e3)
    return {'k': k, 'by_embedding_ms': percentiles(lat_plain),
            'filtered_ms': percentiles(lat_filt), 'ranked_sql_ms': percentiles(lat_rank),
            'mean_results': round(found / max(1, queries), 2)}


def recall_at_k(mem: Memory, pool: RowPool, dim: int, k: int, n: int = 100) -> float:
    """Share of the exact top-k that the ANN search returns (recall@k)."""
    key = ('vision', dim)
    vi = mem.index.get(key)
    if vi is None:
        return 0.0
    hits = 0
    for _ in range(n):
        q = pool.embedding()
        approx = {h.row_id for h in vi.search(q, k)}
        exact = {h.row_id for h in vi.search(q, k, exact=True)}
        hits += len(approx & exact)
    return round(hits / (n * k), 4)


def _restart(cfg: MemoryConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    mem = Memory(cfg)
    states = mem.load_states()
    t_state = time.perf_counter() - t0
    mem.wait_index_ready(300)
    t_index = time.perf_counter() - t0
    out = {'state_ready_s': round(t_state, 3), 'index_ready_s': round(t_index, 3),
           'states': len(states), 'rows_indexed': len(mem.index),
           **{k: round(v, 3) for k, v in mem.timings.items()}}
    mem.close()
    return out


def _bench_backend(url: str, data_dir: Path, seconds: float, rows: int, dim: int, rate: float,
                   queries: int, k: int, flood_rows: int, preview_bytes: int,
                   rebuild: bool, seed: int, synchronous: str = 'FULL',
                   flood_seconds: float = 0.0, wal_max_mb: float = 64.0,
                   snapshot_vectors: bool = False, ef_construction: int = 0,
                   heap_trim_rows: int = 10_000, knn_period_s: float = 0.0,
                   batch_max: int = 0, page_size: int = StoreConfig.page_size,
                   linger_s: float = 0.0,
                   base_rows: Sequence[ExperienceRecord] | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    cfg = MemoryConfig(
        store=StoreConfig(database_url=url, data_dir=str(data_dir), device_id='bench',
                          retention=RetentionConfig(max_rows=0), synchronous=synchronous,
                          wal_max_mb=wal_max_mb, page_size=page_size, linger_s=linger_s,
                          batch_max=batch_max or StoreConfig.batch_max),
        index=IndexConfig(snapshot_vectors=snapshot_vectors,
                          ef_construction=ef_construction or IndexConfig.ef_construction),
        snapshot_period_s=0.0, refresh_period_s=0.0, heap_trim_rows=heap_trim_rows)
    pool = RowPool(rng, dim, preview_bytes, base_rows)
    mem = Memory(cfg)
    out: dict[str, Any] = {}
    try:
        out['sustained'] = _sustained(mem, pool, seconds, rate)
        out['flood'] = _flood(mem, pool, flood_rows, 10_000_000, flood_seconds)
        out['fill_s'] = round(_fill(mem, pool, rows, 20_000_000), 2)
        t = time.perf_counter()
        mem.reconcile()  # index the bulk-loaded rows
        out['index_build_s'] = round(time.perf_counter() - t, 2)
        mem.wait_index_idle(300)
        out['rows'] = mem.store.count()
        out['recall'] = _recall(mem, pool, rng, queries, k)
        out['recall_at_k'] = recall_at_k(mem, pool, dim, k)
        if knn_period_s > 0:
            # At scale: inserts at `rate` while kNN queries run (the index adds meanwhile).
            out['sustained_with_knn'] = _sustained(mem, pool, seconds, rate, knn_period_s, k)
            mem.wait_index_idle(300)
            out['rows_after'] = mem.store.count()
        mem.save_state('snarc', {'weights': [0.2] * 5, 'stats': list(range(200))})
    finally:
        mem.close()
    out['disk'] = disk_bytes(mem.store.path, data_dir, out.get('rows_after', out['rows']))
    out['restart'] = _restart(cfg)
    if rebuild:
        for p in (data_dir / 'index').rglob('*'):
            if p.is_file():
                p.unlink()
        out['restart_without_snapshot'] = _restart(cfg)
    return out


def _pg_database(base: str) -> tuple[str, Any]:
    base = resolve_url(base)
    name = f'sage_bench_{uuidlib.uuid4().hex[:10]}'
    admin = create_engine(base, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE {name}'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)'))
        admin.dispose()
    return url, drop


def run_bench(seconds: float = 10.0, rows: int = 100_000, dim: int = 64, rate: float = 2000.0,
              queries: int = 500, k: int = 10, flood_rows: int = 5000,
              preview_bytes: int = 3000, backends: str = 'sqlite,sqlite-normal,postgresql',
              pg_url: str = '', rebuild: bool = False, seed: int = 0,
              flood_seconds: float = 0.0, wal_max_mb: float = 64.0,
              snapshot_vectors: bool = False, ef_construction: int = 0,
              heap_trim_rows: int = 10_000, knn_period_s: float = 0.0,
              batch_max: int = 0, page_size: int = StoreConfig.page_size,
              linger_s: float = -1.0,
              base_rows: Sequence[ExperienceRecord] | None = None) -> dict[str, Any]:
    """Run the memory benchmark.

    Args:
        seconds: duration of the sustained-insert phase.
        rows: experiences in the store for the recall and restart phases.
        dim: embedding dimension.
        rate: sustained insert rate (rows/s).
        queries: recall queries per kind.
        k: results per query.
        flood_rows: rows of the flood phase.
        flood_seconds: flood for this long instead (rows as fast as the writer takes them;
            reports the WAL's peak and its size against the database's after the flood).
        wal_max_mb: the store's WAL bound (0 = none, as before the bound existed).
        snapshot_vectors: index snapshots also hold the vectors (as before: two copies).
        ef_construction: HNSW build candidate list (0 = IndexConfig's default).
        heap_trim_rows: the memory's heap trim after bursts (0 = never, as before).
        knn_period_s: after the recall phase, insert at `rate` for `seconds` again while a
            thread asks a kNN query every knn_period_s (0 = skip that phase).
        batch_max: the writer's most rows per commit (0 = StoreConfig's default).
        page_size: SQLite page size of the bench database (4096 = SQLite's own default).
        linger_s: the writer's wait for more rows before a commit (< 0 = the memory node's
            writer.linger_s default; 0 = commit at once, as before the linger existed).
        base_rows: rows to build the workload from (fresh uuids, stamps and embeddings per
            row; sage_bench.memory builds them from real content); None = synthetic rows
            with a random preview of preview_bytes.
        preview_bytes: preview size per row.
        backends: comma-separated 'sqlite' (synchronous=FULL, the default: a commit survives
            power loss), 'sqlite-normal' (synchronous=NORMAL: survives process crashes; power
            loss may undo the last ~checkpoint period), 'postgresql'.
        pg_url: PostgreSQL server ('' = env SAGE_BENCH_PG_URL or SAGE_TEST_PG_URL).
        rebuild: also time a restart with the index snapshot deleted (full rebuild).
        seed: random seed.

    Returns:
        Figures per backend, and 'skipped' reasons.
    """
    if linger_s < 0:  # the memory node's own default
        linger_s = float(resolve(PARAMS, {})['writer.linger_s'])
    result: dict[str, Any] = {'params': {
        'seconds': seconds, 'rows': rows, 'dim': dim, 'rate': rate, 'queries': queries, 'k': k,
        'flood_rows': flood_rows, 'flood_seconds': flood_seconds, 'wal_max_mb': wal_max_mb,
        'snapshot_vectors': snapshot_vectors, 'ef_construction': ef_construction,
        'heap_trim_rows': heap_trim_rows, 'knn_period_s': knn_period_s,
        'batch_max': batch_max, 'page_size': page_size, 'linger_s': linger_s,
        'preview_bytes': preview_bytes if base_rows is None else None}, 'skipped': {}}
    wanted = [b.strip() for b in backends.split(',') if b.strip()]
    kw: dict[str, Any] = dict(seconds=seconds, rows=rows, dim=dim, rate=rate, queries=queries, k=k,
              flood_rows=flood_rows, preview_bytes=preview_bytes, rebuild=rebuild, seed=seed,
              flood_seconds=flood_seconds, wal_max_mb=wal_max_mb,
              snapshot_vectors=snapshot_vectors, ef_construction=ef_construction,
              heap_trim_rows=heap_trim_rows, knn_period_s=knn_period_s,
              batch_max=batch_max, page_size=page_size, linger_s=linger_s,
              base_rows=base_rows)
    for backend in wanted:
        with tempfile.TemporaryDirectory(prefix='sage-memory-bench-') as tmp:
            d = Path(tmp)
            if backend in ('sqlite', 'sqlite-normal'):
                sync = 'FULL' if backend == 'sqlite' else 'NORMAL'
                result[backend] = _bench_backend(f'sqlite:///{d / "bench.db"}', d,
                                                 synchronous=sync, **kw)
            elif backend == 'postgresql':
                server = pg_url or os.environ.get('SAGE_BENCH_PG_URL') or os.environ.get(
                    'SAGE_TEST_PG_URL', '')
                if not server:
                    result['skipped']['postgresql'] = (
                        'no server: pass pg_url or set SAGE_BENCH_PG_URL/SAGE_TEST_PG_URL')
                    continue
                url, drop = _pg_database(server)
                try:
                    result['postgresql'] = _bench_backend(url, d, **kw)
                finally:
                    drop()
            else:
                result['skipped'][backend] = 'unknown backend'
    return result


def typed_options(args: dict[str, str]) -> dict[str, Any]:
    """`key=value` command-line options typed as run_bench's defaults (unknown keys dropped)."""
    typed: dict[str, Any] = {}
    defaults = run_bench.__defaults__ or ()
    names = run_bench.__code__.co_varnames[:run_bench.__code__.co_argcount]
    for name, default in zip(names, defaults, strict=False):
        if name in args and default is not None:
            typed[name] = (args[name].lower() in ('1', 'true') if isinstance(default, bool)
                           else type(default)(args[name]))
    return typed


if __name__ == '__main__':
    import json
    import sys
    print(json.dumps(run_bench(**typed_options(dict(a.split('=', 1) for a in sys.argv[1:]))),
                     indent=1))
