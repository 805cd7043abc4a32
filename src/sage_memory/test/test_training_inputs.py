"""Training inputs kept for sleep: round trip, one per uuid, orphans, budget, retention, schema.

The same tests run on SQLite files and on PostgreSQL (SAGE_TEST_PG_URL), as test_store does.
"""
from __future__ import annotations

from pathlib import Path
import sqlite3
import time
import zlib

from alembic import command
from alembic.config import Config
import numpy as np
import pytest
from sqlalchemy import create_engine, insert, text

from sage_common.errors import ParamError
from sage_common.params import resolve
from sage_memory.config import memory_config
from sage_memory.memory_params import PARAMS, validate
from sage_memory.store.codec import encode_codes
from sage_memory.memory import Memory, MemoryConfig
from sage_memory.store.models import EXPERIENCES, ExperienceRecord, record_to_row
from sage_memory.store.retention import RetentionConfig, row_value
from sage_memory.store.memory_store import MIGRATIONS, MemoryStore, StoreConfig, resolve_url
from sage_memory.store.synthetic import synthetic_record
from sage_memory.store.training_inputs import TrainingInput

NOW = 1_700_100_000.0
MB = 2**20
# Retention value: one salience point per 1000 s of age, so age and salience both matter.
RETENTION = RetentionConfig(max_rows=0, low_water=0.9, recency_weight=1.0,
                            recency_scale_s=1000.0, period_s=3600.0)


def open_store(url: str, data_dir: Path, start: bool = True, **kw) -> MemoryStore:
    kw.setdefault('retention', RETENTION)
    store = MemoryStore(StoreConfig(database_url=url, data_dir=str(data_dir), device_id='dev-a',
                                    **kw), clock=lambda: NOW)
    if start:
        store.start()
    return store


def experience(i: int, **kw) -> ExperienceRecord:
    return synthetic_record(i, np.random.default_rng(i), dim=8, preview_bytes=16, grid=4, **kw)


def vision_input(rec: ExperienceRecord, nbytes: int = 2000, grid: int = 6,
                 salience: float | None = None, stamp: float | None = None) -> TrainingInput:
    rng = np.random.default_rng(int(rec.uuid[:8], 16))
    codes = rng.integers(0, 512, (grid, grid)).astype(np.uint16) if grid else None
    return TrainingInput(
        uuid=rec.uuid, modality='vision',
        stamp=rec.stamp if stamp is None else stamp,
        salience=rec.salience if salience is None else salience, format='jpeg',
        data=b'\xff\xd8' + rng.integers(0, 256, nbytes - 2, dtype=np.uint8).tobytes(),
        width=224, height=224, codes_initial=codes, codebook_size=512 if grid else 0)


def audio_input(rec: ExperienceRecord, samples: int = 8000) -> TrainingInput:
    pcm = (np.sin(np.arange(samples) / 7.0) * 12000).astype('<i2')
    codes = np.arange(2 * 25, dtype=np.uint16).reshape(2, 25) % 1024
    return TrainingInput(uuid=rec.uuid, modality='audio', stamp=rec.stamp,
                         salience=rec.salience, format='s16le-zlib',
                         data=zlib.compress(pcm.tobytes()), sample_rate=16000, samples=samples,
                         codes_initial=codes, codebook_size=1024)


def stored_bytes(item: TrainingInput) -> int:
    codes = b'' if item.codes_initial is None else encode_codes(item.codes_initial,
                                                                item.codebook_size)
    return len(item.data) + len(codes)


def test_vision_and_audio_inputs_read_back_byte_for_byte(db_url, tmp_path):
    cfg = MemoryConfig(store=StoreConfig(database_url=db_url, data_dir=str(tmp_path),
                                         device_id='dev-a', retention=RETENTION),
                       snapshot_period_s=0.0, refresh_period_s=0.0)
    mem = Memory(cfg)
    v_rec, a_rec = experience(1), experience(2, modality='audio')
    v_in, a_in = vision_input(v_rec), audio_input(a_rec)
    mem.submit_many([v_rec, a_rec])
    # The input of an experience in the same batch is kept: inputs go in after the rows.
    mem.submit_training_input(a_in)
    assert mem.flush(30)
    mem.submit_training_input(v_in)
    assert mem.flush(30)
    got = {t.uuid: t for t in mem.training_inputs()}
    assert set(got) == {v_rec.uuid, a_rec.uuid}
    for sent in (v_in, a_in):
        back = got[sent.uuid]
        assert back.data == sent.data and back.format == sent.format
        assert back.codes_initial is not None and back.codes_initial.dtype == np.uint16
        assert np.array_equal(back.codes_initial, sent.codes_initial)
        assert (back.modality, back.stamp, back.codebook_size) == \
            (sent.modality, sent.stamp, sent.codebook_size)
        assert back.salience == pytest.approx(sent.salience, rel=1e-6)
        assert back.created_at > 0
    assert (got[v_rec.uuid].width, got[v_rec.uuid].height) == (224, 224)
    assert (got[a_rec.uuid].sample_rate, got[a_rec.uuid].samples) == (16000, 8000)
    pcm = np.frombuffer(zlib.decompress(got[a_rec.uuid].data), '<i2')
    assert pcm.size == 8000
    # Codes are bit-packed: 9 bits per code of a 512-entry codebook, not 16.
    assert stored_bytes(v_in) == len(v_in.data) + (36 * 9 + 7) // 8
    stats = mem.training_stats()
    assert stats['by_modality'] == {
        'audio': {'count': 1, 'bytes': stored_bytes(a_in)},
        'vision': {'count': 1, 'bytes': stored_bytes(v_in)}}
    assert stats['count'] == 2
    assert stats['bytes'] == stats['tracked_bytes'] == stored_bytes(a_in) + stored_bytes(v_in)
    assert stats['bytes_per_input'] == pytest.approx(stats['bytes'] / 2)
    assert stats['budget_bytes'] == 256 * MB
    assert [t.uuid for t in mem.training_inputs(modality='audio')] == [a_rec.uuid]
    # Oldest first, `since` inclusive, limit.
    assert [t.uuid for t in mem.training_inputs()] == [v_rec.uuid, a_rec.uuid]
    assert [t.uuid for t in mem.training_inputs(since=a_rec.stamp)] == [a_rec.uuid]
    assert [t.uuid for t in mem.training_inputs(limit=1)] == [v_rec.uuid]
    assert mem.close()


def test_iterating_reads_a_page_at_a_time_in_select_order_within_since_and_until(
        db_url, tmp_path):
    store = open_store(db_url, tmp_path)
    recs = [experience(i) for i in range(12)]
    heard = experience(100, modality='audio')
    store.submit_many(recs + [heard])
    assert store.flush()
    # Five inputs share one stamp, so pages break inside a run of equal stamps.
    shared = recs[4].stamp
    for k, rec in enumerate(recs):
        store.submit_training_input(vision_input(rec, stamp=shared if 4 <= k < 9 else None))
    store.submit_training_input(audio_input(heard))
    assert store.flush()
    since, until = recs[2].stamp, recs[10].stamp
    want = [t.uuid for t in store.training_inputs('vision', since=since)
            if t.stamp <= until]
    assert len(want) == 9
    for page in (1, 2, 3, 128):
        got = list(store.training.iterate('vision', since, until, page=page))
        assert [t.uuid for t in got] == want, page
    assert [t.uuid for t in store.iter_training_inputs('vision')] == \
        [t.uuid for t in store.training_inputs('vision')]
    (heard_back,) = store.iter_training_inputs('audio')
    assert (heard_back.uuid, heard_back.data) == (heard.uuid, audio_input(heard).data)
    assert store.close()


def test_a_second_input_for_the_same_uuid_is_a_no_op(db_url, tmp_path):
    store = open_store(db_url, tmp_path)
    rec = experience(1)
    store.submit(rec)
    first = vision_input(rec, nbytes=1000)
    store.submit_training_input(first)
    store.submit_training_input(vision_input(rec, nbytes=3000))  # same batch
    assert store.flush(30)
    store.submit_training_input(vision_input(rec, nbytes=5000))  # a later batch
    assert store.flush(30)
    kept = store.training_inputs()
    assert len(kept) == 1 and kept[0].data == first.data
    stats = store.training_stats()
    assert (stats['count'], stats['stored'], stats['duplicates'], stats['dropped']) == \
        (1, 1, 2, 0)
    assert stats['bytes'] == stats['tracked_bytes'] == stored_bytes(first)
    assert store.close()


def test_an_input_without_its_experience_is_dropped_and_counted(db_url, tmp_path):
    store = open_store(db_url, tmp_path)
    known = experience(1)
    store.submit(known)
    assert store.flush(30)
    store.submit_training_input(vision_input(experience(2)))  # never stored
    store.submit_training_input(vision_input(known))
    assert store.flush(30)
    assert store.status().alarm == '' and store.status().rejected == 0
    assert [t.uuid for t in store.training_inputs()] == [known.uuid]
    stats = store.training_stats()
    assert stats['dropped'] == 1 and stats['stored'] == 1
    assert stats['tracked_bytes'] == stats['bytes'] == stored_bytes(vision_input(known))
    # The writer goes on: a later experience and its input are stored.
    later = experience(3)
    store.submit(later)
    store.submit_training_input(vision_input(later))
    assert store.flush(30)
    assert store.training_stats()['count'] == 2
    assert store.close()


def test_a_malformed_input_is_refused_at_submit(tmp_path):
    store = open_store('', tmp_path)
    rec = experience(1)
    good = vision_input(rec)
    for bad, match in [(dict(modality='imu'), 'modality'), (dict(format='png'), 'format'),
                       (dict(data=b''), 'no data'), (dict(uuid='x' * 33), 'uuid')]:
        with pytest.raises(ValueError, match=match):
            store.submit_training_input(TrainingInput(**{**good.__dict__, **bad}))
    assert store.close()


def test_a_budget_of_zero_keeps_no_inputs(db_url, tmp_path):
    store = open_store(db_url, tmp_path, training_budget_mb=0.0)
    rec = experience(1)
    store.submit(rec)
    store.submit_training_input(vision_input(rec))
    assert store.flush(30)
    stats = store.training_stats()
    assert (stats['count'], stats['dropped'], stats['budget_bytes']) == (0, 1, 0)
    assert stats['by_modality'] == {'audio': {'count': 0, 'bytes': 0},
                                    'vision': {'count': 0, 'bytes': 0}}
    assert store.count() == 1  # the experience itself is kept
    assert store.close()


def ranked_batch(n: int, seed: int) -> tuple[list[ExperienceRecord], list[TrainingInput]]:
    """n experiences with inputs of 1000 bytes, salience and age both spread."""
    rng = np.random.default_rng(seed)
    recs, inputs = [], []
    for i in range(n):
        rec = experience(i, salience=float(rng.random()),
                         stamp=NOW - float(rng.uniform(0, 2000)))
        recs.append(rec)
        inputs.append(vision_input(rec, nbytes=1000, grid=0))
    return recs, inputs


def test_over_budget_the_least_valuable_inputs_go_first(db_url, tmp_path):
    budget = 10_000  # ten inputs of 1000 bytes
    store = open_store(db_url, tmp_path, start=False, training_budget_mb=budget / MB)
    recs, inputs = ranked_batch(30, seed=3)
    # Queued before the writer starts: one batch, one eviction over all 30.
    store.submit_many(recs)
    for item in inputs:
        store.submit_training_input(item)
    store.start()
    assert store.flush(30)
    value = {t.uuid: row_value(t.salience, t.stamp, NOW, RETENTION) for t in inputs}
    by_value = sorted(value, key=value.get, reverse=True)
    keep = int(budget * RETENTION.low_water) // 1000  # evicted down to the low water mark
    by_salience = sorted(value, key=lambda u: next(t.salience for t in inputs if t.uuid == u),
                         reverse=True)
    assert set(by_value[:keep]) != set(by_salience[:keep])  # age matters in this data
    left = store.training_inputs()
    assert {t.uuid for t in left} == set(by_value[:keep])
    stats = store.training_stats()
    assert stats['bytes'] == stats['tracked_bytes'] == keep * 1000 <= budget
    assert stats['evicted_by_budget'] == 30 - keep
    assert store.count() == 30  # the budget never deletes experiences
    # Inputs that arrive one commit at a time keep the total under the budget too.
    more_recs, more_inputs = ranked_batch(20, seed=4)
    more_recs = [experience(100 + i, salience=r.salience, stamp=r.stamp)
                 for i, r in enumerate(more_recs)]
    store.submit_many(more_recs)
    assert store.flush(30)
    for rec in more_recs:
        store.submit_training_input(vision_input(rec, nbytes=1000, grid=0))
        assert store.flush(30)
        assert store.training_stats()['tracked_bytes'] <= budget
    stats = store.training_stats()
    assert stats['bytes'] == stats['tracked_bytes']
    assert stats['stored'] - stats['evicted_by_budget'] == stats['count']
    assert store.close()


def test_retention_deletes_the_inputs_of_the_experiences_it_evicts(db_url, tmp_path):
    store = open_store(db_url, tmp_path, retention=RetentionConfig(
        max_rows=10, low_water=0.5, recency_weight=1.0, recency_scale_s=1000.0))
    recs = [experience(i, salience=0.1 + 0.04 * i, stamp=NOW) for i in range(20)]
    store.submit_many(recs)
    assert store.flush(30)
    for rec in recs[::2]:  # only every other experience has an input
        store.submit_training_input(vision_input(rec))
    assert store.flush(30)
    victims = {u for _, u in store.retain_now()}
    assert victims == {r.uuid for r in recs[:15]}  # the least salient, down to 5 rows
    left = {t.uuid for t in store.training_inputs()}
    assert left == {r.uuid for r in recs[::2]} - victims
    assert left == {recs[16].uuid, recs[18].uuid}
    stats = store.training_stats()
    assert stats['evicted_with_experiences'] == 8
    assert stats['tracked_bytes'] == stats['bytes'] == sum(
        stored_bytes(vision_input(r)) for r in recs if r.uuid in left)
    assert store.close()


def database_at_0001(url: str, rows: list[ExperienceRecord]) -> None:
    """A database as revision 0001 left it (no training_inputs table), holding rows."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option('script_location', str(MIGRATIONS))
            cfg.attributes['connection'] = conn
            command.upgrade(cfg, '0001')
        with engine.begin() as conn:
            assert conn.execute(text('SELECT version_num FROM alembic_version')).scalar() == \
                '0001'
            conn.execute(insert(EXPERIENCES), [record_to_row(r) for r in rows])
    finally:
        engine.dispose()


def test_a_database_at_revision_0001_upgrades_on_open_with_its_rows(db_url, tmp_path):
    url = resolve_url(db_url, str(tmp_path))
    old = [experience(i) for i in range(5)]
    database_at_0001(url, old)
    store = open_store(db_url, tmp_path)
    got = store.fetch_uuids([r.uuid for r in old])
    assert set(got) == {r.uuid for r in old}
    assert all(np.array_equal(got[r.uuid].codes, r.codes) for r in old)
    assert store.training_stats()['count'] == 0
    store.submit_training_input(vision_input(old[0]))
    assert store.flush(30)
    assert [t.uuid for t in store.training_inputs()] == [old[0].uuid]
    assert store.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text('SELECT version_num FROM alembic_version')).scalar() == \
                '0003'
    finally:
        engine.dispose()


def test_a_read_only_database_at_revision_0001_is_served_without_inputs(tmp_path):
    # A robot's old database in a folder it may not write is served read-only (issue 13): the
    # missing table must not stop it from opening.
    path = tmp_path / 'old.db'
    old = [experience(i) for i in range(3)]
    database_at_0001(f'sqlite:///{path}', old)
    store = open_store(str(path), tmp_path, read_only=True)
    try:
        assert set(store.fetch_uuids([r.uuid for r in old])) == {r.uuid for r in old}
        stats = store.training_stats()
        assert stats['count'] == 0 and stats['bytes'] == 0
        assert store.training_inputs() == []
        store.submit_training_input(vision_input(old[0]))  # refused, not raised
        assert store.status().refused >= 1
    finally:
        store.close()


def test_the_running_total_survives_a_reopen_and_a_lower_budget(db_url, tmp_path):
    store = open_store(db_url, tmp_path)
    recs, inputs = ranked_batch(12, seed=7)
    store.submit_many(recs)
    assert store.flush(30)
    for item in inputs:
        store.submit_training_input(item)
    assert store.flush(30)
    assert store.training_stats()['tracked_bytes'] == 12_000
    assert store.close()
    store = open_store(db_url, tmp_path)
    stats = store.training_stats()
    assert stats['tracked_bytes'] == stats['bytes'] == 12_000 and stats['count'] == 12
    assert store.close()
    # Reopened with a budget of 5 inputs: at open the 8 least valuable go (to 0.9 * 5).
    budget = 5000
    store = open_store(db_url, tmp_path, training_budget_mb=budget / MB)
    value = {t.uuid: row_value(t.salience, t.stamp, NOW, RETENTION) for t in inputs}
    best = sorted(value, key=value.get, reverse=True)[:4]
    assert {t.uuid for t in store.training_inputs()} == set(best)
    stats = store.training_stats()
    assert stats['tracked_bytes'] == stats['bytes'] == 4000
    assert stats['evicted_by_budget'] == 8
    assert store.close()


def test_inputs_wait_out_a_full_disk_with_their_queue_bounded(tmp_path):
    pragmas: dict[str, int] = {}
    item_bytes = 5000  # larger than a page: storing one must grow the file
    store = open_store('', tmp_path, sqlite_pragmas=pragmas, backoff_max_s=0.2,
                       wal_checkpoint_period_s=0.0,
                       training_max_pending_mb=2.2 * item_bytes / MB)
    recs = [experience(i, stamp=NOW - 100 + i) for i in range(6)]
    store.submit_many(recs)
    assert store.flush(30)
    con = sqlite3.connect(str(store.path))
    pages = con.execute('PRAGMA page_count').fetchone()[0]
    con.close()
    # SQLITE_FULL, as a full disk gives, once the file would grow.
    pragmas['max_page_count'] = pages
    store.reconnect()
    for rec in recs:
        store.submit_training_input(vision_input(rec, nbytes=item_bytes, grid=0))
    assert wait_until(lambda: 'full' in store.status().alarm)
    assert not store.flush(0.5)
    assert store.training_stats()['count'] == 0
    pragmas['max_page_count'] = 1 << 30  # space returns
    store.reconnect()
    assert store.flush(30)
    assert store.status().alarm == ''
    # Only what fitted in the queue's bound was kept meanwhile: the newest two.
    assert [t.uuid for t in store.training_inputs()] == [r.uuid for r in recs[-2:]]
    stats = store.training_stats()
    assert (stats['stored'], stats['dropped']) == (2, 4)
    assert stats['tracked_bytes'] == stats['bytes'] == 2 * item_bytes
    assert store.close()


def wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_the_node_parameters_reach_the_store_config():
    values = resolve(PARAMS, {'training_inputs.budget_mb': 12.5}, validate, 'memory')
    assert memory_config(values).store.training_budget_mb == 12.5
    assert values['training_inputs.enabled'] is True
    assert values['training_inputs.modalities'] == 'vision,audio'
    assert values['training_inputs.timeout_s'] == 2.0
    with pytest.raises(ParamError, match='unknown imu'):
        resolve(PARAMS, {'training_inputs.modalities': 'vision,imu'}, validate, 'memory')
    with pytest.raises(ParamError, match='below the minimum'):
        resolve(PARAMS, {'training_inputs.timeout_s': 0.0}, validate, 'memory')
