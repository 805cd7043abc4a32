"""ATP allocation across plugins, and the ledger that returns unused ATP to the pool.

Shares (`shares`): every active plugin i gets

    w_i     = trust_i * (salience_floor + salience_i) * gain_i
    share_i = min_share + (1 - n * min_share) * w_i / sum(w)

so shares sum to 1, follow trust and the salience of the plugin's modality, and never fall
below `min_share` (no plugin starves). gain_i is `focus_gain` for the modality in FOCUS, else
1. Inactive plugins (unloaded by the metabolic state or by memory pressure) get share 0 and
are not counted in n. With equal weights (or all weights 0) the shares are equal.

Minimum grant (`apply_min_grant`): a share too small to pay for one refinement step would
starve a plugin for ever (it could never show that it deserves more). So an active plugin
whose allocation is below `min_grant` ATP accrues it as credit and receives the accrued ATP in
the tick the credit reaches `min_grant` (0 in the ticks between): every active plugin gets
at least one step's worth every ceil(min_grant / (min_share * budget)) ticks.

Reallocation (`allocate`, `Ledger`): a plugin's allocation is what it may spend until the next
tick. When the period closes, a plugin whose refinements all halted before exhausting their
ATP (converged, diverged, max_iterations) returns `allocated - spent` to the pool; a plugin
that stopped on 'budget' at least once is *hungry*. At the next tick the pool (capped at
`realloc_cap * budget`, and by the reservoir) is added to the hungry active plugins in
proportion to their shares. With no hungry plugin the pool is not spent: the reservoir is only
debited for ATP actually spent, so the returned ATP simply stays in the reserve.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import math


@dataclass(frozen=True)
class AllocatorConfig:
    """Allocation parameters (atp.* in the profile)."""

    min_share: float = 0.05
    min_grant: float = 1.0
    salience_floor: float = 0.1
    focus_gain: float = 2.0
    realloc_cap: float = 1.0


@dataclass(frozen=True)
class Claim:
    """What one plugin brings to an allocation."""

    name: str
    trust: float
    salience: float
    gain: float = 1.0
    active: bool = True
    hungry: bool = False


@dataclass(frozen=True)
class Allocation:
    """One plugin's part of a tick: base share of the budget plus reallocated ATP."""

    name: str
    share: float
    base: float
    extra: float

    @property
    def atp(self) -> float:
        """Total ATP units the plugin may spend this tick."""
        return self.base + self.extra


def _finite_nonneg(x: float) -> float:
    return x if math.isfinite(x) and x > 0.0 else 0.0


def shares(claims: Sequence[Claim], min_share: float, salience_floor: float) -> list[float]:
    """Share of the tick budget for each claim (0 for inactive ones); see the module doc.

    The effective minimum share is min(min_share, 1 / n_active) so the shares always sum to 1.
    """
    active = [c for c in claims if c.active]
    if not active:
        return [0.0] * len(claims)
    m = min(min_share, 1.0 / len(active))
    weights = {c.name: _finite_nonneg(c.trust) * (salience_floor + _finite_nonneg(c.salience))
               * _finite_nonneg(c.gain) for c in active}
    total = sum(weights.values())
    free = 1.0 - m * len(active)
    out = []
    for c in claims:
        if not c.active:
            out.append(0.0)
        elif total <= 0.0:
            out.append(1.0 / len(active))
        else:
            out.append(m + free * weights[c.name] / total)
    return out


def allocate(claims: Sequence[Claim], budget: float, pool: float, limit: float,
             cfg: AllocatorConfig) -> list[Allocation]:
    """Split `budget` by `shares`, then hand the returned `pool` to hungry plugins.

    Args:
        claims: one per plugin, in the configured plugin order (the order is the tie-break,
            so the result is deterministic).
        budget: ATP for this tick (already capped by the reservoir).
        pool: ATP returned by early halts in the previous period.
        limit: the most that may be handed out in total (the reservoir level).
        cfg: allocation parameters.

    Returns:
        One Allocation per claim, same order.
    """
    budget = max(0.0, min(budget, limit))
    s = shares(claims, cfg.min_share, cfg.salience_floor)
    extra_total = min(_finite_nonneg(pool), cfg.realloc_cap * budget, max(0.0, limit - budget))
    hungry = {i for i, c in enumerate(claims) if c.active and c.hungry and s[i] > 0.0}
    hungry_share = sum(s[i] for i in hungry)
    out = []
    for i, c in enumerate(claims):
        extra = extra_total * s[i] / hungry_share if i in hungry and hungry_share > 0 else 0.0
        out.append(Allocation(c.name, s[i], s[i] * budget, extra))
    return out


def apply_min_grant(allocs: Sequence[Allocation], credit: dict[str, float],
                    min_grant: float) -> list[Allocation]:
    """Hold allocations below `min_grant` as credit until they add up to it (see module doc).

    Args:
        allocs: this tick's allocations.
        credit: accrued ATP per plugin, updated in place.
        min_grant: smallest useful allocation (one refinement step); 0 disables.
    """
    out = []
    for a in allocs:
        if min_grant <= 0.0 or a.share <= 0.0 or a.atp >= min_grant:
            credit[a.name] = 0.0
            out.append(a)
            continue
        c = credit.get(a.name, 0.0) + a.atp
        if c + 1e-9 >= min_grant:
            credit[a.name] = 0.0
            out.append(Allocation(a.name, a.share, c, 0.0))
        else:
            credit[a.name] = c
            out.append(Allocation(a.name, a.share, 0.0, 0.0))
    return out


@dataclass(frozen=True)
class PeriodSummary:
    """How one plugin used its allocation during one tick period."""

    name: str
    allocated: float
    spent: float
    reports: int
    hungry: bool

    @property
    def returned(self) -> float:
        """ATP returned to the pool: unused ATP after early halts (0 if hungry or silent)."""
        if self.hungry or self.reports == 0:
            return 0.0
        return max(0.0, self.allocated - self.spent)


class Ledger:
    """Per-period accounting of allocations, spending and halts."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = tuple(names)
        self._allocated = dict.fromkeys(self._names, 0.0)
        self._spent = dict.fromkeys(self._names, 0.0)
        self._reports = dict.fromkeys(self._names, 0)
        self._hungry = dict.fromkeys(self._names, False)

    def open(self, allocations: Iterable[Allocation]) -> None:
        """Start a period with these allocations."""
        for name in self._names:
            self._allocated[name] = 0.0
            self._spent[name] = 0.0
            self._reports[name] = 0
            self._hungry[name] = False
        for a in allocations:
            if a.name in self._allocated:
                self._allocated[a.name] = a.atp

    def record(self, name: str, atp_spent: float, halt_reason: str) -> None:
        """Add one report's spending; halt reason 'budget' marks the plugin hungry."""
        if name not in self._spent:
            return
        self._spent[name] += _finite_nonneg(atp_spent)
        self._reports[name] += 1
        if halt_reason == 'budget':
            self._hungry[name] = True

    def close(self) -> list[PeriodSummary]:
        """Summaries of the period that is ending, in plugin order."""
        return [PeriodSummary(n, self._allocated[n], self._spent[n], self._reports[n],
                              self._hungry[n]) for n in self._names]
