"""ATP accounting and metabolic gating shared by the encoder node shells (pure)."""
from __future__ import annotations

from collections.abc import Iterable


class AtpAccount:
    """This plugin's ATP for the current tick, from /sage/budget allocations.

    Each AtpBudget message refills the account with the allocation whose `plugin` equals
    our name (0 when we are not listed); every input spends from it. Before the first
    budget arrives `available()` is None, which the cores read as irp.default_atp.
    """

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self._remaining: float | None = None
        self.tick = -1
        self.spent_tick = 0.0

    def on_budget(self, tick: int, allocations: Iterable[tuple[str, float]]) -> None:
        """Refill from one AtpBudget: (plugin, atp) pairs."""
        self._remaining = 0.0
        for plugin, atp in allocations:
            if plugin == self.plugin:
                self._remaining = max(0.0, float(atp))
                break
        self.tick = int(tick)
        self.spent_tick = 0.0

    def available(self) -> float | None:
        """ATP left this tick (None = no budget seen yet)."""
        return self._remaining

    def spend(self, atp: float) -> None:
        """Charge ATP spent on one input."""
        self.spent_tick += atp
        if self._remaining is not None:
            self._remaining = max(0.0, self._remaining - atp)


def should_suspend(state: str, memory_pressure: str, unload_states: str,
                   unload_on_red: bool) -> bool:
    """True when the model must be unloaded and inputs skipped.

    Args:
        state: MetabolicState.state, e.g. 'DREAM'.
        memory_pressure: 'green' | 'yellow' | 'red'.
        unload_states: comma-separated states that unload (parameter unload_states).
        unload_on_red: unload when memory pressure is red.
    """
    states = {s.strip().upper() for s in unload_states.split(',') if s.strip()}
    return state.upper() in states or (unload_on_red and memory_pressure.lower() == 'red')
