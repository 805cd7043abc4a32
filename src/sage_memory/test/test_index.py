"""Vector index: ANN results against exact search, filters, deletions, snapshots (pure)."""
from __future__ import annotations

import json
import threading
import time
import zlib

import numpy as np
import pytest

from sage_memory.index import vector_index
from sage_memory.index.index_set import IndexSet
from sage_memory.index.structure import IndexConfig
from sage_memory.index.vector_index import VectorIndex
from sage_memory.index.vectors import normalise

KINDS = ('ivf', 'hnsw')


def exact_top(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list:
    s = normalise(x) @ normalise(q)[0]
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return list(np.argsort(-s, kind='stable')[:k])


def scenes(n: int, dim: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n embeddings around `count` recurring scenes (centres), and the centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count, dim)).astype(np.float32)
    x = centres[rng.integers(0, count, n)] + 0.3 * rng.standard_normal((n, dim))
    return x.astype(np.float32), centres


def filled(n: int = 3000, dim: int = 32, seed: int = 0, exact_work: int = 0,
           kind: str = 'ivf', x: np.ndarray | None = None
           ) -> tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if x is None:
        x = rng.standard_normal((n, dim)).astype(np.float32)
    n, dim = x.shape
    stamps = np.arange(n, dtype=np.float64) + 1000.0
    sal = rng.random(n).astype(np.float32)
    # exact_work=0 forces the structure's own search (the inverted file's lists, the graph),
    # so the test checks it, not brute force.
    vi = VectorIndex('vision', dim, IndexConfig(kind=kind, exact_work=exact_work))
    ids = np.arange(n) * 10 + 7  # row ids differ from labels
    assert vi.add(ids, x, stamps, sal) == n
    return vi, x, stamps, sal


def test_hnsw_search_finds_the_exact_nearest_neighbours_of_any_embeddings():
    vi, x, _, _ = filled(kind='hnsw')  # i.i.d. directions: no cluster to lean on
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(40):
        q = rng.standard_normal(x.shape[1]).astype(np.float32)
        got = [(h.row_id - 7) // 10 for h in vi.search(q, 10)]
        hits += len(set(got) & set(exact_top(x, q, 10)))
    assert hits / 400 >= 0.95


def test_ivf_search_finds_the_exact_nearest_neighbours_of_recurring_scenes():
    x, centres = scenes(6000, 32, 120, seed=0)
    vi, _, _, _ = filled(x=x)
    assert vi.structure.lists == 77  # about sqrt(6000): trained as soon as exact_work passed
    rng = np.random.default_rng(1)
    hits = 0
    for c in centres[rng.integers(0, len(centres), 40)]:
        q = (c + 0.3 * rng.standard_normal(c.size)).astype(np.float32)
        got = [(h.row_id - 7) // 10 for h in vi.search(q, 10)]
        hits += len(set(got) & set(exact_top(x, q, 10)))
    assert hits / 400 >= 0.99


@pytest.mark.parametrize('kind', KINDS)
def test_scores_are_cosine_similarities_best_first(kind):
    vi, x, _, _ = filled(n=500, kind=kind)
    res = vi.search(x[42] * 3.0, 5)
    assert (res[0].row_id - 7) // 10 == 42
    assert abs(res[0].score - 1.0) < 1e-4
    assert all(a.score >= b.score for a, b in zip(res, res[1:], strict=False))


@pytest.mark.parametrize('kind', KINDS)
def test_filters_return_only_rows_in_range_and_above_salience(kind):
    vi, x, stamps, sal = filled(kind=kind)
    q = x[1500]
    for exact in (0, 10**9):
        vi.cfg = IndexConfig(kind=kind, exact_work=exact)
        res = vi.search(q, 20, start=1200.0, end=2200.0, min_salience=0.5)
        assert len(res) == 20
        labels = [(h.row_id - 7) // 10 for h in res]
        assert all(1200.0 <= stamps[i] <= 2200.0 and sal[i] >= 0.5 for i in labels)
        mask = (stamps >= 1200.0) & (stamps <= 2200.0) & (sal >= 0.5)
        assert labels[0] == exact_top(x, q, 1, mask)[0]


@pytest.mark.parametrize('kind', KINDS)
def test_a_very_narrow_filter_still_returns_every_match(kind):
    vi, x, stamps, _ = filled(kind=kind)
    res = vi.search(x[0], 10, start=1100.0, end=1102.0)
    assert sorted((h.row_id - 7) // 10 for h in res) == [100, 101, 102]


@pytest.mark.parametrize('kind', KINDS)
def test_removed_rows_are_never_returned(kind):
    vi, x, _, _ = filled(n=1000, kind=kind)
    gone = [(i * 10 + 7) for i in range(0, 1000, 2)]
    assert vi.remove(gone) == 500
    assert vi.remove(gone) == 0
    for i in (0, 2, 4, 500):
        res = vi.search(x[i], 10)
        assert all(h.row_id not in set(gone) for h in res)
        assert len(res) == 10
    assert len(vi) == 500 and abs(vi.dead_fraction - 0.5) < 1e-9


def test_an_exact_search_too_large_to_copy_scans_every_list():
    x, _ = scenes(3000, 32, 60, seed=2)
    vi, _, _, _ = filled(x=x)
    q = x[5] + 0.05
    copied = vi.search(q, 10, exact=True)
    floats, vector_index.COPY_FLOATS = vector_index.COPY_FLOATS, 0
    try:
        scanned = vi.search(q, 10, exact=True)
    finally:
        vector_index.COPY_FLOATS = floats
    assert [h.row_id for h in scanned] == [h.row_id for h in copied]
    assert [h.row_id for h in copied] == [i * 10 + 7 for i in exact_top(x, q, 10)]


def test_adding_known_rows_twice_is_a_no_op():
    vi, x, stamps, sal = filled(n=200)
    assert vi.add(np.arange(200) * 10 + 7, x, stamps, sal) == 0
    assert vi.add([5, 5], x[:2], stamps[:2], sal[:2]) == 1
    assert len(vi) == 201


@pytest.mark.parametrize('kind', KINDS)
def test_snapshot_round_trip_gives_identical_results(tmp_path, kind):
    s = IndexSet(IndexConfig(kind=kind, exact_work=0))
    rng = np.random.default_rng(3)
    vi = s.ensure(('audio', 16))
    vi.add(np.arange(800), rng.standard_normal((800, 16)), np.arange(800.0), rng.random(800))
    vi.remove([3, 4, 5])
    s.ensure(('language', 8)).add([9000], np.ones((1, 8)), [1.0], [0.5])
    q = rng.standard_normal(16).astype(np.float32)
    before = vi.search(q, 10)
    assert s.save(tmp_path) == 798
    s.save(tmp_path)  # a second generation replaces the first
    assert len(list(tmp_path.glob('*.faiss'))) == 2
    t = IndexSet(IndexConfig(kind=kind, exact_work=0))
    assert t.load(tmp_path) == []
    assert t.keys() == [('audio', 16), ('language', 8)]
    assert t.get(('audio', 16)).search(q, 10) == before
    assert 3 not in t.get(('audio', 16))


def test_ivf_snapshots_without_vectors_are_small_and_file_rows_into_their_saved_lists(
        tmp_path):
    n, dim = 20_000, 32
    x, _ = scenes(n, dim, 500, seed=5)
    cfg = IndexConfig(exact_work=100_000)
    s = IndexSet(cfg)
    vi = s.ensure(('vision', dim))
    vi.add(np.arange(n), x, np.arange(n, dtype=float), np.random.default_rng(5).random(n))
    # One add of 20 000 rows: trained once, after it, with sqrt(20 000) lists.
    assert vi.structure.lists == 141 and vi.structure.trained_at == 20_000
    q = x[7] + 0.01
    before = vi.search(q, 10)
    s.save(tmp_path, vectors=False)
    files = sum(p.stat().st_size for p in tmp_path.glob('*.faiss'))
    files += sum(p.stat().st_size for p in tmp_path.glob('*.npz'))
    # Centroids, each row's list and the label arrays: under 12 bytes a row (a row's float32
    # salience alone takes 4), against 128 for the vectors themselves.
    assert files < 12 * n, files / n

    def source(key, ids):
        return x[np.asarray(ids)]
    t = IndexSet(cfg)
    assert t.load(tmp_path, source) == []
    got = t.get(('vision', dim))
    assert got.structure.lists == 141 and got.structure.trained_at == 20_000
    assert got.search(q, 10) == before
    # Rows sit in the lists they were saved in: nothing was retrained.
    assert np.array_equal(got.snapshot(vectors=False)[1]['lists'],
                          vi.snapshot(vectors=False)[1]['lists'])
    # A compressed file cut short (a crash while copying it elsewhere) is skipped, not fatal.
    snap = next(tmp_path.glob('*.faiss'))
    snap.write_bytes(snap.read_bytes()[:snap.stat().st_size // 2])
    problems = IndexSet(cfg).load(tmp_path, source)
    assert len(problems) == 1 and 'skipped' in problems[0]


def test_hnsw_graph_snapshots_are_compressed_and_older_uncompressed_ones_still_load(tmp_path):
    n, dim = 20_000, 32
    x, _ = scenes(n, dim, 500, seed=5)
    rng = np.random.default_rng(5)
    cfg = IndexConfig(kind='hnsw')
    s = IndexSet(cfg)
    vi = s.ensure(('vision', dim))
    vi.add(np.arange(n), x, np.arange(n, dtype=float), rng.random(n))
    q = x[7] + 0.01
    before = vi.search(q, 10)
    s.save(tmp_path, vectors=False)
    blob, meta, _ = vi.snapshot(vectors=False)
    raw = zlib.decompress(blob)
    files = sum(p.stat().st_size for p in tmp_path.glob('*.faiss'))
    files += sum(p.stat().st_size for p in tmp_path.glob('*.npz'))
    # Graph and label arrays: 165 bytes a row uncompressed; under half that compressed.
    assert files < 0.5 * (len(raw) + sum(a.nbytes for a in meta.values())), files / n

    def source(key, ids):
        return x[np.asarray(ids)]
    t = IndexSet(cfg)
    assert t.load(tmp_path, source) == []
    assert t.get(('vision', dim)).search(q, 10) == before
    # A version 2 snapshot (uncompressed files) as an earlier release wrote it.
    old = tmp_path / 'v2'
    old.mkdir()
    (old / 'vision-32.faiss').write_bytes(raw)
    np.savez(old / 'vision-32.npz', **meta)
    (old / 'manifest.json').write_text(json.dumps({'version': 2, 'generation': 0, 'indexes': [
        {'modality': 'vision', 'dim': dim, 'index': 'vision-32.faiss', 'meta': 'vision-32.npz',
         'labels': n, 'vectors': False}]}))
    u = IndexSet(cfg)
    assert u.load(old, source) == []
    assert u.get(('vision', dim)).search(q, 10) == before
    # The ivf kind sets an HNSW snapshot aside: the memory rebuilds its index from the rows.
    problems = IndexSet(IndexConfig()).load(old, source)
    assert len(problems) == 1 and 'rebuilt from the database' in problems[0]


def test_a_corrupt_snapshot_file_is_skipped_not_fatal(tmp_path):
    s = IndexSet(IndexConfig())
    s.ensure(('vision', 4)).add([1, 2], np.eye(2, 4), [1.0, 2.0], [0.1, 0.2])
    s.save(tmp_path)
    for f in tmp_path.glob('*.faiss'):
        f.write_bytes(b'garbage')
    t = IndexSet(IndexConfig())
    problems = t.load(tmp_path)
    assert len(problems) == 1 and 'skipped' in problems[0]
    assert t.keys() == []
    (tmp_path / 'manifest.json').write_text('{not json')
    assert IndexSet(IndexConfig()).load(tmp_path)[0].startswith('unreadable')


@pytest.mark.parametrize('kind', KINDS)
def test_default_settings_recall_99_percent_of_the_exact_top_10(kind):
    # Encoder-like embeddings: 384-d (MiniLM's size), clustered around recurring scenes. An
    # HNSW graph built with efConstruction 40 missed about one neighbour in twenty here.
    dim = 384
    n, count = (20_000, 400) if kind == 'ivf' else (5000, 1000)
    x, centres = scenes(n, dim, count, seed=0)
    vi = VectorIndex('vision', dim, IndexConfig(kind=kind, exact_work=0))
    vi.add(np.arange(n), x, np.arange(n) + 1.0, np.ones(n))
    rng = np.random.default_rng(0)
    queries = centres[rng.integers(0, count, 100)] + 0.3 * rng.standard_normal((100, dim))
    hits = sum(len({h.row_id for h in vi.search(q, 10)}
                   & {h.row_id for h in vi.search(q, 10, exact=True)})
               for q in queries.astype(np.float32))
    assert hits / (10 * len(queries)) >= 0.99


def test_the_inverted_file_is_retrained_as_the_index_doubles_and_answers_across_it():
    # Lists sized for the rows at hand: about sqrt(n), retrained once n has doubled, so a list
    # stays a few hundred rows at 100 k instead of growing with the store.
    rng = np.random.default_rng(6)
    dim = 16
    vi = VectorIndex('vision', dim, IndexConfig(exact_work=1000 * dim))
    x = rng.standard_normal((9000, dim)).astype(np.float32)
    seen = []
    for lo in range(0, 9000, 500):
        vi.add(np.arange(lo, lo + 500), x[lo:lo + 500], np.ones(500), np.ones(500))
        seen.append((vi.total, vi.structure.trained_at, vi.structure.lists))
    assert seen[:2] == [(500, 0, 0), (1000, 0, 0)]  # exact up to exact_work
    assert {t for _, t, _ in seen if t} == {1500, 3000, 6000}
    assert seen[-1][2] == 77  # sqrt(6000)
    for i in (0, 4444, 8999):  # every row stays findable across the retrainings
        assert vi.search(x[i], 1)[0].row_id == i


def test_an_unknown_index_kind_is_refused():
    with pytest.raises(ValueError, match="'ivf', 'hnsw'|ivf, hnsw"):
        IndexSet(IndexConfig(kind='annoy'))


def test_a_search_during_a_long_chunked_add_waits_for_one_chunk_not_the_whole_add():
    # Rows streaming into the index must not hold queries for a whole burst (issue 16.4).
    rng = np.random.default_rng(4)
    dim, n = 384, 4000
    vi = VectorIndex('vision', dim, IndexConfig(exact_work=0))
    vi.add(np.arange(100), rng.standard_normal((100, dim)), np.ones(100), np.ones(100))
    burst = rng.standard_normal((n, dim)).astype(np.float32)
    adder = threading.Thread(target=vi.add, args=(np.arange(100, 100 + n), burst,
                                                  np.ones(n), np.ones(n)),
                             kwargs={'chunk': 8})
    adder.start()
    try:
        deadline = time.monotonic() + 60
        while vi.total <= 100 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert vi.total > 100  # the burst has begun
        hits = vi.search(burst[0], 5)
        at_answer = vi.total
    finally:
        adder.join()
    assert hits
    assert at_answer < 100 + n  # answered while most of the burst was still to come
    assert vi.total == 100 + n


def test_a_chunked_add_stops_at_the_next_chunk_once_asked():
    # A closing memory must not wait for (or abandon mid-call) a whole backlog of graph inserts.
    rng = np.random.default_rng(5)
    dim, n = 64, 2000
    vi = VectorIndex('vision', dim, IndexConfig(exact_work=0))
    stop = threading.Event()
    stop.set()
    assert vi.add(np.arange(n), rng.standard_normal((n, dim)), np.ones(n), np.ones(n),
                  chunk=8, stop=stop) == 0
    assert vi.total == 0
    stop.clear()
    assert vi.add(np.arange(n), rng.standard_normal((n, dim)), np.ones(n), np.ones(n),
                  chunk=8, stop=stop) == n
    assert len(vi) == n
