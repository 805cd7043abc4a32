"""`sage scenario score` refuses decisions that were not made from the scene it is given.

Real scenario bags, real offline replays, the real `sage` command: a decisions file from another
bag (another seed with the same timing, or another length) must end with exit code 2 and one
ERROR line, never with a recall figure.
"""
import json
import shutil
import subprocess
import sys

import pytest

from sage_eval.provenance import check_source, sidecar_path
from sage_eval.replay import replay_bag
from sage_eval.scenario import make_scenario

pytest.importorskip('sage_encoders.vision_core')

ENCODERS = {'vision_encoder': {'irp.max_iterations': 0},
            'audio_encoder': {'irp.max_iterations': 0}}


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    """Bags a (seed 7) and b (seed 8) with the same timing, long (seed 7, twice as long);
    a and long replayed."""
    tmp = tmp_path_factory.mktemp('source')
    bags = {}
    for name, seed, duration in (('a', 7, 30.0), ('b', 8, 30.0), ('long', 7, 60.0)):
        bags[name] = tmp / name
        make_scenario(bags[name], seed=seed, duration_s=duration, repeats=2, camera_hz=5.0)
    for name in ('a', 'long'):
        replay_bag(bags[name], ENCODERS, tmp / f'{name}.jsonl')
    return tmp, bags


def _score(decisions, bag):
    return subprocess.run([sys.executable, '-m', 'sage.cli', 'scenario', 'score',
                           str(decisions), str(bag)], capture_output=True, text=True,
                          timeout=120)


def _without_sidecar(tmp, name):
    """A copy of a decisions file with no source record beside it (an older replay's file)."""
    copy = tmp / f'bare-{name}.jsonl'
    shutil.copyfile(tmp / f'{name}.jsonl', copy)
    assert not sidecar_path(copy).exists()
    return copy


def test_decisions_are_scored_against_the_bag_they_were_replayed_from(scenes):
    tmp, bags = scenes
    proc = _score(tmp / 'a.jsonl', bags['a'])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report['source'] == 'verified'
    assert report['targets'] > 0 and 0.0 <= report['recall'] <= 1.0
    assert 'WARNING' not in proc.stderr


def test_decisions_from_another_seed_with_the_same_timing_exit_2(scenes):
    tmp, bags = scenes
    proc = _score(tmp / 'a.jsonl', bags['b'])
    assert proc.returncode == 2
    assert proc.stderr.startswith('ERROR: ')
    assert f'was replayed from {bags["a"]}' in proc.stderr
    assert f'not from {bags["b"]}' in proc.stderr
    assert 'recall' not in proc.stdout


def test_decisions_stamped_past_the_scene_exit_2_without_a_source_record(scenes):
    tmp, bags = scenes
    proc = _score(_without_sidecar(tmp, 'long'), bags['a'])
    assert proc.returncode == 2
    assert 'stamped outside the scene' in proc.stderr
    assert 'recall' not in proc.stdout


def test_decisions_that_end_before_the_scene_s_events_exit_2(scenes):
    tmp, bags = scenes
    proc = _score(_without_sidecar(tmp, 'a'), bags['long'])
    assert proc.returncode == 2
    assert 'another or a cut bag' in proc.stderr
    assert 'recall' not in proc.stdout


def test_a_file_without_source_record_is_scored_with_a_warning_when_its_stamps_fit(scenes):
    tmp, bags = scenes
    proc = _score(_without_sidecar(tmp, 'a'), bags['a'])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['source'] == 'no sidecar'
    assert proc.stderr.startswith('WARNING: ')


def test_a_source_record_of_an_older_replay_proves_nothing(scenes):
    tmp, bags = scenes
    edited = tmp / 'edited.jsonl'
    lines = (tmp / 'a.jsonl').read_text().splitlines(keepends=True)
    edited.write_text(''.join(lines[:-1]))
    shutil.copyfile(sidecar_path(tmp / 'a.jsonl'), sidecar_path(edited))
    assert check_source(edited, bags['a']).verdict == 'stale sidecar'
    assert check_source(tmp / 'a.jsonl', bags['a']).verdict == 'verified'
