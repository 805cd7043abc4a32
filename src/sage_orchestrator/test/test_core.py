"""The orchestrator core through its tick.

Allocation through ticks, trust learning with real plugins, restart, memory-pressure
adaptation from recorded /proc files, and bad input that never stops a tick.
"""
from __future__ import annotations

from dataclasses import replace
import math
import shutil

import numpy as np
import pytest

from sage_common.records import LatentRecord, RewardRecord, SalienceRecord
from sage_orchestrator.effects import EffectsConfig
from sage_orchestrator.errors import BadInputError
from sage_orchestrator.irp import PluginReport
from sage_orchestrator.metabolic import State
from sage_orchestrator.orchestrator_core import (STATE_KEY, AtpConfig, OrchestratorCore,
                                                 PluginSpec)
from sage_orchestrator.persist import JsonFileStore
from sage_orchestrator.plugins import QuadraticDenoise, RefineRunner, RefineSettings
from sage_orchestrator.pressure import PressurePaths, read_sample
from sage_orchestrator.sim import ENCODERS, STATES, SimGraph, scenario_config


def latent(modality: str, e0: float = 1.0, ef: float = 0.5, halt: str = 'converged',
           atp: float = 2.0, iterations: int = 2) -> LatentRecord:
    return LatentRecord(stamp=0.0, modality=modality, input_seq=0, codes=None,
                        codebook_size=0, embedding=np.zeros(4, np.float32),
                        iterations=iterations, energy_initial=e0, energy_final=ef,
                        converged=halt == 'converged', halt_reason=halt, atp_spent=atp)


def salience(t: float, modality: str, value: float) -> SalienceRecord:
    return SalienceRecord(t, modality, 0, 0, 0, 0, 0, 0, value, 0.5, value >= 0.5)


def by_plugin(res) -> dict:
    return {a.plugin: a for a in res.allocations}


def test_shares_follow_trust_and_salience_through_the_tick():
    core = OrchestratorCore(scenario_config())
    core.trust.values.update(vision_encoder=0.9, audio_encoder=0.3, language_encoder=0.3)
    first = by_plugin(core.tick(0.0))
    assert first['vision_encoder'].share > first['audio_encoder'].share
    assert first['audio_encoder'].share == pytest.approx(first['language_encoder'].share)
    core.on_salience(salience(0.05, 'audio', 0.9), 0.05)
    second = by_plugin(core.tick(0.1))
    assert second['audio_encoder'].share > second['language_encoder'].share
    assert second['audio_encoder'].salience == pytest.approx(0.9 * 0.5 ** (0.05 / 0.5))
    for a in second.values():
        assert a.share >= 0.05
    assert sum(a.atp for a in second.values()) == pytest.approx(10.0)


def test_unused_atp_from_an_early_halt_is_reallocated_next_tick():
    core = OrchestratorCore(scenario_config(atp=AtpConfig(10.0, 1000.0, 0.0)))
    first = by_plugin(core.tick(0.0))
    vision_atp = first['vision_encoder'].atp
    core.on_latent(latent('vision', atp=1.0, halt='converged'), 0.05)
    core.on_latent(latent('audio', atp=first['audio_encoder'].atp, halt='budget'), 0.05)
    second = by_plugin(core.tick(0.1))
    returned = vision_atp - 1.0
    assert second['audio_encoder'].atp == pytest.approx(
        second['audio_encoder'].share * 10.0 + returned)
    assert second['vision_encoder'].atp == pytest.approx(second['vision_encoder'].share * 10.0)
    assert second['audio_encoder'].atp_used == pytest.approx(first['audio_encoder'].atp)
    # Only what was spent left the reservoir (no recharge in this config).
    assert core.reservoir == pytest.approx(1000.0 - 1.0 - first['audio_encoder'].atp)


def noisy(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(np.arange(64) < 32, -1.0, 1.0) + 0.9 * rng.standard_normal(64)


def trust_world(**kw):
    settings = RefineSettings(eps=1e-3, k=2, max_iters=12)
    good = RefineRunner('good', lambda y: QuadraticDenoise(y, lr=0.15), settings)
    bad = RefineRunner('bad', lambda y: QuadraticDenoise(y, lr=0.5), settings)
    specs = (PluginSpec('good', '', 'inprocess'), PluginSpec('bad', '', 'inprocess'),
             PluginSpec('dead', 'vision', 'stream'))
    cfg = scenario_config(plugins=specs, startup_grace_s=0.0, report_timeout_s=2.0,
                          effects=EffectsConfig(states=STATES), **kw)
    return OrchestratorCore(cfg, {'good': good, 'bad': bad}), good, bad


def test_trust_is_learned_from_real_plugins_and_survives_a_restart(tmp_path):
    core, good, bad = trust_world()
    seed = iter(range(10**6))

    def feed(t: float) -> None:
        good.submit(noisy(next(seed)))
        bad.submit(noisy(next(seed)))
        core.on_salience(salience(t, 'vision', 0.35), t)  # stay awake

    g = SimGraph(core, t0=0.0)
    start = by_plugin(g.step(feed))
    assert start['good'].atp == pytest.approx(start['bad'].atp)
    end = by_plugin(g.run(20.0, feed))
    trust = core.trust.values
    assert trust['good'] > 0.8
    assert trust['bad'] < 0.1 and trust['dead'] < 0.1
    assert end['good'].atp > 0.8 * 10.0 > start['good'].atp
    # The three share one salience, so the weights are the trusts the tick allocated with.
    total = sum(a.trust for a in end.values())
    for name in ('good', 'bad', 'dead'):
        assert end[name].share == pytest.approx(0.05 + 0.85 * end[name].trust / total)
    assert end['bad'].share < 0.11 and end['dead'].share < 0.11
    # The minimum share still buys the distrusted plugin a refinement step now and then.
    assert core.trust.updates['bad'] > 100
    assert core.last_outcome['good'].score > 0.9 and core.last_outcome['bad'].score == 0.0

    store = JsonFileStore(tmp_path / 'state')
    store.save(STATE_KEY, core.state_dict())
    again, _, _ = trust_world()
    assert again.load_state_dict(store.load(STATE_KEY)) == []
    assert again.trust.values == pytest.approx(trust)
    restarted = by_plugin(again.tick(100.0))
    assert restarted['good'].share == pytest.approx(end['good'].share, abs=0.02)


def test_a_plugin_whose_energy_turns_nan_loses_trust():
    core = OrchestratorCore(scenario_config())
    core.tick(0.0)
    for i in range(10):
        outcome = core.on_latent(latent('vision', ef=math.nan, halt='diverged'), 0.05 + i)
        assert outcome.kind == 'diverged'
    assert core.trust.values['vision_encoder'] < 0.2
    assert any('non-finite' in p for p in core.tick(11.0).problems)


def test_bad_input_is_rejected_and_the_tick_goes_on():
    core = OrchestratorCore(scenario_config(startup_grace_s=0.0, report_timeout_s=1.0))
    core.tick(0.0)
    with pytest.raises(BadInputError):
        core.on_salience(salience(0.1, 'vision', math.nan), 0.1)
    with pytest.raises(BadInputError):
        core.on_salience(salience(0.1, 'smell', 0.5), 0.1)
    with pytest.raises(BadInputError, match='invalid report'):
        core.on_latent(latent('audio', e0=-2.0, ef=-3.0), 0.1)
    assert core.trust.values['audio_encoder'] == 0.5
    with pytest.raises(BadInputError, match='no plugin'):
        core.on_latent(latent('imu'), 0.1)
    with pytest.raises(BadInputError, match='unknown plugin'):
        core.on_report(PluginReport('ghost', 1, 1, 0.5, True, 'converged', 1), 0.1)
    for _ in range(50):
        core.on_reward(RewardRecord(0.1, 1.0, 'spam'), 0.1)
    with pytest.raises(BadInputError, match='flood'):
        core.on_reward(RewardRecord(0.1, 1.0, 'spam'), 0.1)
    with pytest.raises(BadInputError):
        core.on_reward(RewardRecord(0.1, math.inf, 'spam'), 0.1)
    core.on_latent(latent('language', atp=1e9), 0.1)  # absurd spending is capped
    res = core.tick(0.2)
    assert res.tick == 2 and res.state.state == 'WAKE'
    assert any('language_encoder: reported' in p for p in res.problems)
    assert core.reservoir > 1500.0 - 10.0
    core.on_reward(RewardRecord(0.25, 1.0, 'ok'), 0.25)  # the flood counter reset
    res = core.tick(1.5)  # nobody reported for 1 s: stream plugins time out
    assert sorted(p.split(':')[0] for p in res.problems if 'timeout' in p) == [
        'audio_encoder', 'vision_encoder']
    core.on_pressure(read_sample(PressurePaths('/nonexistent', 'none')), 1.6)
    res = core.tick(1.7)
    assert sum('pressure: cannot read' in p for p in res.problems) == 2
    core.on_latent(latent('vision'), 1.8)
    assert any('late report' in p for p in core.tick(1.9).problems)


def gated_config():
    cfg = scenario_config()
    eff = replace(cfg.effects, unload_states_param='unload_states',
                  unload_on_red_param='unload_on_memory_red', unload_idle_level=1,
                  idle_model_s=2.0)
    return replace(cfg, effects=eff)


def test_memory_pressure_from_recorded_files_degrades_and_restores(tmp_path, make_proc,
                                                                   fixtures):
    proc = make_proc(tmp_path / 'proc', 'psi_calm.txt', 'meminfo_8gb_ok.txt')
    paths = PressurePaths(str(proc), 'none')
    core = OrchestratorCore(gated_config())
    g = SimGraph(core, t0=0.0)

    def world(t: float) -> None:  # vision and audio report; language is idle
        core.on_pressure(read_sample(paths), t)
        core.on_salience(salience(t, 'vision', 0.35), t)
        for m in ('vision', 'audio'):
            core.on_latent(latent(m), t)

    def use(psi: str, meminfo: str) -> None:  # the next recorded readings
        shutil.copyfile(fixtures / psi, proc / 'pressure' / 'memory')
        shutil.copyfile(fixtures / meminfo, proc / 'meminfo')

    g.run(3.0, world)
    assert g.last.state.memory_pressure == 'green' and g.remote[('camera', 'fps')] == 15.0
    assert g.remote[('language_encoder', 'unload_states')] == 'DREAM,CRISIS'
    assert g.remote[('vision_encoder', 'unload_states')] == ''
    assert g.remote[('language_encoder', 'unload_on_memory_red')] is True
    assert g.remote[('vision_encoder', 'unload_on_memory_red')] is False

    use('psi_moderate.txt', 'meminfo_8gb_ok.txt')
    g.run(0.5, world)
    assert g.last.state.memory_pressure == 'yellow' and g.last.state.state == 'WAKE'
    assert g.remote[('camera', 'fps')] == 10.0
    # The idle language model is unloaded; the busy encoders stay.
    assert g.remote[('language_encoder', 'unload_states')] == 'WAKE,FOCUS,REST,DREAM,CRISIS'
    assert g.remote[('vision_encoder', 'unload_states')] == ''
    assert by_plugin(g.last)['language_encoder'].atp == 0.0

    use('psi_moderate.txt', 'meminfo_8gb_critical.txt')
    g.until('CRISIS', 0.5, world)
    g.run(0.5, world)
    assert g.last.state.memory_pressure == 'red' and g.remote[('camera', 'fps')] == 5.0
    assert g.last.budget_total == pytest.approx(10.0 * STATES[State.CRISIS].budget_scale)

    use('psi_easing.txt', 'meminfo_8gb_recovering.txt')  # better, inside the margin
    g.run(3.0, world)
    assert g.last.state.memory_pressure == 'yellow'
    assert g.last.state.state == 'WAKE' and g.remote[('camera', 'fps')] == 10.0
    assert g.remote[('language_encoder', 'unload_states')] == 'WAKE,FOCUS,REST,DREAM,CRISIS'

    use('psi_calm.txt', 'meminfo_8gb_recovered.txt')
    g.run(0.5, world)
    assert g.last.state.memory_pressure == 'yellow'  # hold_s not over yet
    g.run(1.0, world)
    assert g.last.state.memory_pressure == 'green'
    g.run(0.2, world)
    assert g.remote[('camera', 'fps')] == 15.0
    assert g.remote[('language_encoder', 'unload_states')] == 'DREAM,CRISIS'
    assert by_plugin(g.last)['language_encoder'].atp > 0.0


def test_a_full_reservoir_stays_full_while_idle():
    core = OrchestratorCore(scenario_config(atp=AtpConfig(10.0, 100.0, 50.0)))
    for i in range(20):
        res = core.tick(i * 0.1)
    assert res.reserve == 100.0 and res.state.atp_reserve == 1.0
    assert [a.plugin for a in res.allocations] == [s.name for s in ENCODERS]
