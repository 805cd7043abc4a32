"""A short realistic scene through the offline replay with the nano profile, and the bench.

The scene (about 80 s: each stimulus kind once, from real photos and recordings) is replayed
with the profile's own encoders and SNARC, and scored per kind and modality. SNARC scores an
input before refinement, so the plain scene (no budget steps) is encoded without refining: its
decisions file is byte for byte the one with the profile's refinement, in 60 % of the time. The
scene with the robot's own steps keeps refinement on: its budget steps change what refinement
does, which is what must not be attended.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
import json
import subprocess
import sys

import pytest

from sage_bench import salience
from sage_bench.salience import print_table, run_bench, seeds_for
from sage_bench.salience_ablation import ABLATIONS, headline
from sage_common.errors import SageError
from sage_bringup.profile import load_profile
from sage_eval.busy import REPORT_SEEDS as BUSY_REPORT, TUNING_SEEDS as BUSY_TUNING
from sage_eval.realistic import GENERATOR_VERSION, make_realistic_scene, SHORT, TUNING_SEEDS
from sage_eval.salience_score import KIND_AXIS, score_scene
from sage_eval.replay import replay_bag

pytest.importorskip('sage_encoders.audio_core')

SEED = 58  # neither a tuning nor a report seed
# Seeds 58-64 tried: in this one the scorer before issue 14 attended a budget step (it scored
# the refined codes, which move with the ATP SAGE gives), so the regression test below fails
# on it.
SELF_SEED = 61
SHORT_KINDS = {'object_appears/vision', 'lights_change/vision', 'clap/audio',
               'speech_in_silence/audio', 'speech_after_noise/audio', 'shake/imu',
               'turn_still_image/imu'}


UNREFINED = [f'{node}.irp.max_iterations=0' for node in ('vision_encoder', 'audio_encoder')]


def _replayed(bag, seed, cfg, overrides=()):
    """Make a short realistic scene, replay it with the nano profile, score it."""
    labels = make_realistic_scene(bag, seed, 'short', cfg)
    params = {n.name: dict(n.parameters) for n in load_profile('nano', list(overrides)).nodes}
    summary = replay_bag(bag, params, bag.with_suffix('.jsonl'))
    return labels, summary, score_scene(bag.with_suffix('.jsonl'), labels)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    """The plain scene and the one with the robot's own steps, made and replayed at once
    (a replay uses one core)."""
    tmp = tmp_path_factory.mktemp('scenes')
    with ProcessPoolExecutor(max_workers=2) as pool:
        short = pool.submit(_replayed, tmp / 'short', SEED, SHORT, UNREFINED)
        own = pool.submit(_replayed, tmp / 'self', SELF_SEED,
                          replace(SHORT, self_effects=True, self_hold_s=10.0))
        return short.result(), own.result()


@pytest.fixture(scope='module')
def short_scene(scenes):
    print(json.dumps(scenes[0][2]['events'], indent=1))
    return scenes[0]


def test_a_short_realistic_scene_replays_with_the_profile_and_scores_per_kind_and_modality(
        short_scene):
    labels, summary, report = short_scene
    assert summary.problems == {}
    assert 60.0 <= labels.duration_s <= 100.0
    # Every stream was encoded: 15 fps, an audio window per 256 ms hop, IMU windows.
    assert summary.inputs['vision'] == pytest.approx(15 * labels.duration_s, abs=3)
    assert summary.inputs['audio'] == pytest.approx(labels.duration_s / 0.256, abs=6)
    assert summary.inputs['imu'] > labels.duration_s
    assert set(report['by_kind']) == SHORT_KINDS
    for key, row in report['by_kind'].items():
        assert row['n'] == 1, key
    for row in report['events']:
        assert row['axis'] == KIND_AXIS[row['kind']]
        assert row['detected'] == (row['latency_s'] is not None)


# Open (issue 14): in scene 58 the rocket, a cut-out of about 16 px (0.5 % of the image), is
# attended at once but by surprise (1.0), not by novelty (peak 0.11).
OPEN_EVENT = ('object_appears', 'object:rocket')


def _missed(report):
    return [(r['kind'], r['name']) for r in report['events']
            if not (r['detected'] and r['axis_fired'])]


def test_every_other_event_of_a_short_realistic_scene_is_caught_by_its_modality_and_axis(
        short_scene):
    _, _, report = short_scene
    assert OPEN_EVENT in [(r['kind'], r['name']) for r in report['events']]
    assert [e for e in _missed(report) if e != OPEN_EVENT] == []


@pytest.mark.xfail(strict=True, reason='open (issue 14): the rocket of scene 58 (a cut-out of '
                   'about 16 px) fires surprise, not novelty; strict: once novelty catches it, '
                   'this passes and the mark must go')
def test_the_small_cut_out_of_a_short_realistic_scene_is_caught_by_novelty(short_scene):
    _, _, report = short_scene
    assert OPEN_EVENT not in _missed(report)


@pytest.fixture(scope='module')
def self_effect_scene(scenes):
    labels, _, report = scenes[1]
    return labels, report


def test_the_robots_own_camera_rate_and_budget_steps_cause_no_attend(self_effect_scene):
    labels, report = self_effect_scene
    steps = {(e['name'], e['modality']) for e in report['self_effects']}
    assert steps == {('camera_rate:15->5', 'vision'), ('camera_rate:5->15', 'vision'),
                     ('budget:2->6', 'vision'), ('budget:6->2', 'vision'),
                     ('budget:2->6', 'audio'), ('budget:6->2', 'audio')}
    assert [e for e in report['self_effects'] if e['attended']] == []


def test_the_salience_bench_scores_tuning_seeds_and_reuses_its_scenes(tmp_path, capsys,
                                                                      monkeypatch):
    # The bench's plumbing, not its figures: the encoders need not refine (the encoding is most
    # of the time; refinement is on in the self-effect scene above).
    kw = dict(seeds=1, seed_set='tuning', program='short', workers=1, cache=tmp_path / 'c',
              overrides=UNREFINED)
    result = run_bench(**kw, out_dir=tmp_path / 'd')
    assert result['seed_set'] == 'tuning' and result['seeds'] == [TUNING_SEEDS[0]]
    summary = result['summary']
    assert set(summary['by_kind']) == SHORT_KINDS
    for v in summary['by_kind'].values():
        assert v['events'] == 1 and 0.0 <= v['recall']['mean'] <= 1.0
    assert set(summary['false_alarms_per_min']) == {'vision', 'audio', 'imu'}
    bag = tmp_path / 'c' / f'realistic-v{GENERATOR_VERSION}-short-0'
    made = sorted(p.stat().st_mtime_ns for p in bag.iterdir())
    [encoded] = (tmp_path / 'c' / 'encoded').glob('*.pkl')  # what the encoders made of it
    # Again with two of the ablations: the cached encoding serves every variant.
    monkeypatch.setattr(salience, 'ABLATIONS', tuple(a for a in ABLATIONS
                                                     if a.name in ('no arousal', 'no novelty')))
    again = run_bench(**kw, ablate=True, out_dir=tmp_path / 'e')
    assert sorted(p.stat().st_mtime_ns for p in bag.iterdir()) == made  # not regenerated
    assert list((tmp_path / 'c' / 'encoded').glob('*.pkl')) == [encoded]  # nor encoded
    assert again['per_seed'][0]['events'] == result['per_seed'][0]['events']
    rows = again['ablation']
    assert [r['name'] for r in rows] == ['as shipped', 'no novelty', 'no arousal']
    assert rows[0] == {'name': 'as shipped', 'off': '-', 'overrides': [],
                       **headline(result['summary'])}
    # Each variant's overrides reached SNARC: its saliences differ from the profile's.
    shipped = (tmp_path / 'e' / f'{bag.name}.jsonl').read_text()
    for name in ('no_arousal', 'no_novelty'):
        assert (tmp_path / 'e' / name / f'{bag.name}.jsonl').read_text() != shipped
    print_table(again)
    out = capsys.readouterr().out
    assert 'tuning seeds [0]' in out and 'clap/audio' in out and 'false alarms' in out
    assert 'each mechanism switched off' in out and 'no novelty' in out


def test_busy_rooms_have_their_own_tuning_and_report_seeds():
    assert seeds_for('busy', 'report', 10) == list(BUSY_REPORT[:10])
    assert seeds_for('busy', 'tuning', 3) == list(BUSY_TUNING[:3])
    assert not set(BUSY_REPORT) & (set(BUSY_TUNING) | set(TUNING_SEEDS))
    with pytest.raises(SageError, match=f'--seeds must be 1..{len(BUSY_REPORT)}'):
        seeds_for('busy', 'report', len(BUSY_REPORT) + 1)


def _sage(*args):
    return subprocess.run([sys.executable, '-m', 'sage.cli', *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_sage_bench_salience_refuses_bad_seed_counts_sets_and_seconds():
    n = len(TUNING_SEEDS)
    res = _sage('bench', 'salience', '--seeds', str(n + 1), '--seed-set', 'tuning')
    assert res.returncode == 2
    assert f'ERROR: --seeds must be 1..{n} for the tuning set' in res.stderr
    res = _sage('bench', 'salience', '--seed-set', 'holdout')
    assert res.returncode == 2 and "ERROR: unknown seed set 'holdout'" in res.stderr
    res = _sage('bench', 'salience', '--seconds', '5')
    assert res.returncode == 2 and 'takes --seeds, not --seconds' in res.stderr
    # --set reaches the profile the scenes are scored with: a made-up parameter is named.
    res = _sage('bench', 'salience', '--seeds', '1', '--set', 'snarc.threshold.nope=0.3')
    assert res.returncode == 2 and 'threshold.nope' in res.stderr, res.stderr
    res = _sage('bench', 'encoders', '--set', 'snarc.threshold.min=0.3')
    assert res.returncode == 2 and "benchmark 'encoders' takes no overrides" in res.stderr
