"""The metabolic state machine: every rule of the table, dwell times, preemption, cooldown."""
from __future__ import annotations

import pytest

from sage_orchestrator.metabolic import (TRANSITIONS, Inputs, MetabolicConfig,
                                         MetabolicMachine, State)

W, F, R, D, C = State.WAKE, State.FOCUS, State.REST, State.DREAM, State.CRISIS
CFG = MetabolicConfig(idle_rest_s=10.0, idle_dream_s=20.0, dream_max_s=30.0,
                      dream_cooldown_s=100.0,
                      dwell={W: 1.0, F: 1.0, R: 1.0, D: 1.0, C: 1.0})


def inputs(now: float, **kw) -> Inputs:
    base = dict(now=now, salience=0.2, modality='vision', idle_s=0.0, reserve=0.8,
                pressure='green')
    base.update(kw)
    return Inputs(**base)


def machine_in(state: State, at: float = 0.0) -> MetabolicMachine:
    m = MetabolicMachine(CFG, now=at)
    m.state = state
    return m


# (source, inputs that should fire, expected target, rule name)
EDGES = [
    (W, dict(pressure='red'), C, 'enter_crisis'),
    (F, dict(reserve=0.05), C, 'enter_crisis'),
    (R, dict(pressure='red'), C, 'enter_crisis'),
    (D, dict(reserve=0.02, sleep='pending'), C, 'enter_crisis'),
    (C, dict(reserve=0.5, pressure='yellow'), W, 'crisis_over'),
    (D, dict(salience=0.9, sleep='pending'), W, 'dream_preempt'),
    (D, dict(sleep='done', sleep_message='consolidated 12'), R, 'dream_over'),
    (D, dict(sleep='failed', sleep_message='no memory node'), R, 'dream_over'),
    (R, dict(salience=0.55), W, 'rest_wake'),
    (R, dict(idle_s=25.0), D, 'rest_dream'),
    (W, dict(salience=0.8), F, 'wake_focus'),
    (W, dict(idle_s=12.0), R, 'wake_rest'),
    (F, dict(salience=0.3), W, 'focus_over'),
    (F, dict(salience=0.6, reserve=0.2), W, 'focus_over'),
]


@pytest.mark.parametrize('source, kw, target, rule', EDGES)
def test_each_rule_of_the_table_fires_with_a_reason(source, kw, target, rule):
    m = machine_in(source)
    tr = m.step(inputs(5.0, **kw))
    assert tr is not None and (tr.source, tr.target, tr.rule) == (source, target, rule)
    assert tr.reason and m.state is target and m.previous is source and m.reason == tr.reason


def test_every_edge_of_the_table_is_exercised():
    covered = {(s, r) for s, _, _, r in EDGES}
    for rule in TRANSITIONS:
        for source in rule.sources:
            assert (source, rule.name) in covered, (source.value, rule.name)


def test_nothing_fires_on_steady_inputs():
    for state in State:
        m = machine_in(state)
        reserve = 0.2 if state is C else 0.8  # between crisis_enter and crisis_exit
        assert m.step(inputs(5.0, salience=0.45, idle_s=1.0, reserve=reserve,
                             sleep='pending')) is None


def test_dwell_blocks_a_normal_exit_until_it_has_passed():
    m = machine_in(W, at=0.0)
    assert m.step(inputs(0.5, salience=0.9)) is None
    assert m.step(inputs(1.0, salience=0.9)).target is F


def test_crisis_and_the_dream_preempting_spike_ignore_dwell():
    m = machine_in(D, at=0.0)
    assert m.step(inputs(0.1, salience=0.95)).rule == 'dream_preempt'
    m = machine_in(F, at=0.0)
    assert m.step(inputs(0.1, pressure='red')).target is C


def test_crisis_wins_over_every_other_rule():
    m = machine_in(W)
    assert m.step(inputs(5.0, salience=0.9, idle_s=50.0, reserve=0.01)).target is C


def test_focus_needs_a_reserve():
    m = machine_in(W)
    assert m.step(inputs(5.0, salience=0.9, reserve=0.2)) is None


def test_dream_needs_green_pressure_a_reserve_and_no_recent_dream():
    assert machine_in(R).step(inputs(5.0, idle_s=25.0, pressure='yellow')) is None
    assert machine_in(R).step(inputs(5.0, idle_s=25.0, reserve=0.1)) is None
    m = machine_in(R, at=0.0)
    assert m.step(inputs(5.0, idle_s=25.0)).target is D
    assert m.step(inputs(7.0, sleep='done', sleep_message='ok')).target is R
    # A completed dream starts the cooldown.
    assert m.step(inputs(50.0, idle_s=70.0)) is None
    assert m.step(inputs(107.0, idle_s=130.0)).target is D


def test_a_preempted_dream_does_not_start_the_cooldown():
    m = machine_in(R, at=0.0)
    m.step(inputs(5.0, idle_s=25.0))
    assert m.step(inputs(6.0, salience=0.9)).rule == 'dream_preempt'
    m.step(inputs(8.0, idle_s=12.0))          # WAKE -> REST
    assert m.state is R
    assert m.step(inputs(10.0, idle_s=25.0)).target is D


def test_a_dream_without_a_sleep_result_ends_at_dream_max():
    m = machine_in(R, at=0.0)
    m.step(inputs(5.0, idle_s=25.0))
    assert m.step(inputs(20.0, sleep='pending')) is None
    tr = m.step(inputs(35.0, sleep='pending'))
    assert tr.target is R and 'dream_max_s' in tr.reason


def test_focus_remembers_its_modality():
    m = machine_in(W)
    m.step(inputs(5.0, salience=0.9, modality='audio'))
    assert m.focus_modality == 'audio'
