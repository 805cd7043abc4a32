"""A simulated clock and an obliging remote graph around `OrchestratorCore`.

Used by the core tests and for scripted scenarios: `SimGraph.step` ticks the core at a fixed
simulated period, and every remote parameter it asks for is accepted at once, so `remote`
holds what the camera, SNARC and encoder nodes would be running with.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sage_common.records import SalienceRecord
from sage_orchestrator.effects import EffectsConfig, StateEffects
from sage_orchestrator.metabolic import MetabolicConfig, State
from sage_orchestrator.metabolic import Transition
from sage_orchestrator.orchestrator_core import (OrchestratorConfig, OrchestratorCore,
                                                 PluginSpec, SleepRequest, TickResult)
from sage_orchestrator.pressure import PressureConfig

DT = 0.1

# Per-state effects of the scripted scenario (the profile defaults, except models in REST).
STATES = {
    State.WAKE: StateEffects(1.0, 1.0, 15.0, 0.0, None),
    State.FOCUS: StateEffects(1.5, 0.5, 30.0, -0.05, None),
    State.REST: StateEffects(0.4, 2.0, 5.0, 0.1, None),
    State.DREAM: StateEffects(0.2, 3.0, 2.0, 0.25,
                              frozenset({'vision_encoder', 'audio_encoder'})),
    State.CRISIS: StateEffects(0.3, 1.5, 5.0, 0.15,
                               frozenset({'vision_encoder', 'audio_encoder'})),
}

ENCODERS = (PluginSpec('vision_encoder', 'vision', 'stream'),
            PluginSpec('audio_encoder', 'audio', 'stream'),
            PluginSpec('language_encoder', 'language', 'event'))


def scenario_config(**kw: Any) -> OrchestratorConfig:
    """Short times so a simulated minute walks through every state; kw replaces fields."""
    cfg = OrchestratorConfig(
        plugins=ENCODERS, tick_hz=1.0 / DT, report_timeout_s=2.0, startup_grace_s=1000.0,
        salience_half_life_s=0.5,
        metabolic=MetabolicConfig(idle_rest_s=3.0, idle_dream_s=6.0, dream_max_s=20.0,
                                  dream_cooldown_s=100.0,
                                  dwell={s: 0.5 for s in State}),
        effects=EffectsConfig(states=STATES, camera_fps=('camera', 'fps'),
                              threshold=('snarc', 'threshold_offset'),
                              model_active_param='active',
                              pressure_set=({}, {('camera', 'fps'): 10.0},
                                            {('camera', 'fps'): 5.0}),
                              pressure_pause=(frozenset(), frozenset(),
                                              frozenset({'language_encoder'})),
                              unload_idle_level=3),
        pressure=PressureConfig(hold_s=1.0))
    return replace(cfg, **kw)


class SimGraph:
    """Drives a core on a simulated clock; remote nodes accept every parameter."""

    def __init__(self, core: OrchestratorCore, t0: float = 1000.0) -> None:
        self.core = core
        self.t = t0
        self.remote: dict[tuple[str, str], object] = {}
        self.history: list[tuple[float, tuple[str, str], object]] = []
        self.sleeps: list[SleepRequest] = []
        self.transitions: list[Transition] = []
        self.last: TickResult | None = None

    def step(self, before: Callable[[float], None] | None = None) -> TickResult:
        """Run `before(t)` (inputs), tick, accept the remote parameters, advance time."""
        if before is not None:
            before(self.t)
        res = self.core.tick(self.t)
        for node, params in res.params.items():
            for p, v in params.items():
                self.remote[(node, p)] = v
                self.history.append((self.t, (node, p), v))
            self.core.on_param_result(node, params, {p: (True, '') for p in params}, self.t)
        if res.sleep is not None:
            self.sleeps.append(res.sleep)
        self.transitions.extend(res.transitions)
        self.last = res
        self.t += DT
        return res

    def run(self, seconds: float, before: Callable[[float], None] | None = None) -> TickResult:
        """Step for `seconds` of simulated time; returns the last result."""
        res = self.step(before)
        for _ in range(max(0, round(seconds / DT) - 1)):
            res = self.step(before)
        return res

    def until(self, state: str, limit_s: float,
              before: Callable[[float], None] | None = None) -> TickResult:
        for _ in range(round(limit_s / DT)):
            res = self.step(before)
            if res.state.state == state:
                return res
        now = self.last.state if self.last is not None else None
        raise TimeoutError(f'{state} not reached in {limit_s} s; now {now}')

    def salience(self, modality: str, value: float) -> Callable[[float], None]:
        """An input function that scores `modality` at `value` every tick."""
        def feed(t: float) -> None:
            self.core.on_salience(SalienceRecord(t, modality, 0, 0, 0, 0, 0, 0, value, 0.5,
                                                 value >= 0.5), t)
        return feed
