"""A scripted day drives the core through every metabolic state and transition rule.

The documented effects (budget, camera rate, models, Sleep, threshold) follow each state.
"""
from __future__ import annotations

import pytest

from sage_orchestrator.irp import PluginReport
from sage_orchestrator.metabolic import State, TRANSITIONS
from sage_orchestrator.orchestrator_core import AtpConfig, OrchestratorCore
from sage_orchestrator.pressure import PressureSample

from sage_orchestrator.sim import STATES, SimGraph as Graph, scenario_config

CALM = PressureSample(psi_some_avg10=0.0, mem_available_mb=5000.0)
RED = PressureSample(psi_some_avg10=60.0, mem_available_mb=400.0)


def effects_hold(g: Graph, state) -> None:
    eff = STATES[state]
    assert g.last.state.state == state.value
    assert g.last.budget_total == pytest.approx(10.0 * eff.budget_scale)
    assert g.remote[('camera', 'fps')] == eff.camera_fps
    assert g.remote[('snarc', 'threshold_offset')] == eff.threshold_offset


def test_a_scripted_day_visits_every_state_and_rule_with_its_effects():
    core = OrchestratorCore(scenario_config())
    g = Graph(core)
    core.on_pressure(CALM, g.t)
    g.run(1.0)
    effects_hold(g, State.WAKE)

    g.until('FOCUS', 2.0, g.salience('vision', 0.9))
    g.run(0.5, g.salience('vision', 0.9))
    effects_hold(g, State.FOCUS)
    shares = {a.plugin: a.share for a in g.last.allocations}
    assert shares['vision_encoder'] > 2 * shares['audio_encoder']  # focus_gain on vision

    g.until('WAKE', 5.0)
    g.run(0.2)
    effects_hold(g, State.WAKE)
    g.until('REST', 5.0)
    g.run(0.2)
    effects_hold(g, State.REST)

    g.until('DREAM', 5.0)
    g.run(0.2)
    effects_hold(g, State.DREAM)
    assert len(g.sleeps) == 1 and g.sleeps[0].max_duration_s == 20.0
    assert g.remote[('language_encoder', 'active')] is False
    assert {a.plugin: a.atp for a in g.last.allocations}['language_encoder'] == 0.0

    g.until('WAKE', 1.0, g.salience('audio', 0.95))  # the spike preempts the dream
    assert g.transitions[-1].rule == 'dream_preempt'
    assert not core.on_sleep_result(g.sleeps[0].request_id, True, 'late')  # stale: ignored
    g.run(0.2)
    assert g.remote[('language_encoder', 'active')] is True

    g.until('REST', 6.0)
    g.until('WAKE', 1.0, g.salience('language', 0.55))
    assert g.transitions[-1].rule == 'rest_wake'
    g.until('REST', 6.0)
    g.until('DREAM', 6.0)
    assert len(g.sleeps) == 2
    g.run(0.6)
    assert core.on_sleep_result(g.sleeps[1].request_id, True, 'consolidated 12')
    g.until('REST', 1.0)
    assert g.transitions[-1].reason == 'sleep finished: consolidated 12'

    core.on_pressure(RED, g.t)
    g.until('CRISIS', 0.3)
    g.run(0.3, lambda t: core.on_pressure(RED, t))
    effects_hold(g, State.CRISIS)
    assert g.last.state.memory_pressure == 'red'
    assert g.remote[('language_encoder', 'active')] is False

    g.until('WAKE', 5.0, lambda t: core.on_pressure(CALM, t))
    assert g.transitions[-1].rule == 'crisis_over'
    g.run(0.2)
    effects_hold(g, State.WAKE)
    assert g.remote[('language_encoder', 'active')] is True

    rules = {t.rule for t in g.transitions}
    assert rules == {r.name for r in TRANSITIONS}
    assert {t.target.value for t in g.transitions} == {s.value for s in State}
    assert all(t.reason for t in g.transitions)
    fps = [v for _, key, v in g.history if key == ('camera', 'fps')]
    assert fps == [15.0, 30.0, 15.0, 5.0, 2.0, 15.0, 5.0, 15.0, 5.0, 2.0, 5.0, 5.0, 15.0][
        :len(fps)] or fps[:5] == [15.0, 30.0, 15.0, 5.0, 2.0]


def test_draining_the_atp_reserve_leads_to_crisis_and_recovery():
    core = OrchestratorCore(scenario_config(atp=AtpConfig(10.0, 100.0, 20.0)))
    g = Graph(core)

    def greedy(t: float) -> None:  # every encoder spends all it gets and wants more
        for a in (g.last.allocations if g.last else ()):
            if a.atp > 0 and a.plugin != 'language_encoder':
                core.on_report(PluginReport(a.plugin, 3, 1.0, 0.8, False, 'budget', a.atp), t)
        g.salience('vision', 0.5)(t)

    res = g.until('CRISIS', 30.0, greedy)
    assert 'ATP reserve' in res.transitions[0].reason
    assert res.state.atp_reserve < 0.1
    res = g.until('WAKE', 30.0)
    assert res.transitions[0].rule == 'crisis_over' and res.state.atp_reserve >= 0.3
