"""SNARC on labelled scenarios with seeds the parameters were not tuned on (slow: ~4 min).

Must show: event recall >= 0.9, at most 1 false alarm per calm minute, a habituation drop of
at least 40 % over ten repeats with the changed stimulus still detected, and a reward-paired
kind of sound gaining salience over an unpaired one, then losing the gain when rewards stop.
"""
import json

import pytest

from sage_snarc.replay import replay_bag
from sage_snarc.scenario import make_scenario, score_decisions

pytest.importorskip('sage_encoders.audio_core')

ENCODERS = {'vision_encoder': {'irp.max_iterations': 0},
            'audio_encoder': {'irp.max_iterations': 0}}
# Tuning used seeds 1-4, 6 (standard) and 5, 8 (reward); 21-23, 31-33 and 41-43 were looked
# at by earlier versions of this test. These are fresh.
STANDARD_SEEDS = (61, 62)
REWARD_SEED = 63


def _run(tmp, seed, program):
    bag = tmp / f'{program}{seed}'
    labels = make_scenario(bag, seed=seed, program=program)
    out = tmp / f'{program}{seed}.jsonl'
    replay_bag(bag, ENCODERS, out)
    report = score_decisions(out, labels)
    print(json.dumps({k: v for k, v in report.items() if k != 'alarms'}, indent=1))
    return report


@pytest.fixture(scope='module')
def standard_reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('scenarios')
    return [_run(tmp, seed, 'standard') for seed in STANDARD_SEEDS]


@pytest.fixture(scope='module')
def reward_report(tmp_path_factory):
    return _run(tmp_path_factory.mktemp('reward'), REWARD_SEED, 'reward')


def test_events_are_recalled_without_false_alarms_in_calm_periods(standard_reports):
    targets = sum(r['targets'] for r in standard_reports)
    hits = sum(r['recall'] * r['targets'] for r in standard_reports)
    calm_min = sum(r['calm_minutes'] for r in standard_reports)
    alarms = sum(r['false_alarms'] for r in standard_reports)
    assert targets >= 20
    assert hits / targets >= 0.9, [r['missed'] for r in standard_reports]
    assert alarms / calm_min <= 1.0, [r['alarms'] for r in standard_reports]


def test_ten_repeats_lose_at_least_40_percent_and_a_changed_sound_does_not(standard_reports):
    for report in standard_reports:
        hab = report['habituation']['repeat0']
        assert report['habituation_drop'] >= 0.4, hab['peaks']
        assert hab['changed_detected']
        assert hab['changed_peak'] > hab['peaks'][-1] + 0.1


def test_rewarded_kind_gains_salience_and_loses_the_gain_when_rewards_stop(reward_report):
    table = reward_report['reward']
    training, extinction = table['training'], table['extinction']
    assert training['reward_a_reward_axis'] > 2 * training['reward_b_reward_axis']
    assert training['gain_over_baseline_late'] > 0.05
    assert extinction['reward_a_reward_axis'] < 0.5 * training['reward_a_reward_axis']
    assert extinction['gain_over_baseline_late'] < training['gain_over_baseline_late'] - 0.03
