"""Trust in each plugin, learned from the outcomes of its refinements.

Each report is scored in [0, 1] (`score_report`) from up to three terms, each in [0, 1]:

- monotonic: fraction of steps in which energy fell (a step that raised the energy, or that
  the IRP loop rejected so the energy stayed, earns nothing), from the trajectory when the
  plugin gives it, else 1 if energy_final < energy_initial and 0 otherwise;
- efficiency: relative energy drop per ATP, (E_0 - E_final) / E_0 / atp_spent, divided by
  `efficiency_ref` (the drop per ATP that earns full marks) and clipped to [0, 1]; skipped
  when E_0 is ~0 (nothing left to improve); atp_spent 0 counts as one ATP per iteration;
- decision: fraction of the plugin's discrete output that refinement changed, divided by
  `decision_ref` and clipped; skipped when the plugin does not report it (refinement that
  never changes a decision is ATP spent for nothing).

score = weighted mean of the available terms (w_monotonic, w_efficiency, w_decision).
Special cases: a 'diverged' halt or a non-finite energy scores 0; a report with a negative
energy, a non-finite or negative atp_spent, or an unknown halt reason is invalid and changes
nothing; a report with 0 iterations (no ATP to refine with) changes nothing.

Update (an exponential moving average, bounded):
    trust <- clip(trust + rate * (score - trust), lo, hi)
and when a plugin that should report is silent for the report timeout:
    trust <- clip(trust - timeout_rate * trust, lo, hi)
`lo` > 0 keeps a distrusted plugin able to earn its way back (with its minimum share).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import math
from typing import Any, Literal

from sage_orchestrator.irp import HALT_REASONS, PluginReport

OutcomeKind = Literal['scored', 'diverged', 'invalid', 'idle']
STATE_VERSION = 1


@dataclass(frozen=True)
class TrustConfig:
    """Trust parameters (trust.* in the profile)."""

    initial: float = 0.5
    lo: float = 0.05
    hi: float = 1.0
    rate: float = 0.1
    timeout_rate: float = 0.2
    w_monotonic: float = 1.0
    w_efficiency: float = 1.0
    w_decision: float = 0.5
    efficiency_ref: float = 0.05
    decision_ref: float = 0.05
    # A step must lower the energy by more than this fraction of E_0 to count as falling.
    fall_tol: float = 1e-9


@dataclass(frozen=True)
class Outcome:
    """The score of one report and its terms (None = term not available)."""

    kind: OutcomeKind
    score: float | None
    monotonic: float | None = None
    efficiency: float | None = None
    decision: float | None = None
    note: str = ''


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def score_report(report: PluginReport, cfg: TrustConfig) -> Outcome:
    """Score one refinement report (see the module docstring)."""
    energies = report.energies or (report.energy_initial, report.energy_final)
    if not all(math.isfinite(e) for e in energies):
        return Outcome('diverged', 0.0, note='non-finite energy')
    if any(e < 0.0 for e in energies):
        return Outcome('invalid', None, note=f'negative energy {min(energies):g}')
    if not math.isfinite(report.atp_spent) or report.atp_spent < 0.0:
        return Outcome('invalid', None, note=f'bad atp_spent {report.atp_spent!r}')
    if report.halt_reason not in HALT_REASONS:
        return Outcome('invalid', None, note=f'unknown halt_reason {report.halt_reason!r}')
    if report.halt_reason == 'diverged':
        return Outcome('diverged', 0.0, note='halt_reason diverged')
    if report.iterations <= 0:
        return Outcome('idle', None)
    e0, ef = report.energy_initial, report.energy_final
    tol = cfg.fall_tol * max(e0, 1e-12)
    if report.energies is not None and len(report.energies) >= 2:
        steps = len(energies) - 1
        mono = sum(b < a - tol for a, b in zip(energies, energies[1:])) / steps
    else:
        mono = 1.0 if ef < e0 - tol else 0.0
    eff = None
    if e0 > 1e-9:
        atp = report.atp_spent if report.atp_spent > 0.0 else float(report.iterations)
        eff = _clip01((e0 - ef) / e0 / atp / cfg.efficiency_ref)
    dec = None
    if report.decision_changed is not None and math.isfinite(report.decision_changed):
        dec = _clip01(report.decision_changed / cfg.decision_ref)
    terms = [(cfg.w_monotonic, mono), (cfg.w_efficiency, eff), (cfg.w_decision, dec)]
    used = [(w, v) for w, v in terms if v is not None and w > 0.0]
    total_w = sum(w for w, _ in used)
    score = sum(w * v for w, v in used) / total_w if total_w > 0 else mono
    return Outcome('scored', score, mono, eff, dec)


class TrustTable:
    """Trust per plugin, updated from outcomes and timeouts; persistable as a plain dict."""

    def __init__(self, names: Iterable[str], cfg: TrustConfig) -> None:
        self.cfg = cfg
        self.values: dict[str, float] = {n: self._bound(cfg.initial) for n in names}
        self.updates: dict[str, int] = dict.fromkeys(self.values, 0)

    def _bound(self, x: float) -> float:
        return min(self.cfg.hi, max(self.cfg.lo, x))

    def configure(self, cfg: TrustConfig) -> None:
        """Use new parameters; current values are re-bounded."""
        self.cfg = cfg
        for n, v in self.values.items():
            self.values[n] = self._bound(v)

    def apply(self, name: str, outcome: Outcome) -> float:
        """Move a plugin's trust toward the outcome's score; returns the new trust."""
        if name not in self.values:
            raise KeyError(name)
        if outcome.score is not None:
            t = self.values[name]
            self.values[name] = self._bound(t + self.cfg.rate * (outcome.score - t))
            self.updates[name] += 1
        return self.values[name]

    def timeout(self, name: str) -> float:
        """Lower a silent plugin's trust; returns the new trust."""
        t = self.values[name]
        self.values[name] = self._bound(t - self.cfg.timeout_rate * t)
        self.updates[name] += 1
        return self.values[name]

    def state_dict(self) -> dict[str, Any]:
        """Plain, JSON-able state."""
        return {'version': STATE_VERSION, 'trust': dict(self.values),
                'updates': dict(self.updates)}

    def load_state_dict(self, state: Mapping[str, Any]) -> list[str]:
        """Restore values saved by `state_dict`; returns notes about what was skipped.

        Unknown plugins and non-numeric or non-finite values are skipped; values are clipped
        to the current bounds.
        """
        notes: list[str] = []
        if state.get('version') != STATE_VERSION:
            return [f"trust state version {state.get('version')!r} != {STATE_VERSION}: ignored"]
        saved = state.get('trust')
        if not isinstance(saved, Mapping):
            return ['trust state has no trust table: ignored']
        raw_updates = state.get('updates')
        updates = raw_updates if isinstance(raw_updates, Mapping) else {}
        for name, value in saved.items():
            if name not in self.values:
                notes.append(f'trust for unknown plugin {name!r} skipped')
            elif (isinstance(value, bool) or not isinstance(value, (int, float))
                  or not math.isfinite(value)):
                notes.append(f'trust for {name!r} is not a finite number: skipped')
            else:
                self.values[name] = self._bound(float(value))
                n = updates.get(name, 0)
                self.updates[name] = int(n) if isinstance(n, int) and n >= 0 else 0
        return notes
