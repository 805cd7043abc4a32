"""The orchestrator core: one `tick(now)` that ties ATP, trust, metabolism and pressure together.

Inputs arrive between ticks through `on_latent` / `on_report` (plugin outcomes), `on_salience`,
`on_reward`, `on_pressure`, `on_sleep_result` and `on_param_result`; malformed inputs raise
`BadInputError` (the shell counts and reports them; nothing else changes). Each tick:

1. closes the previous allocation period: reported spending is debited from the ATP reservoir,
   which recharges at `atp.recharge_per_s` times the state's recharge_scale; unused ATP from
   early halts forms the pool for hungry plugins (rule in `allocator`);
2. times out silent plugins: an active 'stream' plugin with no report for report_timeout_s
   loses trust (once per timeout period) and is reported; 'event' plugins (language) are
   silent when nobody talks, so they never time out; a plugin that has not reported since
   start is given startup_grace_s first (model loading);
3. steps the metabolic machine (salience, idle time, reserve fraction, pressure, sleep result);
4. decides which plugins are active (kept by the state, not paused by pressure, not unloaded
   as idle under pressure) and allocates the budget: budget_per_tick * the state's
   budget_scale, capped by the reservoir, by `allocator.allocate` and
   `allocator.apply_min_grant`;
5. runs in-process plugins with their allocation (their reports count at once);
6. computes the desired remote parameters and returns the ones due to be sent.

The ATP reservoir is a token bucket: capacity is the burst a state like FOCUS can draw on,
recharge is the compute rate the platform sustains. Its fill fraction is the "ATP reserve"
the metabolic machine reads.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
import math
from typing import Any, Literal

from sage_common.records import (MODALITIES, LatentRecord, RewardRecord, SalienceRecord,
                                 StateRecord)
from sage_orchestrator.allocator import (AllocatorConfig, Claim, Ledger, allocate,
                                         apply_min_grant)
from sage_orchestrator.effects import (EffectsConfig, ParamSync, Value, desired_params,
                                       paused)
from sage_orchestrator.errors import BadInputError, OrchestratorError
from sage_orchestrator.irp import PluginReport, report_from_latent
from sage_orchestrator.metabolic import (Inputs, MetabolicConfig, MetabolicMachine, State,
                                         Transition)
from sage_orchestrator.plugins import InProcessPlugin
from sage_orchestrator.pressure import (LEVELS, PressureClassifier, PressureConfig,
                                        PressureSample)
from sage_orchestrator.trust import Outcome, TrustConfig, TrustTable, score_report

PluginKind = Literal['stream', 'event', 'inprocess']
KINDS = ('stream', 'event', 'inprocess')
STATE_KEY = 'orchestrator'


@dataclass(frozen=True)
class PluginSpec:
    """A plugin: its name, the modality whose salience drives it ('' = all), and its kind."""

    name: str
    modality: str
    kind: str = 'stream'

    @property
    def remote(self) -> bool:
        """True for encoder nodes that report through Latent."""
        return self.kind != 'inprocess'


def parse_plugins(text: str) -> tuple[PluginSpec, ...]:
    """Parse 'name:modality:kind,...' (kind stream | event | inprocess).

    Raises:
        OrchestratorError: bad item, duplicate name, unknown modality or kind, or two remote
            plugins for one modality (a Latent must map to one plugin).
    """
    specs: list[PluginSpec] = []
    for item in (i.strip() for i in text.split(',')):
        if not item:
            continue
        parts = [p.strip() for p in item.split(':')]
        if len(parts) != 3 or not parts[0]:
            raise OrchestratorError(f"plugin {item!r} is not 'name:modality:kind'")
        name, modality, kind = parts
        if kind not in KINDS:
            raise OrchestratorError(f"plugin {name!r}: kind {kind!r} not in {', '.join(KINDS)}")
        if modality not in MODALITIES and not (kind == 'inprocess' and modality == ''):
            raise OrchestratorError(f'plugin {name!r}: unknown modality {modality!r}')
        specs.append(PluginSpec(name, modality, kind))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise OrchestratorError(f'duplicate plugin names in {text!r}')
    remote_mods = [s.modality for s in specs if s.remote]
    if len(set(remote_mods)) != len(remote_mods):
        raise OrchestratorError(f'two remote plugins share a modality in {text!r}')
    if not specs:
        raise OrchestratorError('no plugins configured')
    return tuple(specs)


@dataclass(frozen=True)
class AtpConfig:
    """The ATP economy (atp.* in the profile)."""

    budget_per_tick: float = 10.0
    capacity: float = 1500.0
    recharge_per_s: float = 100.0


@dataclass(frozen=True)
class OrchestratorConfig:
    """Everything the core needs; built from ROS parameters by `orchestrator_params`."""

    plugins: tuple[PluginSpec, ...]
    tick_hz: float = 10.0
    report_timeout_s: float = 3.0
    startup_grace_s: float = 30.0
    salience_half_life_s: float = 1.0
    reward_flood_per_tick: int = 50
    atp: AtpConfig = field(default_factory=AtpConfig)
    allocator: AllocatorConfig = field(default_factory=AllocatorConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    metabolic: MetabolicConfig = field(default_factory=MetabolicConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    pressure: PressureConfig = field(default_factory=PressureConfig)


@dataclass(frozen=True)
class AllocationView:
    """One plugin's line of the budget (mirror of sage_interfaces/AtpAllocation)."""

    plugin: str
    modality: str
    trust: float
    salience: float
    share: float
    atp: float
    atp_used: float
    active: bool


@dataclass(frozen=True)
class SleepRequest:
    """Ask the memory node to consolidate (sent when DREAM is entered)."""

    request_id: int
    max_duration_s: float
    reason: str


@dataclass(frozen=True)
class TickResult:
    """What one tick decided; the shell publishes it and carries out the actions."""

    tick: int
    now: float
    budget_total: float
    reserve: float
    allocations: tuple[AllocationView, ...]
    state: StateRecord
    transitions: tuple[Transition, ...]
    params: dict[str, dict[str, Value]]
    sleep: SleepRequest | None
    problems: tuple[str, ...]


class OrchestratorCore:
    """Pure orchestrator state and logic; deterministic given its inputs and `now` values."""

    def __init__(self, cfg: OrchestratorConfig,
                 inprocess: Mapping[str, InProcessPlugin] | None = None) -> None:
        self.cfg = cfg
        self.specs = cfg.plugins
        self.names = tuple(s.name for s in cfg.plugins)
        self.inprocess = dict(inprocess or {})
        missing = [s.name for s in self.specs if not s.remote and s.name not in self.inprocess]
        if missing:
            raise OrchestratorError(f'in-process plugins without an object: {missing}')
        self._by_modality = {s.modality: s.name for s in self.specs if s.remote}
        self.trust = TrustTable(self.names, cfg.trust)
        self.machine = MetabolicMachine(cfg.metabolic)
        self.pressure = PressureClassifier(cfg.pressure)
        self.sync = ParamSync(cfg.effects.retry_s, cfg.effects.reassert_s)
        self._ledger = Ledger(self.names)
        self.reservoir = cfg.atp.capacity
        self.tick_count = 0
        self._last_tick: float | None = None
        self._peaks: dict[str, tuple[float, float]] = {}
        self._last_activity = 0.0
        self._last_report = dict.fromkeys(self.names, 0.0)
        self._last_timeout = dict.fromkeys(self.names, -math.inf)
        self._seen: set[str] = set()
        self._started = 0.0
        self.timed_out: set[str] = set()
        self._active = dict.fromkeys(self.names, True)
        self._pressure_off = dict.fromkeys(self.names, False)
        self._hungry: set[str] = set()
        self._pool = 0.0
        self._credit: dict[str, float] = {}
        self._used = dict.fromkeys(self.names, 0.0)
        self._allocated = dict.fromkeys(self.names, 0.0)
        self._prev_allocated = dict.fromkeys(self.names, 0.0)
        self._budget_total = 0.0
        self._rewards = 0
        self._sleep_id = 0
        self._sleep_status = 'none'
        self._sleep_message = ''
        self._problems: list[str] = []
        self.last_outcome: dict[str, Outcome] = {}

    # ---- configuration and state ------------------------------------------------------

    def configure(self, cfg: OrchestratorConfig) -> None:
        """Apply changed parameters, keeping learned state (the plugin list cannot change).

        Raises:
            OrchestratorError: the plugin list differs.
        """
        if cfg.plugins != self.cfg.plugins:
            raise OrchestratorError('the plugin list cannot change at runtime')
        self.cfg = cfg
        self.trust.configure(cfg.trust)
        self.machine.cfg = cfg.metabolic
        self.pressure.cfg = cfg.pressure
        self.sync.retry_s, self.sync.reassert_s = cfg.effects.retry_s, cfg.effects.reassert_s
        self.reservoir = min(self.reservoir, cfg.atp.capacity)

    def state_dict(self) -> dict[str, Any]:
        """Learned state to persist across restarts (trust)."""
        return {'trust': self.trust.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> list[str]:
        """Restore `state_dict` output; returns notes about anything skipped."""
        trust = state.get('trust')
        if not isinstance(trust, Mapping):
            return ['saved state has no trust section: ignored']
        return self.trust.load_state_dict(trust)

    # ---- inputs ---------------------------------------------------------------------

    def plugin_for_modality(self, modality: str) -> str | None:
        """The remote plugin whose Latent carries this modality."""
        return self._by_modality.get(modality)

    def on_report(self, report: PluginReport, now: float) -> Outcome:
        """Account a plugin's refinement report and learn trust from it.

        Raises:
            BadInputError: unknown plugin, or a report the trust rule rejects as invalid
                (its finite, non-negative spending is still accounted).
        """
        name = report.plugin
        if name not in self.trust.values:
            raise BadInputError(f'report from unknown plugin {name!r}')
        spent = report.atp_spent
        spent = spent if math.isfinite(spent) and spent > 0.0 else 0.0
        self._ledger.record(name, spent, report.halt_reason)
        self._last_report[name] = now
        self._seen.add(name)
        if name in self.timed_out:
            self.timed_out.discard(name)
            self._problems.append(f'{name}: late report after a timeout')
        outcome = score_report(report, self.cfg.trust)
        self.last_outcome[name] = outcome
        if outcome.kind == 'invalid':
            raise BadInputError(f'{name}: invalid report ({outcome.note})')
        self.trust.apply(name, outcome)
        if outcome.note:
            self._problems.append(f'{name}: {outcome.note}')
        return outcome

    def on_latent(self, rec: LatentRecord, now: float) -> Outcome:
        """A Latent from an encoder: its IRP report, and food for in-process observers.

        Raises:
            BadInputError: no plugin for the modality, or an invalid report.
        """
        name = self._by_modality.get(rec.modality)
        if name is None:
            raise BadInputError(f'Latent of modality {rec.modality!r} has no plugin')
        for spec in self.specs:
            observe = getattr(self.inprocess.get(spec.name), 'observe', None)
            if spec.modality == rec.modality and callable(observe) and self._active[spec.name]:
                observe(rec.embedding)
        return self.on_report(report_from_latent(rec, name), now)

    def salience_now(self, modality: str, now: float) -> float:
        """Recent peak salience of a modality, decayed with salience_half_life_s."""
        peak = self._peaks.get(modality)
        if peak is None:
            return 0.0
        age = max(0.0, now - peak[1])
        return float(peak[0] * 0.5 ** (age / self.cfg.salience_half_life_s))

    def on_salience(self, rec: SalienceRecord, now: float) -> None:
        """A salience score: raises its modality's peak; salient or attended = activity.

        Raises:
            BadInputError: unknown modality or a salience that is not a finite number.
        """
        if rec.modality not in MODALITIES:
            raise BadInputError(f'salience for unknown modality {rec.modality!r}')
        s = float(rec.salience)
        if not math.isfinite(s):
            raise BadInputError(f'{rec.modality}: salience {s} is not finite')
        s = min(1.0, max(0.0, s))
        if s >= self.salience_now(rec.modality, now):
            self._peaks[rec.modality] = (s, now)
        if s >= self.cfg.metabolic.activity_salience or rec.attend:
            self._last_activity = max(self._last_activity, now)

    def on_reward(self, rec: RewardRecord, now: float) -> None:
        """A reward counts as activity; more than reward_flood_per_tick in a tick is a flood.

        Raises:
            BadInputError: value not a finite number, or the flood limit is exceeded (the
                reward is dropped).
        """
        if not math.isfinite(rec.value):
            raise BadInputError(f'reward {rec.value} from {rec.source!r} is not finite')
        self._rewards += 1
        if self._rewards > self.cfg.reward_flood_per_tick:
            raise BadInputError(f'reward flood: more than {self.cfg.reward_flood_per_tick} '
                                f'rewards in one tick, dropped')
        if rec.value != 0.0:
            self._last_activity = max(self._last_activity, now)

    def on_pressure(self, sample: PressureSample, now: float) -> bool:
        """A memory-pressure sample; returns True when the level changed."""
        self._problems.extend(f'pressure: {e}' for e in sample.errors)
        return self.pressure.update(sample, now)

    def on_sleep_result(self, request_id: int, success: bool, message: str) -> bool:
        """Result of a Sleep call; False when it belongs to a dream that already ended."""
        if request_id != self._sleep_id or self.machine.state is not State.DREAM:
            return False
        self._sleep_status = 'done' if success else 'failed'
        self._sleep_message = message
        return True

    def on_param_result(self, node: str, sent: Mapping[str, Any],
                        outcome: Mapping[str, tuple[bool, str]], now: float) -> None:
        """A remote node answered the SetParameters request `sent` (param -> (ok, reason))."""
        self.sync.result(node, sent, outcome, now)
        for param, (ok, reason) in outcome.items():
            if not ok:
                self._problems.append(f'{node}: cannot set {param}: {reason}')

    def on_param_unreachable(self, node: str, reason: str, now: float,
                             sent: Mapping[str, Any] | None = None) -> None:
        """A remote node's parameter service is unavailable (retried after retry_s).

        Reported from the second failure on: at start-up the first attempt usually precedes
        discovery.
        """
        again = any(k[0] == node for k in self.sync.failures)
        self.sync.unreachable(node, reason, now, sent)
        if again:
            self._problems.append(f'{node}: {reason}')

    # ---- the tick -------------------------------------------------------------------

    def _close_period(self, now: float, dt: float) -> None:
        summaries = self._ledger.close()
        spent = 0.0
        for s in summaries:
            # Reports straddle tick boundaries, so a period may carry some of the previous
            # allocation's spending; more than twice the larger of the two is not believed.
            allocated = max(self._allocated[s.name], self._prev_allocated[s.name])
            limit = 2.0 * allocated + self.cfg.allocator.min_grant
            counted = min(s.spent, limit)
            if counted < s.spent and allocated > 0.0:
                self._problems.append(f'{s.name}: reported {s.spent:.2f} ATP spent of '
                                      f'{allocated:.2f} allocated; counted {counted:.2f}')
            self._used[s.name] = counted
            spent += counted
        self._pool = sum(s.returned for s in summaries)
        self._hungry = {s.name for s in summaries if s.hungry}
        scale = self.cfg.effects.states[self.machine.state].recharge_scale
        level = self.reservoir - spent + self.cfg.atp.recharge_per_s * scale * dt
        self.reservoir = min(self.cfg.atp.capacity, max(0.0, level))

    def _timeouts(self, now: float) -> None:
        limit = self.cfg.report_timeout_s
        for spec in self.specs:
            n = spec.name
            if spec.kind != 'stream' or not self._active[n]:
                continue
            if n not in self._seen and now - self._started < self.cfg.startup_grace_s:
                continue  # models take a while to load: no timeout before the first report
            silent = now - self._last_report[n]
            if silent >= limit and now - self._last_timeout[n] >= limit:
                self.trust.timeout(n)
                self.timed_out.add(n)
                self._last_timeout[n] = now
                self._problems.append(f'{n}: no report for {silent:.1f} s (timeout)')

    def _strongest(self, now: float) -> tuple[float, str]:
        best, mod = 0.0, ''
        for m in MODALITIES:
            s = self.salience_now(m, now)
            if s > best:
                best, mod = s, m
        return best, mod

    def _update_active(self, now: float) -> None:
        """Decide which plugins are active: kept by the state and not off for pressure.

        Off for pressure = paused at this level, or (at level >= unload_idle_level) idle for
        idle_model_s or already off: under pressure no model is reloaded.
        """
        eff = self.cfg.effects
        level = self.pressure.level
        stopped = paused(level, eff)
        unload = level >= eff.unload_idle_level
        state_eff = eff.states[self.machine.state]
        for spec in self.specs:
            n = spec.name
            idle = now - self._last_report[n] >= eff.idle_model_s
            off = n in stopped or (unload and (idle or self._pressure_off[n]))
            on = state_eff.keeps(n) and not off
            if on and not self._active[n]:
                self._last_report[n] = now  # the timeout clock restarts when it comes back
            self._active[n], self._pressure_off[n] = on, off

    def tick(self, now: float) -> TickResult:
        """Advance one tick at time `now` (seconds); see the module docstring."""
        cfg = self.cfg
        last = self._start(now) if self._last_tick is None else self._last_tick
        dt = max(0.0, now - last)
        self._last_tick = now
        self.tick_count += 1
        self._close_period(now, dt)
        self._timeouts(now)
        self._rewards = 0
        salience, modality = self._strongest(now)
        capacity = cfg.atp.capacity
        reserve = self.reservoir / capacity if capacity > 0 else 0.0
        inputs = Inputs(now, salience, modality, now - self._last_activity, reserve,
                        self.pressure.name, self._sleep_status, self._sleep_message)
        transitions: list[Transition] = []
        sleep = None
        tr = self.machine.step(inputs)
        if tr is not None:
            transitions.append(tr)
            self._sleep_status, self._sleep_message = 'none', ''
            if tr.target is State.DREAM:
                self._sleep_id += 1
                self._sleep_status = 'pending'
                sleep = SleepRequest(self._sleep_id, cfg.metabolic.dream_max_s, tr.reason)
        self._update_active(now)
        allocations = self._allocate(now)
        self._run_inprocess(allocations, now)
        remote = [s.name for s in self.specs if s.remote]
        self.sync.set_desired(desired_params(
            self.machine.state, self.pressure.level, {n: self._active[n] for n in remote},
            cfg.effects, {n: self._pressure_off[n] for n in remote}))
        params = self.sync.due(now)
        problems, self._problems = tuple(self._problems), []
        state = StateRecord(now, self.machine.state.value, self.machine.previous.value,
                            self.machine.reason, self.machine.dwell_s(now), reserve,
                            self.pressure.name)
        return TickResult(self.tick_count, now, self._budget_total, self.reservoir,
                          allocations, state, tuple(transitions), params, sleep, problems)

    def _start(self, now: float) -> float:
        """First tick: start every clock now; returns the time of a virtual previous tick."""
        self._started = now
        self.machine.entered_at = now
        self._last_activity = now
        for n in self.names:
            self._last_report[n] = now
        return now - 1.0 / self.cfg.tick_hz

    def _allocate(self, now: float) -> tuple[AllocationView, ...]:
        cfg = self.cfg
        eff = cfg.effects.states[self.machine.state]
        self._budget_total = min(cfg.atp.budget_per_tick * eff.budget_scale, self.reservoir)
        focus = self.machine.focus_modality if self.machine.state is State.FOCUS else ''
        by_mod = {m: self.salience_now(m, now) for m in MODALITIES}
        strongest = max(by_mod.values())
        sal = {s.name: by_mod[s.modality] if s.modality else strongest for s in self.specs}
        claims = [Claim(s.name, self.trust.values[s.name], sal[s.name],
                        cfg.allocator.focus_gain if focus and s.modality == focus else 1.0,
                        self._active[s.name], s.name in self._hungry) for s in self.specs]
        allocs = apply_min_grant(
            allocate(claims, self._budget_total, self._pool, self.reservoir, cfg.allocator),
            self._credit, cfg.allocator.min_grant)
        self._ledger.open(allocs)
        views = []
        for spec, a in zip(self.specs, allocs):
            self._prev_allocated[spec.name] = self._allocated[spec.name]
            self._allocated[spec.name] = a.atp
            views.append(AllocationView(spec.name, spec.modality, self.trust.values[spec.name],
                                        sal[spec.name], a.share, a.atp, self._used[spec.name],
                                        self._active[spec.name]))
        return tuple(views)

    def _run_inprocess(self, allocations: tuple[AllocationView, ...], now: float) -> None:
        for a in allocations:
            plugin = self.inprocess.get(a.plugin)
            if plugin is None or a.atp <= 0.0:
                continue
            report = plugin.run(a.atp, now)
            if report is None:
                continue
            try:
                self.on_report(replace(report, plugin=a.plugin), now)
            except BadInputError as err:
                self._problems.append(str(err))

    def summary(self) -> dict[str, str]:
        """Key values for /diagnostics."""
        out = {'state': self.machine.state.value, 'state_reason': self.machine.reason,
               'memory_pressure': LEVELS[self.pressure.level],
               'pressure_reason': self.pressure.reason,
               'atp_reservoir': f'{self.reservoir:.1f}', 'ticks': str(self.tick_count)}
        for n in self.names:
            out[f'trust.{n}'] = f'{self.trust.values[n]:.3f}'
            out[f'active.{n}'] = str(self._active[n]).lower()
        for (node, param), reason in sorted(self.sync.failures.items()):
            out[f'remote_param_failed.{node}:{param}'] = reason
        return out
