"""The IRP loop: target, budget, convergence, max_iterations, divergence, monotone energy."""
from __future__ import annotations

import math

import pytest

from sage_common.irp import IrpResult, refine


class Geometric:
    """Energy halves each step until it reaches a floor; optional NaN at a step."""

    def __init__(self, floor: float = 0.0, nan_at: int = -1, worse_at: int = -1) -> None:
        self.floor = floor
        self.nan_at = nan_at
        self.worse_at = worse_at

    def init_state(self) -> float:
        return 1.0

    def step(self, state: float, iteration: int) -> float:
        if iteration == self.nan_at:
            return math.nan
        if iteration == self.worse_at:
            return state * 10
        return max(self.floor, state * 0.5)

    def energy(self, state: float) -> float:
        return state

    def halt(self, state: float) -> bool:
        return False


def test_small_budget_halts_on_budget_with_fewer_iterations() -> None:
    r = refine(Geometric(floor=0.1), budget_atp=2.5, eps=1e-3, k=2, max_iters=100)
    assert r.halt_reason == 'budget'
    assert r.iterations == 2
    assert r.atp_spent == 2.0
    assert not r.converged
    assert r.energy_final == 0.25


def test_large_budget_halts_on_convergence_not_budget() -> None:
    r = refine(Geometric(floor=0.1), budget_atp=1000.0, eps=1e-3, k=2, max_iters=100)
    assert r.halt_reason == 'converged'
    assert r.converged
    assert r.energy_final == pytest.approx(0.1)
    # 4 steps to reach the floor, then k=2 flat steps.
    assert r.iterations == 6
    assert r.atp_spent == 6.0


def test_atp_per_step_scales_the_cost() -> None:
    r = refine(Geometric(), budget_atp=3.0, eps=0.0, k=1, max_iters=100, atp_per_step=1.5)
    assert (r.iterations, r.atp_spent, r.halt_reason) == (2, 3.0, 'budget')


def test_max_iterations_caps_steps_and_zero_disables_refinement() -> None:
    r = refine(Geometric(), budget_atp=None, eps=0.0, k=1, max_iters=3)
    assert (r.iterations, r.halt_reason) == (3, 'max_iterations')
    r0: IrpResult[float] = refine(Geometric(), budget_atp=None, eps=0.0, k=1, max_iters=0)
    assert (r0.iterations, r0.halt_reason, r0.energy_final) == (0, 'none', 1.0)


def test_non_finite_energy_is_diverged_and_keeps_last_good_state() -> None:
    r = refine(Geometric(nan_at=2), budget_atp=None, eps=0.0, k=1, max_iters=10)
    assert r.halt_reason == 'diverged'
    assert r.state == 0.25 and r.energy_final == 0.25


def test_a_step_that_raises_energy_is_not_accepted() -> None:
    r = refine(Geometric(worse_at=1), budget_atp=None, eps=0.0, k=5, max_iters=4)
    assert list(r.energies) == [1.0, 0.5, 0.5, 0.25, 0.125]
    assert r.energy_final <= r.energy_initial


def test_target_stops_once_good_enough_and_takes_no_step_for_an_input_already_there() -> None:
    # 1 -> 0.5 -> 0.25 -> 0.125: a target of 0.3 is reached by the second step.
    r = refine(Geometric(), budget_atp=10.0, eps=0.0, k=1, max_iters=10, target=0.3)
    assert (r.iterations, r.halt_reason, r.energy_final, r.atp_spent) == (2, 'target', 0.25, 2.0)
    assert r.converged
    # The same input from a model that already reconstructs it that well: nothing to buy.
    r0 = refine(Geometric(), budget_atp=10.0, eps=0.0, k=1, max_iters=10, target=1.0)
    assert (r0.iterations, r0.halt_reason, r0.atp_spent) == (0, 'target', 0.0)
    # Reached on the step that also ends the convergence window: 'target' is reported.
    r1 = refine(Geometric(floor=0.25), budget_atp=None, eps=1e-3, k=1, max_iters=10,
                target=0.25)
    assert (r1.iterations, r1.halt_reason) == (2, 'target')
    # Off (0), the budget ends it; out of reach, the other rules do.
    assert refine(Geometric(), budget_atp=3.0, eps=0.0, k=1, max_iters=10).halt_reason == \
        'budget'
    far = refine(Geometric(floor=0.1), budget_atp=None, eps=1e-3, k=2, max_iters=100,
                 target=0.05)
    assert (far.halt_reason, far.iterations) == ('converged', 6)
    # Refinement disabled stays 'none', whatever the target.
    r2 = refine(Geometric(), budget_atp=10.0, eps=0.0, k=1, max_iters=0, target=1.0)
    assert (r2.iterations, r2.halt_reason) == (0, 'none')


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        refine(Geometric(), budget_atp=1.0, eps=0.1, k=0, max_iters=3)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            refine(Geometric(), budget_atp=1.0, eps=0.1, k=1, max_iters=3, target=bad)
