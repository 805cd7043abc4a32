"""Encoded inputs kept on disk: a replay that changes only SNARC scores what the encoders made
of the bag before, with the same decisions byte for byte, and anything the encoders depend on
(their parameters, model files) makes a new entry instead of a stale hit."""
import os
import shutil

import pytest

from sage_encoders.model_files import PACKAGED_DIR
from sage_eval import busy, encoded_cache, realistic
from sage_eval.encoded_cache import cached_inputs, entry_key
from sage_eval.inputs import REORDER_S
from sage_eval.replay import replay_bag
from sage_eval.scenario import make_scenario

pytest.importorskip('sage_encoders.vision_core')

# Refinement off keeps it short (what is cached does not depend on it).
ENCODERS = {'vision_encoder': {'irp.max_iterations': 0},
            'audio_encoder': {'irp.max_iterations': 0}}


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('cache') / 'scene'
    # 12 s (4 s after the warm-up, no repeat block): the bag is encoded eight times below, and
    # what is kept, hit or missed does not depend on what happens in it.
    make_scenario(path, seed=7, duration_s=12.0, repeats=0, camera_hz=5.0)
    return path


def _entries(folder):
    return sorted(folder.glob('*.pkl')) if folder.is_dir() else []


def _no_encoding(monkeypatch):
    def refuse(*_args, **_kw):
        raise AssertionError('the bag was encoded again')
    monkeypatch.setattr('sage_eval.inputs.Encoders.records', refuse)


def test_a_second_replay_scores_the_kept_inputs_with_the_same_decisions(
        bag, tmp_path, monkeypatch):
    cache = tmp_path / 'enc'
    plain = replay_bag(bag, ENCODERS, tmp_path / 'plain.jsonl')
    first = replay_bag(bag, ENCODERS, tmp_path / 'first.jsonl', cache=cache)
    assert len(_entries(cache)) == 1
    _no_encoding(monkeypatch)
    again = replay_bag(bag, ENCODERS, tmp_path / 'again.jsonl', cache=cache)
    data = (tmp_path / 'plain.jsonl').read_bytes()
    assert data and data == (tmp_path / 'first.jsonl').read_bytes() \
        == (tmp_path / 'again.jsonl').read_bytes()
    assert plain.inputs == first.inputs == again.inputs
    assert set(plain.inputs) == {'vision', 'audio', 'imu'}
    assert plain.problems == again.problems == {}


def test_snarc_changes_hit_and_encoder_changes_miss(bag, tmp_path, monkeypatch):
    cache = tmp_path / 'enc'
    replay_bag(bag, ENCODERS, tmp_path / 'a.jsonl', cache=cache)
    blind = {**ENCODERS, 'snarc': {'weights.surprise': 0.0, 'weights.arousal': 0.0}}
    replay_bag(bag, blind, tmp_path / 'plain_blind.jsonl')
    with monkeypatch.context() as m:
        _no_encoding(m)
        replay_bag(bag, blind, tmp_path / 'blind.jsonl', cache=cache)
    assert (tmp_path / 'blind.jsonl').read_bytes() == \
        (tmp_path / 'plain_blind.jsonl').read_bytes() != (tmp_path / 'a.jsonl').read_bytes()
    assert len(_entries(cache)) == 1
    other = {**ENCODERS, 'vision_encoder': {'irp.max_iterations': 0, 'exposure.target': 0.0}}
    replay_bag(bag, other, tmp_path / 'b.jsonl', cache=cache)
    assert len(_entries(cache)) == 2


def test_a_changed_model_file_changes_the_key(bag, tmp_path):
    models = tmp_path / 'models'
    models.mkdir()
    for path in PACKAGED_DIR.glob('vision_*'):
        shutil.copy2(path, models / path.name)
    params = {'vision_encoder': {'model_dir': str(models)}}
    key = entry_key(bag, params, REORDER_S)
    assert entry_key(bag, params, REORDER_S) == key
    codebook = models / 'vision_codebook.npy'
    st = codebook.stat()
    os.utime(codebook, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a retrained copy
    assert entry_key(bag, params, REORDER_S) != key
    assert entry_key(bag, params, REORDER_S + 0.1) != entry_key(bag, params, REORDER_S)


def test_publishing_before_refinement_keeps_the_key_and_a_core_parameter_changes_it(bag):
    # irp.publish_initial only adds a ROS topic: the cores encode the same, so no re-encode
    base = {'vision_encoder': {}, 'audio_encoder': {}}
    key = entry_key(bag, base, REORDER_S)
    early = {n: {'irp.publish_initial': True} for n in base}
    assert entry_key(bag, early, REORDER_S) == key
    assert entry_key(bag, {**base, 'vision_encoder': {'irp.k': 4}}, REORDER_S) != key


def test_a_broken_entry_is_encoded_again_and_a_partial_read_writes_nothing(bag, tmp_path):
    cache = tmp_path / 'enc'
    items = cached_inputs(bag, ENCODERS, cache, reorder_s=REORDER_S)
    assert next(items) is not None
    items.close()  # the consumer stopped early: no entry for a partial read
    assert _entries(cache) == []
    replay_bag(bag, ENCODERS, tmp_path / 'a.jsonl', cache=cache)
    [entry] = _entries(cache)
    entry.write_bytes(entry.read_bytes()[:1000])  # cut short (a full disk, say)
    replay_bag(bag, ENCODERS, tmp_path / 'b.jsonl', cache=cache)
    assert (tmp_path / 'a.jsonl').read_bytes() == (tmp_path / 'b.jsonl').read_bytes()
    assert entry.stat().st_size > 1000  # written whole again


def test_only_the_newest_entries_are_kept(bag, tmp_path, monkeypatch):
    cache = tmp_path / 'enc'
    cache.mkdir()
    for k in range(3):
        old = cache / f'old{k}.pkl'
        old.write_bytes(b'x')
        os.utime(old, ns=(10**18 + k, 10**18 + k))
    monkeypatch.setattr(encoded_cache, 'KEEP', 2)
    replay_bag(bag, ENCODERS, tmp_path / 'a.jsonl', cache=cache)
    assert [p.name for p in _entries(cache) if p.name.startswith('old')] == ['old2.pkl']
    assert len(_entries(cache)) == 2


def test_every_seed_set_the_salience_bench_replays_stays_encoded():
    """Alternating busy and realistic runs must not evict each other's scenes."""
    scenes = sum(len(seeds) for family in (busy, realistic)
                 for seeds in family.SEED_SETS.values())
    assert encoded_cache.KEEP >= scenes
