"""SnarcCore behaviour on synthetic streams (no encoders, no ROS)."""
from dataclasses import replace
import math

import numpy as np
import pytest

from sage_common.records import ImuRecord, LatentRecord, RewardRecord, SalienceRecord
from sage_snarc import checkpoint, snarc_core
from sage_snarc.errors import SnarcError
from sage_snarc.snarc_core import SnarcCore
from sage_snarc.snarc_params import PARAMS, validate
from sage_snarc.synthetic import SyntheticWorld
from sage_common.params import resolve
from sage_snarc.threshold import ThresholdController

T0 = 1_700_000_000.0


def calm_vision(core, world, start, seconds, hz=10.0):
    """Score a calm camera stream; returns the records."""
    return [core.score_latent(world.vision(start + i / hz)) for i in range(int(seconds * hz))]


def warm(core, world, seconds=20.0):
    return calm_vision(core, world, T0, seconds)


def test_calm_stream_is_not_attended_and_a_new_object_is():
    world = SyntheticWorld(1)
    core = SnarcCore.from_params({})
    warm(core, world)
    calm = calm_vision(core, world, T0 + 20.0, 40.0)
    assert not any(r.attend for r in calm)
    assert max(r.salience for r in calm) < 0.3
    obj = world.direction()
    first = core.score_latent(world.vision(T0 + 60.0, obj, motion=0.04))
    assert first.attend
    # The code channel's spread is at its floor in a static scene (CODES_FLOOR
    # 0.07): a tenth of the grid new in one place is z 5.6 from it, surprise 0.71.
    assert first.novelty > 0.9 and first.surprise > 0.6
    assert first.salience > 10 * max(r.salience for r in calm)


def test_repeated_stimulus_fades_and_a_changed_one_does_not():
    world = SyntheticWorld(2)
    core = SnarcCore.from_params({})
    warm(core, world)
    obj = world.direction()
    peaks = []
    t = T0 + 20.0
    for _ in range(10):
        peaks.append(core.score_latent(world.vision(t, obj, motion=0.04)).salience)
        calm_vision(core, world, t + 0.1, 5.0)  # the object leaves; the scene is calm again
        t += 5.1
    assert 1.0 - peaks[-1] / peaks[0] >= 0.4
    changed = core.score_latent(world.vision(t, world.direction(), motion=0.04))
    assert changed.salience > 0.9 * peaks[0]
    assert changed.attend


def test_rotation_with_a_still_image_is_a_conflict_and_with_a_moving_image_is_not():
    def run(image_moves: bool) -> float:
        world = SyntheticWorld(3)
        core = SnarcCore.from_params({})
        best = 0.0
        for i in range(int(30 * 200)):
            t = T0 + i / 200.0
            rotating = 25.0 <= t - T0 < 27.0
            core.score_imu(world.imu(t, gyro_z=1.2 if rotating else 0.0))
            if i % 20 == 0:
                rec = core.score_latent(world.vision(t, motion=0.1 if rotating and image_moves
                                                     else 0.001))
                if rotating:
                    best = max(best, rec.conflict)
        return best

    assert run(image_moves=False) > 0.8
    assert run(image_moves=True) < 0.1


def test_dead_modality_disables_its_conflict_terms_and_others_are_still_scored():
    world = SyntheticWorld(4)
    core = SnarcCore.from_params({})
    out = []
    for i in range(int(30 * 200)):
        t = T0 + i / 200.0
        rotating = t - T0 >= 25.0
        rec = core.score_imu(world.imu(t, gyro_z=1.2 if rotating else 0.0))
        if rec is not None:
            out.append(rec)
        # The camera dies at 20 s.
        if i % 20 == 0 and t - T0 < 20.0:
            core.score_latent(world.vision(t))
    late = [r for r in out if r.stamp - T0 > 25.5]
    assert late and all(r.conflict == 0.0 for r in late)
    assert max(r.arousal for r in late) > 0.9  # IMU still scored
    assert core.stats()['vision.alive'] == 'false'


def test_threshold_controller_holds_the_target_attention_rate():
    ctl = ThresholdController(initial=0.45, lo=0.4, hi=0.95, target_rate_hz=0.5, gain=0.01,
                              offsets={})
    rng = np.random.default_rng(0)
    attended = []
    for _ in range(12000):  # 20 min of inputs at 10 Hz; P(salience >= t) = 1 - t^(1/4)
        attend = rng.uniform() ** 4 >= ctl.threshold('vision')
        ctl.update('vision', attend, 0.1)
        attended.append(attend)
    rate = sum(attended[-6000:]) / 600.0
    assert 0.4 <= rate <= 0.6  # the 0.5 Hz target, not 10 Hz * P(salience >= 0.4)
    assert 0.7 < ctl.threshold('vision') < 0.9  # 0.95^4 = 0.81 gives 0.5 Hz
    calm = ThresholdController(initial=0.45, lo=0.4, hi=0.95, target_rate_hz=0.5, gain=0.01,
                               offsets={})
    for _ in range(6000):  # nothing salient: the threshold rests at its floor
        calm.update('vision', False, 0.1)
    assert calm.threshold('vision') == pytest.approx(0.4)


def test_flood_of_changing_inputs_stays_sane():
    world = SyntheticWorld(5)
    core = SnarcCore.from_params({})
    warm(core, world)
    recs = [core.score_latent(world.vision(T0 + 20.0 + i / 10.0, world.direction(),
                                           strength=2.0, motion=0.2)) for i in range(900)]
    assert all(_in_range(r) for r in recs)
    assert recs[0].attend
    # 90 s of frames that all change: one long episode that fades; no 10 Hz attention.
    assert sum(r.attend for r in recs) < 0.1 * len(recs)
    assert min(r.threshold for r in recs) >= 0.4


def test_dream_state_raises_the_threshold_and_focus_lowers_it():
    core = SnarcCore.from_params({})
    wake = core.threshold.threshold('vision')
    core.set_metabolic_state('DREAM')
    assert core.threshold.threshold('vision') == pytest.approx(wake + 0.25)
    core.set_metabolic_state('FOCUS')
    assert core.threshold.threshold('vision') == pytest.approx(wake - 0.05)
    core.set_metabolic_state('NAPPING')  # unknown: ignored and reported
    assert core.threshold.state == 'FOCUS'
    assert core.issues['unknown_state'] == 1


def _in_range(rec: SalienceRecord) -> bool:  # noqa: D103
    vals = [rec.surprise, rec.novelty, rec.arousal, rec.reward, rec.conflict, rec.salience,
            rec.threshold]
    return all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in vals)


def test_bad_inputs_keep_scores_finite_and_in_range_and_are_reported():
    world = SyntheticWorld(6)
    core = SnarcCore.from_params({})
    warm(core, world)
    t = T0 + 20.0
    good = world.vision(t)
    bad = [
        LatentRecord(t + 0.1, 'vision', 1, good.codes, 128,
                     np.full(32, np.nan, np.float32), {'motion': float('inf')}, float('nan')),
        LatentRecord(t + 0.2, 'vision', 2, None, 128, np.zeros(0, np.float32), {}),
        LatentRecord(t + 0.3, 'vision', 3, good.codes, 128, np.full(32, 1e30, np.float32),
                     {'motion': -5.0, 'brightness': 1e9}),
        LatentRecord(t + 0.4, 'vision', 4, good.codes, 128, np.ones(64, np.float32), {}),
        LatentRecord(t + 0.5, 'banana', 5, None, 0, np.ones(8, np.float32), {}),
    ]
    recs = [core.score_latent(r) for r in bad]
    # Constant signals: the same frame 200 times.
    recs += [core.score_latent(LatentRecord(t + 1 + i / 10, 'vision', 10 + i, good.codes, 128,
                                            good.embedding, good.features)) for i in range(200)]
    for sample in (ImuRecord(t, 0, np.array([np.nan, 0, 9.8]), np.zeros(3)),
                   ImuRecord(t, 0, np.zeros(2), np.zeros(3)),
                   ImuRecord(float('inf'), 0, np.zeros(3), np.zeros(3))):
        assert core.score_imu(sample) is None
    core.add_reward(RewardRecord(t, float('nan')))
    core.add_reward(RewardRecord(t, 7.0))
    assert all(_in_range(r) for r in recs)
    # A frozen frame is not news (after the first frames back at the normal dimension).
    assert not any(r.attend for r in recs[10:])
    for key in ('non_finite', 'empty_embedding', 'unknown_modality', 'malformed',
                'reward_range'):
        assert core.issues[key] >= 1, key
    assert core.drain_issues() and core.drain_issues() == []


def test_out_of_order_and_duplicate_stamps_are_reported_and_scored():
    world = SyntheticWorld(7)
    core = SnarcCore.from_params({})
    warm(core, world)
    a = core.score_latent(world.vision(T0 + 30.0))
    b = core.score_latent(world.vision(T0 + 30.0))
    c = core.score_latent(world.vision(T0 + 25.0))
    assert all(_in_range(r) for r in (a, b, c))
    assert c.stamp == T0 + 25.0
    assert core.issues['duplicate_stamp'] == 1 and core.issues['out_of_order'] == 1
    # IMU samples older than the open window are dropped.
    for i in range(30):
        core.score_imu(world.imu(T0 + 30.0 + i / 200.0))
    assert core.score_imu(world.imu(T0 + 29.0)) is None
    assert core.issues['out_of_order'] == 2


def test_burst_of_inputs_with_one_stamp_stays_sane():
    world = SyntheticWorld(8)
    core = SnarcCore.from_params({})
    warm(core, world)
    recs = [core.score_latent(world.vision(T0 + 20.0, world.direction(), strength=2.0,
                                           motion=0.2)) for _ in range(2000)]
    assert all(_in_range(r) for r in recs)
    assert sum(r.attend for r in recs) < 200  # the threshold climbs; no 2000 attends
    assert core.issues['duplicate_stamp'] == 1999


def test_stored_memory_makes_a_stimulus_not_novel():
    world = SyntheticWorld(9)
    obj = world.direction()
    fresh, remembered = (SnarcCore.from_params({}) for _ in range(2))
    for core in (fresh, remembered):
        warm(core, world)
    probe = world.vision(T0 + 21.0, obj, motion=0.04)
    remembered.add_memory('vision', probe.embedding)
    assert fresh.score_latent(probe).novelty > 0.9
    assert remembered.score_latent(probe).novelty < 0.1


def test_memories_count_only_for_inputs_of_the_encoder_model_that_embedded_them():
    world = SyntheticWorld(9)
    obj = world.direction()
    core = SnarcCore.from_params({})
    t = [T0]

    def calm(version: str, seconds: float) -> None:
        for _ in range(int(seconds * 10)):
            t[0] += 0.1
            core.score_latent(replace(world.vision(t[0]), model_version=version))

    def novelty_of_probe(version: str) -> float:
        t[0] += 0.1
        probe = replace(world.vision(t[0], obj, motion=0.04), model_version=version)
        return core.score_latent(probe).novelty

    probe_embedding = world.vision(T0, obj, motion=0.04).embedding
    # Preloaded before any input named its model: the first model named adopts it, next to
    # what the preload already filed under that model.
    assert core.add_memory('vision', probe_embedding)
    assert core.add_memory('vision', world.direction(), 'A:1')
    calm('A:1', 20.0)
    assert core.stats()['vision.memories'] == '2'
    assert novelty_of_probe('A:1') < 0.1
    # Model B (promoted after sleep) embeds the world otherwise: A's memories say nothing
    # about B's inputs (here B's embedding of the probe happens to equal A's memory).
    calm('B:2', 20.0)
    assert novelty_of_probe('B:2') > 0.9
    stats = core.stats()
    assert stats['vision.memories'] == '0' and stats['vision.memories_other_models'] == '2'
    # A memory B embedded counts for B ...
    assert core.add_memory('vision', probe_embedding, 'B:2')
    calm('B:2', 5.0)
    assert novelty_of_probe('B:2') < 0.1
    # ... and a rollback to A finds A's own memories again, through a checkpoint too.
    restored = SnarcCore.from_params({})
    restored.load_state_dict(core.state_dict())
    for c in (core, restored):
        core = c
        calm('A:1', 20.0)
        assert novelty_of_probe('A:1') < 0.1
        assert core.stats()['vision.memories'] == '2'


def test_memories_a_sleep_re_embedded_fill_their_versions_index_once():
    world = SyntheticWorld(9)
    obj = world.direction()
    cores = {'filled': SnarcCore.from_params({}), 'empty': SnarcCore.from_params({})}
    t = [T0]

    def calm(core, version: str, seconds: float) -> None:
        for _ in range(int(seconds * 10)):
            t[0] += 0.1
            core.score_latent(replace(world.vision(t[0]), model_version=version))

    def novelty_of_probe(core, version: str) -> float:
        t[0] += 0.1
        probe = replace(world.vision(t[0], obj, motion=0.04), model_version=version)
        return core.score_latent(probe).novelty

    rng = np.random.default_rng(4)
    # What a sleep wrote for v0002: the probe's embedding among 20 other stored inputs.
    rows = np.vstack([world.vision(T0, obj, motion=0.04).embedding,
                      rng.normal(size=(20, 32))]).astype(np.float32)
    core = cores['filled']
    for c in cores.values():
        calm(c, 'v0001:aaaa', 20.0)
    # Announced before any latent of v0002 came: filed under the bare name, not v0001's.
    assert core.add_model_memories('vision', 'v0002', rows) == 21
    assert core.add_model_memories('vision', 'v0002', rows) == 0  # the latched message again
    assert len(core.memory['vision']['v0002']) == 21
    assert core.stats()['vision.memories'] == '0'  # v0001 compares with none of them
    for c in cores.values():
        calm(c, 'v0002:bbbb', 20.0)
    assert 'v0002' not in core.memory['vision']  # the first model of that name took them
    assert len(core.memory['vision']['v0002:bbbb']) == 21
    assert novelty_of_probe(core, 'v0002:bbbb') < 0.1
    assert novelty_of_probe(cores['empty'], 'v0002:bbbb') > 0.9
    # Once per version, across a checkpoint and a parameter change too.
    restored = SnarcCore.from_params({})
    restored.load_state_dict(core.state_dict())
    for c in (core, restored, core.reconfigured({**core.values, 'threshold.offset.dream': 0.2})):
        assert c.add_model_memories('vision', 'v0002', rows) == 0
        assert len(c.memory['vision']['v0002:bbbb']) == 21
    # Announced while already live: added beside what was stored while it was live.
    calm(core, 'v0003:cccc', 20.0)
    assert core.add_memory('vision', rng.normal(size=32), 'v0003:cccc')
    assert core.add_model_memories('vision', 'v0003', rows) == 21
    assert len(core.memory['vision']['v0003:cccc']) == 22
    assert novelty_of_probe(core, 'v0003:cccc') < 0.1
    # Not an (N, D) array: reported, nothing added, and a good file later still counts.
    assert core.add_model_memories('vision', 'v0004', rows[0]) == 0
    assert core.issues['bad_model_memories'] == 1
    assert core.add_model_memories('vision', 'v0004', rows) == 21


def test_a_checkpoint_from_before_model_versions_loads_its_memories_as_the_current_models():
    world = SyntheticWorld(9)
    obj = world.direction()
    core = SnarcCore.from_params({})
    warm(core, world)
    probe = world.vision(T0 + 21.0, obj, motion=0.04)
    core.add_memory('vision', probe.embedding)
    state = core.state_dict()
    state['memory'] = {m: by_version[''] for m, by_version in state['memory'].items()}
    old = SnarcCore.from_params({})
    old.load_state_dict(state)
    assert old.stats()['vision.memories'] == '1'
    assert old.score_latent(probe).novelty < 0.1


def test_imu_is_scored_per_window_with_its_own_counter():
    world = SyntheticWorld(10)
    core = SnarcCore.from_params({'imu.window_s': 0.05})
    out = [r for r in (core.score_imu(world.imu(T0 + i / 200.0)) for i in range(2000))
           if r is not None]
    assert 195 <= len(out) <= 200  # 10 s at 20 Hz (the last window is still open)
    assert [r.input_seq for r in out] == list(range(len(out)))
    assert all(r.modality == 'imu' for r in out)
    assert all(np.diff([r.stamp for r in out]) > 0)


def _stream(world):
    items = []
    obj = world.direction()
    for i in range(800):
        t = T0 + i / 10.0
        items.append(world.vision(t, obj if i % 97 == 50 else None,
                                  motion=0.04 if i % 97 == 50 else 0.001))
        items.append(world.audio(t + 0.03, world.direction() if i % 131 == 70 else None))
        for k in range(20):
            items.append(world.imu(t + k / 200.0, gyro_z=1.0 if 300 <= i < 310 else 0.0))
        if i % 97 == 52:
            items.append(RewardRecord(t, 1.0))
    return items


def _run(core, items):
    out = []
    for it in items:
        if isinstance(it, LatentRecord):
            out.append(core.score_latent(it))
        elif isinstance(it, ImuRecord):
            rec = core.score_imu(it)
            if rec is not None:
                out.append(rec)
        else:
            core.add_reward(it)
    return out


def test_same_inputs_give_identical_scores():
    items = _stream(SyntheticWorld(11))
    a = _run(SnarcCore.from_params({}), items)
    b = _run(SnarcCore.from_params({}), items)
    assert a == b
    assert sum(r.attend for r in a) > 5


def test_checkpoint_restores_identical_future_scores():
    items = _stream(SyntheticWorld(12))
    half = len(items) // 2
    straight = SnarcCore.from_params({})
    _run(straight, items[:half])
    for i in range(5000):
        straight.add_memory('vision', np.random.default_rng(i).normal(size=32))
    state = checkpoint.loads(checkpoint.dumps(straight.state_dict()))
    restored = SnarcCore.from_params({})
    restored.load_state_dict(state)
    assert _run(restored, items[half:]) == _run(straight, items[half:])


def test_a_runtime_parameter_change_keeps_the_memories_and_their_answers(monkeypatch):
    monkeypatch.setattr(snarc_core, 'EXACT_MAX', 256)
    items = _stream(SyntheticWorld(13))
    half = len(items) // 2
    values = resolve(PARAMS, {})
    straight = SnarcCore.from_params(values)
    _run(straight, items[:half])
    rng = np.random.default_rng(3)
    for _ in range(3000):  # past exact_max: the IVF quantiser is built
        straight.add_memory('vision', rng.normal(size=32))
    changed = straight.reconfigured({**values, 'threshold.offset.dream': 0.2})
    # Moved, not rebuilt from a copy (which took over a second with 60 000 memories).
    assert changed.memory['vision'] is straight.memory['vision']
    probes = rng.normal(size=(50, 32)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    before = [straight.modalities['vision'].novelty.memory.nearest(q) for q in probes]
    assert [changed.modalities['vision'].novelty.memory.nearest(q) for q in probes] == before
    # A runtime nprobe reaches the moved index: scanning every list is the exact answer.
    exact = straight.reconfigured({**values, 'novelty.nprobe': 4096})
    vecs = exact.memory['vision'][''].vectors()
    for q in probes[:10]:
        best = math.sqrt(max(0.0, 2.0 - 2.0 * float(np.max(vecs @ q))))
        assert exact.modalities['vision'].novelty.memory.nearest(q) == pytest.approx(best)


def test_checkpoint_from_other_params_is_refused():
    core = SnarcCore.from_params({})
    state = core.state_dict()
    state['version'] = 99
    with pytest.raises(SnarcError):
        SnarcCore.from_params({}).load_state_dict(state)


def _reward_run(rewarded_phase: bool, seed: int = 13):
    """A and B alternate every 4 s; A is rewarded during training when asked."""
    world = SyntheticWorld(seed)
    core = SnarcCore.from_params({})
    calm_vision(core, world, T0, 20.0)
    sound_a, sound_b = world.direction(), world.direction()
    table = {'baseline': ([], []), 'training': ([], []), 'extinction': ([], [])}
    t = T0 + 20.0
    for phase, n in (('baseline', 5), ('training', 12), ('extinction', 15)):
        for _ in range(n):
            for idx, sound in ((0, sound_a), (1, sound_b)):
                rec = core.score_latent(world.audio(t, sound, rms_db=-25.0, onset=0.8))
                table[phase][idx].append(rec)
                if phase == 'training' and idx == 0 and rewarded_phase:
                    core.add_reward(RewardRecord(t + 0.8, 1.0))
                for k in range(1, 16):
                    core.score_latent(world.audio(t + k * 0.256))
                t += 4.0
    return table, core


def test_reward_paired_stimulus_gains_salience_and_loses_it_when_rewards_stop():
    table, _ = _reward_run(True)

    def gap(phase, last=None):
        a, b = table[phase]
        a, b = a[-last:] if last else a, b[-last:] if last else b
        return float(np.mean([r.salience for r in a]) - np.mean([r.salience for r in b]))

    assert abs(gap('baseline')) < 0.1
    assert gap('training', last=6) > 0.15
    assert np.mean([r.reward for r in table['training'][0][-6:]]) > 0.5
    assert np.mean([r.reward for r in table['training'][1]]) < 0.05
    assert gap('extinction', last=5) < 0.5 * gap('training', last=6)
    assert np.mean([r.reward for r in table['extinction'][0][-5:]]) < 0.25


def test_weights_move_towards_rewarded_axes_and_relax_back():
    world = SyntheticWorld(14)
    core = SnarcCore.from_params({'weights.learning_rate': 0.2})
    base = core.weights.base.copy()
    calm_vision(core, world, T0, 20.0)
    for k in range(40):  # audio statistics warm up
        core.score_latent(world.audio(T0 + 10.0 + k * 0.256))
    sound = world.direction()
    t = T0 + 21.0
    credited = []
    for _ in range(10):
        rec = core.score_latent(world.audio(t, sound, rms_db=-25.0, onset=0.8))
        credited.append(np.array([rec.surprise, rec.novelty, rec.arousal, rec.reward,
                                  rec.conflict]))
        core.add_reward(RewardRecord(t + 0.5, 1.0))
        for k in range(1, 16):
            core.score_latent(world.audio(t + k * 0.256))
        t += 4.0
    w = core.weights.current(t)
    high = int(np.argmax(np.mean(credited, axis=0)))
    low = int(np.argmin(np.mean(credited, axis=0)))
    assert w[high] > base[high] + 0.02  # the axis that carried rewarded inputs gained
    assert w[low] < base[low]
    assert w.sum() == pytest.approx(1.0)
    later = core.weights.current(t + 10 * core.weights.decay_s)
    assert np.allclose(later, base, atol=1e-3)


def test_an_axis_the_profile_weighs_zero_stays_off_while_the_others_learn():
    core = SnarcCore.from_params({'weights.conflict': 0.0, 'weights.learning_rate': 0.5})
    w = core.weights
    assert w.base[4] == 0.0 and w.base.sum() == pytest.approx(1.0)
    assert w.base.min() >= 0.0 and sorted(w.base)[1] > 0.0  # the others keep their floor
    w.learn(np.array([0.0, 0.0, 0.0, 0.0, 1.0]), reward=1.0, eligibility=1.0, now=T0)
    assert w.current(T0)[4] == 0.0  # a rewarded conflict does not switch it back on
    on = SnarcCore.from_params({'weights.learning_rate': 0.5}).weights
    on.learn(np.array([0.0, 0.0, 0.0, 0.0, 1.0]), reward=1.0, eligibility=1.0, now=T0)
    assert on.current(T0)[4] > on.base[4]  # weighed by the profile, it gains


def test_params_validation_rejects_inconsistent_values():
    assert validate(resolve(PARAMS, {})) == []
    bad = resolve(PARAMS, {'threshold.min': 0.9, 'threshold.max': 0.5,
                           'threshold.initial': 0.6})
    assert any('threshold.min' in e for e in validate(bad))
    bad = resolve(PARAMS, {'conflict.pairs': 'imu>radar:1.0'})
    assert any('radar' in e for e in validate(bad))
    bad = resolve(PARAMS, {'conflict.lag_s': 1.0, 'conflict.window_s': 0.5})
    assert any('lag' in e for e in validate(bad))
    with pytest.raises(SnarcError):
        SnarcCore.from_params({'weights.surprise': -1.0})


def test_text_is_scored_from_priors_and_a_repeated_sentence_fades():
    rng = np.random.default_rng(15)
    core = SnarcCore.from_params({})

    def sentence(v, t, seq):
        return LatentRecord(t, 'language', seq, None, 0, v.astype(np.float32),
                            {'length': 30.0}, text='...')

    first = rng.normal(size=384)
    recs = [core.score_latent(sentence(first, T0 + 10.0 * i, i)) for i in range(6)]
    other = core.score_latent(sentence(rng.normal(size=384), T0 + 70.0, 6))
    assert recs[0].attend and recs[0].novelty > 0.9
    assert recs[-1].salience < 0.6 * recs[0].salience
    assert other.novelty > 0.6 and other.attend and other.salience > 2 * recs[-1].salience
