"""Trust: outcome scores, bounded updates, timeouts and the persisted state."""
from __future__ import annotations

import math

import pytest

from sage_orchestrator.irp import PluginReport
from sage_orchestrator.trust import TrustConfig, TrustTable, score_report

CFG = TrustConfig()


def report(**kw) -> PluginReport:
    base = dict(plugin='p', iterations=5, energy_initial=1.0, energy_final=0.6,
                converged=True, halt_reason='converged', atp_spent=5.0)
    base.update(kw)
    return PluginReport(**base)


def test_monotonic_efficient_refinement_scores_high():
    out = score_report(report(energies=(1.0, 0.9, 0.8, 0.7, 0.65, 0.6)), CFG)
    # drop 40 % over 5 ATP = 0.08 / ATP >= efficiency_ref 0.05: full marks on both terms
    assert out.kind == 'scored' and out.monotonic == 1.0 and out.efficiency == 1.0
    assert out.score == 1.0


def test_energy_that_bounces_loses_the_monotonic_term():
    out = score_report(report(energies=(1.0, 0.7, 0.9, 0.6, 0.8, 0.6)), CFG)
    assert out.monotonic == pytest.approx(3 / 5)


def test_inefficient_refinement_scores_lower():
    out = score_report(report(energy_final=0.95, atp_spent=10.0), CFG)
    assert out.efficiency == pytest.approx(0.05 / 10.0 / 0.05)
    assert out.score == pytest.approx((1.0 + 0.1) / 2.0)


def test_decision_term_counts_only_when_reported():
    unchanged = score_report(report(energy_final=0.95, atp_spent=10.0, decision_changed=0.0),
                             CFG)
    assert unchanged.decision == 0.0
    assert unchanged.score == pytest.approx((1.0 + 0.1 + 0.0) / 2.5)
    changed = score_report(report(energy_final=0.95, atp_spent=10.0, decision_changed=0.5),
                           CFG)
    assert changed.score == pytest.approx((1.0 + 0.1 + 0.5) / 2.5)


def test_divergence_and_non_finite_energy_score_zero():
    assert score_report(report(halt_reason='diverged', energy_final=3.0), CFG).score == 0.0
    nan = score_report(report(energy_final=math.nan), CFG)
    assert nan.kind == 'diverged' and nan.score == 0.0 and 'non-finite' in nan.note


def test_negative_energy_and_bad_fields_are_invalid():
    assert score_report(report(energy_initial=-1.0), CFG).kind == 'invalid'
    assert score_report(report(atp_spent=math.nan), CFG).kind == 'invalid'
    assert score_report(report(halt_reason='tired'), CFG).kind == 'invalid'


def test_a_report_without_iterations_changes_nothing():
    table = TrustTable(['p'], CFG)
    assert table.apply('p', score_report(report(iterations=0), CFG)) == 0.5


def test_trust_moves_toward_the_score_and_stays_bounded():
    table = TrustTable(['good', 'bad'], TrustConfig(lo=0.05, hi=0.95, rate=0.5))
    good = score_report(report(), table.cfg)
    bad = score_report(report(halt_reason='diverged'), table.cfg)
    assert table.apply('good', good) == pytest.approx(0.75)
    for _ in range(50):
        table.apply('good', good)
        table.apply('bad', bad)
    assert table.values == {'good': 0.95, 'bad': 0.05}


def test_a_timeout_lowers_trust_by_the_timeout_rate():
    table = TrustTable(['p'], CFG)
    assert table.timeout('p') == pytest.approx(0.4)


def test_state_round_trips_and_bad_saved_values_are_skipped():
    table = TrustTable(['a', 'b'], CFG)
    table.apply('a', score_report(report(), CFG))
    state = table.state_dict()
    fresh = TrustTable(['a', 'b', 'c'], CFG)
    assert fresh.load_state_dict(state) == []
    assert fresh.values['a'] == pytest.approx(0.55) and fresh.updates['a'] == 1
    notes = fresh.load_state_dict({'version': 1, 'trust': {'a': 'high', 'b': math.inf,
                                                           'zzz': 0.9, 'c': 7.0}})
    assert len(notes) == 3 and fresh.values['c'] == 1.0 and fresh.values['b'] == 0.5
    assert fresh.load_state_dict({'version': 99}) != []
