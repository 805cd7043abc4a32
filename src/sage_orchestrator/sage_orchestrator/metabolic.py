"""The metabolic state machine: one definition of WAKE, FOCUS, REST, DREAM and CRISIS.

States (effects per state are profile parameters state.<name>.*, applied by the core):

- WAKE: normal operation. Full per-tick budget, camera at its normal rate, all models loaded.
- FOCUS: something salient is happening. Larger budget, more of it to the salient modality
  (focus_gain), camera faster, attend threshold a little lower. Burns the ATP reserve faster
  than it recharges, so it cannot last forever.
- REST: nothing salient for a while. Small budget, camera slow, threshold a little higher,
  the reserve recharges faster.
- DREAM: idle for longer: the memory node is asked to consolidate (Sleep service); sensing
  stays minimal. A salience spike preempts it.
- CRISIS: the kernel cannot sustain its work: the ATP reserve is nearly empty or memory
  pressure is red. Minimal budget, only essential models loaded, camera slow, threshold
  raised so fewer inputs are attended.

Inputs: salience (the largest recent salience over modalities, decaying with a half-life),
idle time (since the last salience >= activity_salience, attended input or reward), ATP
reserve fraction, memory-pressure level, and the outcome of the current dream's Sleep call.

Transitions are the explicit table `TRANSITIONS`, checked in order each tick; the first rule
whose source matches and whose guard holds fires (at most one transition per tick). A rule
only fires after the current state's minimum dwell time, except the preempting rules (into
CRISIS, and the salience spike that ends DREAM). A dream that ends by sleep result, failure
or timeout starts the dream cooldown; a preempted dream (salience spike or CRISIS) does not.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import math

from sage_common.vocabulary import MetabolicState


# The five states are the shared vocabulary's (values equal sage_interfaces/MetabolicState).
State = MetabolicState


def _default_dwell() -> dict[State, float]:
    return {State.WAKE: 2.0, State.FOCUS: 3.0, State.REST: 2.0, State.DREAM: 5.0,
            State.CRISIS: 5.0}


@dataclass(frozen=True)
class MetabolicConfig:
    """Thresholds and times of the state machine (metabolic.* in the profile)."""

    focus_enter: float = 0.7
    focus_exit: float = 0.4
    focus_min_reserve: float = 0.3
    wake_salience: float = 0.5
    dream_preempt_salience: float = 0.6
    activity_salience: float = 0.3
    idle_rest_s: float = 30.0
    idle_dream_s: float = 120.0
    dream_max_s: float = 60.0
    dream_cooldown_s: float = 600.0
    dream_min_reserve: float = 0.2
    crisis_enter_reserve: float = 0.1
    crisis_exit_reserve: float = 0.3
    dwell: Mapping[State, float] = field(default_factory=_default_dwell)


@dataclass(frozen=True)
class Inputs:
    """What the machine sees at one tick.

    Attributes:
        now: time in seconds.
        salience: largest current salience over modalities, in [0, 1].
        modality: the modality that has it ('' if none).
        idle_s: seconds since the last activity.
        reserve: ATP reserve fraction in [0, 1].
        pressure: memory-pressure level 'green' | 'yellow' | 'red'.
        sleep: outcome of the current dream's Sleep call: 'none' | 'pending' | 'done' |
            'failed'.
        sleep_message: the memory node's message (or the failure).
    """

    now: float
    salience: float
    modality: str
    idle_s: float
    reserve: float
    pressure: str
    sleep: str = 'none'
    sleep_message: str = ''


@dataclass(frozen=True)
class View:
    """Inputs plus the machine's own clocks, as guards see them."""

    inp: Inputs
    dwell_s: float
    since_dream_s: float


Guard = Callable[[View, MetabolicConfig], 'str | None']


@dataclass(frozen=True)
class Rule:
    """One row of the transition table; the guard returns the reason, or None."""

    name: str
    sources: frozenset[State]
    target: State
    guard: Guard
    preempt: bool = False


@dataclass(frozen=True)
class Transition:
    """A state change and why it happened."""

    t: float
    source: State
    target: State
    rule: str
    reason: str


def _sal(v: View) -> str:
    return f'salience {v.inp.salience:.2f}' + (f' ({v.inp.modality})' if v.inp.modality else '')


def _to_crisis(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.pressure == 'red':
        return 'memory pressure red'
    if v.inp.reserve < c.crisis_enter_reserve:
        return f'ATP reserve {v.inp.reserve:.2f} < crisis_enter_reserve {c.crisis_enter_reserve}'
    return None


def _crisis_over(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.pressure != 'red' and v.inp.reserve >= c.crisis_exit_reserve:
        return (f'recovered: ATP reserve {v.inp.reserve:.2f} >= crisis_exit_reserve '
                f'{c.crisis_exit_reserve}, memory pressure {v.inp.pressure}')
    return None


def _dream_preempt(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.salience >= c.dream_preempt_salience:
        return f'{_sal(v)} >= dream_preempt_salience {c.dream_preempt_salience}: dream preempted'
    return None


def _dream_over(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.sleep == 'done':
        return f'sleep finished: {v.inp.sleep_message}'
    if v.inp.sleep == 'failed':
        return f'sleep failed: {v.inp.sleep_message}'
    if v.dwell_s >= c.dream_max_s:
        return f'dream reached dream_max_s {c.dream_max_s:g} s without a sleep result'
    return None


def _rest_wake(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.salience >= c.wake_salience:
        return f'{_sal(v)} >= wake_salience {c.wake_salience}'
    return None


def _rest_dream(v: View, c: MetabolicConfig) -> str | None:
    i = v.inp
    if (i.idle_s >= c.idle_dream_s and v.since_dream_s >= c.dream_cooldown_s
            and i.reserve >= c.dream_min_reserve and i.pressure == 'green'):
        return f'idle {i.idle_s:.1f} s >= idle_dream_s {c.idle_dream_s:g} s'
    return None


def _wake_focus(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.salience >= c.focus_enter and v.inp.reserve >= c.focus_min_reserve:
        return f'{_sal(v)} >= focus_enter {c.focus_enter}'
    return None


def _wake_rest(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.idle_s >= c.idle_rest_s:
        return f'idle {v.inp.idle_s:.1f} s >= idle_rest_s {c.idle_rest_s:g} s'
    return None


def _focus_over(v: View, c: MetabolicConfig) -> str | None:
    if v.inp.salience < c.focus_exit:
        return f'{_sal(v)} < focus_exit {c.focus_exit}'
    if v.inp.reserve < c.focus_min_reserve:
        return f'ATP reserve {v.inp.reserve:.2f} < focus_min_reserve {c.focus_min_reserve}'
    return None


W, F, R, D, C = State.WAKE, State.FOCUS, State.REST, State.DREAM, State.CRISIS

# The transition table, in priority order.
TRANSITIONS: tuple[Rule, ...] = (
    Rule('enter_crisis', frozenset({W, F, R, D}), C, _to_crisis, preempt=True),
    Rule('crisis_over', frozenset({C}), W, _crisis_over),
    Rule('dream_preempt', frozenset({D}), W, _dream_preempt, preempt=True),
    Rule('dream_over', frozenset({D}), R, _dream_over),
    Rule('rest_wake', frozenset({R}), W, _rest_wake),
    Rule('rest_dream', frozenset({R}), D, _rest_dream),
    Rule('wake_focus', frozenset({W}), F, _wake_focus),
    Rule('wake_rest', frozenset({W}), R, _wake_rest),
    Rule('focus_over', frozenset({F}), W, _focus_over),
)


class MetabolicMachine:
    """Holds the current state and applies `TRANSITIONS` to each tick's inputs."""

    def __init__(self, cfg: MetabolicConfig, now: float = 0.0) -> None:
        self.cfg = cfg
        self.state = State.WAKE
        self.previous = State.WAKE
        self.reason = 'start'
        self.entered_at = now
        self.focus_modality = ''
        self.last_dream_end = -math.inf

    def dwell_s(self, now: float) -> float:
        """Seconds spent in the current state."""
        return max(0.0, now - self.entered_at)

    def step(self, inp: Inputs) -> Transition | None:
        """Apply the first rule that fires, if any; returns the transition."""
        dwell = self.dwell_s(inp.now)
        view = View(inp, dwell, inp.now - self.last_dream_end)
        min_dwell = self.cfg.dwell.get(self.state, 0.0)
        for rule in TRANSITIONS:
            if self.state not in rule.sources or (not rule.preempt and dwell < min_dwell):
                continue
            reason = rule.guard(view, self.cfg)
            if reason is not None:
                return self._enter(rule, reason, inp)
        return None

    def _enter(self, rule: Rule, reason: str, inp: Inputs) -> Transition:
        if rule.name == 'dream_over':
            self.last_dream_end = inp.now
        tr = Transition(inp.now, self.state, rule.target, rule.name, reason)
        self.previous, self.state, self.reason = self.state, rule.target, reason
        self.entered_at = inp.now
        self.focus_modality = inp.modality if rule.target is State.FOCUS else ''
        return tr
