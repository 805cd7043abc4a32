"""Effects on other nodes: which remote parameters the orchestrator wants, and keeping them set.

The core computes the *desired* remote parameters every tick from the metabolic state and the
memory-pressure level (`desired_params`); `ParamSync` compares them with what the remote nodes
acknowledged and hands the node shell the changes to send (one SetParameters request per node,
at most one in flight per node, failures retried after `retry_s`, everything re-sent every
`reassert_s` so a respawned node gets its settings back).

Composition rule of `desired_params`:
1. the state's effects: camera fps (`camera_fps` target) and the attend-threshold offsets
   (`threshold` target). A threshold target whose parameter contains '{state}' (SNARC's
   'threshold.offset.{state}') gets every state's offset, so SNARC applies the right one as
   soon as it sees a MetabolicState; a plain parameter gets the current state's offset;
2. the green settings of `pressure.green.set` (the normal values of anything pressure changes);
3. at yellow, the yellow settings; at red, the yellow then the red settings. Pressure settings
   are caps: for numbers the lower value wins, for booleans false wins, strings replace;
4. model gating on every remote plugin's node: `unload_states_param` (default
   'unload_states', the encoders' comma-separated list of states in which they unload) gets
   the states whose state.<name>.models leave the plugin out, or every state while memory
   pressure pauses or unloads it; `unload_on_red_param` (default 'unload_on_memory_red') is
   true only for plugins paused at red; `model_active_param` (optional bool) gets whether the
   plugin is active now.

A setting is written 'node:param=value'; value 'true'/'false' is a bool, a number with '.' or
an exponent is a float (write 10.0 for a float parameter), other numbers are ints, anything
else is a string.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sage_orchestrator.errors import OrchestratorError
from sage_orchestrator.metabolic import State

Key = tuple[str, str]
Value = bool | int | float | str


def parse_target(text: str) -> Key | None:
    """Parse 'node:param' ('' = no target).

    Raises:
        OrchestratorError: not of the form node:param.
    """
    text = text.strip()
    if not text:
        return None
    node, sep, param = text.partition(':')
    if not sep or not node.strip() or not param.strip() or ':' in param:
        raise OrchestratorError(f"remote parameter target {text!r} is not 'node:param'")
    return node.strip().lstrip('/'), param.strip()


def parse_value(text: str) -> Value:
    """Typed value of a setting (see the module docstring)."""
    s = text.strip()
    if s.lower() in ('true', 'false'):
        return s.lower() == 'true'
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def parse_settings(text: str) -> dict[Key, Value]:
    """Parse 'node:param=value,node:param=value' ('' = none).

    Raises:
        OrchestratorError: an item is not 'node:param=value'.
    """
    out: dict[Key, Value] = {}
    for item in (i.strip() for i in text.split(',')):
        if not item:
            continue
        target, sep, value = item.partition('=')
        key = parse_target(target)
        if not sep or key is None or not value.strip():
            raise OrchestratorError(f"setting {item!r} is not 'node:param=value'")
        out[key] = parse_value(value)
    return out


def parse_names(text: str) -> frozenset[str]:
    """Comma-separated names as a set ('' = empty)."""
    return frozenset(n.strip() for n in text.split(',') if n.strip())


@dataclass(frozen=True)
class StateEffects:
    """What one metabolic state does (state.<name>.* in the profile).

    models is the set of plugins kept loaded, or None for all of them.
    """

    budget_scale: float = 1.0
    recharge_scale: float = 1.0
    camera_fps: float = 15.0
    threshold_offset: float = 0.0
    models: frozenset[str] | None = None

    def keeps(self, plugin: str) -> bool:
        """True when the plugin stays loaded in this state."""
        return self.models is None or plugin in self.models


def _default_states() -> dict[State, StateEffects]:
    return {s: StateEffects() for s in State}


@dataclass(frozen=True)
class EffectsConfig:
    """Remote effects of states and pressure (effects.*, state.*, pressure.<level>.*)."""

    states: Mapping[State, StateEffects] = field(default_factory=_default_states)
    camera_fps: Key | None = ('camera', 'fps')
    threshold: Key | None = None
    model_active_param: str = ''
    unload_states_param: str = ''
    unload_on_red_param: str = ''
    # Settings at green, yellow, red (green holds the normal values).
    pressure_set: tuple[Mapping[Key, Value], ...] = ({}, {}, {})
    # Plugins paused at yellow and at red (red also pauses yellow's).
    pressure_pause: tuple[frozenset[str], ...] = (frozenset(), frozenset(), frozenset())
    # Level from which idle models are unloaded (1 yellow, 2 red, 3 never).
    unload_idle_level: int = 1
    idle_model_s: float = 30.0
    retry_s: float = 5.0
    reassert_s: float = 30.0


def combine(base: Value | None, cap: Value) -> Value:
    """Apply a pressure cap to a value: lower number wins, false wins, strings replace."""
    if base is None or type(base) is not type(cap):
        if isinstance(base, (int, float)) and isinstance(cap, (int, float)) and not (
                isinstance(base, bool) or isinstance(cap, bool)):
            return type(base)(min(base, cap))
        return cap
    if isinstance(cap, bool):
        return bool(base) and cap
    if isinstance(cap, (int, float)):
        return min(base, cap)
    return cap


def paused(level: int, cfg: EffectsConfig) -> frozenset[str]:
    """Plugins paused by memory pressure at this level (cumulative)."""
    out: frozenset[str] = frozenset()
    for lvl in range(1, level + 1):
        out |= cfg.pressure_pause[lvl]
    return out


def unload_states(plugin: str, pressure_off: bool, cfg: EffectsConfig) -> str:
    """States in which a remote plugin's node should unload its model (comma-separated)."""
    return ','.join(s.value for s in State
                    if pressure_off or not cfg.states[s].keeps(plugin))


def desired_params(state: State, level: int, active: Mapping[str, bool],
                   cfg: EffectsConfig,
                   pressure_off: Mapping[str, bool] | None = None) -> dict[Key, Value]:
    """Remote parameters wanted now (composition rule in the module docstring).

    Args:
        state: current metabolic state.
        level: memory-pressure level (0 green, 1 yellow, 2 red).
        active: remote plugin name -> whether it should be loaded now.
        cfg: effects configuration.
        pressure_off: remote plugin name -> paused or unloaded by memory pressure.
    """
    eff = cfg.states[state]
    d: dict[Key, Value] = {}
    if cfg.camera_fps is not None:
        d[cfg.camera_fps] = float(eff.camera_fps)
    if cfg.threshold is not None:
        node, param = cfg.threshold
        if '{state}' in param:
            for s in State:
                d[(node, param.replace('{state}', s.value.lower()))] = float(
                    cfg.states[s].threshold_offset)
        else:
            d[cfg.threshold] = float(eff.threshold_offset)
    for key, value in cfg.pressure_set[0].items():
        d.setdefault(key, value)
    for lvl in range(1, level + 1):
        for key, value in cfg.pressure_set[lvl].items():
            d[key] = combine(d.get(key), value)
    off = pressure_off or {}
    red_paused = paused(2, cfg)
    for plugin, on in active.items():
        if cfg.model_active_param:
            d[(plugin, cfg.model_active_param)] = bool(on)
        if cfg.unload_states_param:
            d[(plugin, cfg.unload_states_param)] = unload_states(
                plugin, bool(off.get(plugin)), cfg)
        if cfg.unload_on_red_param:
            d[(plugin, cfg.unload_on_red_param)] = plugin in red_paused
    return d


class ParamSync:
    """Reconciles desired remote parameters with what remote nodes acknowledged."""

    def __init__(self, retry_s: float = 5.0, reassert_s: float = 30.0) -> None:
        self.retry_s = retry_s
        self.reassert_s = reassert_s
        self.desired: dict[Key, Value] = {}
        self.applied: dict[Key, tuple[Value, float]] = {}
        self._failed_at: dict[Key, float] = {}
        self._pending: dict[str, tuple[dict[str, Value], float]] = {}
        self.failures: dict[Key, str] = {}

    def set_desired(self, desired: Mapping[Key, Value]) -> None:
        """Replace the desired values (keys no longer desired are left as they are)."""
        self.desired = dict(desired)

    def _stale(self, key: Key, value: Value, now: float) -> bool:
        got = self.applied.get(key)
        if got is None or got[0] != value or type(got[0]) is not type(value):
            return True
        return now - got[1] >= self.reassert_s

    def due(self, now: float) -> dict[str, dict[str, Value]]:
        """Parameter changes to send now, per node; marks them in flight."""
        for node, (_, sent) in list(self._pending.items()):
            if now - sent >= 2.0 * self.retry_s:  # the node never answered
                del self._pending[node]
        out: dict[str, dict[str, Value]] = {}
        for key, value in self.desired.items():
            node, param = key
            if node in self._pending or not self._stale(key, value, now):
                continue
            if now - self._failed_at.get(key, -1e18) < self.retry_s:
                continue
            out.setdefault(node, {})[param] = value
        for node, params in out.items():
            self._pending[node] = (params, now)
        return out

    def result(self, node: str, sent: Mapping[str, Value],
               outcome: Mapping[str, tuple[bool, str]], now: float) -> None:
        """Record a node's answer to the request `sent` (as due() returned it).

        The values applied are the ones of that request, not of whatever is in flight now: a
        reply that comes after its request timed out (and a newer one was sent) must neither
        be credited to the newer request nor clear it.
        """
        pending = self._pending.get(node)
        if pending is not None and pending[0] is sent:
            del self._pending[node]
        for param, value in sent.items():
            ok, reason = outcome.get(param, (False, 'no result'))
            key = (node, param)
            if ok:
                self.applied[key] = (value, now)
                self._failed_at.pop(key, None)
                self.failures.pop(key, None)
            else:
                self._failed_at[key] = now
                self.failures[key] = reason or 'rejected'

    def unreachable(self, node: str, reason: str, now: float,
                    sent: Mapping[str, Value] | None = None) -> None:
        """The node's service is not available: retry its parameters after retry_s.

        `sent` is the request that failed (None: whatever is in flight); the failure of a
        request already given up on, with a newer one in flight, changes nothing.
        """
        pending = self._pending.get(node)
        if pending is None or (sent is not None and pending[0] is not sent):
            return
        del self._pending[node]
        for param in pending[0]:
            self._failed_at[(node, param)] = now
            self.failures[(node, param)] = reason

    def value(self, key: Key) -> Value | None:
        """Last acknowledged value of a remote parameter."""
        got = self.applied.get(key)
        return None if got is None else got[0]


def format_settings(params: Iterable[tuple[Key, Value]]) -> str:
    """'node:param=value, ...' for logs and diagnostics."""
    return ', '.join(f'{n}:{p}={v}' for (n, p), v in params)
