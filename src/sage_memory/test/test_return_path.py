"""Two hosts, the way back (issue 19, item 4): training inputs follow their experiences to the
shared store, patterns another host's sleep wrote come back once, and encoder versions another
host promoted are adopted here, atomically and once (real SQLite and PostgreSQL stores, real
model files)."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import numpy as np
from sqlalchemy import select, update

from sage_encoders.model_files import PACKAGED_DIR
from sage_encoders.model_versions import PACKAGED, VERSION_FILE, ModelVersions
from sage_memory.store.database import DB_FILENAME, make_engine, resolve_url
from sage_memory.store.models import EXPERIENCES, SHARED_MODELS, STATE, TRAINING_INPUTS
from sage_memory.sync.outbox import Outbox
from sage_memory.sync.shared_models import ADOPT_KEY_PREFIX, Adopter, share_live
from sage_memory.store.memory_store import MemoryStore, StoreConfig
from sage_memory.store.synthetic import synthetic_record


def _shared_url(db_url: str, tmp_path) -> str:
    # The shared store must be another file than the edge's.
    return (f'sqlite:///{tmp_path / "shared" / DB_FILENAME}' if db_url.startswith('sqlite')
            else db_url)


def _rows(engine, table, order) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(order))]


def test_training_inputs_follow_their_experiences_once_settled(db_url, tmp_path,
                                                               fill_training_store):
    items = fill_training_store(tmp_path / 'edge')
    local = make_engine(resolve_url(f'sqlite:///{tmp_path / "edge" / DB_FILENAME}'))
    with local.connect() as conn:
        created = sorted(conn.execute(select(EXPERIENCES.c.created_at)).scalars())
    now = [created[0] - 1.0]
    box = Outbox(local, _shared_url(db_url, tmp_path), batch=7, device_id='edge',
                 settle_s=10.0, clock=lambda: now[0])
    try:
        # Not shipped yet: no input goes before its experience.
        assert box.ship_inputs() == 0
        assert box.drain() == len(items)
        # Shipped, but not settled (younger than settle_s): they wait.
        assert box.ship_inputs() == 0
        now[0] = created[-1] + 10.0
        passed = 0
        while (n := box.ship_inputs()) > 0:
            assert n <= 7
            passed += n
        assert passed == len(items)
        remote = make_engine(resolve_url(_shared_url(db_url, tmp_path)))  # read on its own
        assert _rows(remote, TRAINING_INPUTS, TRAINING_INPUTS.c.uuid) == \
            _rows(local, TRAINING_INPUTS, TRAINING_INPUTS.c.uuid)
        assert box.state()['inputs_shipped'] == len(items)
        # A lost acknowledgement sends the inputs again: a no-op on the shared store.
        state = box.state()
        with local.begin() as conn:
            conn.execute(update(STATE).where(STATE.c.key == box.key).values(
                value=json.dumps(dict(state, inputs_id=0))))
        while box.ship_inputs() > 0:
            pass
        assert len(_rows(remote, TRAINING_INPUTS, TRAINING_INPUTS.c.uuid)) == len(items)
        remote.dispose()
    finally:
        box.close()
        local.dispose()


def test_an_unsettled_experience_holds_back_the_ones_after_it(tmp_path):
    # Ids and storage times can disagree by a little (the policy stamps created_at, the writer
    # assigns ids): the inputs cursor never passes an experience that has not settled.
    store = MemoryStore(StoreConfig(data_dir=str(tmp_path / 'edge'), device_id='edge'))
    store.start()
    rng = np.random.default_rng(0)
    store.submit_many([synthetic_record(i, rng, dim=8, grid=0, preview_bytes=0,
                                        created_at=t) for i, t in enumerate((100.0, 200.0, 50.0))])
    assert store.flush()
    store.close()
    local = make_engine(resolve_url(f'sqlite:///{tmp_path / "edge" / DB_FILENAME}'))
    box = Outbox(local, f'sqlite:///{tmp_path / "shared" / DB_FILENAME}', settle_s=0.0,
                 clock=lambda: 150.0)
    try:
        assert box.drain() == 3
        assert box.ship_inputs() == 1  # the first; the second (200) holds the third back
        assert box.ship_inputs() == 0
    finally:
        box.close()
        local.dispose()


def _store_patterns(url: str, data_dir, device: str, n: int, seed: int) -> set[str]:
    store = MemoryStore(StoreConfig(database_url=url, data_dir=str(data_dir), device_id=device))
    store.start()
    rng = np.random.default_rng(seed)
    recs = [synthetic_record(i, rng, dim=8, grid=0, preview_bytes=0, kind='pattern',
                             fidelity='pattern', device_id=device) for i in range(n)]
    store.submit_many(recs)
    assert store.flush()
    store.close()
    return {r.uuid for r in recs}


def test_patterns_another_host_wrote_come_back_once(db_url, tmp_path):
    shared = _shared_url(db_url, tmp_path)
    theirs = _store_patterns(shared, tmp_path / 'assist', 'assist', 12, seed=1)
    _store_patterns(shared, tmp_path / 'assist', 'edge', 3, seed=2)  # its own: not pulled
    edge_url = f'sqlite:///{tmp_path / "edge" / DB_FILENAME}'
    MemoryStore(StoreConfig(database_url=edge_url, data_dir=str(tmp_path / 'edge'))).close()
    local = make_engine(resolve_url(edge_url))
    box = Outbox(local, shared, batch=5, device_id='edge')
    try:
        got = []
        while batch := box.pull_patterns():
            assert all(r.row_id > 0 for r in batch)  # local ids, for the index
            got += batch
        assert {r.uuid for r in got} == theirs and len(got) == len(theirs)
        assert all(r.kind == 'pattern' and r.device_id == 'assist' for r in got)
        # Once: a restarted outbox takes nothing again, and newer ones follow.
        box.close()
        box = Outbox(local, shared, batch=5, device_id='edge')
        assert box.pull_patterns() == []
        # Rows this store already holds (as after `sage memory sync`) are not handed to the
        # index again when the cursor is lost.
        with local.begin() as conn:
            conn.execute(STATE.delete().where(STATE.c.key == box.patterns_key))
        assert box.pull_patterns() == []
        newer = _store_patterns(shared, tmp_path / 'assist', 'assist', 2, seed=3)
        assert {r.uuid for r in box.pull_patterns()} == newer
        with local.connect() as conn:
            uuids = list(conn.execute(select(EXPERIENCES.c.uuid)).scalars())
        assert sorted(uuids) == sorted(theirs | newer)
    finally:
        box.close()
        local.dispose()


def _promoted_copy(root, modality: str = 'vision') -> ModelVersions:
    """A promoted, live version on a host: a copy of the packaged model's files."""
    versions = ModelVersions(root, modality)
    with versions.build() as b:
        for f in PACKAGED_DIR.glob(f'{modality}_*'):
            shutil.copy2(f, b.path / f.name)
        b.info = {'base': PACKAGED, 'decision': 'promoted', 'reason': 'gain 0.12',
                  'day_recon_before': 0.025, 'day_recon_after': 0.022}
    versions.promote(b.name)
    return versions


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != VERSION_FILE}


def test_a_promoted_version_is_shared_once_and_adopted_live_once(db_url, tmp_path):
    shared = make_engine(resolve_url(_shared_url(db_url, tmp_path)))
    edge_url = f'sqlite:///{tmp_path / "edge" / DB_FILENAME}'
    MemoryStore(StoreConfig(database_url=edge_url, data_dir=str(tmp_path / 'edge'))).close()
    MemoryStore(StoreConfig(database_url=_shared_url(db_url, tmp_path),
                            data_dir=str(tmp_path / 'assist'))).close()
    local = make_engine(resolve_url(edge_url))
    try:
        theirs = _promoted_copy(tmp_path / 'assist' / 'models')
        assert share_live(shared, tmp_path / 'assist' / 'models', ['vision', 'audio'],
                          'assist') == ['vision v0001']
        assert share_live(shared, tmp_path / 'assist' / 'models', ['vision', 'audio'],
                          'assist') == []  # once per origin
        mine = ModelVersions(tmp_path / 'edge' / 'models', 'vision')
        adopter = Adopter(local, tmp_path / 'edge' / 'models', ['vision', 'audio'], 'edge', 'x')
        done = adopter.pull(shared)
        assert done.versions == ['vision v0001 (from vision v0001 of assist)'], done
        live = mine.get(mine.live_version())
        assert _files(live.path) == _files(theirs.get('v0001').path)
        assert live.info['origin'] == {'device_id': 'assist', 'modality': 'vision',
                                       'version': 'v0001'}
        assert live.info['origin_info']['day_recon_after'] == 0.022
        assert adopter.pull(shared).versions == []
        # A crash after the version was built, before the cursor moved: found by its origin,
        # not built twice.
        with local.begin() as conn:
            conn.execute(STATE.delete().where(STATE.c.key == ADOPT_KEY_PREFIX + 'x'))
        assert adopter.pull(shared).versions == ['vision v0001 (from vision v0001 of assist)']
        assert [v.name for v in mine.versions()] == ['v0001']
        # An adopted version is not shared back by the edge.
        assert share_live(shared, tmp_path / 'edge' / 'models', ['vision'], 'edge') == []
    finally:
        local.dispose()
        shared.dispose()


def _bad_archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        data = b'not a model'
        info = tarfile.TarInfo('../../escaped.onnx')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_tampered_or_unsafe_archive_is_refused_and_passed(db_url, tmp_path):
    shared = make_engine(resolve_url(_shared_url(db_url, tmp_path)))
    MemoryStore(StoreConfig(database_url=_shared_url(db_url, tmp_path),
                            data_dir=str(tmp_path / 'assist'))).close()
    edge_url = f'sqlite:///{tmp_path / "edge" / DB_FILENAME}'
    MemoryStore(StoreConfig(database_url=edge_url, data_dir=str(tmp_path / 'edge'))).close()
    local = make_engine(resolve_url(edge_url))
    try:
        _promoted_copy(tmp_path / 'assist' / 'models')
        share_live(shared, tmp_path / 'assist' / 'models', ['vision'], 'assist')
        bad = _bad_archive()
        with shared.begin() as conn:
            conn.execute(update(SHARED_MODELS).values(archive=b'x' + b'\0' * 100))
            conn.execute(SHARED_MODELS.insert(), [{
                'device_id': 'assist', 'modality': 'vision', 'version': 'v0002', 'info': '{}',
                'sha256': hashlib.sha256(bad).hexdigest(), 'nbytes': len(bad),
                'created_at': 0.0, 'archive': bad}])
        adopter = Adopter(local, tmp_path / 'edge' / 'models', ['vision'], 'edge', 'x')
        done = adopter.pull(shared)
        assert done.versions == [] and len(done.skipped) == 2, done
        assert 'SHA-256' in done.skipped[0] and 'not a plain file' in done.skipped[1]
        mine = ModelVersions(tmp_path / 'edge' / 'models', 'vision')
        assert mine.versions() == [] and mine.live_version() == PACKAGED
        assert not list((tmp_path / 'edge').rglob('escaped.onnx'))
        assert not list(tmp_path.rglob('escaped.onnx'))
        assert adopter.pull(shared).skipped == []  # passed, not retried forever
    finally:
        local.dispose()
        shared.dispose()
