"""The orchestrator's side of the IRP contract: one report shape for every plugin.

The contract itself is `sage_common.irp` (re-exported here): a plugin implements
``init_state()``, ``step(state, iteration)``, ``energy(state)`` (lower is better) and
``halt(state)``; ``refine(plugin, budget_atp, eps, k, max_iters, atp_per_step)`` runs it and
halts, first that applies: 'none' (max_iters 0), 'budget' (the next step would overspend),
'max_iterations', 'diverged' (a non-finite energy; the last good state is kept), 'converged'
(energy fell by at most eps, relative, over the last k steps, or ``halt(state)``). A step that
raises the energy is not accepted, so energy_final <= energy_initial.

Remote plugins (the encoder nodes) run that loop with the ATP they receive on /sage/budget and
report it in sage_interfaces/Latent; in-process plugins (`plugins`) run it inside the tick.
Both become a `PluginReport`, the one thing the trust update and the ATP ledger read. A plugin
may also expose ``decision(state)`` (its discrete output: VQ codes, the recalled item); the
fraction of it that refinement changed is `PluginReport.decision_changed`. Encoders report it
as the Latent feature named `DECISION_FEATURE`.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sage_common.records import LatentRecord
from sage_common.irp import HALT_REASONS, IrpPlugin, IrpResult, refine

__all__ = ['HALT_REASONS', 'IrpPlugin', 'IrpResult', 'refine', 'DECISION_FEATURE',
           'PluginReport', 'decision_change', 'report_from_result', 'report_from_latent']

# Latent feature an encoder sets to the fraction of its codes that refinement changed.
DECISION_FEATURE = 'irp_decision_changed'


@dataclass(frozen=True)
class PluginReport:
    """Outcome of one refinement, as the trust update and the ATP ledger read it.

    Attributes:
        plugin: plugin name (e.g. 'vision_encoder').
        iterations: refinement steps taken.
        energy_initial: energy of the unrefined state.
        energy_final: energy of the returned state.
        converged: True when halted because energy stopped falling.
        halt_reason: one of HALT_REASONS.
        atp_spent: ATP units consumed.
        energies: the energy after each step when known (in-process plugins), else None.
        decision_changed: fraction in [0, 1] of the discrete output that refinement changed,
            or None when the plugin does not say.
    """

    plugin: str
    iterations: int
    energy_initial: float
    energy_final: float
    converged: bool
    halt_reason: str
    atp_spent: float
    energies: tuple[float, ...] | None = None
    decision_changed: float | None = None


def decision_change(before: Any, after: Any) -> float:
    """Fraction of a discrete output that differs: elementwise for arrays, 0/1 otherwise."""
    if isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        a, b = np.asarray(before), np.asarray(after)
        if a.shape != b.shape:
            return 1.0
        return float(np.mean(a != b)) if a.size else 0.0
    if isinstance(before, Hashable) and isinstance(after, Hashable):
        return 0.0 if before == after else 1.0
    return 0.0 if before is after else 1.0


def report_from_result(result: IrpResult[Any], plugin: str,
                       decision_changed: float | None = None) -> PluginReport:
    """The report of an in-process `refine` run."""
    return PluginReport(plugin, result.iterations, result.energy_initial, result.energy_final,
                        result.converged, result.halt_reason, result.atp_spent,
                        result.energies, decision_changed)


def report_from_latent(rec: LatentRecord, plugin: str) -> PluginReport:
    """The IRP report an encoder put in a Latent (the energy trajectory is not sent)."""
    changed = rec.features.get(DECISION_FEATURE)
    return PluginReport(
        plugin=plugin, iterations=int(rec.iterations), energy_initial=float(rec.energy_initial),
        energy_final=float(rec.energy_final), converged=bool(rec.converged),
        halt_reason=rec.halt_reason or 'none', atp_spent=float(rec.atp_spent), energies=None,
        decision_changed=None if changed is None else float(changed))
