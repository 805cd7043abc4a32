"""The iterative-refinement (IRP) contract, shared by the encoders, the orchestrator and
in-process plugins (memory recall).

A plugin refines a state while its energy (lower is better) keeps falling. `refine` runs one
plugin under an ATP allocation and reports what happened, so the orchestrator can update the
plugin's trust from (energy_initial - energy_final) per ATP spent, and reallocate unused ATP.

ATP cost: every call of `plugin.step` costs `atp_per_step` ATP (default 1.0). The initial
state (one forward pass) is free: a plugin always produces an answer, refinement is what the
budget buys. For the puzzle VQ-VAEs one step is at most two decoder passes (about 7 ms for
vision and 0.4 ms for audio on one x86 core, see sage_bench.encoders).

Halting (first that applies, checked in this order):
  'none'            max_iters == 0 (refinement disabled).
  'target'          the energy is at or below `target` (when > 0): the state is good enough,
                    so an input the model already reconstructs that well takes no step. A
                    model that fits its surroundings better (after sleep) gets there sooner.
  'budget'          the next step would take atp_spent past budget_atp.
  'max_iterations'  max_iters steps done.
  'diverged'        a step produced a non-finite energy (the last good state is kept).
  'converged'       the energy fell by at most eps (relative) over the last k steps, or the
                    plugin's halt(state) says there is nothing left to try.
A step whose energy is higher than the current one is not accepted (the state stays), so
energy_final <= energy_initial always. `converged` is true for 'converged' and 'target': the
refinement ended by itself, not cut short. Deterministic plugins give deterministic results.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
from typing import Generic, Protocol, TypeVar

S = TypeVar('S')

DEFAULT_ATP_PER_STEP = 1.0
HALT_REASONS = ('converged', 'target', 'budget', 'max_iterations', 'diverged', 'none')
# halt_reason of a latent published before its refinement (/sage/<modality>/latent_initial):
# the refined one follows on /sage/<modality>/latent. Not an outcome of `refine`.
PENDING = 'pending'


class IrpPlugin(Protocol[S]):
    """What a refinable plugin implements."""

    def init_state(self) -> S:
        """The unrefined state (e.g. the encoder's first answer)."""
        ...

    def step(self, state: S, iteration: int) -> S:
        """One refinement step from state; iteration counts from 0."""
        ...

    def energy(self, state: S) -> float:
        """Energy of a state (lower is better), e.g. reconstruction error."""
        ...

    def halt(self, state: S) -> bool:
        """True when the plugin has nothing left to try from this state."""
        ...


@dataclass(frozen=True)
class IrpResult(Generic[S]):
    """Outcome of one refinement run (mirrors the IRP fields of sage_interfaces/Latent)."""

    state: S
    iterations: int
    energy_initial: float
    energy_final: float
    converged: bool
    halt_reason: str
    atp_spent: float
    energies: tuple[float, ...]


def refine(plugin: IrpPlugin[S], budget_atp: float | None, eps: float, k: int,
           max_iters: int, atp_per_step: float = DEFAULT_ATP_PER_STEP,
           on_init: Callable[[S, float], None] | None = None,
           target: float = 0.0) -> IrpResult[S]:
    """Refine a plugin's state under an ATP budget.

    Args:
        plugin: the plugin to run.
        budget_atp: ATP available for this input (None = unlimited; max_iters still bounds).
        eps: relative energy decrease over the last k steps below which it has converged.
        k: window (steps) of the convergence test, >= 1.
        max_iters: hard cap on steps (0 disables refinement).
        atp_per_step: ATP charged per step.
        on_init: called with the initial state and its energy before the first step (what
            depends on the input alone can leave before refinement starts).
        target: energy at or below which the state is good enough (0 = no target).

    Returns:
        The final state and the report (iterations, energies, halt reason, ATP spent).

    Raises:
        ValueError: k < 1, max_iters < 0, eps < 0, atp_per_step <= 0 or target < 0 (or not
            finite).
    """
    check_settings(eps, k, max_iters, atp_per_step, target)
    state = plugin.init_state()
    energy = float(plugin.energy(state))
    if on_init is not None:
        on_init(state, energy)
    return refine_from(plugin, state, energy, budget_atp, eps, k, max_iters, atp_per_step,
                       target)


def check_settings(eps: float, k: int, max_iters: int, atp_per_step: float,
                   target: float) -> None:
    """Raise ValueError for refinement settings `refine` cannot run with."""
    if k < 1 or max_iters < 0 or eps < 0 or atp_per_step <= 0 \
            or not (math.isfinite(target) and target >= 0):
        raise ValueError(f'bad IRP settings k={k} max_iters={max_iters} eps={eps} '
                         f'atp_per_step={atp_per_step} target={target}')


def refine_from(plugin: IrpPlugin[S], state: S, energy: float, budget_atp: float | None,
                eps: float, k: int, max_iters: int,
                atp_per_step: float = DEFAULT_ATP_PER_STEP,
                target: float = 0.0,
                before_step: Callable[[], None] | None = None) -> IrpResult[S]:
    """The refinement steps of `refine`, from an initial state and its energy made earlier.

    An encoder hands its input's latent on before refinement (the unrefined state is all
    salience needs) and refines it later on another thread: `refine` is exactly the plugin's
    init_state, then this. Arguments and result as `refine`; `before_step` is called before
    each step (it may wait: the steps' outcome does not depend on when they run).
    """
    check_settings(eps, k, max_iters, atp_per_step, target)
    budget = math.inf if budget_atp is None else max(0.0, float(budget_atp))
    e0 = energy
    history = [energy]
    spent = 0.0
    it = 0
    reason = 'none' if max_iters == 0 else ''
    while not reason:
        if target > 0.0 and energy <= target:  # the input as it came, or after a step
            reason = 'target'
            break
        if spent + atp_per_step > budget + 1e-9:
            reason = 'budget'
            break
        if it >= max_iters:
            reason = 'max_iterations'
            break
        if before_step is not None:
            before_step()
        candidate = plugin.step(state, it)
        it += 1
        spent += atp_per_step
        e = float(plugin.energy(candidate))
        if not math.isfinite(e):
            reason = 'diverged'
            break
        if e <= energy:
            state, energy = candidate, e
        history.append(energy)
        if target > 0.0 and energy <= target:
            continue  # 'target' above: good enough says more than slow progress
        if len(history) > k:
            ref = history[-k - 1]
            if ref - energy <= eps * max(abs(ref), 1e-12):
                reason = 'converged'
                break
        if plugin.halt(state):
            reason = 'converged'
    return IrpResult(state=state, iterations=it, energy_initial=e0, energy_final=energy,
                     converged=reason in ('converged', 'target'), halt_reason=reason,
                     atp_spent=spent,
                     energies=tuple(history))
