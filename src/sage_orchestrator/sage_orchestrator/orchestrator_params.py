"""Parameters of the orchestrator node, declared once (pure: no rclpy).

`PARAMS` lists every ROS parameter, `validate` holds the cross-field rules, `build_config`
turns values into the core's `OrchestratorConfig`, and `env_overrides` reads deployment
overrides from the environment: every pressure.* parameter can be set with
SAGE_<NAME> where NAME is the parameter name upper-cased with dots as underscores
(pressure.yellow_psi -> SAGE_PRESSURE_YELLOW_PSI, pressure.red.pause ->
SAGE_PRESSURE_RED_PAUSE), and state_dir with SAGE_STATE_DIR. Environment values win over
the profile and are validated like any other value.
"""
from __future__ import annotations

from collections.abc import Mapping
import os

from sage_common.errors import ParamError
from sage_common.params import ParamSpec, ParamValue, coerce
from sage_common.vocabulary import Topic
from sage_orchestrator.allocator import AllocatorConfig
from sage_orchestrator.effects import (EffectsConfig, StateEffects, parse_names,
                                       parse_settings, parse_target)
from sage_orchestrator.errors import OrchestratorError
from sage_orchestrator.metabolic import MetabolicConfig, State
from sage_orchestrator.orchestrator_core import (AtpConfig, OrchestratorConfig,
                                                 parse_plugins)
from sage_orchestrator.plugins import REGISTRY
from sage_orchestrator.pressure import PressureConfig, PressurePaths
from sage_orchestrator.trust import TrustConfig

_LEVEL = {'yellow': 1, 'red': 2, 'never': 3}

# budget_scale, recharge_scale, camera_fps, threshold_offset, models
_STATE_DEFAULTS = {
    State.WAKE: (1.0, 1.0, 15.0, 0.0, '*'),
    State.FOCUS: (1.5, 0.5, 30.0, -0.05, '*'),
    State.REST: (0.4, 2.0, 5.0, 0.1, '*'),
    State.DREAM: (0.2, 3.0, 2.0, 0.25, 'vision_encoder,audio_encoder'),
    State.CRISIS: (0.3, 1.5, 5.0, 0.15, 'vision_encoder,audio_encoder'),
}
_DWELL = {State.WAKE: 2.0, State.FOCUS: 3.0, State.REST: 2.0, State.DREAM: 5.0,
          State.CRISIS: 5.0}


def _state_params() -> tuple[ParamSpec, ...]:
    out = []
    for state, (budget, recharge, fps, offset, models) in _STATE_DEFAULTS.items():
        p = f'state.{state.value.lower()}.'
        out += [
            ParamSpec(p + 'budget_scale', budget, f'{state.value}: budget per tick multiplier',
                      0.0, 10.0),
            ParamSpec(p + 'recharge_scale', recharge,
                      f'{state.value}: ATP reservoir recharge multiplier', 0.0, 10.0),
            ParamSpec(p + 'camera_fps', fps, f'{state.value}: camera frame rate (Hz)',
                      0.1, 240.0),
            ParamSpec(p + 'threshold_offset', offset,
                      f'{state.value}: added to the SNARC attend threshold', -1.0, 1.0),
            ParamSpec(p + 'models', models,
                      f"{state.value}: plugins kept loaded, comma-separated ('*' = all)"),
        ]
    for state, dwell in _DWELL.items():
        out.append(ParamSpec(f'metabolic.dwell.{state.value.lower()}', dwell,
                             f'{state.value}: minimum seconds before a non-preempting exit',
                             0.0, 3600.0))
    return tuple(out)


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('plugins',
              'vision_encoder:vision:stream,audio_encoder:audio:stream,'
              'language_encoder:language:event',
              "plugins as name:modality:kind (kind stream | event | inprocess; an in-process "
              "plugin's name is its registry name, e.g. working_memory_recall)",
              read_only=True),
    ParamSpec('tick_hz', 10.0, 'allocation ticks per second', 0.5, 200.0, read_only=True),
    ParamSpec('report_timeout_s', 3.0, 'a stream plugin silent this long loses trust',
              0.1, 600.0),
    ParamSpec('startup_grace_s', 30.0,
              'a plugin that never reported is not timed out before this (model loading)',
              0.0, 3600.0),
    ParamSpec('salience_half_life_s', 1.0, 'half-life of the per-modality salience peak',
              0.01, 600.0),
    ParamSpec('reward_flood_per_tick', 50, 'rewards per tick above which they are dropped',
              1, 100000),
    ParamSpec('state_dir', '~/.local/state/sage',
              "directory for persisted trust ('' = do not persist; SAGE_STATE_DIR overrides)",
              read_only=True),
    ParamSpec('persist_period_s', 30.0, 'seconds between trust saves (also saved at exit)',
              1.0, 86400.0, read_only=True),
    ParamSpec('state_publish_period_s', 1.0,
              'MetabolicState is published on every transition and at this period',
              0.05, 60.0),
    ParamSpec('diagnostics_period_s', 1.0, '/diagnostics period', 0.1, 60.0, read_only=True),
    ParamSpec('sleep_service', Topic.MEMORY_SLEEP, 'memory Sleep service', read_only=True),
    # ATP economy and allocation.
    ParamSpec('atp.budget_per_tick', 10.0, 'ATP units per tick in WAKE (before state scale)',
              0.0, 1e6),
    ParamSpec('atp.capacity', 1500.0, 'ATP reservoir size: the burst a state can draw on',
              1.0, 1e9),
    ParamSpec('atp.recharge_per_s', 100.0, 'ATP reservoir recharge: the sustained rate',
              0.0, 1e9),
    ParamSpec('atp.min_share', 0.05, 'minimum share of the budget for every active plugin',
              0.0, 1.0),
    ParamSpec('atp.min_grant', 1.0,
              'smaller allocations accrue until they reach this (one refinement step)',
              0.0, 1e6),
    ParamSpec('atp.salience_floor', 0.1, 'added to salience in the share weight', 0.0, 10.0),
    ParamSpec('atp.focus_gain', 2.0, 'share weight multiplier for the FOCUS modality',
              1.0, 100.0),
    ParamSpec('atp.realloc_cap', 1.0,
              'returned ATP handed out per tick, at most this times the tick budget',
              0.0, 100.0),
    # Trust.
    ParamSpec('trust.initial', 0.5, 'trust of a plugin never seen before', 0.0, 1.0),
    ParamSpec('trust.min', 0.05, 'lowest trust (> 0 so a plugin can earn trust back)',
              0.0, 1.0),
    ParamSpec('trust.max', 1.0, 'highest trust', 0.0, 1.0),
    ParamSpec('trust.rate', 0.1, 'learning rate toward each outcome score', 0.0, 1.0),
    ParamSpec('trust.timeout_rate', 0.2, 'fraction of trust lost per report timeout',
              0.0, 1.0),
    ParamSpec('trust.w_monotonic', 1.0, 'weight of "energy fell monotonically"', 0.0, 100.0),
    ParamSpec('trust.w_efficiency', 1.0, 'weight of "energy drop per ATP"', 0.0, 100.0),
    ParamSpec('trust.w_decision', 0.5, 'weight of "refinement changed the decision"',
              0.0, 100.0),
    ParamSpec('trust.efficiency_ref', 0.05, 'relative energy drop per ATP for full marks',
              1e-9, 1e6),
    ParamSpec('trust.decision_ref', 0.05, 'fraction of output changed for full marks',
              1e-9, 1.0),
    # Metabolic state machine.
    ParamSpec('metabolic.focus_enter', 0.7, 'salience that enters FOCUS from WAKE', 0.0, 1.0),
    ParamSpec('metabolic.focus_exit', 0.4, 'FOCUS ends when salience falls below', 0.0, 1.0),
    ParamSpec('metabolic.focus_min_reserve', 0.3, 'ATP reserve fraction FOCUS needs',
              0.0, 1.0),
    ParamSpec('metabolic.wake_salience', 0.5, 'salience that ends REST', 0.0, 1.0),
    ParamSpec('metabolic.dream_preempt_salience', 0.6, 'salience spike that ends DREAM',
              0.0, 1.0),
    ParamSpec('metabolic.activity_salience', 0.3,
              'salience that counts as activity (resets the idle time)', 0.0, 1.0),
    ParamSpec('metabolic.idle_rest_s', 30.0, 'idle seconds before WAKE -> REST', 0.0, 1e6),
    ParamSpec('metabolic.idle_dream_s', 120.0, 'idle seconds before REST -> DREAM', 0.0, 1e6),
    ParamSpec('metabolic.dream_max_s', 60.0, 'longest dream; also the Sleep max_duration_s',
              0.1, 1e6),
    ParamSpec('metabolic.dream_cooldown_s', 600.0, 'seconds after a dream before the next',
              0.0, 1e7),
    ParamSpec('metabolic.dream_min_reserve', 0.2, 'ATP reserve fraction DREAM needs',
              0.0, 1.0),
    ParamSpec('metabolic.crisis_enter_reserve', 0.1, 'ATP reserve fraction below which '
              'CRISIS is entered', 0.0, 1.0),
    ParamSpec('metabolic.crisis_exit_reserve', 0.3, 'ATP reserve fraction that ends CRISIS',
              0.0, 1.0),
) + _state_params() + (
    # Effects on other nodes.
    ParamSpec('effects.camera_fps', 'camera:fps',
              "camera frame-rate parameter as node:param ('' = leave the camera alone)"),
    ParamSpec('effects.threshold', 'snarc:threshold.offset.{state}',
              "SNARC attend-threshold offset parameter as node:param; '{state}' = one per "
              "state, lower case ('' = none)"),
    ParamSpec('effects.unload_states_param', 'unload_states',
              "string parameter on each encoder node listing the states it unloads in; set "
              "from state.*.models and memory pressure ('' = leave it alone)"),
    ParamSpec('effects.unload_on_red_param', 'unload_on_memory_red',
              "bool parameter on each encoder node: unload at red pressure; set true only "
              "for plugins in pressure.red.pause ('' = leave it alone)"),
    ParamSpec('effects.model_active_param', '',
              "optional bool parameter on each remote plugin's node: loaded now "
              "('' = none; the encoders gate on unload_states instead)"),
    ParamSpec('effects.retry_s', 5.0, 'retry a failed remote parameter after', 0.1, 3600.0),
    ParamSpec('effects.reassert_s', 30.0, 're-send remote parameters this often', 1.0, 1e6),
    # Memory pressure.
    ParamSpec('pressure.period_s', 1.0, 'seconds between pressure readings', 0.05, 600.0,
              read_only=True),
    ParamSpec('pressure.proc_root', '/proc', 'where pressure/memory and meminfo are read'),
    ParamSpec('pressure.cgroup_dir', 'auto',
              "memory cgroup: 'auto' (from /proc/self/cgroup), 'none', or a directory"),
    ParamSpec('pressure.yellow_psi', 10.0, 'PSI some avg10 (%) for yellow', 0.0, 100.0),
    ParamSpec('pressure.red_psi', 40.0, 'PSI some avg10 (%) for red', 0.0, 100.0),
    ParamSpec('pressure.yellow_available_mb', 1200.0, 'MemAvailable (MB) at or below: yellow',
              0.0, 1e9),
    ParamSpec('pressure.red_available_mb', 500.0, 'MemAvailable (MB) at or below: red',
              0.0, 1e9),
    ParamSpec('pressure.yellow_cgroup', 0.85, 'cgroup working set / limit for yellow',
              0.0, 1.0),
    ParamSpec('pressure.red_cgroup', 0.95, 'cgroup working set / limit for red', 0.0, 1.0),
    ParamSpec('pressure.hysteresis', 0.2, 'relative margin a reading must clear to step down',
              0.0, 0.9),
    ParamSpec('pressure.hold_s', 10.0, 'seconds readings must stay clear to step down',
              0.0, 3600.0),
    ParamSpec('pressure.green.set', '',
              'normal values of what pressure changes: node:param=value,... (restored at '
              'green)'),
    ParamSpec('pressure.yellow.set', 'camera:fps=10.0',
              'caps at yellow: node:param=value,... (numbers: lower wins; bools: false wins)'),
    ParamSpec('pressure.red.set', 'camera:fps=5.0', 'caps at red (after the yellow caps)'),
    ParamSpec('pressure.yellow.pause', '', 'plugins paused at yellow, comma-separated'),
    ParamSpec('pressure.red.pause', 'language_encoder', 'plugins paused at red'),
    ParamSpec('pressure.unload_idle', 'yellow', 'level from which idle models are unloaded',
              choices=('yellow', 'red', 'never')),
    ParamSpec('pressure.idle_model_s', 30.0, 'a model with no report this long is idle',
              0.0, 1e6),
)

SPECS = {s.name: s for s in PARAMS}
ENV_PARAMS = tuple(s.name for s in PARAMS if s.name.startswith('pressure.')) + ('state_dir',)


def env_name(param: str) -> str:
    """Environment variable that overrides a parameter (pressure.* and state_dir)."""
    return 'SAGE_' + param.upper().replace('.', '_')


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, ParamValue]:
    """Parameter values set through the environment, coerced to their types.

    Raises:
        ParamError: a value cannot be converted (the message names the variable).
    """
    env = os.environ if environ is None else environ
    out: dict[str, ParamValue] = {}
    for name in ENV_PARAMS:
        var = env_name(name)
        if var in env:
            try:
                out[name] = coerce(SPECS[name], env[var])
            except ParamError as err:
                raise ParamError(f'{var}: {err}') from err
    return out


def _num(values: Mapping[str, ParamValue], name: str) -> float:
    """A numeric parameter value as float.

    Raises:
        OrchestratorError: the value is not a number.
    """
    x = values[name]
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise OrchestratorError(f"parameter '{name}': {x!r} is not a number")
    return float(x)


def _state_effects(values: Mapping[str, ParamValue], state: State) -> StateEffects:
    p = f'state.{state.value.lower()}.'
    models = str(values[p + 'models']).strip()
    return StateEffects(_num(values, p + 'budget_scale'), _num(values, p + 'recharge_scale'),
                        _num(values, p + 'camera_fps'), _num(values, p + 'threshold_offset'),
                        None if models == '*' else parse_names(models))


def build_config(values: Mapping[str, ParamValue]) -> OrchestratorConfig:
    """The core configuration from complete parameter values.

    Raises:
        OrchestratorError: a list or setting does not parse.
    """
    v = values
    plugins = parse_plugins(str(v['plugins']))
    effects = EffectsConfig(
        states={s: _state_effects(v, s) for s in State},
        camera_fps=parse_target(str(v['effects.camera_fps'])),
        threshold=parse_target(str(v['effects.threshold'])),
        model_active_param=str(v['effects.model_active_param']).strip(),
        unload_states_param=str(v['effects.unload_states_param']).strip(),
        unload_on_red_param=str(v['effects.unload_on_red_param']).strip(),
        pressure_set=tuple(parse_settings(str(v[f'pressure.{lv}.set']))
                           for lv in ('green', 'yellow', 'red')),
        pressure_pause=(frozenset(), parse_names(str(v['pressure.yellow.pause'])),
                        parse_names(str(v['pressure.red.pause']))),
        unload_idle_level=_LEVEL[str(v['pressure.unload_idle'])],
        idle_model_s=_num(v, 'pressure.idle_model_s'),
        retry_s=_num(v, 'effects.retry_s'), reassert_s=_num(v, 'effects.reassert_s'))
    metabolic = MetabolicConfig(
        **{k: _num(v, f'metabolic.{k}') for k in (
            'focus_enter', 'focus_exit', 'focus_min_reserve', 'wake_salience',
            'dream_preempt_salience', 'activity_salience', 'idle_rest_s', 'idle_dream_s',
            'dream_max_s', 'dream_cooldown_s', 'dream_min_reserve', 'crisis_enter_reserve',
            'crisis_exit_reserve')},
        dwell={s: _num(v, f'metabolic.dwell.{s.value.lower()}') for s in State})
    trust = TrustConfig(
        initial=_num(v, 'trust.initial'), lo=_num(v, 'trust.min'), hi=_num(v, 'trust.max'),
        rate=_num(v, 'trust.rate'), timeout_rate=_num(v, 'trust.timeout_rate'),
        w_monotonic=_num(v, 'trust.w_monotonic'), w_efficiency=_num(v, 'trust.w_efficiency'),
        w_decision=_num(v, 'trust.w_decision'), efficiency_ref=_num(v, 'trust.efficiency_ref'),
        decision_ref=_num(v, 'trust.decision_ref'))
    pressure = PressureConfig(
        **{k: _num(v, f'pressure.{k}') for k in (
            'yellow_psi', 'red_psi', 'yellow_available_mb', 'red_available_mb',
            'yellow_cgroup', 'red_cgroup', 'hysteresis', 'hold_s')})
    return OrchestratorConfig(
        plugins=plugins, tick_hz=_num(v, 'tick_hz'),
        report_timeout_s=_num(v, 'report_timeout_s'),
        startup_grace_s=_num(v, 'startup_grace_s'),
        salience_half_life_s=_num(v, 'salience_half_life_s'),
        reward_flood_per_tick=int(_num(v, 'reward_flood_per_tick')),
        atp=AtpConfig(_num(v, 'atp.budget_per_tick'), _num(v, 'atp.capacity'),
                      _num(v, 'atp.recharge_per_s')),
        allocator=AllocatorConfig(_num(v, 'atp.min_share'), _num(v, 'atp.min_grant'),
                                  _num(v, 'atp.salience_floor'), _num(v, 'atp.focus_gain'),
                                  _num(v, 'atp.realloc_cap')),
        trust=trust, metabolic=metabolic, effects=effects, pressure=pressure)


def pressure_paths(values: Mapping[str, ParamValue]) -> PressurePaths:
    """Where the node reads pressure from."""
    return PressurePaths(str(values['pressure.proc_root']), str(values['pressure.cgroup_dir']))


def validate(values: Mapping[str, ParamValue]) -> list[str]:
    """Cross-field rules; returns one message per problem."""
    try:
        cfg = build_config(values)
    except OrchestratorError as err:
        return [str(err)]
    errors = []
    m, p, t = cfg.metabolic, cfg.pressure, cfg.trust
    names = {s.name for s in cfg.plugins}
    unknown_inprocess = sorted(s.name for s in cfg.plugins
                               if s.kind == 'inprocess' and s.name not in REGISTRY)
    if unknown_inprocess:
        errors.append(f'plugins: unknown in-process plugins {unknown_inprocess} (known: '
                      f"{', '.join(sorted(REGISTRY))})")
    if m.focus_exit >= m.focus_enter:
        errors.append('metabolic.focus_exit must be below metabolic.focus_enter')
    if m.crisis_exit_reserve <= m.crisis_enter_reserve:
        errors.append('metabolic.crisis_exit_reserve must exceed crisis_enter_reserve')
    if m.idle_dream_s < m.idle_rest_s:
        errors.append('metabolic.idle_dream_s must be at least metabolic.idle_rest_s')
    if not p.red_psi > p.yellow_psi:
        errors.append('pressure.red_psi must exceed pressure.yellow_psi')
    if not p.red_available_mb < p.yellow_available_mb:
        errors.append('pressure.red_available_mb must be below pressure.yellow_available_mb')
    if not p.red_cgroup > p.yellow_cgroup:
        errors.append('pressure.red_cgroup must exceed pressure.yellow_cgroup')
    if t.lo > t.hi or not t.lo <= t.initial <= t.hi:
        errors.append('trust.min <= trust.initial <= trust.max must hold')
    if cfg.allocator.min_share * len(cfg.plugins) > 1.0:
        errors.append(f'atp.min_share * {len(cfg.plugins)} plugins exceeds 1')
    for state, eff in cfg.effects.states.items():
        unknown = sorted((eff.models or frozenset()) - names)
        if unknown:
            errors.append(f'state.{state.value.lower()}.models: unknown plugins {unknown}')
    for level, pause in zip(('yellow', 'red'), cfg.effects.pressure_pause[1:]):
        unknown = sorted(pause - names)
        if unknown:
            errors.append(f'pressure.{level}.pause: unknown plugins {unknown}')
    managed = set(cfg.effects.pressure_set[0])
    managed |= {k for k in (cfg.effects.camera_fps, cfg.effects.threshold) if k is not None}
    if cfg.effects.threshold is not None:
        node, param = cfg.effects.threshold
        managed |= {(node, param.replace('{state}', s.value.lower())) for s in State}
    for level, settings in zip(('yellow', 'red'), cfg.effects.pressure_set[1:]):
        missing = sorted(f'{n}:{q}' for n, q in settings if (n, q) not in managed)
        if missing:
            errors.append(f'pressure.{level}.set changes {missing} with no normal value in '
                          'pressure.green.set to restore')
    return errors
