"""SNARC on the synthetic labelled scenes, run as the robot runs it (about 40 s).

What keeps this from passing trivially: the encoders run with the nano profile's own refinement
(not turned off), an event counts only when an input of its OWN modality is attended in its
window (`sage_eval.salience_score`; attending anything anywhere scored 23-31 % recall at random
times), the axis that should catch each kind must fire, and the detections must not all be
saturated surprise = novelty = 1. (Here, not in sage_snarc: it needs the profile loader and the
evaluation scorer, which depend on sage_snarc.)

The camera runs slower than the scenario's default 10 Hz: most of a replay is refining frames.
At 5 Hz the standard seeds score as at 10 Hz (every event recalled by its modality, the same
axes, habituation drops 0.60 and 0.48, changed-sound peaks 0.735 and 0.715, no false alarm;
seed 61 saturates 10 detections instead of 9); the reward scene is audio only, and at 2 Hz
its whole reward table is the one at 10 Hz. 65 + 65 + 90 s of encoding became 20 + 20 + 13.
"""
from concurrent.futures import ProcessPoolExecutor
import json

import numpy as np
import pytest

from sage_bringup.profile import load_profile
from sage_eval.salience_score import score_scene
from sage_eval.replay import replay_bag
from sage_eval.scenario import make_scenario, score_decisions

pytest.importorskip('sage_encoders.audio_core')

# Tuning used seeds 1-4, 6 (standard) and 5, 8 (reward); 21-23, 31-33 and 41-43 were looked
# at by earlier versions of this test.
STANDARD_SEEDS = (61, 62)
REWARD_SEED = 63
CAMERA_HZ = {'standard': 5.0, 'reward': 2.0}


def _params():
    params = {n.name: dict(n.parameters) for n in load_profile('nano').nodes}
    for node in ('vision_encoder', 'audio_encoder'):
        assert params[node]['irp.max_iterations'] > 0, f'{node}: the profile refines'
    return params


def _run(tmp, seed, program):
    bag = tmp / f'{program}{seed}'
    labels = make_scenario(bag, seed=seed, program=program, camera_hz=CAMERA_HZ[program])
    out = tmp / f'{program}{seed}.jsonl'
    replay_bag(bag, _params(), out)
    report = score_decisions(out, labels)
    scene = score_scene(out, labels)
    print(json.dumps({'by_kind': scene['by_kind'], 'false_alarms': scene['false_alarms'],
                      'missed': [r for r in scene['events'] if not r['detected']]}, indent=1))
    return report, scene


@pytest.fixture(scope='module')
def all_reports(tmp_path_factory):
    """The three scenes replayed two at a time (a replay uses one core), longest first."""
    tmp = tmp_path_factory.mktemp('scenarios')
    runs = [(REWARD_SEED, 'reward'), *((seed, 'standard') for seed in STANDARD_SEEDS)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = [pool.submit(_run, tmp, seed, program) for seed, program in runs]
        return {run: f.result() for run, f in zip(runs, done)}


@pytest.fixture(scope='module')
def standard_reports(all_reports):
    return [all_reports[(seed, 'standard')] for seed in STANDARD_SEEDS]


@pytest.fixture(scope='module')
def reward_report(all_reports):
    return all_reports[(REWARD_SEED, 'reward')][0]


def test_events_are_recalled_by_their_own_modality_without_false_alarms(standard_reports):
    rows = [r for _, scene in standard_reports for r in scene['events']]
    assert len(rows) >= 20
    assert {r['modality'] for r in rows} == {'vision', 'audio', 'imu'}
    hits = sum(r['detected'] for r in rows)
    assert hits / len(rows) >= 0.9, [r for r in rows if not r['detected']]
    for modality in ('vision', 'audio', 'imu'):
        mine = [r for r in rows if r['modality'] == modality]
        assert sum(r['detected'] for r in mine) / len(mine) >= 0.8, modality
    calm_min = sum(scene['calm_minutes'] for _, scene in standard_reports)
    alarms = sum(sum(scene['false_alarms'].values()) for _, scene in standard_reports)
    assert alarms / calm_min <= 1.0, [scene['alarms'] for _, scene in standard_reports]


def test_the_axis_that_should_catch_each_kind_fires(standard_reports):
    rows = [r for _, scene in standard_reports for r in scene['events'] if r['detected']]
    assert sum(r['axis_fired'] for r in rows) / len(rows) >= 0.8, \
        [(r['kind'], r['fired']) for r in rows if not r['axis_fired']]


@pytest.mark.xfail(strict=True, reason='open (issue 14): the synthetic vision events and every '
                   'IMU event still saturate surprise and novelty together (10 of 11 detections '
                   'in seed 61, 6 of 11 in 62); strict: once they do not, this passes and the '
                   'mark must go')
def test_not_every_detection_is_a_saturated_surprise_and_novelty(standard_reports):
    rows = [r for _, scene in standard_reports for r in scene['events'] if r['detected']]
    saturated = [r for r in rows if r['peaks']['surprise'] >= 0.99
                 and r['peaks']['novelty'] >= 0.99]
    assert len(saturated) <= len(rows) / 2, [(r['kind'], r['name']) for r in saturated]


def test_ten_repeats_lose_at_least_40_percent_with_the_profiles_refinement(standard_reports):
    for report, scene in standard_reports:
        assert scene['habituation_drop'] >= 0.4, report['habituation']['repeat0']['peaks']


def test_a_changed_sound_after_the_repeats_is_caught_by_audio_above_the_last_repeat(
        standard_reports):
    for report, scene in standard_reports:
        hab = report['habituation']['repeat0']
        changed = [r for r in scene['events'] if r['kind'] == 'changed']
        assert changed and changed[0]['detected']  # by audio itself
        # Above the habituated level: the median of the last three repeats. One repeat whose
        # onset falls at another phase of the audio hop can escape its trace (seed 61's ninth
        # at match_dist 0.45, seed 62's tenth at 0.35: 0.62-0.65 against 0.29 for the rest),
        # so no single repeat is the level.
        assert hab['changed_peak'] > float(np.median(hab['peaks'][-3:])) + 0.1, hab


def test_rewarded_kind_gains_salience_and_loses_the_gain_when_rewards_stop(reward_report):
    table = reward_report['reward']
    training, extinction = table['training'], table['extinction']
    assert training['reward_a_reward_axis'] > 2 * training['reward_b_reward_axis']
    assert training['gain_over_baseline_late'] > 0.05
    assert extinction['reward_a_reward_axis'] < 0.5 * training['reward_a_reward_axis']
    assert extinction['gain_over_baseline_late'] < training['gain_over_baseline_late'] - 0.03
