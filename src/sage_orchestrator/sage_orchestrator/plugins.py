"""In-process IRP plugins and the adapter that lets the orchestrator core run them.

`InProcessPlugin` is what the core calls in its tick: ``run(atp, now)`` refines the pending
input with at most `atp` ATP and returns a `PluginReport` (or None when there is no work).
`RefineRunner` turns a factory of `IrpPlugin`s (one per input) into one. Two real plugins:

- `HopfieldRecall`: associative recall (a modern Hopfield network, Ramsauer et al. 2020):
  the query moves to the stored pattern it is closest to; the update is a concave-convex step,
  so energy falls monotonically; the decision is which pattern is recalled (or none yet).
  `WorkingMemoryRecall` runs it over the embeddings of recent latents of one modality.
- `QuadraticDenoise`: gradient descent on 0.5*|x - y|^2 + 0.5*lam*|Dx|^2 (signal smoothing).
  With lr < 2 / (1 + 4 lam) every step lowers the energy; with a larger lr every step
  overshoots, is rejected by the IRP loop, and the ATP buys nothing.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
import math
from typing import Any, Protocol

import numpy as np

from sage_orchestrator.errors import OrchestratorError
from sage_orchestrator.irp import (IrpPlugin, IrpResult, PluginReport, decision_change,
                                   refine, report_from_result)


class InProcessPlugin(Protocol):
    """A plugin the core runs inside its tick with the ATP it allocated."""

    def run(self, atp: float, now: float) -> PluginReport | None:
        """Refine the pending input with at most `atp` ATP; None when there is no work."""


@dataclass(frozen=True)
class RefineSettings:
    """Halt-rule settings handed to `sage_common.irp.refine`."""

    eps: float = 1e-3
    k: int = 2
    max_iters: int = 50
    atp_per_step: float = 1.0


DEFAULT_SETTINGS = RefineSettings()


def run_refine(plugin: IrpPlugin[Any], atp: float, name: str,
               settings: RefineSettings = DEFAULT_SETTINGS) -> tuple[IrpResult[Any],
                                                                      PluginReport]:
    """Refine one plugin and build its report, with the decision change when it has one."""
    decide = getattr(plugin, 'decision', None)
    before = decide(plugin.init_state()) if callable(decide) else None
    result = refine(plugin, atp, settings.eps, settings.k, settings.max_iters,
                    settings.atp_per_step)
    changed = decision_change(before, decide(result.state)) if callable(decide) else None
    return result, report_from_result(result, name, changed)


class RefineRunner:
    """Adapts a factory input -> IrpPlugin to `InProcessPlugin`; the latest input wins."""

    def __init__(self, name: str, factory: Callable[[Any], IrpPlugin[Any]],
                 settings: RefineSettings = DEFAULT_SETTINGS) -> None:
        self.name = name
        self.factory = factory
        self.settings = settings
        self.last: IrpResult[Any] | None = None
        self._pending: Any = None

    def submit(self, x: Any) -> None:
        """Queue x for the next run (replaces an input that was not refined yet)."""
        self._pending = x

    def run(self, atp: float, now: float) -> PluginReport | None:
        """Refine the pending input, if any, with at most `atp` ATP."""
        if self._pending is None or atp <= 0.0:
            return None
        x, self._pending = self._pending, None
        self.last, report = run_refine(self.factory(x), atp, self.name, self.settings)
        return report


class QuadraticDenoise:
    """Smooths a 1-D signal y by gradient descent on 0.5|x-y|^2 + 0.5 lam |Dx|^2 (>= 0).

    Args:
        y: the noisy signal (the input).
        lam: smoothness weight.
        lr: step size; every step lowers the energy for lr < 2 / (1 + 4 lam).
    """

    def __init__(self, y: Any, lam: float = 2.0, lr: float = 0.15) -> None:
        self.y = np.asarray(y, dtype=np.float64)
        self.lam = lam
        self.lr = lr

    def init_state(self) -> np.ndarray:
        return self.y.copy()

    def step(self, state: np.ndarray, iteration: int) -> np.ndarray:
        d = np.diff(state)  # (n-1,)
        dtd = np.zeros_like(state)
        dtd[:-1] -= d
        dtd[1:] += d
        return state - self.lr * ((state - self.y) + self.lam * dtd)

    def energy(self, state: np.ndarray) -> float:
        with np.errstate(over='ignore', invalid='ignore'):
            return (0.5 * float(np.sum((state - self.y) ** 2))
                    + 0.5 * self.lam * float(np.sum(np.diff(state) ** 2)))

    def halt(self, state: np.ndarray) -> bool:
        return False

    def decision(self, state: np.ndarray) -> np.ndarray:
        """Sign pattern of the signal (what a threshold detector downstream would see)."""
        return np.asarray(state > 0.0)


class HopfieldRecall:
    """Modern Hopfield retrieval of `query` over unit-norm patterns (rows of X).

    Energy E(q) = -lse(beta, X q) / beta + 0.5 q.q + log(N) / beta + 0.5 (unit patterns);
    the constant terms are the known lower bound, so E >= 0.
    """

    def __init__(self, patterns: np.ndarray, query: Any, beta: float = 8.0) -> None:
        x = np.asarray(patterns, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError('patterns must be a non-empty (N, d) array')
        self.patterns = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        q = np.asarray(query, dtype=np.float64).ravel()
        self.query = q / max(float(np.linalg.norm(q)), 1e-12)
        self.beta = float(beta)
        self._offset = math.log(self.patterns.shape[0]) / self.beta + 0.5

    def _attention(self, state: np.ndarray) -> np.ndarray:
        a = self.beta * (self.patterns @ state)  # (N,)
        p = np.exp(a - a.max())
        return np.asarray(p / p.sum())

    def init_state(self) -> np.ndarray:
        return self.query.copy()

    def step(self, state: np.ndarray, iteration: int) -> np.ndarray:
        return np.asarray(self.patterns.T @ self._attention(state))

    def energy(self, state: np.ndarray) -> float:
        a = self.beta * (self.patterns @ state)
        lse = float(a.max() + np.log(np.sum(np.exp(a - a.max()))))
        return max(0.0, -lse / self.beta + 0.5 * float(state @ state) + self._offset)

    def halt(self, state: np.ndarray) -> bool:
        return False

    def decision(self, state: np.ndarray) -> int:
        """Index of the recalled pattern, or -1 while no pattern holds half the attention.

        Refinement that turns an ambiguous query into a recall changes this decision.
        """
        p = self._attention(state)
        k = int(np.argmax(p))
        return k if p[k] >= 0.5 else -1


class WorkingMemoryRecall:
    """In-process plugin: which recent input of its modality does the newest one recall?

    Each observed embedding becomes the next query; once refined it joins the working memory
    (a ring of `capacity` embeddings).
    """

    def __init__(self, name: str, capacity: int = 64, beta: float = 8.0,
                 settings: RefineSettings | None = None) -> None:
        self.name = name
        self.beta = beta
        self.settings = settings or RefineSettings(max_iters=10)
        self._memory: deque[np.ndarray] = deque(maxlen=capacity)
        self._query: np.ndarray | None = None
        self.last: IrpResult[Any] | None = None

    def observe(self, embedding: np.ndarray) -> None:
        """Queue an embedding as the next query (non-finite or empty ones are ignored)."""
        e = np.asarray(embedding, dtype=np.float64).ravel()
        if e.size and np.all(np.isfinite(e)):
            if self._query is not None:
                self._memory.append(self._query)
            self._query = e

    def run(self, atp: float, now: float) -> PluginReport | None:
        """Recall the stored pattern nearest the pending query, within `atp` ATP."""
        q, self._query = self._query, None
        if q is None:
            return None
        same = [m for m in self._memory if m.shape == q.shape]
        self._memory.append(q)
        if not same or atp <= 0.0:
            return None
        self.last, report = run_refine(HopfieldRecall(np.stack(same), q, self.beta), atp,
                                       self.name, self.settings)
        return report


REGISTRY: dict[str, Callable[[str], InProcessPlugin]] = {
    'working_memory_recall': WorkingMemoryRecall,
}


def build_inprocess(names: Iterable[str]) -> dict[str, InProcessPlugin]:
    """In-process plugins by registry name.

    Raises:
        OrchestratorError: a name is not in REGISTRY.
    """
    out = {}
    for name in names:
        if name not in REGISTRY:
            raise OrchestratorError(f'unknown in-process plugin {name!r} (known: '
                                    f"{', '.join(sorted(REGISTRY))})")
        out[name] = REGISTRY[name](name)
    return out
