"""Trust persistence: atomic JSON files behind a small store interface."""
from __future__ import annotations

import json

import pytest

from sage_orchestrator.errors import PersistError
from sage_orchestrator.persist import JsonFileStore, open_store


def test_saved_state_loads_back_and_leaves_no_temporary_files(tmp_path):
    store = JsonFileStore(tmp_path / 'state')
    assert store.load('orchestrator') is None
    store.save('orchestrator', {'trust': {'a': 0.7}})
    store.save('orchestrator', {'trust': {'a': 0.8}})
    assert store.load('orchestrator') == {'trust': {'a': 0.8}}
    assert [p.name for p in (tmp_path / 'state').iterdir()] == ['orchestrator.json']


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    store = JsonFileStore(tmp_path)
    store.save('k', {'v': 1})
    with pytest.raises(PersistError):
        store.save('k', {'v': float('nan')})
    assert store.load('k') == {'v': 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['k.json']


def test_corrupt_files_and_bad_keys_raise_persist_errors(tmp_path):
    (tmp_path / 'k.json').write_text('{"trust": ')
    with pytest.raises(PersistError, match='not valid JSON'):
        JsonFileStore(tmp_path).load('k')
    (tmp_path / 'k.json').write_text(json.dumps([1, 2]))
    with pytest.raises(PersistError, match='JSON object'):
        JsonFileStore(tmp_path).load('k')
    with pytest.raises(PersistError):
        JsonFileStore(tmp_path).save('../escape', {})


def test_an_unwritable_directory_raises_a_persist_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(PersistError):
        JsonFileStore(blocker / 'state').save('k', {})
    assert open_store('') is None
