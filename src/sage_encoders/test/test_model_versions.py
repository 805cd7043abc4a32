"""Versioned models: atomic build, promote, rollback, leftovers and broken folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sage_encoders.model_versions import (format_rows, LIVE_FILE, MEMORY_EMBEDDINGS_FILE,
                                          ModelVersions, PACKAGED, read_memory_embeddings,
                                          VERSION_FILE, VersionError, write_memory_embeddings)


def build(v: ModelVersions, decision: str = 'promoted', base: str = PACKAGED) -> str:
    with v.build() as b:
        (b.path / 'vision_vqvae.json').write_text('{}')
        (b.path / 'vision_codebook.npy').write_bytes(b'x' * 100)
        b.info = {'base': base, 'decision': decision, 'reason': 'test',
                  'data': {'count': 20}, 'validation': {'day_recon_before': 0.2,
                                                        'day_recon_after': 0.1}}
    return b.name


def test_nothing_written_means_the_packaged_model(tmp_path: Path) -> None:
    v = ModelVersions(tmp_path, 'vision', packaged_dir=tmp_path / 'pkg')
    assert v.versions() == [] and v.live_version() == PACKAGED
    assert v.live_path() == tmp_path / 'pkg' and v.next_name() == 'v0001'


def test_a_build_is_a_whole_version_folder_with_its_record(tmp_path: Path) -> None:
    v = ModelVersions(tmp_path, 'vision')
    name = build(v)
    assert name == 'v0001' and v.next_name() == 'v0002'
    info = json.loads((tmp_path / 'vision' / 'v0001' / VERSION_FILE).read_text())
    assert info['version'] == 'v0001' and info['modality'] == 'vision'
    assert info['decision'] == 'promoted' and info['created_at'] > 0
    assert (tmp_path / 'vision' / 'v0001' / 'vision_codebook.npy').stat().st_size == 100
    assert [p.name for p in (tmp_path / 'vision').iterdir() if p.name.startswith('.tmp')] == []
    assert v.live_version() == PACKAGED  # built, not promoted


def test_a_crash_mid_build_leaves_no_version_and_live_unchanged(tmp_path: Path) -> None:
    v = ModelVersions(tmp_path, 'audio')
    first = build(v)
    v.promote(first)
    live_before = (v.dir / LIVE_FILE).read_bytes()
    with pytest.raises(RuntimeError, match='killed'):
        with v.build() as b:
            (b.path / 'audio_vqvae.pt').write_bytes(b'half')
            assert b.path.name.startswith('.tmp-')
            raise RuntimeError('killed mid-build')
    assert [x.name for x in v.versions()] == ['v0001']
    assert sorted(p.name for p in v.dir.iterdir()) == ['.lock', LIVE_FILE, 'v0001']
    assert (v.dir / LIVE_FILE).read_bytes() == live_before
    # A build that never set a decision is no version either.
    with pytest.raises(VersionError):
        with v.build():
            pass
    assert [x.name for x in v.versions()] == ['v0001']


def test_promote_and_rollback_record_the_previous_version(tmp_path: Path) -> None:
    v = ModelVersions(tmp_path, 'vision')
    a, b = build(v), build(v, base='v0001')
    rejected = build(v, decision='rejected', base='v0002')
    assert v.promote(a)['previous'] == PACKAGED
    doc = v.promote(b)
    assert doc == {**doc, 'version': 'v0002', 'previous': 'v0001',
                   'path': str(v.dir / 'v0002')}
    assert v.live_path() == v.dir / 'v0002'
    with pytest.raises(VersionError, match='rejected'):
        v.promote(rejected)
    with pytest.raises(VersionError, match='newer'):
        ModelVersions(tmp_path, 'vision').rollback('v0003')
    back = v.rollback('v0001')
    assert back['version'] == 'v0001' and back['previous'] == 'v0002'
    assert v.rollback(PACKAGED)['previous'] == 'v0001'
    assert v.live_version() == PACKAGED and v.live_path() == v.packaged_dir
    with pytest.raises(VersionError, match='already live'):
        v.rollback(PACKAGED)
    with pytest.raises(VersionError, match='no vision model version v0009'):
        v.promote('v0009')
    rows = v.rows()
    assert [r['version'] for r in rows] == [PACKAGED, 'v0001', 'v0002', 'v0003']
    assert [r['live'] for r in rows] == [True, False, False, False]
    assert rows[1]['inputs'] == 20 and rows[1]['day_recon_after'] == 0.1
    text = format_rows('vision', rows)
    assert 'v0003' in text and 'rejected' in text


def test_leftover_tmp_of_a_dead_run_is_removed_at_the_next_write(tmp_path: Path) -> None:
    v = ModelVersions(tmp_path, 'vision')
    v.dir.mkdir(parents=True)
    dead = v.dir / '.tmp-v0001-999999999'  # no such pid
    dead.mkdir()
    (dead / 'vision_vqvae.pt').write_bytes(b'partial')
    (v.dir / f'.tmp-{LIVE_FILE}-999999999').write_text('{"version": "v0')
    alive = v.dir / f'.tmp-v0001-{os.getppid()}'  # a running process's build stays
    alive.mkdir()
    name = build(v)
    assert name == 'v0001'
    left = sorted(p.name for p in v.dir.iterdir() if p.name.startswith('.tmp-'))
    assert left == [alive.name]


def test_a_broken_version_folder_is_listed_but_never_used(tmp_path: Path) -> None:
    v = ModelVersions(tmp_path, 'audio')
    good = build(v)
    v.promote(good)
    (v.dir / 'v0002').mkdir()  # no version.json
    (v.dir / 'v0003').mkdir()
    (v.dir / 'v0003' / VERSION_FILE).write_text('{not json')
    listed = {x.name: x.broken for x in v.versions()}
    assert listed['v0001'] == '' and 'no version.json' in listed['v0002']
    assert 'unreadable' in listed['v0003']
    assert v.next_name() == 'v0004'  # a broken folder's name is not reused
    with pytest.raises(VersionError, match='broken'):
        v.promote('v0002')
    # live.json naming a folder that broke afterwards: the packaged model is used.
    (v.dir / 'v0001' / VERSION_FILE).unlink()
    assert v.live_path() == v.packaged_dir
    (v.dir / LIVE_FILE).write_text('{torn')
    assert v.live_version() == PACKAGED


def test_memory_embeddings_round_trip_and_a_bad_file_is_an_error(tmp_path: Path) -> None:
    assert read_memory_embeddings(tmp_path) is None  # versions from before the file
    emb = np.arange(12, dtype=np.float64).reshape(3, 4)
    write_memory_embeddings(tmp_path, ['a', 'bb', 'c' * 32], emb)
    got = read_memory_embeddings(tmp_path)
    assert got is not None and list(got.uuids) == ['a', 'bb', 'c' * 32]
    assert got.embeddings.dtype == np.float32 and np.array_equal(got.embeddings, emb)
    with pytest.raises(ValueError):
        write_memory_embeddings(tmp_path, ['a'], emb)
    path = tmp_path / MEMORY_EMBEDDINGS_FILE
    good = path.read_bytes()
    np.savez(path, uuid=np.array(['a', 'b']), embedding=np.zeros((3, 4), np.float32))
    mismatched = path.read_bytes()  # 2 uuids for 3 rows
    torn, altered = good[:len(good) // 2], good.replace(b'<f4', b'|O8', 1)
    for data in (mismatched, torn, altered, b'not a zip', b''):
        path.write_bytes(data)
        with pytest.raises(VersionError, match=MEMORY_EMBEDDINGS_FILE):
            read_memory_embeddings(tmp_path)
