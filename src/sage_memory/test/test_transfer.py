"""Multi-device memory: export/import through a file, sync through PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text, update

from sage_memory.errors import TransferError
from sage_memory.memory import Memory, MemoryConfig
from sage_memory.store.models import EXPERIENCES, PORTABLE_COLUMNS
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import StoreConfig, resolve_url
from sage_memory.store.synthetic import synthetic_record
from sage_memory.sync.transfer import export_memory, import_memory, portable_rows as contents, sync


def device(url: str, data_dir: Path, name: str, n: int, start: int = 0,
           state: dict | None = None, **store_kw) -> list[str]:
    """Store n rows (and a state document) as device `name`; returns their uuids."""
    store_kw.setdefault('retention', RetentionConfig(max_rows=0))
    mem = Memory(MemoryConfig(store=StoreConfig(database_url=url, data_dir=str(data_dir),
                                                device_id=name, **store_kw),
                              snapshot_period_s=0.0, refresh_period_s=0.0))
    rng = np.random.default_rng(start)
    rows = [synthetic_record(start + i, rng, dim=8, preview_bytes=100, grid=4,
                             device_id=name, modality=('vision', 'audio', 'imu')[i % 3])
            for i in range(n)]
    mem.submit_many(rows)
    if state is not None:
        mem.save_state('snarc', state)
    assert mem.flush(30)
    mem.close()
    return [r.uuid for r in rows]


def sqlite_url(path: Path) -> str:
    return f'sqlite:///{path}'


def test_export_then_import_reproduces_rows_and_state(db_url, tmp_path):
    a = sqlite_url(tmp_path / 'a' / 'sage_memory.db')
    uuids = device(a, tmp_path / 'a', 'dev-a', 120, state={'weights': [0.1, 0.2]})
    file = tmp_path / 'portable' / 'memory.sagemem'
    file.parent.mkdir()
    first = export_memory(a, file)
    assert first['inserted'] == 120 and first['states'] == 1
    assert export_memory(a, file)['inserted'] == 0  # re-export adds nothing
    assert sorted(p.name for p in file.parent.iterdir()) == ['memory.sagemem']  # one file
    # The other device already has rows of its own.
    own = device(db_url, tmp_path / 'b', 'dev-b', 30, start=1000)
    got = import_memory(db_url, file)
    assert got['inserted'] == 120 and got['states'] == 1
    again = import_memory(db_url, file)
    assert again == {**again, 'inserted': 0, 'updated': 0, 'states': 0}
    ca, cb = contents(a), contents(db_url)
    assert set(cb) == set(uuids) | set(own)
    assert all(cb[u] == ca[u] for u in uuids)  # byte-for-byte, every column
    engine = create_engine(resolve_url(db_url))
    try:
        with engine.connect() as conn:
            state = conn.execute(text("SELECT value FROM state WHERE key = 'snarc'")).scalar()
    finally:
        engine.dispose()
    assert state == '{"weights": [0.1, 0.2]}'


def test_sync_through_postgres_merges_devices_and_repeats_change_nothing(pg_url, tmp_path):
    a = sqlite_url(tmp_path / 'a' / 'sage_memory.db')
    b = sqlite_url(tmp_path / 'b' / 'sage_memory.db')
    ua = device(a, tmp_path / 'a', 'dev-a', 150)
    ub = device(b, tmp_path / 'b', 'dev-b', 90, start=5000)
    first = sync(a, pg_url)
    assert first['pushed']['inserted'] == 150 and first['pulled']['inserted'] == 0
    second = sync(b, pg_url)
    assert second['pushed']['inserted'] == 90 and second['pulled']['inserted'] == 150
    third = sync(a, pg_url)
    assert third['pulled']['inserted'] == 90
    ca, cb, cr = contents(a), contents(b), contents(pg_url)
    assert set(ca) == set(cb) == set(cr) == set(ua) | set(ub)
    assert ca == cb == cr
    for url in (a, b):
        again = sync(url, pg_url)
        assert all(v == 0 for side in again.values() for v in side.values())
    assert contents(a) == ca and contents(pg_url) == cr


def test_pattern_assignments_merge_to_the_same_value_on_both_sides(tmp_path):
    a = sqlite_url(tmp_path / 'a.db')
    b = sqlite_url(tmp_path / 'b.db')
    uuids = device(a, tmp_path / 'da', 'dev-a', 10)
    sync(a, b)

    def assign(url: str, pattern: str) -> None:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(update(EXPERIENCES).where(EXPERIENCES.c.uuid == uuids[0])
                         .values(pattern_uuid=pattern))
        engine.dispose()

    assign(a, 'f' * 32)  # both devices consolidated the same row, into different patterns
    assign(b, '0' * 32)
    sync(a, b)
    pa = {u: r[PORTABLE_COLUMNS.index('pattern_uuid')] for u, r in contents(a).items()}
    pb = {u: r[PORTABLE_COLUMNS.index('pattern_uuid')] for u, r in contents(b).items()}
    assert pa == pb and pa[uuids[0]] == '0' * 32
    assert all(v == 0 for side in sync(a, b).values() for v in side.values())


def test_import_does_not_bring_back_rows_this_device_evicted(tmp_path):
    a = sqlite_url(tmp_path / 'a.db')
    uuids = device(a, tmp_path / 'da', 'dev-a', 40)
    file = tmp_path / 'backup.sagemem'
    export_memory(a, file)
    mem = Memory(MemoryConfig(store=StoreConfig(
        database_url=a, data_dir=str(tmp_path / 'da'), retention=RetentionConfig(
            max_rows=30, low_water=1.0, period_s=3600.0)), refresh_period_s=0.0))
    evicted = {u for _, u in mem.store.retain_now()}
    mem.close()
    assert len(evicted) == 10
    got = import_memory(a, file)
    assert got['inserted'] == 0 and got['skipped'] == 10
    assert set(contents(a)) == set(uuids) - evicted


def test_import_rejects_a_file_that_is_not_an_export(tmp_path):
    bad = tmp_path / 'notes.txt'
    bad.write_text('hello')
    with pytest.raises(TransferError, match='not a SAGE memory export'):
        import_memory(sqlite_url(tmp_path / 'x.db'), bad)
    with pytest.raises(TransferError, match='no export file'):
        import_memory(sqlite_url(tmp_path / 'x.db'), tmp_path / 'missing.sagemem')
    with pytest.raises(TransferError, match='same database'):
        sync(sqlite_url(tmp_path / 'x.db'), str(tmp_path / 'x.db'))
