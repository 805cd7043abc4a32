"""Typed configuration (snarc_config) and the checkpoint derived from the state's fields.

fixtures/snarc_state_v1.npz is a checkpoint written by the hand-kept state_dict of commit
a64edeb (version 1), and snarc_state_v1_next.json what that code scored on the inputs that
follow it; both were made by running this file as a script with that commit's packages
first on PYTHONPATH (`python test_config_and_state.py`).
"""
from dataclasses import FrozenInstanceError, fields, replace
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sage_common.params import resolve
from sage_common.records import ImuRecord, RewardRecord
from sage_snarc import checkpoint, modality_state, snarc_core
from sage_snarc.snarc_config import SnarcConfig, param_names
from sage_snarc.snarc_core import SnarcCore
from sage_snarc.snarc_params import PARAMS, validate
from sage_snarc.state_codec import saved_fields
from sage_snarc.synthetic import SyntheticWorld

FIXTURES = Path(__file__).parent / 'fixtures'
V1_STATE = FIXTURES / 'snarc_state_v1.npz'
V1_NEXT = FIXTURES / 'snarc_state_v1_next.json'
# Small windows keep the fixture small; the same values load it: these parameters, and these
# constants where the core reads them (`small`).
SMALL = {'novelty.window': 16, 'stats.window': 16}
SMALL_CONSTANTS = ((modality_state, 'MIN_COUNT', 4), (modality_state, 'BACKGROUND_WINDOW', 16),
                   (modality_state, 'MAX_TRACES', 8), (snarc_core, 'MAX_PROTOTYPES', 8),
                   (snarc_core, 'EXACT_MAX', 16))
# At a64edeb, which wrote the fixtures, those constants were parameters.
V1_SMALL = {**SMALL, 'stats.min_count': 4, 'arousal.audio.background_window': 16,
            'habituation.max_traces': 8, 'reward.max_prototypes': 8, 'novelty.exact_max': 16}
T0 = 1_700_000_000.0


@pytest.fixture
def small(monkeypatch):
    for module, name, value in SMALL_CONSTANTS:
        monkeypatch.setattr(module, name, value)


def stream(world, start, seconds, rewards=True):
    """Vision, audio with spectral bands (a sound now and then), IMU and rewards."""
    sound = world.direction()
    bands = -60.0 + 2.0 * world.rng.random(16)
    for i in range(int(seconds * 10)):
        t = start + i / 10.0
        loud = i % 23 == 11
        yield world.vision(t, sound if i % 31 == 15 else None, motion=0.01)
        rec = world.audio(t + 0.03, sound if loud else None)
        hop = bands + 0.5 * world.rng.normal(size=16) + (np.linspace(0, 20, 16) if loud else 0)
        feats = {**rec.features, 'hop_db': float(hop.mean()), 'hop_peak_db': float(hop.max()),
                 'voice': 0.6 if i % 41 == 20 else 0.0,
                 **{f'band_{k:02d}': float(x) for k, x in enumerate(hop)}}
        yield replace(rec, features=feats)
        for k in range(20):
            yield world.imu(t + k / 200.0, gyro_z=1.5 if i % 37 == 5 else 0.0)
        if rewards and i % 29 == 14:
            yield RewardRecord(t + 0.05, 1.0)


def run(core, items):
    """Each decision as JSON numbers (floats round-trip exactly)."""
    out = []
    for item in items:
        if isinstance(item, RewardRecord):
            core.add_reward(item)
            continue
        rec = core.score_imu(item) if isinstance(item, ImuRecord) else core.score_latent(item)
        if rec is not None:
            out.append([rec.stamp, rec.modality, rec.surprise, rec.novelty, rec.arousal,
                        rec.reward, rec.conflict, rec.salience, rec.threshold, rec.attend])
    return out


def leaves(obj):
    """(field path, value) of every plain value in a config."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if hasattr(value, '__dataclass_fields__'):
            yield from leaves(value)
        else:
            yield f, value


def test_every_parameter_is_held_by_exactly_one_config_field():
    names = param_names()
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(s.name for s in PARAMS)


def test_the_config_holds_each_value_once_converted_and_cannot_be_changed():
    values = resolve(PARAMS, {'surprise.channels.audio': ' embedding, hop_db,',
                              'conflict.pairs': 'imu>vision:0.7', 'threshold.offset.rest': 0.2,
                              'stats.window': 64, 'habituation.recovery_s': 3}, validate)
    cfg = SnarcConfig.from_values(values)
    assert cfg.surprise.channels_audio == ('embedding', 'hop_db')
    assert cfg.conflict.pairs == (('imu', 'vision', 0.7),)
    assert cfg.threshold.offsets()['REST'] == 0.2
    assert cfg.habituation.recovery_s == 3.0 and type(cfg.habituation.recovery_s) is float
    for f, value in leaves(cfg):
        raw = values[f.metadata['param']]
        if isinstance(raw, (bool, int, float)):
            assert type(value) is type(raw) and value == raw, f.metadata['param']
    with pytest.raises(FrozenInstanceError):
        cfg.stats.window = 8


def test_a_parameter_change_at_run_time_rebuilds_the_config_the_scoring_reads():
    world = SyntheticWorld(21)
    core = SnarcCore.from_params({})
    changed = core.reconfigured({**core.values, 'arousal.vision.motion_ref': 0.1})
    assert core.cfg.arousal.vision.motion_ref == 0.05
    assert changed.cfg.arousal.vision.motion_ref == 0.1
    frame = world.vision(T0, motion=0.1)
    motion = frame.features['motion']
    # saturate(x) = 1 - exp(-x^2)
    assert core.score_latent(frame).arousal == pytest.approx(1.0 - math.exp(-(motion / 0.05) ** 2))
    assert changed.score_latent(frame).arousal == pytest.approx(
        1.0 - math.exp(-(motion / 0.1) ** 2))


def test_the_checkpoint_is_the_state_fields_and_restores_the_same_future(small):
    world = SyntheticWorld(22)
    core = SnarcCore.from_params(SMALL)
    # No rewards: the inputs still eligible for one are not checkpointed (reward.py), and
    # their extinction would move the reward prototypes of the straight run only.
    run(core, stream(world, T0, 12.0, rewards=False))
    core.add_memory('vision', world.direction())
    state = core.state_dict()
    assert set(state) == {'version', *saved_fields(core)}
    audio = state['modalities']['audio']
    assert set(audio) == set(saved_fields(core.modalities['audio']))
    assert 'channels' not in audio and 'recent' not in audio  # configuration, diagnostics
    restored = SnarcCore.from_params(SMALL)
    restored.load_state_dict(checkpoint.loads(checkpoint.dumps(state)))
    later = list(stream(world, T0 + 12.0, 6.0, rewards=False))
    assert run(restored, later) == run(core, later)


def test_a_version_1_checkpoint_loads_and_scores_what_the_old_code_scored(small):
    core = SnarcCore.from_params(SMALL)
    core.load_state_dict(checkpoint.load(V1_STATE), new_stream=True)
    assert core.stats()['vision.memories'] == '1'
    expected = json.loads(V1_NEXT.read_text())
    got = run(core, stream(SyntheticWorld(24), T0 + 20.0, 6.0))
    assert len(got) == len(expected)
    assert [r for r in got if r[1] != 'audio'] == [r for r in expected if r[1] != 'audio']
    # Since the fixtures were written, an audio window where no sound stands out of the room
    # scores no surprise (snarc_core: the room's own texture); its other axes are as they were,
    # and so is the surprise of a window with a sound.
    audio = [(old, new) for old, new in zip(expected, got) if old[1] == 'audio']
    for old, new in audio:
        assert new[:2] == old[:2] and new[3:7] == old[3:7] and new[2] in (old[2], 0.0)
    assert any(new[2] > 0.0 for _, new in audio)


def write_v1_fixtures():
    """Write the fixtures with whichever sage_snarc is importable (see the module docstring)."""
    core = SnarcCore.from_params(V1_SMALL)
    world = SyntheticWorld(23)
    run(core, stream(world, T0, 12.0))
    core.add_memory('vision', world.direction())
    FIXTURES.mkdir(exist_ok=True)
    checkpoint.save(V1_STATE, core.state_dict())
    restored = SnarcCore.from_params(V1_SMALL)
    restored.load_state_dict(checkpoint.load(V1_STATE), new_stream=True)
    V1_NEXT.write_text(json.dumps(run(restored, stream(SyntheticWorld(24), T0 + 20.0, 6.0))))


if __name__ == '__main__':
    write_v1_fixtures()


def test_a_scorer_reconfigured_before_every_input_scores_rewards_as_one_never_reconfigured(
        small):
    # The orchestrator sets threshold.offset.<state> on every change of metabolic state; the
    # inputs still eligible for a reward must stay eligible across it.
    items = list(stream(SyntheticWorld(25), T0, 5.0))
    straight = SnarcCore.from_params(SMALL)
    expected = run(straight, items)
    changed = SnarcCore.from_params(SMALL)
    got = []
    for i, item in enumerate(items):
        if not isinstance(item, ImuRecord):  # before every latent and reward
            changed = changed.reconfigured({**changed.values,
                                            'threshold.offset.dream': 0.1 + 0.01 * (i % 7)})
        got.extend(run(changed, [item]))
    assert any(r[5] > 0.01 for r in expected)  # rewards were learnt and predicted
    assert got == expected
