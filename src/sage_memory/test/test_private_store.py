"""The memory store keeps what it remembers private: data folder 0700, database, WAL, shared
memory and index snapshots 0600, whatever the umask; wider files from before are fixed at start.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
import sqlite3
import stat

import numpy as np
import pytest

from sage_memory.memory import Memory, MemoryConfig
from sage_memory.store.retention import RetentionConfig
from sage_memory.store.memory_store import MemoryStore, StoreConfig
from sage_memory.store.synthetic import synthetic_record


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """A umask that would make every new file world-readable (the usual 022, or wider)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_fresh_database_is_0600_in_a_0700_folder_with_private_wal_and_snapshots(
        tmp_path, open_umask):
    data_dir = tmp_path / 'fresh' / 'sage'
    cfg = MemoryConfig(store=StoreConfig(database_url='', data_dir=str(data_dir),
                                         device_id='dev', retention=RetentionConfig(max_rows=0)),
                       snapshot_period_s=0.0, refresh_period_s=0.0)
    mem = Memory(cfg)
    assert mem.wait_index_ready(30)
    rng = np.random.default_rng(0)
    mem.submit_many([synthetic_record(i, rng, dim=16, preview_bytes=64, grid=5)
                     for i in range(50)])
    assert mem.flush(30)
    db = data_dir / 'sage_memory.db'
    # While open: the WAL and shared-memory files exist and carry the database's mode.
    assert (Path(f'{db}-wal')).exists() and (Path(f'{db}-shm')).exists()
    assert {p.name: oct(mode(p)) for p in data_dir.glob('sage_memory.db*')} == \
        {p.name: '0o600' for p in data_dir.glob('sage_memory.db*')}
    assert mem.close()  # writes the index snapshot
    assert oct(mode(data_dir)) == '0o700'
    assert oct(mode(db)) == '0o600'
    snapshot = [p for p in (data_dir / 'index').rglob('*')]
    assert any(p.name == 'manifest.json' for p in snapshot)
    assert {p.name: oct(mode(p)) for p in snapshot} == \
        {p.name: '0o700' if p.is_dir() else '0o600' for p in snapshot}
    # Still a working database.
    with sqlite3.connect(db) as conn:
        assert conn.execute('SELECT count(*) FROM experiences').fetchone()[0] == 50


def test_readable_files_from_an_older_version_are_fixed_at_start_with_a_warning(
        tmp_path, caplog, open_umask):
    data_dir = tmp_path / 'old'
    store = MemoryStore(StoreConfig(database_url='', data_dir=str(data_dir)))
    store.close()
    db = data_dir / 'sage_memory.db'
    snap = data_dir / 'index' / 'abc'
    snap.mkdir(parents=True)
    (snap / 'manifest.json').write_text('{}')
    for path, wide in ((data_dir, 0o755), (db, 0o644), (snap, 0o775),
                       (snap / 'manifest.json', 0o664)):
        os.chmod(path, wide)
    with caplog.at_level(logging.WARNING, logger='sage_memory.store.memory_store'):
        store = MemoryStore(StoreConfig(database_url='', data_dir=str(data_dir)))
        store.close()
    assert (oct(mode(data_dir)), oct(mode(db)), oct(mode(snap)),
            oct(mode(snap / 'manifest.json'))) == ('0o700', '0o600', '0o700', '0o600')
    warned = '\n'.join(r.getMessage() for r in caplog.records)
    for path in (data_dir, db, snap, snap / 'manifest.json'):
        assert f'{path} was accessible to other users' in warned, warned


def test_a_database_outside_the_data_folder_is_private_but_its_folder_is_left_alone(
        tmp_path, open_umask):
    shared = tmp_path / 'shared'
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    store = MemoryStore(StoreConfig(database_url=str(shared / 'robot.db'),
                                    data_dir=str(tmp_path / 'data')))
    store.close()
    assert oct(mode(shared / 'robot.db')) == '0o600'
    assert oct(mode(shared)) == '0o755'
    assert oct(mode(tmp_path / 'data')) == '0o700'
